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

    public static func sha256(_ text: String, processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> String {
        try await sha256(Array(text.utf8), processes: processes)
    }
}
