import Foundation
import SystemKit
import Testing

/// What a killed parent leaves working in a directory is found by cwd, root or command line, and ended.
struct ProcessReaperTests {
    @Test func findsAndEndsProcessesWorkingInADirectory() async throws {
        let directory = NSTemporaryDirectory() + "havel-reaper-" + UUID().uuidString.prefix(8)
        let sibling = directory + "-sibling"
        for path in [directory + "/tree", sibling] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        defer { for path in [directory, sibling] { try? FileManager.default.removeItem(atPath: path) } }

        func sleeper(cwd: String, arguments: [String]) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            // The shell stays (no exec), so its own command line keeps the arguments.
            process.arguments = ["-c", "while :; do sleep 1; done", "sh"] + arguments
            process.currentDirectoryURL = URL(fileURLWithPath: cwd)
            try process.run()
            return process
        }
        let inside = try sleeper(cwd: directory + "/tree", arguments: [])
        let naming = try sleeper(cwd: "/", arguments: ["--output=" + directory])
        let elsewhere = try sleeper(cwd: sibling, arguments: [])
        defer { elsewhere.terminate(); elsewhere.waitUntilExit() }
        try await Task.sleep(for: .milliseconds(200))

        let found = ProcessReaper.processes(using: directory)
        // The shells, and the sleep the one inside has started there.
        #expect(Set([inside.processIdentifier, naming.processIdentifier]).isSubset(of: Set(found)))
        #expect(!found.contains(elsewhere.processIdentifier), "a directory that only shares the prefix is not the same directory")

        let killed = await ProcessReaper.killAll(using: directory)
        // The shells are killed. The `sleep 1` children come and go once a second, so the one found
        // above may have ended and another begun: only the long-lived processes are compared.
        #expect(Set([inside.processIdentifier, naming.processIdentifier]).isSubset(of: Set(killed)), "killed \(killed)")
        inside.waitUntilExit()
        naming.waitUntilExit()
        #expect(inside.terminationReason == .uncaughtSignal && inside.terminationStatus == SIGKILL)
        #expect(ProcessReaper.processes(using: directory).isEmpty)
        #expect(elsewhere.isRunning)
    }
}
