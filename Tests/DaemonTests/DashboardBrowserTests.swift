import DaemonAPI
import DaemonClient
import Foundation
import HavelCore
import SystemKit
import Testing
@testable import Daemon

/// The web page in a real browser: Debian's chromium, headless, driven by Playwright (from PyPI, in the venv
/// scripts/setup-host.sh makes) through `Browser/dashboard.py`, against a live daemon that really builds.
@Suite struct DashboardBrowserTests {
    static let python = ProcessInfo.processInfo.environment["HAVEL_BROWSER_VENV"].map { $0 + "/bin/python" }
        ?? "/opt/havel-browser-test/bin/python"
    static let chromium = "/usr/bin/chromium"
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Browser/dashboard.py").path

    static let missingReason: String? = {
        if let reason = BuildHost.missingReason { return reason }
        guard FileManager.default.isExecutableFile(atPath: chromium) else {
            return "needs a browser: Debian's chromium at \(chromium) (scripts/setup-host.sh installs it)"
        }
        guard FileManager.default.isExecutableFile(atPath: python) else {
            return "needs Playwright in \(python) (scripts/setup-host.sh makes that venv)"
        }
        return nil
    }()

    /// Where the screenshots go, for a person to look at: the test run's output under .build.
    static let output = FileManager.default.currentDirectoryPath + "/.build/test-output/dashboard"

    @Test(.enabled(if: missingReason == nil, Comment(rawValue: missingReason ?? "")), .timeLimit(.minutes(40)))
    func signInWatchABuildDownloadAndBeRefusedWithoutCookieOrCSRF() async throws {
        let data = try DaemonFixture.temporaryDirectory("dashboard")
        defer { Task { await DaemonFixture.remove(data) } }
        try DaemonFixture.token.write(toFile: data + "/token", atomically: true, encoding: .utf8)
        try? FileManager.default.removeItem(atPath: Self.output)
        let daemon = try await HavelDaemon(configuration: DaemonFixture.configuration(data: data, jobs: 1))
        let result = try await DaemonFixture.withLiveDaemon(daemon) { client, port in
            let project = try await client.createProject()
            _ = try await client.upload(project.id, xml: DaemonFixture.project(name: "dashboard", packages: ["netbase", "less"]))
            return try await ProcessRunner.run(Command(Self.python, [
                "-u", Self.script, "--url", "http://127.0.0.1:\(port)", "--token-file", data + "/token", "--project", "\(project.id)",
                "--build-directory", data + "/projects/\(project.id)/build", "--output", Self.output, "--chromium", Self.chromium,
            ]))
        }
        print(result.standardOutput)
        if !result.standardError.isEmpty { print(String(result.standardError.suffix(4000))) }
        print("dashboard screenshots: \(Self.output)")
        #expect(result.succeeded, "the browser test failed: \(result.standardOutput.split(separator: "\n").last ?? "")")
        #expect(result.standardOutput.contains("all checks passed"))
        for name in ["1-project-list.png", "3-running-build.png", "4-built-project.png"] {
            let size = (try? FileManager.default.attributesOfItem(atPath: Self.output + "/" + name)[.size] as? Int) ?? 0
            #expect(size > 10_000, "screenshot \(name) is missing or empty")
        }
    }
}
