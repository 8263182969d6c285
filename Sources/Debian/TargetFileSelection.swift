// TargetFileSelection: which entries of an installed tree a `<tighten/>` or `<diet/>` target keeps, read from
// dpkg's database in that tree (`var/lib/dpkg/info/*.list`, `*.conffiles`, `status`). The rules follow ELBE's
// extract_target: the listed files of the chosen packages with their parent directories, and for every
// symbolic link on the way the link and what it points to. Havel adds the /etc entries no package owns
// (passwd, group, shadow… written by maintainer scripts), which ELBE leaves out.
import Foundation
import HavelCore
import SystemKit

public struct TargetFileSelection: Sendable {
    /// The installed tree the target is cut from.
    public let tree: RootedFileSystem
    /// The Debian architecture name, for the `name:arch.list` files of Multi-Arch: same packages.
    public let architecture: String

    static let infoDirectory = "/var/lib/dpkg/info"
    static let statusLimit = 64 << 20
    static let listLimit = 16 << 20
    static let maximumLinkDepth = 40

    public init(tree: RootedFileSystem, architecture: String) {
        self.tree = tree
        self.architecture = architecture
    }

    /// `packages` and every installed package they need through Depends and Pre-Depends, transitively. As
    /// ELBE's getalldeps, every alternative of an `a | b` counts; names that are not installed packages (virtual
    /// ones, alternatives not chosen) are left out, and so is what they would need.
    public func dependencyClosure(of packages: [String]) throws(HavelError) -> Set<String> {
        guard tree.exists("/var/lib/dpkg/status") else {
            throw HavelError(.notFound, "dpkg status not found in \(tree.root); the target's dependencies cannot be followed without it")
        }
        let text = String(decoding: try tree.readFile("/var/lib/dpkg/status", limit: Self.statusLimit), as: UTF8.self)
        return Self.dependencyClosure(of: packages, status: text)
    }

    static func dependencyClosure(of packages: [String], status: String) -> Set<String> {
        var needs: [String: [String]] = [:]
        for stanza in Deb822.parse(status, keeping: ["package", "status", "depends", "pre-depends"]) {
            guard let name = stanza["package"], DpkgStatus.isInstalled(status: stanza["status"]) else { continue }
            needs[name, default: []] += dependencyNames(stanza["depends"]) + dependencyNames(stanza["pre-depends"])
        }
        var chosen = Set<String>()
        var pending = packages
        while let name = pending.popLast() {
            guard needs[name] != nil, chosen.insert(name).inserted else { continue }
            pending += needs[name] ?? []
        }
        // A named package that is not installed still counts as chosen (it has no files to keep).
        return chosen.union(packages)
    }

    /// `libc6 (>= 2.36), libtinfo6 | libncurses6:any` → libc6, libtinfo6, libncurses6.
    static func dependencyNames(_ field: String?) -> [String] {
        guard let field else { return [] }
        return field.split(whereSeparator: { $0 == "," || $0 == "|" }).compactMap { item in
            let word = item.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "(" || $0 == "[" || $0 == "<" }).first
            guard let name = word?.split(separator: ":").first, !name.isEmpty else { return nil }
            return String(name)
        }
    }

    /// The paths dpkg lists for `packages` (`.list` and `.conffiles`, plain and `:arch` names), as written there.
    public func listedPaths(of packages: Set<String>) throws(HavelError) -> [String] {
        var paths = Set<String>()
        for name in packages.sorted() {
            for file in ["\(name).list", "\(name).conffiles", "\(name):\(architecture).list", "\(name):\(architecture).conffiles"] {
                paths.formUnion(try lines(of: Self.infoDirectory + "/" + file))
            }
        }
        return paths.sorted()
    }

    /// Every path some installed package's `.list` names.
    public func ownedPaths() throws(HavelError) -> Set<String> {
        let directory = try tree.resolve(Self.infoDirectory)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var owned = Set<String>()
        for name in names where name.hasSuffix(".list") {
            owned.formUnion(try lines(of: Self.infoDirectory + "/" + name))
        }
        return owned
    }

    /// The entries below `directory` (not following links) that `owned` does not name, and whose parent is
    /// `directory`, one of `kept` or such an entry itself (an unowned file in the directory of a package the
    /// target leaves out, such as the bootstrap's /etc/apt/sources.list, goes with that package).
    public func unownedEntries(under directory: String, owned: Set<String>, kept: Set<String>) -> [String] {
        var found: [String] = []
        var pending = [directory]
        while let current = pending.popLast() {
            guard let host = try? tree.resolve(current, followFinalSymlink: false),
                  let names = try? FileManager.default.contentsOfDirectory(atPath: host) else { continue }
            for name in names.sorted() {
                let path = current + "/" + name
                var status = stat()
                guard lstat(host + "/" + name, &status) == 0 else { continue }
                let parentKept = current == directory || kept.contains(current) || found.last(where: { $0 == current }) != nil
                guard parentKept else { continue }
                if !owned.contains(path) { found.append(path) }
                if status.st_mode & S_IFMT == S_IFDIR { pending.append(path) }
            }
        }
        return found.sorted()
    }

    /// The tree entries to copy for `paths`: each path that exists, its parent directories, and every symbolic
    /// link met on the way together with what it points to (so `/bin/bash` under a `/bin → usr/bin` link keeps
    /// the link, `/usr/bin` and `/usr/bin/bash`). Each entry is named by its real directory, so no entry lies
    /// below a link, and a parent sorts before its children. With `followingFinalLinks` false, a path that is
    /// itself a link is kept as a link only (its target may belong to a package the target leaves out).
    public func entries(for paths: [String], followingFinalLinks: Bool = true) -> [String] {
        var entries = Set<String>()
        for path in paths { collect(path, into: &entries, followFinalLink: followingFinalLinks, depth: 0) }
        return entries.sorted()
    }

    private func collect(_ path: String, into entries: inout Set<String>, followFinalLink: Bool, depth: Int) {
        guard depth < Self.maximumLinkDepth else { return }
        let parts = path.split(separator: "/").map(String.init).filter { $0 != "." && !$0.isEmpty }
        guard !parts.contains("..") else { return }
        var real: [String] = []
        for (index, part) in parts.enumerated() {
            let candidate = real + [part]
            let treePath = "/" + candidate.joined(separator: "/")
            var status = stat()
            guard lstat(tree.root + treePath, &status) == 0 else { return }
            entries.insert(treePath)
            let isLast = index == parts.count - 1
            switch status.st_mode & S_IFMT {
            case S_IFLNK:
                if isLast && !followFinalLink { return }
                guard let resolved = try? tree.resolve(treePath), lstat(resolved, &status) == 0 else { return }
                let resolvedPath = resolved == tree.root ? "/" : String(resolved.dropFirst(tree.root.count))
                collect(resolvedPath, into: &entries, followFinalLink: true, depth: depth + 1)
                real = resolvedPath.split(separator: "/").map(String.init)
            case S_IFDIR:
                real = candidate
            default:
                if !isLast { return }
            }
        }
    }

    /// The lines of a dpkg list file in the tree; none when the file is missing. `/.` (the root) is left out.
    func lines(of path: String) throws(HavelError) -> [String] {
        guard tree.exists(path) else { return [] }
        let text = String(decoding: try tree.readFile(path, limit: Self.listLimit), as: UTF8.self)
        return text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("/") && $0 != "/." }
    }
}
