// One http(s) download with a size limit and a time limit, written to a file: the one place that runs
// curl for Havel, so every download is bounded the same way (key URLs, the source CD's files).

import Foundation
import HavelCore

public enum BoundedDownload {
    /// What came of a download: `complete` when curl finished and no more than `maximumBytes` arrived.
    public struct Outcome: Sendable {
        public var succeeded: Bool
        /// More than `maximumBytes` arrived (the file holds `maximumBytes + 1` bytes).
        public var tooLarge: Bool
        /// curl's message when it failed.
        public var error: String
        public var complete: Bool { succeeded && !tooLarge }
    }

    /// Downloads `url` (http or https only, redirects too) into `file`. curl's --max-filesize cannot stop a
    /// body of unannounced length (chunked): head cuts the stream itself one byte past the limit, so no
    /// more than that ever reaches the disk.
    public static func fetch(_ url: String, to file: String, maximumBytes: Int, timeoutSeconds: Int,
                             processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> Outcome {
        let curl = ["curl", "--fail", "--silent", "--show-error", "--location", "--proto", "=http,https", "--proto-redir", "=http,https",
                    "--max-time", String(timeoutSeconds), "--max-filesize", String(maximumBytes), "--", url]
        let line = Command.shellLine(curl) + " | head -c \(maximumBytes + 1) > " + Command.shellQuote(file)
        let result = try await processes.run(Command("bash", ["-o", "pipefail", "-c", line]))
        let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        return Outcome(succeeded: result.succeeded, tooLarge: size > maximumBytes, error: result.standardError.trimmingWhitespace())
    }
}
