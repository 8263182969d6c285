import Foundation
import HavelCore
import SystemKit

/// A walk over a directory tree that never follows symbolic links: directories are opened relative to their
/// parent with `O_NOFOLLOW`, entries are `fstatat`ed with `AT_SYMLINK_NOFOLLOW`, and each directory's entries
/// come sorted by their bytes, parents before children. Used on Images' own staging trees.
enum TreeWalk {
    struct Entry {
        /// Path relative to the walked root, `/`-separated, without a leading slash.
        var path: String
        var name: [CChar]
        var parent: Int32
        var status: stat

        var isDirectory: Bool { (status.st_mode & S_IFMT) == S_IFDIR }
        var isRegular: Bool { (status.st_mode & S_IFMT) == S_IFREG }
    }

    static func walk(_ root: String, _ visit: (Entry) throws(HavelError) -> Void) throws(HavelError) {
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw HavelError(.io, "cannot open directory \(root): \(errnoText())") }
        try walk(directory: fd, path: "", display: root, visit)
    }

    /// Walks the directory `fd` (closed on return).
    private static func walk(directory fd: Int32, path: String, display: String, _ visit: (Entry) throws(HavelError) -> Void) throws(HavelError) {
        guard let dir = fdopendir(fd) else {
            close(fd)
            throw HavelError(.io, "cannot read directory \(display)/\(path): \(errnoText())")
        }
        defer { closedir(dir) }
        var names: [[CChar]] = []
        while let item = readdir(dir) {
            let name = withUnsafeBytes(of: item.pointee.d_name) { raw in
                Array(raw.bindMemory(to: CChar.self).prefix { $0 != 0 })
            }
            if name == [46] || name == [46, 46] { continue }
            names.append(name)
        }
        names.sort { $0.lexicographicallyPrecedes($1) { UInt8(bitPattern: $0) < UInt8(bitPattern: $1) } }
        for name in names {
            let cname = name + [0]
            var status = stat()
            guard fstatat(fd, cname, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw HavelError(.io, "cannot stat \(display)/\(path)\(decode(name)): \(errnoText())")
            }
            let entryPath = path + decode(name)
            try visit(Entry(path: entryPath, name: cname, parent: fd, status: status))
            if (status.st_mode & S_IFMT) == S_IFDIR {
                let child = openat(fd, cname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else {
                    throw HavelError(.io, "cannot open directory \(display)/\(entryPath): \(errnoText())")
                }
                try walk(directory: child, path: entryPath + "/", display: display, visit)
            }
        }
    }

    static func decode(_ name: [CChar]) -> String {
        String(decoding: name.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Plain-file operations for assembling images.
enum FileIO {
    /// Linux lseek whences, not exported by Glibc's Swift overlay.
    static let seekData: Int32 = 3
    static let seekHole: Int32 = 4

    static func errorText(_ code: Int32 = errno) -> String { errnoText(code) }

    /// Creates (replacing) a sparse file of exactly `size` bytes.
    static func createSparse(_ path: String, size: UInt64) throws(HavelError) {
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw HavelError(.io, "cannot create \(path): \(errorText())") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw HavelError(.io, "cannot size \(path) to \(size) bytes: \(errorText())") }
    }

    static func size(of path: String) throws(HavelError) -> UInt64 {
        var status = stat()
        guard stat(path, &status) == 0 else { throw HavelError(.io, "cannot stat \(path): \(errorText())") }
        return UInt64(status.st_size)
    }

    /// Opens a regular file for reading, refusing anything else (a device, a FIFO, a directory).
    static func openRegular(_ path: String, what: String) throws(HavelError) -> (fd: Int32, size: UInt64) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let code = errno
            throw HavelError(code == ENOENT ? .notFound : .io, "\(what) \(path) cannot be opened: \(errorText(code))")
        }
        var status = stat()
        guard fstat(fd, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw HavelError(.io, "\(what) \(path) is not a regular file")
        }
        return (fd, UInt64(status.st_size))
    }

    /// Copies the data regions of `source` (holes are skipped, as `dd conv=sparse` would) into `destination`
    /// at byte `offset`. The destination's holes read as zeros, so the result equals a full copy.
    static func copySparse(from source: Int32, size: UInt64, to destination: Int32, at offset: UInt64) throws(HavelError) {
        var position: off_t = 0
        let end = off_t(size)
        while position < end {
            let dataStart = lseek(source, position, seekData)
            if dataStart < 0 {
                if errno == ENXIO { return }   // only a hole is left
                try copyRange(from: source, to: destination, start: position, end: end, offset: offset)
                return
            }
            var dataEnd = lseek(source, dataStart, seekHole)
            if dataEnd < 0 { dataEnd = end }
            try copyRange(from: source, to: destination, start: dataStart, end: min(dataEnd, end), offset: offset)
            position = dataEnd
        }
    }

    /// Copies every byte of `source` (zeros included) into `destination` at `offset`.
    static func copyAll(from source: Int32, size: UInt64, to destination: Int32, at offset: UInt64) throws(HavelError) {
        try copyRange(from: source, to: destination, start: 0, end: off_t(size), offset: offset)
    }

    private static func copyRange(from source: Int32, to destination: Int32, start: off_t, end: off_t, offset: UInt64) throws(HavelError) {
        let chunk = 4 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        var position = start
        while position < end {
            let want = Int(min(off_t(chunk), end - position))
            let got = pread(source, buffer, want, position)
            if got < 0 {
                if errno == EINTR { continue }
                throw HavelError(.io, "read failed: \(errorText())")
            }
            if got == 0 { throw HavelError(.io, "read failed: the file shrank while being copied") }
            var written = 0
            while written < got {
                let n = pwrite(destination, buffer + written, got - written, off_t(offset) + position + off_t(written))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw HavelError(.io, "write failed: \(errorText())")
                }
                written += n
            }
            position += off_t(got)
        }
    }

    static func readBytes(_ fd: Int32, at offset: UInt64, count: Int) throws(HavelError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        guard got == count else { throw HavelError(.io, "short read at \(offset): \(got < 0 ? errorText() : "\(got) of \(count) bytes")") }
        return bytes
    }

    static func writeBytes(_ fd: Int32, _ bytes: [UInt8], at offset: UInt64) throws(HavelError) {
        let put = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes.count, off_t(offset)) }
        guard put == bytes.count else { throw HavelError(.io, "short write at \(offset): \(put < 0 ? errorText() : "\(put) of \(bytes.count) bytes")") }
    }

    /// Sets atime and mtime of a directory entry without following a final symlink.
    static func setTimes(parent: Int32, name: [CChar], atime: timespec, mtime: timespec) -> Bool {
        var times = [atime, mtime]
        return utimensat(parent, name, &times, AT_SYMLINK_NOFOLLOW) == 0
    }

    static func setTimes(path: String, atime: timespec, mtime: timespec) -> Bool {
        var times = [atime, mtime]
        return utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0
    }
}
