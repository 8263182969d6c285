import Foundation
import HavelCore
import SystemKit

/// The API token both sides share: 32 random bytes as hex, in a file of mode 0600 (created so from the
/// start: never readable by others, not even for a moment), read back without its line end.
public enum APIToken {
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// A new token in `path`, replacing any there.
    public static func create(at path: String) throws(HavelError) -> String {
        let token = generate()
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw HavelError(.io, "cannot create the token file \(path): \(errnoText())") }
        defer { close(fd) }
        let bytes = Array((token + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count, fchmod(fd, 0o600) == 0 else {
            throw HavelError(.io, "cannot write the token file \(path): \(errnoText())")
        }
        return token
    }

    /// The token in `path`; a missing or empty file is an error that names it.
    public static func read(at path: String) throws(HavelError) -> String {
        // Bounded while reading: a token is 64 characters; whatever a file holds beyond 4 KiB is not read.
        guard let handle = FileHandle(forReadingAtPath: path), let data = try? handle.read(upToCount: 4096) ?? Data() else {
            throw HavelError(.notFound, "cannot read the API token file \(path)")
        }
        try? handle.close()
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw HavelError(.invalidArgument, "the API token file \(path) is empty") }
        return token
    }

    /// The token in `path`, made there first if there is none.
    public static func loadOrCreate(at path: String) throws(HavelError) -> String {
        FileManager.default.fileExists(atPath: path) ? try read(at: path) : try create(at: path)
    }
}
