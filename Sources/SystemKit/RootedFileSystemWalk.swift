import Foundation
import HavelCore

// Path resolution inside the tree, done in user space the way the kernel resolves paths for a process chrooted
// into the tree (openat2's RESOLVE_IN_ROOT):
//
// - components are taken one at a time; `.` is skipped, `..` drops the last resolved component and stops at the
//   tree's root;
// - each component is lstat'ed under the already resolved (symlink-free) prefix; a symlink is read and its target
//   spliced in front of the remaining components, an absolute target restarting at the tree's root; at most 40
//   links per resolution (the kernel's limit), so loops end with "too many levels of symbolic links";
// - once a component is missing, the rest is taken lexically (nothing below a missing directory can exist), but
//   as soon as `..` climbs back into the existing part, checking resumes (so `missing/../etc` still sees a
//   planted `/etc` link);
// - a trailing `/` means the final component must be followed (as POSIX says).
//
// The result is a list of real components: every one but possibly the last names an existing real directory
// (or does not exist yet), so `<root>/<components joined>` crosses no symlink on the host.
//
// Races: between the check of a component and its use another process could swap a directory for a symlink.
// Havel only changes a tree from the host when no process of the target runs (chroot sessions live in their own
// PID namespace and end with it), so this is not guarded beyond the no-follow flags on every final operation
// and descriptor-based recursion.

enum EntryKind: Equatable { case directory, regular, symlink, other }

func entryKind(_ status: stat) -> EntryKind {
    switch status.st_mode & S_IFMT {
    case S_IFDIR: .directory
    case S_IFREG: .regular
    case S_IFLNK: .symlink
    default: .other
    }
}

func describeErrno(_ code: Int32) -> String {
    let text = errnoText(code)
    return text.prefix(1).lowercased() + text.dropFirst()
}

/// The target of the symbolic link at a host path, or nil (errno set) when it cannot be read.
public func symbolicLinkTarget(_ host: String) -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = readlink(host, &buffer, buffer.count)
    guard count >= 0 else { return nil }
    return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// What a walk found.
struct Resolution {
    /// Real components below the tree's root (the first `verified` of them exist).
    var components: [String]
    var verified: Int
    /// lstat of the final component when it exists.
    var status: stat?

    var exists: Bool { verified == components.count }
    var kind: EntryKind? { exists ? status.map(entryKind) : nil }
}

extension RootedFileSystem {
    static let maximumSymlinks = 40

    func hostPath(_ components: [String]) -> String {
        if components.isEmpty { return root }
        return (root == "/" ? "" : root) + "/" + components.joined(separator: "/")
    }

    func treePath(_ components: [String]) -> String {
        "/" + components.joined(separator: "/")
    }

    func failure(_ action: String, _ path: String, _ code: Int32) -> HavelError {
        HavelError(code == ENOENT ? .notFound : .io, "cannot \(action) \(path) in \(root): \(describeErrno(code))")
    }

    func hostFailure(_ action: String, _ path: String, _ code: Int32) -> HavelError {
        HavelError(code == ENOENT ? .notFound : .io, "cannot \(action) \(path): \(describeErrno(code))")
    }

    func validate(_ path: String) throws(HavelError) {
        guard !path.isEmpty else { throw HavelError(.invalidArgument, "empty path in \(root)") }
        guard !path.utf8.contains(0) else {
            throw HavelError(.invalidArgument, "invalid path \(String(reflecting: path)) in \(root): it contains a NUL byte")
        }
    }

    static func split(_ path: String) -> [String] {
        var parts = path.split(separator: "/").map(String.init)
        if path.hasSuffix("/") && !parts.isEmpty { parts.append(".") }
        return parts
    }

    /// Resolves `path` inside the tree starting from `start` (components of an existing real directory).
    func walk(_ path: String, from start: [String] = [], followFinal: Bool) throws(HavelError) -> Resolution {
        try validate(path)
        var components = start
        var verified = start.count
        var pending = Array(Self.split(path).reversed())
        var links = 0
        while let name = pending.popLast() {
            if name == "." { continue }
            if name == ".." {
                if !components.isEmpty { components.removeLast() }
                verified = min(verified, components.count)
                continue
            }
            components.append(name)
            if verified < components.count - 1 { continue }  // below a missing directory: lexical
            let host = hostPath(components)
            var status = stat()
            if lstat(host, &status) != 0 {
                let code = errno
                if code == ENOENT { continue }
                throw failure("resolve", path, code)
            }
            let isLast = pending.isEmpty
            switch entryKind(status) {
            case .directory:
                verified = components.count
            case .symlink where isLast && !followFinal:
                verified = components.count
            case .symlink:
                links += 1
                guard links <= Self.maximumSymlinks else { throw failure("resolve", path, ELOOP) }
                let target = try readLink(host, display: path)
                components.removeLast()
                if target.hasPrefix("/") { components = [] }
                verified = components.count
                pending.append(contentsOf: Self.split(target).reversed())
            case .regular, .other:
                guard isLast else { throw failure("resolve", path, ENOTDIR) }
                verified = components.count
            }
        }
        var result = Resolution(components: components, verified: verified, status: nil)
        if result.exists {
            var status = stat()
            guard lstat(hostPath(components), &status) == 0 else { throw failure("resolve", path, errno) }
            result.status = status
        }
        return result
    }

