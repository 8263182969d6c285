import CZlib
import Foundation
import Glibc
import HavelCore

/// Reads a project file from disk: size limit (counted while reading), transparent gzip, then XML.
public enum ProjectFile {
    /// Larger files are refused (an ELBE file with a big `<archive>` is a few MiB).
    public static let maximumSize = 64 << 20

    /// Reads a project file (or an included one), at most `limit` bytes after decompression.
    public static func readBytes(_ path: String, limit: Int = maximumSize) throws(HavelError) -> [UInt8] {
        try read(path, limit: limit).bytes
    }

    /// The file's XML bytes, and whether the file was gzip-compressed (so an edit can write it back so). At
    /// most `limit` bytes: counted while reading, since the size a file system reports may be wrong (0 for
    /// /proc files). Regular files and pipes only.
    public static func read(_ path: String, limit: Int = maximumSize) throws(HavelError) -> (bytes: [UInt8], gzipped: Bool) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            throw HavelError(.notFound, "cannot read project file \(path): no such file or not readable")
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw HavelError(.io, "cannot read project file \(path): \(String(cString: strerror(errno)))")
        }
        switch status.st_mode & S_IFMT {
        case S_IFDIR: throw HavelError(.invalidArgument, "\(path) is a directory, not a project file")
        case S_IFREG, S_IFIFO: break
        default: throw HavelError(.invalidArgument, "\(path) is a device or socket, not a project file")
        }
        // Blocking again, so that a pipe is read to its end.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        let tooLarge = HavelError(.invalidProject, "\(path): file is larger than the \(ByteCount.format(UInt64(limit))) limit for project files")
        if status.st_size > limit { throw tooLarge }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(max(0, status.st_size)))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw HavelError(.io, "cannot read project file \(path): \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            guard bytes.count + count <= limit else { throw tooLarge }
            bytes.append(contentsOf: chunk[0..<count])
        }
        let gzipped = bytes.starts(with: [0x1F, 0x8B])
        if gzipped {
            bytes = try Gzip.decompress(bytes, limit: limit, name: path)
        }
        return (bytes, gzipped)
    }

    /// Reads and parses a file into an XML tree (not yet validated).
    public static func parse(_ path: String, limit: Int = maximumSize) throws(HavelError) -> XMLDocument {
        try XMLReader.parse(try readBytes(path, limit: limit), file: path)
    }
}

/// gzip decompression through zlib, with an output limit against decompression bombs.
public enum Gzip {
    public static func decompress(_ input: [UInt8], limit: Int, name: String) throws(HavelError) -> [UInt8] {
        var stream = z_stream()
        // 15 window bits + 32: detect gzip or zlib headers automatically.
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw HavelError(.internalError, "zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var status: Int32 = Z_OK
        var input = input
        input.withUnsafeMutableBufferPointer { inputBuffer in
            stream.next_in = inputBuffer.baseAddress
            stream.avail_in = uInt(inputBuffer.count)
            repeat {
                chunk.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    let produced = out.count - Int(stream.avail_out)
                    output.append(contentsOf: out[0..<produced])
                }
                if output.count > limit { status = Z_MEM_ERROR; break }
            } while status == Z_OK
        }
        if output.count > limit {
            throw HavelError(.invalidProject, "\(name): decompresses to more than \(ByteCount.format(UInt64(limit))); refused")
        }
        guard status == Z_STREAM_END else {
            throw HavelError(.invalidProject, "\(name): the gzip data is corrupt or truncated (zlib status \(status))")
        }
        return output
    }
}
