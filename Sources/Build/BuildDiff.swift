// BuildDiff owns `havel diff`: what differs between two build directories: the installed packages (each
// rootfs's dpkg status, else source.xml's <fullpkgs>) and the files of the two trees, compared by
// TreeComparison, the comparer the reproducibility check uses (no symlink followed, nothing read outside them).

import Debian
import Foundation
import HavelCore
import ProjectXML
import SystemKit

public struct BuildDiff: Sendable, Encodable, Equatable {
    public struct Package: Sendable, Encodable, Equatable {
        public var name: String
        public var version: String
        public var architecture: String
    }

    public struct VersionChange: Sendable, Encodable, Equatable {
        public var name: String
        public var architecture: String
        public var from: String
        public var to: String
    }

    public struct FileChange: Sendable, Encodable, Equatable {
        public var path: String
        /// kind, content, mode, owner, link target, device.
        public var aspects: [String]
    }

    public var packagesAdded: [Package] = []
    public var packagesRemoved: [Package] = []
    public var packagesChanged: [VersionChange] = []
    public var filesAdded: [String] = []
    public var filesRemoved: [String] = []
    public var filesChanged: [FileChange] = []

    public var isEmpty: Bool {
        packagesAdded.isEmpty && packagesRemoved.isEmpty && packagesChanged.isEmpty
            && filesAdded.isEmpty && filesRemoved.isEmpty && filesChanged.isEmpty
    }

    /// What `second` has that `first` has not, and the reverse: packages keyed by name and architecture.
    public static func compare(_ first: BuildDirectory, _ second: BuildDirectory,
                               processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> BuildDiff {
        var diff = BuildDiff()
        diff.comparePackages(try packages(of: first), try packages(of: second))
        let tree = try await TreeComparison.compare(first.rootfs, second.rootfs, processes: processes)
        diff.filesAdded = tree.added
        diff.filesRemoved = tree.removed
        diff.filesChanged = tree.changed.map { FileChange(path: $0.path, aspects: $0.aspects.map(\.rawValue)) }
        return diff
    }

    mutating func comparePackages(_ first: [Package], _ second: [Package]) {
        func keyed(_ list: [Package]) -> [String: Package] {
            Dictionary(list.map { ("\($0.name) \($0.architecture)", $0) }) { earlier, _ in earlier }
        }
        let a = keyed(first), b = keyed(second)
        let order: (Package, Package) -> Bool = { ($0.name, $0.architecture) < ($1.name, $1.architecture) }
        packagesRemoved = a.filter { b[$0.key] == nil }.map(\.value).sorted(by: order)
        packagesAdded = b.filter { a[$0.key] == nil }.map(\.value).sorted(by: order)
        packagesChanged = a.compactMap { key, old -> VersionChange? in
            guard let new = b[key], new.version != old.version else { return nil }
            return VersionChange(name: old.name, architecture: old.architecture, from: old.version, to: new.version)
        }.sorted { ($0.name, $0.architecture) < ($1.name, $1.architecture) }
    }

    /// The installed packages of a build: its tree's dpkg status, else (a tree already removed) source.xml's list.
    static func packages(of directory: BuildDirectory) throws(HavelError) -> [Package] {
        var status = stat()
        guard lstat(directory.path, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else {
            throw HavelError(.notFound, "\(directory.path) is not a directory: give two havel build directories")
        }
        if lstat(directory.rootfs + "/var/lib/dpkg/status", &status) == 0 {
            return try DpkgStatus.read(root: directory.rootfs).map { Package(name: $0.name, version: $0.version, architecture: $0.architecture) }
        }
        guard FileManager.default.fileExists(atPath: directory.sourceXML) else {
            throw HavelError(.notFound, "\(directory.path) has neither rootfs/var/lib/dpkg/status nor source.xml: give a havel build directory")
        }
        let project = try ProjectLoader.load(path: directory.sourceXML).project
        return project.fullPackages.map { Package(name: $0.name, version: $0.version, architecture: $0.arch ?? "") }
    }

    /// For a person: a `packages:` section and a `files:` section, one line per difference
    /// (`+ name version (arch)`, `- …`, `~ name old -> new (arch)`; `+ /path`, `- /path`, `~ /path (content, mode)`).
    public var text: String {
        var lines: [String] = []
        let packageLines = packagesAdded.map { ($0.name, "+ \($0.name) \($0.version) (\($0.architecture))") }
            + packagesRemoved.map { ($0.name, "- \($0.name) \($0.version) (\($0.architecture))") }
            + packagesChanged.map { ($0.name, "~ \($0.name) \($0.from) -> \($0.to) (\($0.architecture))") }
        if !packageLines.isEmpty { lines += ["packages:"] + packageLines.sorted { $0.0 < $1.0 }.map(\.1) }
        var tree = TreeComparison()
        tree.added = filesAdded
        tree.removed = filesRemoved
        tree.changed = filesChanged.map { change in
            TreeComparison.Change(path: change.path, aspects: change.aspects.compactMap(TreeComparison.Aspect.init(rawValue:)))
        }
        if !tree.isEmpty { lines += ["files:"] + tree.lines }
        return lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n"
    }
}
