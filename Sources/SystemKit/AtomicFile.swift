import Foundation
import Glibc
import HavelCore

/// Files that appear whole or not at all: written under a temporary name in the same directory, then
/// renamed, so that a reader never sees half a file, and a failure leaves the old one (and no temporary).
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(HavelError) {
        let temporary = path + ".havel-tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw HavelError(.io, "cannot write \(path): \(errnoText())") }
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                let reason = errnoText()
                close(fd)
                unlink(temporary)
                throw HavelError(.io, "cannot write \(path): \(reason)")
            }
            offset += count
        }
        close(fd)
        try publish(temporary, as: path)
    }

    public static func write(_ text: String, to path: String, mode: mode_t = 0o644) throws(HavelError) {
        try write(Array(text.utf8), to: path, mode: mode)
    }

    /// `value` as JSON (keys sorted, so the same value gives the same bytes).
    public static func writeJSON(_ value: some Encodable, to path: String, mode: mode_t = 0o644, pretty: Bool = true,
                                 dates: JSONEncoder.DateEncodingStrategy = .iso8601) throws(HavelError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys]
        encoder.dateEncodingStrategy = dates
        let data: Data
        do {
            data = try encoder.encode(value)
        } catch {
            throw HavelError(.internalError, "cannot encode \(path): \(error)")
        }
        try write([UInt8](data), to: path, mode: mode)
    }

    /// A file a tool finished writing under `temporary` becomes `path`; on failure the temporary is removed.
    public static func publish(_ temporary: String, as path: String) throws(HavelError) {
        guard rename(temporary, path) == 0 else {
            let reason = errnoText()
            unlink(temporary)
            throw HavelError(.io, "cannot rename \(temporary) to \(path): \(reason)")
        }
    }
}
