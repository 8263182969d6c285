import CZlib
import Foundation
import HavelCore

/// Reads a project file from disk: size limit, transparent gzip, then XML.
public enum ProjectFile {
    /// Larger files are refused (an ELBE file with a big `<archive>` is a few MiB).
    public static let maximumSize = 64 << 20

    public static func readBytes(_ path: String) throws(HavelError) -> [UInt8] {
        try read(path).bytes
    }

    /// The file's XML bytes, and whether the file was gzip-compressed (so an edit can write it back so).
    public static func read(_ path: String) throws(HavelError) -> (bytes: [UInt8], gzipped: Bool) {
        let url = URL(fileURLWithPath: path)
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: path)
        } catch {
            throw HavelError(.notFound, "cannot read project file \(path): no such file or not readable")
        }
        if let type = attributes[.type] as? FileAttributeType, type == .typeDirectory {
            throw HavelError(.invalidArgument, "\(path) is a directory, not a project file")
        }
        if let size = attributes[.size] as? NSNumber, size.intValue > maximumSize {
            throw HavelError(.invalidProject, "\(path): file is \(ByteCount.format(size.uint64Value)), larger than the \(ByteCount.format(UInt64(maximumSize))) limit for project files")
        }
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw HavelError(.io, "cannot read project file \(path): \(error.localizedDescription)")
        }
        var bytes = [UInt8](data)
        let gzipped = bytes.starts(with: [0x1F, 0x8B])
        if gzipped {
            bytes = try Gzip.decompress(bytes, limit: maximumSize, name: path)
        }
        return (bytes, gzipped)
    }

    /// Reads and parses a file into an XML tree (not yet validated).
    public static func parse(_ path: String) throws(HavelError) -> XMLDocument {
        try XMLReader.parse(try readBytes(path), file: path)
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