    func readLink(_ host: String, display: String) throws(HavelError) -> String {
        guard let target = symbolicLinkTarget(host) else { throw failure("read symlink in", display, errno) }
        guard !target.isEmpty else { throw failure("read symlink in", display, ENOENT) }
        return target
    }

    /// Creates `found.components[found.verified..<end]` (mkdir -p below the existing part); the one at index
    /// `found.components.count - 1` gets `lastMode`, others 0755, exactly.
    func createMissingDirectories(_ found: Resolution, upTo end: Int, lastMode: mode_t, display: String) throws(HavelError) {
        guard found.verified < end else { return }
        for index in found.verified..<end {
            let host = hostPath(Array(found.components[...index]))
            let mode: mode_t = index == found.components.count - 1 ? lastMode & 0o7777 : 0o755
            if mkdir(host, 0o700) != 0 {
                let code = errno
                var status = stat()
                guard code == EEXIST, lstat(host, &status) == 0, entryKind(status) == .directory else {
                    throw failure("create directory", treePath(Array(found.components[...index])), code)
                }
                continue
            }
            if chmod(host, mode) != 0 { throw failure("set mode of directory", treePath(Array(found.components[...index])), errno) }
        }
    }

    /// A descriptor of a real directory of the tree (the components come from a walk).
    func openTreeDirectory(_ components: [String], display: String) throws(HavelError) -> Int32 {
        let fd = open(hostPath(components), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw HavelError(code == ENOENT ? .notFound : .io,
                             "cannot open directory \(treePath(components)) (for \(display)) in \(root): \(describeErrno(code))")
        }
        return fd
    }

    /// Where cp/mv put `name` given `to`: into `to` if it is (after following links inside the tree) an existing
    /// directory, else at `to` itself without following a final link (that entry is then replaced).
    func destinationComponents(named name: String?, to: String, verb: String) throws(HavelError) -> [String] {
        if let followed = try? walk(to, followFinal: true), followed.kind == .directory {
            guard let name else { return followed.components }
            return followed.components + [name]
        }
        let direct = try walk(to, followFinal: false)
        guard !direct.components.isEmpty else {
            throw HavelError(.invalidArgument, "cannot \(verb) to \(to) in \(root): it is the tree's root directory")
        }
        guard direct.verified >= direct.components.count - 1 else {
            throw HavelError(.notFound, "cannot \(verb) to \(to) in \(root): its directory does not exist")
        }
        return direct.components
    }

    /// Names in a real directory of the tree that match a glob component.
    func matchingEntries(in components: [String], pattern: String) -> [String] {
        let fd = open(hostPath(components), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        guard let names = try? listDirectory(fd, display: treePath(components)) else { return [] }
        let matcher = GlobPattern(pattern)
        let hiddenAllowed = pattern.hasPrefix(".")
        return names.map(displayName).filter { name in
            (hiddenAllowed || !name.hasPrefix(".")) && matcher.matches(name)
        }
    }

    func lookUp(_ name: String, in file: String, what: String) throws(HavelError) -> UInt32 {
        if !name.isEmpty && name.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            guard let id = UInt32(name), id != UInt32.max else {
                throw HavelError(.invalidArgument, "invalid \(what) id \(name)")
            }
            return id
        }
        guard !name.isEmpty, !name.contains(":"), !name.contains("\n") else {
            throw HavelError(.invalidArgument, "invalid \(what) name \(String(reflecting: name))")
        }
        let text = String(decoding: try readFile(file, limit: 64 << 20), as: UTF8.self)
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 3, fields[0] == name else { continue }
            guard let id = UInt32(fields[2]), id != UInt32.max else {
                throw HavelError(.invalidProject, "\(what) \(name) has an invalid id \(String(reflecting: String(fields[2]))) in \(file) of \(root)")
            }
            return id
        }
        throw HavelError(.notFound, "\(what) \(name) not found in \(file) of the tree \(root)")
    }

    // MARK: host paths (import/export)

    func splitHostPath(_ path: String, verb: String) throws(HavelError) -> (parent: String, name: String) {
        guard !path.isEmpty, !path.utf8.contains(0) else {
            throw HavelError(.invalidArgument, "invalid host path \(String(reflecting: path))")
        }
        var trimmed = trimTrailingSlashes(path)
        let last = trimmed.split(separator: "/").last.map(String.init) ?? ""
        if path.hasSuffix("/") || last == "." || last == ".." {
            trimmed = try realHostPath(path, verb: verb)
        }
        guard trimmed != "/" else { throw HavelError(.invalidArgument, "cannot \(verb) the host's root directory") }
        guard let slash = trimmed.lastIndex(of: "/") else { return (".", trimmed) }
        let parent = slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
        return (parent, String(trimmed[trimmed.index(after: slash)...]))
    }

    func realHostPath(_ path: String, verb: String) throws(HavelError) -> String {
        guard let real = realpath(path, nil) else { throw hostFailure(verb, path, errno) }
        defer { free(real) }
        return String(cString: real)
    }

    /// Whether a real host path is the tree, inside it, or an ancestor of it.
    func overlapsTree(_ path: String) -> Bool {
        if root == "/" || path == "/" || path == root { return true }
        return path.hasPrefix(root + "/") || root.hasPrefix(path + "/")
    }
}

func trimTrailingSlashes(_ path: String) -> String {
    var result = Substring(path)
    while result.count > 1 && result.hasSuffix("/") { result = result.dropLast() }
    return String(result)
}

