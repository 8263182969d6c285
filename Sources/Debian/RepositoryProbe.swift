import Foundation
import HavelCore
import SystemKit

/// Reaches each repository before a build: a mirror that is down, a suite that does not exist or a
/// wrong path fails here in seconds, with the URL, instead of minutes into a bootstrap. The digests
/// of the Release files are what make the stage cache notice a changed mirror.
public enum RepositoryProbe {
    public struct Release: Sendable, Hashable, Codable {
        public var url: String
        public var sha256: String

        public init(url: String, sha256: String) {
            self.url = url
            self.sha256 = sha256
        }
    }

    public static func fetchReleases(_ repositories: [(uri: String, suite: String)], workDirectory: String,
                                     processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> [Release] {
        try? FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        var releases: [Release] = []
        for (index, repository) in repositories.enumerated() {
            let base = repository.uri.hasSuffix("/") ? String(repository.uri.dropLast()) : repository.uri
            let dists = repository.suite.hasSuffix("/") ? "\(base)/\(repository.suite)" : "\(base)/dists/\(repository.suite)/"
            var failures: [String] = []
            var found: Release?
            for name in ["InRelease", "Release"] {
                let url = dists + name
                let file = "\(workDirectory)/release-\(index)-\(name)"
                let result = try await processes.run(Command("/usr/lib/apt/apt-helper", ["-o", "Acquire::Retries=0", "-o", "Acquire::http::Timeout=20", "download-file", url, file]))
                if result.succeeded, FileManager.default.fileExists(atPath: file) {
                    let digest = try await Digest.sha256(files: [file], processes: processes)[file] ?? ""
                    found = Release(url: url, sha256: digest)
                    break
                }
                failures.append(Self.reason(result.standardError + result.standardOutput, url: url))
            }
            guard let found else {
                throw HavelError(.notFound, "repository \(base) suite \(repository.suite) cannot be read: \(failures.joined(separator: "; "))")
            }
            releases.append(found)
        }
        return releases
    }

    /// apt-helper says `E: Failed to fetch URL  404  Not Found [IP: …]`; that line is the reason.
    static func reason(_ output: String, url: String) -> String {
        let lines = output.split(separator: "\n").map { $0.trimmingWhitespace() }
        if let fetch = lines.first(where: { $0.contains("Failed to fetch") }) {
            return fetch.replacingOccurrences(of: "E: ", with: "")
        }
        let text = lines.last { !$0.isEmpty && !$0.hasPrefix("Err:") }?.replacingOccurrences(of: "E: ", with: "") ?? ""
        return text.isEmpty ? "\(url) could not be downloaded" : "\(url): \(text)"
    }
}
