import Foundation
import HavelCore

// Recursive remove and copy on directory descriptors: every entry is looked at with fstatat(AT_SYMLINK_NOFOLLOW),
// directories are entered with openat(O_DIRECTORY | O_NOFOLLOW), files are opened with O_NOFOLLOW and checked with
// fstat, so a symlink met while walking is only ever handled as a symlink. Names are kept as the kernel's bytes
// (not necessarily UTF-8).

/// A NUL-terminated file name.
typealias CName = [CChar]

func cName(_ name: String) -> CName { Array(name.utf8CString) }

func displayName(_ name: CName) -> String {
    String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func joinDisplay(_ parent: String, _ name: CName) -> String {
    (parent.hasSuffix("/") ? parent : parent + "/") + displayName(name)
}

/// Writes all bytes; returns 0 or the errno of the failure.
func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Int32 {
    var offset = bytes.startIndex
    while offset < bytes.endIndex {
        let count = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            let code = errno
            if code == EINTR { continue }
            return code
        }
        offset += count
    }
    return 0
}

struct FileID: Hashable {
    var device: UInt64
    var inode: UInt64
}

/// What a copy carries along: where each multiply-linked source inode went first.
struct CopyState {
    var firstCopies: [FileID: String] = [:]
    /// cp -a only warns when it may not keep ownership (not root); so do we, silently.
    let ownershipMayFail = geteuid() != 0
    let xattr = ExtendedAttributeCalls()
}

/// glibc's fd-based xattr calls; Swift's Glibc module does not import <sys/xattr.h>, so they are looked up by name.
struct ExtendedAttributeCalls {
    typealias List = @convention(c) (Int32, UnsafeMutablePointer<CChar>?, Int) -> Int
    typealias Get = @convention(c) (Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?, Int) -> Int
    typealias Set = @convention(c) (Int32, UnsafePointer<CChar>?, UnsafeRawPointer?, Int, Int32) -> Int32

    let list: List
    let get: Get
    let set: Set

    init?() {
        guard let list = dlsym(nil, "flistxattr"), let get = dlsym(nil, "fgetxattr"), let set = dlsym(nil, "fsetxattr") else {
            return nil
        }
        self.list = unsafeBitCast(list, to: List.self)
        self.get = unsafeBitCast(get, to: Get.self)
        self.set = unsafeBitCast(set, to: Set.self)
    }
}

extension RootedFileSystem {
    /// How deep remove and copy descend (they hold one or two descriptors per level). Real trees are a few dozen
    /// levels deep; this bounds what a hostile one can make Havel hold open.
    static let maximumDepth = 1024

    func tooDeep(_ display: String) -> HavelError {
        HavelError(.io, "cannot walk \(display) in \(root): more than \(Self.maximumDepth) directory levels")
    }

