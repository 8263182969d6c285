import Foundation
import HavelCore

/// File operations inside a directory tree, as a process chrooted into it would see paths.
///
/// Every path names a place in the tree: `/etc/x`, `etc/x` and `../../etc/x` all mean `<root>/etc/x`.
/// Symbolic links met on the way are followed inside the tree (an absolute target starts again at the tree's
/// `/`, `..` stops at the tree's `/`), so neither a planted link nor a `..` in a project file can reach the host.
/// Resolution is done here, component by component with `lstat`/`readlink`; the resulting host paths contain
/// no symbolic link (except a final one an operation deliberately does not follow), and every system call on them
/// uses its no-follow form. Recursive walks (remove, copy) work on directory descriptors (`openat` with
/// `O_NOFOLLOW`, `unlinkat`, `fstatat`), never on re-joined path strings.
///
/// Assumption: nothing else changes the tree while an operation runs (no process of the target is running;
/// chroot sessions have ended). Under that assumption the checks are exact; see the notes on races in
/// `RootedFileSystemWalk.swift`.
public struct RootedFileSystem: Sendable {
    /// Absolute real path of the tree (symlinks of the root itself resolved at init).
    public let root: String

    public init(root: String) throws(HavelError) {
        guard !root.isEmpty, !root.utf8.contains(0) else {
            throw HavelError(.invalidArgument, "invalid tree root \(String(reflecting: root))")
        }
        guard let real = realpath(root, nil) else {
            let code = errno
            throw HavelError(code == ENOENT ? .notFound : .io, "cannot use \(root) as a tree root: \(describeErrno(code))")
        }
        let path = String(cString: real)
        free(real)
        var status = stat()
        guard lstat(path, &status) == 0, entryKind(status) == .directory else {
            throw HavelError(.invalidArgument, "cannot use \(root) as a tree root: not a directory")
        }
        self.root = path
    }

    /// Host path for a tree path ("/etc/x", "etc/x", "../../etc/x" all mean <root>/etc/x). Symlinks met on the way
    /// are followed inside the tree (absolute targets are taken from the tree's /, `..` stops at the tree's /);
    /// at most 40 links. With followFinalSymlink false, the last component is not followed (for rm, ln, lstat).
    public func resolve(_ path: String, followFinalSymlink: Bool = true) throws(HavelError) -> String {
        hostPath(try walk(path, followFinal: followFinalSymlink).components)
    }

