import DaemonClient
import Foundation
import HavelCore
import SystemKit
import Testing

/// `havel initvm submit --url` against a `havel daemon` process on this host: a build that fails
/// exits 1, says why, shows the log's tail, and still brings the log home.
@Suite(.serialized) struct SubmitTests {
    @Test(.enabled(if: BuildHost.available && RestartTests.havel != nil, RestartTests.skipReason), .timeLimit(.minutes(5)))
    func aFailedBuildExitsNonZeroWithTheLogTail() async throws {
        let data = try DaemonFixture.temporaryDirectory("submit")
        let daemon = try RestartTests.DaemonProcess.start(data: data)
        do {
            try await submitBroken(data: data, port: daemon.port)
        } catch {
            await Self.stop(daemon, data: data)
            throw error
        }
        await Self.stop(daemon, data: data)
    }

    /// The daemon, then what it still runs in its data directory (emptying its trash), then the directory.
    static func stop(_ daemon: RestartTests.DaemonProcess, data: String) async {
        daemon.process.terminate()
        daemon.process.waitUntilExit()
        await ProcessReaper.killAll(using: data)
        await DaemonFixture.remove(data)
    }

    func submitBroken(data: String, port: Int) async throws {
        let file = data + "/broken.xml"
        try DaemonFixture.project(name: "broken", packages: ["havel-no-such-package"]).write(toFile: file, atomically: true, encoding: .utf8)
        let results = data + "/results"
        let submit = try await ProcessRunner.run(Command(RestartTests.havel!, [
            "initvm", "submit", "--url", "http://127.0.0.1:\(port)", "--token-file", data + "/token", "--output", results, file,
        ]))
        #expect(submit.termination == .exited(1))
        #expect(submit.standardError.contains("the last lines of \(results)/log.txt:"))
        #expect(submit.standardError.contains("havel-no-such-package"))
        #expect(submit.standardError.contains("havel: the build in the initvm failed"))
        #expect(FileManager.default.fileExists(atPath: results + "/log.txt"))
        // Not kept: the project is gone from the daemon.
        let client = DaemonClient(baseURL: "http://127.0.0.1:\(port)", token: try DaemonClient.readToken(path: data + "/token"))
        #expect(try await client.projects().isEmpty)
    }
}
