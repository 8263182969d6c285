import DaemonAPI
import DaemonClient
import Foundation
import HavelCore
import SystemKit
import Testing

/// `havel initvm submit --url` against a `havel daemon` process on this host: a build that fails
/// exits 1, says why, shows the log's tail, and still brings the log home.
@Suite(.serialized) struct SubmitTests {
    @Test(.enabled(if: BuildHost.available && RestartTests.havel != nil, RestartTests.skipReason), .timeLimit(.minutes(15)))
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

    /// A build that prints nothing for longer than the client's idle timeout: with keep-alives the submit
    /// follows through the silence; without them (a keep-alive interval far above the idle timeout) it loses
    /// the stream, follows again from its offset and still prints every line once. Both exit 0.
    @Test(.enabled(if: BuildHost.available && RestartTests.havel != nil, RestartTests.skipReason), .timeLimit(.minutes(15)))
    func aQuietBuildIsFollowedToTheEndAndItsLogPrintedOnce() async throws {
        let data = try DaemonFixture.temporaryDirectory("quiet")
        let cache = data + "/cache"
        do {
            for (keepAlive, expectsReconnect) in [("0.5", false), ("600", true)] {
                let daemonData = data + "/keepalive-\(keepAlive)"
                let daemon = try RestartTests.DaemonProcess.start(data: daemonData, cache: cache, arguments: ["--log-keepalive", keepAlive])
                do {
                    try await submitQuiet(data: daemonData, port: daemon.port, expectsReconnect: expectsReconnect)
                } catch {
                    await Self.stop(daemon, data: daemonData)
                    throw error
                }
                await Self.stop(daemon, data: daemonData)
            }
        } catch {
            await DaemonFixture.remove(data)
            throw error
        }
        await DaemonFixture.remove(data)
    }

    func submitQuiet(data: String, port: Int, expectsReconnect: Bool) async throws {
        let file = data + "/quiet.xml"
        let project = DaemonFixture.project(name: "quiet", finetuning: "<command>sleep 8</command>")
        try project.write(toFile: file, atomically: true, encoding: .utf8)
        let results = data + "/results"
        let url = "http://127.0.0.1:\(port)"
        let havel = RestartTests.havel!
        // Kept, so that the followers beside it can still ask about the project when the submit is done.
        async let submitting = ProcessRunner.run(Command(havel, [
            "initvm", "submit", "--url", url, "--token-file", data + "/token", "--output", results,
            "--log-idle-timeout", "2", "--keep", file,
        ]))
        // `control log -f` and `control wait` beside it, once the build is under way.
        let client = DaemonClient(baseURL: url, token: try APIToken.read(at: data + "/token"))
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, (try? await client.project(1))?.status != .busy { try await Task.sleep(for: .milliseconds(100)) }
        async let following = ProcessRunner.run(Command(havel, [
            "control", "log", "1", "--follow", "--url", url, "--token-file", data + "/token", "--log-idle-timeout", "2",
        ]))
        async let waiting = ProcessRunner.run(Command(havel, [
            "control", "wait", "1", "--url", url, "--token-file", data + "/token", "--interval", "0.5",
        ]))
        let (submit, followed, waited) = try await (submitting, following, waiting)

        #expect(submit.termination == .exited(0), "\(submit.standardError)")
        #expect(submit.standardError.contains("following again from byte") == expectsReconnect, "\(submit.standardError)")
        #expect(followed.termination == .exited(0), "\(followed.standardError)")
        #expect(followed.standardError.contains("following again from byte") == expectsReconnect, "\(followed.standardError)")
        #expect(waited.termination == .exited(0), "\(waited.standardError)")
        #expect(waited.standardOutput.contains("build_done"), "\(waited.standardOutput)")
        // The lines between "project N created" and "results in" are the downloaded log, each once; the
        // follower, which came in after the build began, printed the same whole log.
        let log = try String(contentsOfFile: results + "/log.txt", encoding: .utf8).replacingOccurrences(of: "\r", with: "\n")
        let expected = Array(log.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).dropLast())
        let printed = submit.standardOutput.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let first = try #require(printed.firstIndex { $0.hasPrefix("project ") && $0.contains(" created; uploading") })
        let last = try #require(printed.lastIndex { $0.hasPrefix("results in ") })
        #expect(Array(printed[(first + 1)..<last]) == expected)
        #expect(Array(followed.standardOutput.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).dropLast()) == expected)
        #expect(log.contains("sleep 8"))
        #expect(FileManager.default.fileExists(atPath: results + "/source.xml"))
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
        let client = DaemonClient(baseURL: "http://127.0.0.1:\(port)", token: try APIToken.read(at: data + "/token"))
        #expect(try await client.projects().isEmpty)
    }
}