    /// The entries of a directory (without `.` and `..`), read completely before anything is changed in it.
    func listDirectory(_ fd: Int32, display: String) throws(HavelError) -> [CName] {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw failure("read directory", display, errno) }
        guard let directory = fdopendir(copy) else {
            let code = errno
            close(copy)
            throw failure("read directory", display, code)
        }
        defer { closedir(directory) }
        rewinddir(directory)
        var names: [CName] = []
        while true {
            errno = 0
            guard let entry = readdir(directory) else {
                if errno != 0 { throw failure("read directory", display, errno) }
                break
            }
            let name: CName = withUnsafePointer(to: entry.pointee.d_name) { tuple in
                tuple.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: tuple.pointee)) { pointer in
                    Array(UnsafeBufferPointer(start: pointer, count: strlen(pointer) + 1))
                }
            }
            if name == [46, 0] || name == [46, 46, 0] { continue }  // "." and ".."
            names.append(name)
        }
        return names
    }

    /// rm -rf of `name` in the directory `parent`, never following a symlink and never leaving the file system.
    /// Iterative (an explicit stack of directory descriptors), so a deep tree cannot exhaust the thread's stack.
    func removeEntry(parent: Int32, name: CName, display: String) throws(HavelError) {
        guard let top = try enterForRemoval(parent: parent, name: name, display: display, depth: 0) else { return }
        var stack = [top]
        defer { for frame in stack { close(frame.fd) } }
        while let frame = stack.last {
            if let child = stack[stack.count - 1].names.popLast() {
                if let entered = try enterForRemoval(parent: frame.fd, name: child, display: joinDisplay(frame.display, child),
                                                     depth: stack.count) {
                    stack.append(entered)
                }
                continue
            }
            stack.removeLast()
            close(frame.fd)
            if unlinkat(frame.parent, frame.name, AT_REMOVEDIR) != 0 && errno != ENOENT {
                throw failure("remove directory", frame.display, errno)
            }
        }
    }

    private struct RemovalFrame {
        let fd: Int32
        let parent: Int32
        let name: CName
        let display: String
        var names: [CName]
    }

    /// Removes a non-directory and returns nil, or opens a directory and returns its frame.
    private func enterForRemoval(parent: Int32, name: CName, display: String, depth: Int) throws(HavelError) -> RemovalFrame? {
        var status = stat()
        guard fstatat(parent, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return nil }
            throw failure("remove", display, errno)
        }
        guard entryKind(status) == .directory else {
            if unlinkat(parent, name, 0) != 0 && errno != ENOENT { throw failure("remove", display, errno) }
            return nil
        }
        guard depth < Self.maximumDepth else { throw tooDeep(display) }
        var parentStatus = stat()
        guard fstat(parent, &parentStatus) == 0 else { throw failure("remove", display, errno) }
        guard parentStatus.st_dev == status.st_dev else {
            throw HavelError(.io, "cannot remove \(display) in \(root): it is a mount point (another file system); unmount it first")
        }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw failure("open directory", display, errno) }
        var opened = stat()
        guard fstat(fd, &opened) == 0, opened.st_dev == status.st_dev, opened.st_ino == status.st_ino else {
            close(fd)
            throw HavelError(.io, "cannot remove \(display) in \(root): it changed while being removed")
        }
        let names: [CName]
        do {
            names = try listDirectory(fd, display: display)
        } catch {
            close(fd)
            throw error
        }
        return RemovalFrame(fd: fd, parent: parent, name: name, display: display, names: names)
    }

    /// cp -a of `sourceName` in `sourceParent` to `destinationName` in `destinationParent`. `destinationHost` is the
    /// host path of the destination (for hard links). An existing destination directory is merged into (a source
    /// directory) or is an error (a source non-directory); any other existing destination entry is unlinked first.
    /// Iterative like removeEntry; a directory's own attributes are set after its entries are copied.
    func copyEntry(from sourceParent: Int32, _ sourceName: CName, _ sourceDisplay: String,
                   to destinationParent: Int32, _ destinationName: CName, _ destinationHost: String, _ destinationDisplay: String,
                   state: inout CopyState) throws(HavelError) {
        guard let top = try copyOne(from: sourceParent, sourceName, sourceDisplay,
                                    to: destinationParent, destinationName, destinationHost, destinationDisplay,
                                    state: &state, depth: 0) else { return }
        var stack = [top]
        defer {
            for frame in stack {
                close(frame.source)
                close(frame.destination)
            }
        }
        while let frame = stack.last {
            if let child = stack[stack.count - 1].names.popLast() {
                if let entered = try copyOne(from: frame.source, child, joinDisplay(frame.sourceDisplay, child),
                                             to: frame.destination, child, joinDisplay(frame.destinationHost, child),
                                             joinDisplay(frame.destinationDisplay, child), state: &state, depth: stack.count) {
                    stack.append(entered)
                }
                continue
            }
            stack.removeLast()
            defer {
                close(frame.source)
                close(frame.destination)
            }
            try setAttributes(of: frame.destination, from: frame.source, frame.status, display: frame.destinationDisplay, state: state)
        }
    }

    private struct CopyFrame {
        let source: Int32
        let destination: Int32
        let status: stat
        let sourceDisplay: String
        let destinationHost: String
        let destinationDisplay: String
        var names: [CName]
    }

    /// Copies a non-directory completely and returns nil, or creates/opens a directory pair and returns its frame.
    private func copyOne(from sourceParent: Int32, _ sourceName: CName, _ sourceDisplay: String,
                         to destinationParent: Int32, _ destinationName: CName, _ destinationHost: String,
                         _ destinationDisplay: String, state: inout CopyState, depth: Int) throws(HavelError) -> CopyFrame? {
        var status = stat()
        guard fstatat(sourceParent, sourceName, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw failure("copy", sourceDisplay, errno)
        }
        let kind = entryKind(status)
        var existing = stat()
        let destinationExists = fstatat(destinationParent, destinationName, &existing, AT_SYMLINK_NOFOLLOW) == 0
        if destinationExists {
            let existingKind = entryKind(existing)
            if kind == .directory && existingKind != .directory {
                throw HavelError(.io, "cannot copy directory \(sourceDisplay) onto non-directory \(destinationDisplay) in \(root)")
            }
            if kind != .directory && existingKind == .directory {
                throw HavelError(.io, "cannot copy \(sourceDisplay) onto directory \(destinationDisplay) in \(root)")
            }
            if kind != .directory && unlinkat(destinationParent, destinationName, 0) != 0 && errno != ENOENT {
                throw failure("replace", destinationDisplay, errno)
            }
        }

        let id = FileID(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
        if kind != .directory && status.st_nlink > 1, let first = state.firstCopies[id] {
            if linkat(AT_FDCWD, first, destinationParent, destinationName, 0) == 0 { return nil }
        }

        switch kind {
        case .directory:
            return try openDirectoryPair(from: sourceParent, sourceName, sourceDisplay, status,
                                         to: destinationParent, destinationName, destinationHost, destinationDisplay,
                                         create: !destinationExists, depth: depth)
        case .regular:
            try copyRegularFile(from: sourceParent, sourceName, sourceDisplay, status,
                                to: destinationParent, destinationName, destinationDisplay, state: state)
        case .symlink:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = readlinkat(sourceParent, sourceName, &buffer, buffer.count - 1)
            guard count > 0 else { throw failure("read symlink", sourceDisplay, count == 0 ? ENOENT : errno) }
            buffer[count] = 0
            guard symlinkat(buffer, destinationParent, destinationName) == 0 else {
                throw failure("create symlink", destinationDisplay, errno)
            }
            try setOwner(at: destinationParent, destinationName, status, display: destinationDisplay, state: state)
            try setTimes(at: destinationParent, destinationName, status, display: destinationDisplay)
        case .other:
            guard mknodat(destinationParent, destinationName, status.st_mode, status.st_rdev) == 0 else {
                throw failure("create special file", destinationDisplay, errno)
            }
            try setOwner(at: destinationParent, destinationName, status, display: destinationDisplay, state: state)
            // Just created by us, not a symlink: fchmodat without AT_SYMLINK_NOFOLLOW acts on it.
            guard fchmodat(destinationParent, destinationName, status.st_mode & 0o7777, 0) == 0 else {
                throw failure("change mode of", destinationDisplay, errno)
            }
            try setTimes(at: destinationParent, destinationName, status, display: destinationDisplay)
        }
        if status.st_nlink > 1 { state.firstCopies[id] = destinationHost }
        return nil
    }

    private func openDirectoryPair(from sourceParent: Int32, _ sourceName: CName, _ sourceDisplay: String, _ status: stat,
                                   to destinationParent: Int32, _ destinationName: CName, _ destinationHost: String,
                                   _ destinationDisplay: String, create: Bool, depth: Int) throws(HavelError) -> CopyFrame {
        guard depth < Self.maximumDepth else { throw tooDeep(sourceDisplay) }
        let source = openat(sourceParent, sourceName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard source >= 0 else { throw failure("open directory", sourceDisplay, errno) }
        var opened = stat()
        guard fstat(source, &opened) == 0, opened.st_ino == status.st_ino, opened.st_dev == status.st_dev else {
            close(source)
            throw HavelError(.io, "cannot copy \(sourceDisplay): it changed while being copied")
        }
        if create && mkdirat(destinationParent, destinationName, 0o700) != 0 {
            let code = errno
            close(source)
            throw failure("create directory", destinationDisplay, code)
        }
        let destination = openat(destinationParent, destinationName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard destination >= 0 else {
            let code = errno
            close(source)
            throw failure("open directory", destinationDisplay, code)
        }
        let names: [CName]
        do {
            names = try listDirectory(source, display: sourceDisplay)
        } catch {
            close(source)
            close(destination)
            throw error
        }
        return CopyFrame(source: source, destination: destination, status: status, sourceDisplay: sourceDisplay,
                         destinationHost: destinationHost, destinationDisplay: destinationDisplay, names: names)
    }

    private func copyRegularFile(from sourceParent: Int32, _ sourceName: CName, _ sourceDisplay: String, _ status: stat,
                                 to destinationParent: Int32, _ destinationName: CName, _ destinationDisplay: String,
                                 state: CopyState) throws(HavelError) {
        let source = openat(sourceParent, sourceName, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard source >= 0 else { throw failure("open", sourceDisplay, errno) }
        defer { close(source) }
        var opened = stat()
        guard fstat(source, &opened) == 0, entryKind(opened) == .regular,
              opened.st_ino == status.st_ino, opened.st_dev == status.st_dev else {
            throw HavelError(.io, "cannot copy \(sourceDisplay): it changed while being copied")
        }
        let destination = openat(destinationParent, destinationName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard destination >= 0 else { throw failure("create", destinationDisplay, errno) }
        defer { close(destination) }
        var buffer = [UInt8](repeating: 0, count: 1 << 17)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("read", sourceDisplay, errno)
            }
            if count == 0 { break }
            let code = writeAll(destination, buffer[0..<count])
            guard code == 0 else { throw failure("write", destinationDisplay, code) }
        }
        try setAttributes(of: destination, from: source, status, display: destinationDisplay, state: state)
    }

    /// Owner, extended attributes, mode, times — in that order: chown clears set-id bits and file capabilities,
    /// so those are written after it.
    private func setAttributes(of destination: Int32, from source: Int32, _ status: stat, display: String,
                               state: CopyState) throws(HavelError) {
        if fchown(destination, status.st_uid, status.st_gid) != 0 && !(state.ownershipMayFail && errno == EPERM) {
            throw failure("change owner of", display, errno)
        }
        copyExtendedAttributes(from: source, to: destination, state: state)
        guard fchmod(destination, status.st_mode & 0o7777) == 0 else { throw failure("change mode of", display, errno) }
        let times = [status.st_atim, status.st_mtim]
        guard futimens(destination, times) == 0 else { throw failure("set times of", display, errno) }
    }

    private func setOwner(at parent: Int32, _ name: CName, _ status: stat, display: String, state: CopyState) throws(HavelError) {
        if fchownat(parent, name, status.st_uid, status.st_gid, AT_SYMLINK_NOFOLLOW) != 0
            && !(state.ownershipMayFail && errno == EPERM) {
            throw failure("change owner of", display, errno)
        }
    }

    private func setTimes(at parent: Int32, _ name: CName, _ status: stat, display: String) throws(HavelError) {
        let times = [status.st_atim, status.st_mtim]
        guard utimensat(parent, name, times, AT_SYMLINK_NOFOLLOW) == 0 else { throw failure("set times of", display, errno) }
    }

    /// Best effort, as cp -a: attributes the destination file system refuses are skipped.
    private func copyExtendedAttributes(from source: Int32, to destination: Int32, state: CopyState) {
        guard let xattr = state.xattr else { return }
        let size = xattr.list(source, nil, 0)
        guard size > 0 else { return }
        var list = [CChar](repeating: 0, count: size)
        let listed = xattr.list(source, &list, size)
        guard listed > 0 else { return }
        var start = 0
        for index in 0..<listed where list[index] == 0 {
            let name = Array(list[start...index])
            start = index + 1
            let valueSize = xattr.get(source, name, nil, 0)
            guard valueSize >= 0 else { continue }
            var value = [UInt8](repeating: 0, count: max(valueSize, 1))
            let got = xattr.get(source, name, &value, valueSize)
            guard got >= 0 else { continue }
            _ = xattr.set(destination, name, value, got, 0)
        }
    }
}
