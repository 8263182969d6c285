import HavelCore

/// SHA-256 digests through coreutils' sha256sum.
public enum Digest {
    /// Hex digests of files, keyed by path. Files are hashed in batches by one process each.
    public static func sha256(files: [String], processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> [String: String] {
        var digests: [String: String] = [:]
        var start = 0
        while start < files.count {
            let batch = Array(files[start..<min(files.count, start + 500)])
            start += batch.count
            let result = try await processes.check(Command("sha256sum", ["--"] + batch))
            for line in result.standardOutput.split(separator: "\n") {
                // "<64 hex>  <path>"; a path with a newline or backslash is escaped with a leading '\'.
                let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { continue }
                var hash = String(parts[0])
                if hash.hasPrefix("\\") { hash.removeFirst() }
                digests[String(parts[1].dropFirst())] = hash
            }
        }
        return digests
    }

    public static func sha256(_ bytes: [UInt8], processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> String {
        let result = try await processes.check(Command("sha256sum", ["-"]), input: bytes)
        return String(result.standardOutput.prefix(64))
    }

    /// The hex digest of one large file (a disk image): OpenSSL's, which uses the CPU's SHA instructions
    /// (several times coreutils' speed), where the openssl command is installed; sha256sum otherwise.
    public static func sha256(largeFile path: String, processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> String {
        if processes.which("openssl") != nil {
            // With -r: "<64 hex> *<path>".
            let result = try await processes.check(Command("openssl", ["dgst", "-sha256", "-r", "--", path]))
            let hash = String(result.standardOutput.prefix(64))
            if hash.count == 64, hash.allSatisfy(\.isHexDigit) { return hash }
        }
        guard let hash = try await sha256(files: [path], processes: processes)[path] else {
            throw HavelError(.io, "sha256sum gave no digest of \(path)")
        }
        return hash
    }

    public static func sha256(_ text: String, processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> String {
        try await sha256(Array(text.utf8), processes: processes)
    }
}