    /// Tree paths (absolute, "/var/cache/x.deb") matching a shell glob (*, ?, [..] per component, like ELBE's
    /// glob.glob), sorted. No match → [].
    ///
    /// Like Python's glob: `*` and `?` do not match a leading dot unless the pattern component starts with one,
    /// `[!..]` negates, a backslash is an ordinary character, a pattern ending in `/` matches directories only.
    /// Directories are entered inside the tree (a planted link is followed as the target would follow it); the
    /// results name each match by its real directory (links and `..` before the last component resolved) and
    /// its own name (a final link is not followed), so `remove(result)` removes exactly what matched.
    public func glob(_ pattern: String) throws(HavelError) -> [String] {
        try validate(pattern)
        let parts = pattern.split(separator: "/").map(String.init)
        if parts.isEmpty { return ["/"] }
        let directoriesOnly = pattern.hasSuffix("/")
        var states: [[String]] = [[]]
        var results = Set<[String]>()
        for (index, part) in parts.enumerated() {
            let isLast = index == parts.count - 1
            var next: [[String]] = []
            var seen = Set<[String]>()
            for state in states {
                if part == "." || part == ".." {
                    var up = state
                    if part == "..", !up.isEmpty { up.removeLast() }
                    if isLast { results.insert(up) } else if seen.insert(up).inserted { next.append(up) }
                    continue
                }
                let names = GlobPattern.isMagic(part) ? matchingEntries(in: state, pattern: part) : [part]
                for name in names {
                    if isLast && !directoriesOnly {
                        guard let found = try? walk(name, from: state, followFinal: false), found.exists else { continue }
                        results.insert(found.components)
                    } else {
                        guard let found = try? walk(name, from: state, followFinal: true), found.kind == .directory else { continue }
                        if isLast {
                            results.insert(state + [name])
                        } else if seen.insert(found.components).inserted {
                            next.append(found.components)
                        }
                    }
                }
            }
            states = next
        }
        return results.map(treePath).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// mkdir -p. Directories it creates get exactly `mode` (the last one) or 0755 (parents), whatever the umask;
    /// existing directories are left as they are. A final symlink to a directory in the tree is accepted.
    public func createDirectory(_ path: String, mode: mode_t = 0o755) throws(HavelError) {
        let found = try walk(path, followFinal: true)
        if found.exists {
            guard found.kind == .directory else {
                throw HavelError(.io, "cannot create directory \(path) in \(root): it exists and is not a directory")
            }
            return
        }
        try createMissingDirectories(found, upTo: found.components.count, lastMode: mode, display: path)
    }

    /// Writes a regular file, creating missing parent directories (0755). Without `append`, a symlink at the
    /// final component is replaced by the new file (never written through) and an existing regular file is
    /// truncated and rewritten in place (keeping its mode and owner unless given). With `append`, a final symlink
    /// is followed inside the tree. A new file gets `mode` or 0644, exactly. Owner and group are set before the
    /// mode, so set-id bits survive. Device nodes, FIFOs and sockets are refused, never opened.
    public func writeFile(_ path: String, contents: [UInt8], append: Bool = false, mode: mode_t? = nil,
                          owner: uid_t? = nil, group: gid_t? = nil) throws(HavelError) {
        let found = try walk(path, followFinal: append)
        guard !found.components.isEmpty else {
            throw HavelError(.io, "cannot write \(path) in \(root): it is the tree's root directory")
        }
        try createMissingDirectories(found, upTo: found.components.count - 1, lastMode: 0o755, display: path)
        let host = hostPath(found.components)
        var fd: Int32 = -1
        var created = false
        if found.exists, let status = found.status {
            switch entryKind(status) {
            case .symlink:
                if unlink(host) != 0 && errno != ENOENT { throw failure("replace symlink", path, errno) }
            case .directory:
                throw HavelError(.io, "cannot write \(path) in \(root): it is a directory")
            case .other:
                throw HavelError(.io, "cannot write \(path) in \(root): not a regular file (device, fifo or socket)")
            case .regular:
                fd = open(host, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | (append ? O_APPEND : 0))
                guard fd >= 0 else { throw failure("open", path, errno) }
                var opened = stat()
                guard fstat(fd, &opened) == 0, entryKind(opened) == .regular,
                      opened.st_ino == status.st_ino, opened.st_dev == status.st_dev else {
                    close(fd)
                    throw HavelError(.io, "cannot write \(path) in \(root): it changed while being opened")
                }
                if !append && ftruncate(fd, 0) != 0 {
                    let code = errno
                    close(fd)
                    throw failure("truncate", path, code)
                }
            }
        }
        if fd < 0 {
            fd = open(host, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | (append ? O_APPEND : 0), 0o600)
            guard fd >= 0 else { throw failure("create", path, errno) }
            created = true
        }
        defer { close(fd) }
        let code = writeAll(fd, contents[...])
        guard code == 0 else { throw failure("write", path, code) }
        if owner != nil || group != nil, fchown(fd, owner ?? uid_t.max, group ?? gid_t.max) != 0 {
            throw failure("change owner of", path, errno)
        }
        if let newMode = mode ?? (created ? 0o644 : nil), fchmod(fd, newMode & 0o7777) != 0 {
            throw failure("change mode of", path, errno)
        }
    }

    /// Reads a regular file (a final symlink is followed inside the tree). Device nodes, FIFOs and sockets are
    /// refused without being opened.
    public func readFile(_ path: String) throws(HavelError) -> [UInt8] {
        try readFile(path, limit: Int.max)
    }

    /// readFile, refusing files larger than `limit` bytes.
    public func readFile(_ path: String, limit: Int) throws(HavelError) -> [UInt8] {
        let found = try walk(path, followFinal: true)
        guard found.exists, let status = found.status else { throw failure("read", path, ENOENT) }
        guard entryKind(status) == .regular else {
            throw HavelError(.io, "cannot read \(path) in \(root): not a regular file")
        }
        let fd = open(hostPath(found.components), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw failure("open", path, errno) }
        defer { close(fd) }
        var opened = stat()
        guard fstat(fd, &opened) == 0, entryKind(opened) == .regular else {
            throw HavelError(.io, "cannot read \(path) in \(root): not a regular file")
        }
        guard opened.st_size <= limit else {
            throw HavelError(.io, "cannot read \(path) in \(root): larger than \(limit) bytes")
        }
        var result: [UInt8] = []
        result.reserveCapacity(Int(opened.st_size))
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("read", path, errno)
            }
            if count == 0 { break }
            result.append(contentsOf: buffer[0..<count])
            guard result.count <= limit else {
                throw HavelError(.io, "cannot read \(path) in \(root): larger than \(limit) bytes")
            }
        }
        return result
    }

    /// rm -rf: does not follow the final symlink, never follows symlinks while descending, does not descend into
    /// another file system (a mount point is an error), missing path is fine. The tree's root cannot be removed.
    public func remove(_ path: String) throws(HavelError) {
        let found = try walk(path, followFinal: false)
        guard let name = found.components.last else {
            throw HavelError(.invalidArgument, "refusing to remove \(path) in \(root): it is the tree's root directory")
        }
        guard found.exists else { return }
        let parent = try openTreeDirectory(Array(found.components.dropLast()), display: path)
        defer { close(parent) }
        try removeEntry(parent: parent, name: cName(name), display: treePath(found.components))
    }

    /// cp -a inside the tree: directories recursively, symlinks copied as symlinks, modes, owners, times, extended
    /// attributes and hard links kept. `to` an existing directory (followed inside the tree) → copy into it; an
    /// existing directory at the destination is merged into, any other existing entry (a symlink included) is
    /// replaced, never written through.
    public func copy(from: String, to: String) throws(HavelError) {
        let source = try walk(from, followFinal: false)
        guard source.exists, let status = source.status else { throw failure("copy", from, ENOENT) }
        let destination = try destinationComponents(named: source.components.last, to: to, verb: "copy")
        let isDirectory = entryKind(status) == .directory
        if isDirectory && destination.starts(with: source.components) {
            throw HavelError(.invalidArgument, "cannot copy directory \(from) into itself (\(treePath(destination))) in \(root)")
        }
        if destination == source.components {
            throw HavelError(.invalidArgument, "cannot copy \(from) onto itself in \(root)")
        }
        guard let sourceName = source.components.last, let destinationName = destination.last else {
            throw HavelError(.internalError, "copy \(from) to \(to) in \(root): empty component list")
        }
        let sourceParent = try openTreeDirectory(Array(source.components.dropLast()), display: from)
        defer { close(sourceParent) }
        let destinationParent = try openTreeDirectory(Array(destination.dropLast()), display: to)
        defer { close(destinationParent) }
        var state = CopyState()
        try copyEntry(from: sourceParent, cName(sourceName), treePath(source.components),
                      to: destinationParent, cName(destinationName), hostPath(destination), treePath(destination),
                      state: &state)
    }

    /// mv: `to` an existing directory (followed inside the tree) → into it; otherwise whatever is at `to` (a symlink
    /// included) is replaced by rename(2), never followed. Falls back to copy and remove across file systems.
    public func move(from: String, to: String) throws(HavelError) {
        let source = try walk(from, followFinal: false)
        guard let sourceName = source.components.last else {
            throw HavelError(.invalidArgument, "refusing to move \(from) in \(root): it is the tree's root directory")
        }
        guard source.exists, let status = source.status else { throw failure("move", from, ENOENT) }
        let destination = try destinationComponents(named: sourceName, to: to, verb: "move")
        if destination == source.components { return }
        if entryKind(status) == .directory && destination.starts(with: source.components) {
            throw HavelError(.invalidArgument, "cannot move directory \(from) into itself (\(treePath(destination))) in \(root)")
        }
        guard let destinationName = destination.last else {
            throw HavelError(.internalError, "move \(from) to \(to) in \(root): empty component list")
        }
        let sourceParent = try openTreeDirectory(Array(source.components.dropLast()), display: from)
        defer { close(sourceParent) }
        let destinationParent = try openTreeDirectory(Array(destination.dropLast()), display: to)
        defer { close(destinationParent) }
        if renameat(sourceParent, sourceName, destinationParent, destinationName) == 0 { return }
        let code = errno
        guard code == EXDEV else {
            throw HavelError(code == ENOENT ? .notFound : .io,
                             "cannot move \(from) to \(treePath(destination)) in \(root): \(describeErrno(code))")
        }
        var state = CopyState()
        try copyEntry(from: sourceParent, cName(sourceName), treePath(source.components),
                      to: destinationParent, cName(destinationName), hostPath(destination), treePath(destination),
                      state: &state)
        try removeEntry(parent: sourceParent, name: cName(sourceName), display: treePath(source.components))
    }

    /// ln -sf: `target` is stored verbatim (it may point anywhere; it is only data and is never resolved here).
    /// An existing symlink or file at `link` is replaced; an existing real directory at `link` gets the link inside
    /// it, named after the target's last component (as ln does). The link's directory must exist.
    public func symlink(target: String, at link: String) throws(HavelError) {
        guard !target.isEmpty, !target.utf8.contains(0) else {
            throw HavelError(.invalidArgument, "invalid symlink target \(String(reflecting: target)) for \(link) in \(root)")
        }
        let found = try walk(link, followFinal: false)
        var components = found.components
        if found.kind == .directory {
            guard let base = target.split(separator: "/").last.map(String.init), base != ".", base != ".." else {
                throw HavelError(.invalidArgument, "cannot create a link to \(target) inside directory \(link) in \(root): the target has no name")
            }
            components.append(base)
        } else if found.verified < components.count - 1 {
            throw HavelError(.notFound, "cannot create symlink \(link) in \(root): its directory does not exist")
        }
        guard let name = components.last else {
            throw HavelError(.invalidArgument, "cannot create symlink \(link) in \(root): it is the tree's root directory")
        }
        let parent = try openTreeDirectory(Array(components.dropLast()), display: link)
        defer { close(parent) }
        var existing = stat()
        if fstatat(parent, name, &existing, AT_SYMLINK_NOFOLLOW) == 0 {
            guard entryKind(existing) != .directory else {
                throw HavelError(.io, "cannot replace directory \(treePath(components)) in \(root) by a symlink")
            }
            if unlinkat(parent, name, 0) != 0 && errno != ENOENT { throw failure("replace", treePath(components), errno) }
        }
        if symlinkat(target, parent, name) != 0 { throw failure("create symlink", treePath(components), errno) }
    }

    /// chown/chmod (a final symlink is followed inside the tree). Owner and group first, then the mode, so set-id
    /// bits given in `mode` are kept.
    public func setAttributes(_ path: String, mode: mode_t?, owner: uid_t?, group: gid_t?) throws(HavelError) {
        let found = try walk(path, followFinal: true)
        guard found.exists, let status = found.status else { throw failure("change attributes of", path, ENOENT) }
        guard entryKind(status) != .symlink else {
            throw HavelError(.internalError, "cannot change attributes of \(path) in \(root): still a symlink after resolution")
        }
        let host = hostPath(found.components)
        if owner != nil || group != nil, lchown(host, owner ?? uid_t.max, group ?? gid_t.max) != 0 {
            throw failure("change owner of", path, errno)
        }
        if let mode {
            // The path holds no symlink (checked just above); chmod has no no-follow form on every kernel.
            var again = stat()
            guard lstat(host, &again) == 0, entryKind(again) != .symlink, again.st_ino == status.st_ino else {
                throw HavelError(.io, "cannot change mode of \(path) in \(root): it changed while being changed")
            }
            if chmod(host, mode & 0o7777) != 0 { throw failure("change mode of", path, errno) }
        }
    }

    /// Whether the path names something in the tree (a final symlink is followed inside the tree, so a dangling or
    /// looping link does not exist; use `resolve(_:followFinalSymlink: false)` to look at a link itself).
    public func exists(_ path: String) -> Bool {
        (try? walk(path, followFinal: true))?.exists ?? false
    }

    /// uid by name from the tree's own /etc/passwd (never the host's); numeric strings accepted.
    public func userID(_ name: String) throws(HavelError) -> uid_t {
        try lookUp(name, in: "/etc/passwd", what: "user")
    }

    /// gid by name from the tree's own /etc/group (never the host's); numeric strings accepted.
    public func groupID(_ name: String) throws(HavelError) -> gid_t {
        try lookUp(name, in: "/etc/group", what: "group")
    }

    /// Copies a host file or directory (outside any tree; the host path is resolved by the host as usual, its final
    /// symlink is copied as a symlink unless the path ends in `/`) into the tree with cp -a semantics: `path` an
    /// existing directory → into it.
    public func importItem(fromHost hostPath: String, to path: String) throws(HavelError) {
        let (parentPath, name) = try splitHostPath(hostPath, verb: "import")
        let parentReal = try realHostPath(parentPath, verb: "import")
        let sourceReal = parentReal == "/" ? "/" + name : parentReal + "/" + name
        guard !overlapsTree(sourceReal) else {
            throw HavelError(.invalidArgument, "cannot import \(hostPath) into \(root): it is the tree, inside it or contains it")
        }
        let sourceParent = open(parentPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard sourceParent >= 0 else { throw hostFailure("open directory", parentPath, errno) }
        defer { close(sourceParent) }
        var status = stat()
        guard fstatat(sourceParent, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else { throw hostFailure("import", hostPath, errno) }
        let destination = try destinationComponents(named: name, to: path, verb: "import")
        guard let destinationName = destination.last else {
            throw HavelError(.internalError, "import \(hostPath) to \(path) in \(root): empty component list")
        }
        let destinationParent = try openTreeDirectory(Array(destination.dropLast()), display: path)
        defer { close(destinationParent) }
        var state = CopyState()
        try copyEntry(from: sourceParent, cName(name), hostPath,
                      to: destinationParent, cName(destinationName), self.hostPath(destination), treePath(destination),
                      state: &state)
    }

    /// Copies a tree path (its final symlink followed inside the tree; symlinks below it copied as symlinks, whose
    /// targets are only data — do not follow them on the host) to a host path outside the tree with cp -a
    /// semantics: `hostPath` an existing directory → into it.
    public func exportItem(_ path: String, toHost hostPath: String) throws(HavelError) {
        let source = try walk(path, followFinal: true)
        guard source.exists else { throw failure("export", path, ENOENT) }
        guard !hostPath.isEmpty, !hostPath.utf8.contains(0) else {
            throw HavelError(.invalidArgument, "invalid host path \(String(reflecting: hostPath))")
        }
        var destinationPath = hostPath
        var existing = stat()
        if stat(hostPath, &existing) == 0, entryKind(existing) == .directory, let last = source.components.last {
            destinationPath = trimTrailingSlashes(hostPath) + (trimTrailingSlashes(hostPath) == "/" ? "" : "/") + last
        }
        let (parentPath, name) = try splitHostPath(destinationPath, verb: "export to")
        let parentReal = try realHostPath(parentPath, verb: "export to")
        let destinationReal = parentReal == "/" ? "/" + name : parentReal + "/" + name
        guard !overlapsTree(destinationReal) else {
            throw HavelError(.invalidArgument, "cannot export \(path) to \(hostPath): it is the tree \(root), inside it or contains it")
        }
        let sourceParent = try openTreeDirectory(Array(source.components.dropLast()), display: path)
        defer { close(sourceParent) }
        let destinationParent = open(parentPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard destinationParent >= 0 else { throw hostFailure("open directory", parentPath, errno) }
        defer { close(destinationParent) }
        var state = CopyState()
        try copyEntry(from: sourceParent, cName(source.components.last ?? "."), treePath(source.components),
                      to: destinationParent, cName(name), destinationPath, destinationPath, state: &state)
    }
}
