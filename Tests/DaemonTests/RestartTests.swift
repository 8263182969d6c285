import DaemonAPI
import DaemonClient
import Foundation
import HavelCore
import SystemKit
import Testing
@testable import Daemon

/// `havel daemon` as its own process: killed with SIGKILL in the middle of a build, then started again.
@Suite(.serialized) struct RestartTests {
    /// The havel executable built beside this test binary, if it has the daemon command.
    static let havel: String? = {
        guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        let candidate = ((exe as NSString).deletingLastPathComponent as NSString).appendingPathComponent("havel")
        guard FileManager.default.isExecutableFile(atPath: candidate) else { return nil }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: candidate)
        probe.arguments = ["daemon", "--help"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { return nil }
        probe.waitUntilExit()
        return probe.terminationStatus == 0 ? candidate : nil
    }()

    static var skipReason: Comment {
        Comment(rawValue: BuildHost.missingReason ?? (havel == nil ? "needs the havel executable with the daemon command beside the tests" : ""))
    }

    /// A daemon process and the port it listens on (read from its first line of output).
    struct DaemonProcess {
        let process: Process
        let port: Int

        static func start(data: String, cache: String? = nil, arguments: [String] = []) throws -> DaemonProcess {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: RestartTests.havel!)
            process.arguments = ["daemon", "--listen", "127.0.0.1:0", "--data", data, "--token-file", data + "/token",
                                 "--jobs", "1", "--cache", cache ?? data + "/cache"] + arguments
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
            var text = ""
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
                if let range = text.range(of: "listening on http://127.0.0.1:") {
                    let digits = text[range.upperBound...].prefix { $0.isNumber }
                    if let port = Int(digits), text[range.upperBound...].dropFirst(digits.count).first != nil {
                        return DaemonProcess(process: process, port: port)
                    }
                }
            }
            process.terminate()
            throw HavelError(.processFailed, "havel daemon did not start: \(text)")
        }

        func client(token: String) -> DaemonClient {
            DaemonClient(baseURL: "http://127.0.0.1:\(port)", token: token)
        }

        func kill() {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    @Test(.enabled(if: BuildHost.available && havel != nil, skipReason), .timeLimit(.minutes(10)))
    func killedMidBuildTheProjectIsFailedAndTheDatabaseReadable() async throws {
        let data = try DaemonFixture.temporaryDirectory("kill")
        do {
            try await killAndRestart(data: data)
        } catch {
            await ProcessReaper.killAll(using: data)
            await DaemonFixture.remove(data)
            throw error
        }
        await DaemonFixture.remove(data)
    }

    func killAndRestart(data: String) async throws {
        let first = try DaemonProcess.start(data: data)
        let token = try APIToken.read(at: data + "/token")
        let attributes = try FileManager.default.attributesOfItem(atPath: data + "/token")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let client = first.client(token: token)
        let project = try await client.createProject()
        _ = try await client.upload(project.id, xml: DaemonFixture.project(name: "killed"))
        _ = try await client.build(project.id)
        // Wait until the build is really under way (mmdebstrap installing), then kill the daemon outright.
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, !(try await client.log(project.id)).contains("mmdebstrap --mode=root") {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await client.log(project.id).contains("mmdebstrap --mode=root"))
        try await Task.sleep(for: .seconds(2))
        #expect(try await client.project(project.id).status == .busy)
        first.kill()
        let build = data + "/projects/\(project.id)/build"
        #expect(!ProcessReaper.processes(using: build).isEmpty, "the killed daemon's mmdebstrap is still running")
        // mmdebstrap may yet die of its own (its output pipe led to the killed daemon): a leftover that cannot,
        // working in the build directory in a session of its own, makes the reaper's part certain.
        let leftover = Process()
        leftover.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
        leftover.arguments = ["sleep", "600"]
        leftover.currentDirectoryURL = URL(fileURLWithPath: build)
        try leftover.run()
        defer { if leftover.isRunning { leftover.terminate() } }
        // The killed daemon's build cgroup is left with what still runs in it.
        let buildGroups = CgroupSupport.missingReason == nil ? BuildCgroups(dataDirectory: data) : nil
        if let buildGroups { #expect(buildGroups.hierarchy?.childGroups(prefix: buildGroups.prefix).count == 1) }

        let second = try DaemonProcess.start(data: data)
        defer { if second.process.isRunning { second.process.terminate(); second.process.waitUntilExit() } }
        let again = second.client(token: token)
        let info = try await again.project(project.id)
        #expect(info.status == .buildFailed)
        #expect(info.reason == "the daemon stopped during the build")
        #expect(try await again.projects().map(\.id) == [project.id])
        #expect(try await again.log(project.id).contains("the daemon stopped during the build"))
        // The restart ended what the killed daemon's build left running.
        #expect(ProcessReaper.processes(using: build).isEmpty)
        #expect(try await again.log(project.id).contains("the stopped daemon's build left running"))
        // ... and its cgroup is gone with whatever was still in it.
        if let buildGroups { #expect(buildGroups.hierarchy?.childGroups(prefix: buildGroups.prefix).isEmpty == true) }
        // The database is sound and still takes changes.
        let sqlite = Process()
        sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        sqlite.arguments = ["sqlite3", data + "/havel.sqlite", "PRAGMA integrity_check;"]
        let out = Pipe()
        sqlite.standardOutput = out
        if (try? sqlite.run()) != nil {
            sqlite.waitUntilExit()
            if sqlite.terminationStatus == 0 {
                #expect(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "ok")
            }
        }
        #expect(try await again.reset(project.id).status == .needsBuild)
        // SIGTERM: a graceful stop.
        second.process.terminate()
        second.process.waitUntilExit()
        #expect(second.process.terminationStatus == 0)
    }
}
