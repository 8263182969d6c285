// Tests of `check-script`: the command ELBE's check-build would run (through the recording runner), and
// real scripts run by /bin/sh: passing, failing, hanging past the time-out, and check.xml for each.

import Foundation
import FoundationXML
import HavelCore
import SystemKit
import Testing
@testable import BootCheck

@Suite struct CheckScriptTests {
    /// A build directory with an image in it, removed at the end.
    final class Directory: Sendable {
        let path: String
        init() throws {
            path = "/var/tmp/havel-checkscript-\(getpid())-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try Data("image".utf8).write(to: URL(fileURLWithPath: path + "/sda.img"))
            try Data("<project/>".utf8).write(to: URL(fileURLWithPath: path + "/source.xml"))
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        /// What the script left behind besides what the test put there: nothing, or a leak.
        var leftovers: [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasPrefix(".check-script") }
        }
    }

    @Test func theScriptRunsWithTheBuildDirectoryAsArgumentAndWorkingDirectory() async throws {
        let directory = try Directory()
        let fake = RecordingProcesses()
        let path = directory.path
        fake.on({ $0.arguments == [path] }) { _ in .init(.exited(0), output: "ok\n") }
        let result = await CheckScriptRunner.run(CheckScript(text: "\n  \n#!/bin/sh\nexit 0\n"), buildDirectory: directory.path,
                                                 imagePath: directory.path + "/sda.img", outputPath: nil, processes: fake,
                                                 log: LogRecorder().logger)
        #expect(result.passed, "\(result.message)")
        let command = try #require(fake.commands.first)
        #expect(fake.commands.count == 1)
        #expect(command.arguments == [directory.path])
        #expect(command.workingDirectory == directory.path)
        #expect(command.environment["ELBE_IMG"] == directory.path + "/sda.img")
        #expect(command.environment["HAVEL_IMG"] == directory.path + "/sda.img")
        // Havel's allow-list, nothing of the caller's own environment.
        #expect(Set(command.environment.keys) == Set(Command.baseEnvironment.keys).union(["ELBE_IMG", "HAVEL_IMG"]))
        #expect(command.executable.hasPrefix(directory.path + "/.check-script-"))
        #expect(directory.leftovers.isEmpty, "the private script directory is removed")
    }

    @Test func leadingBlankLinesAreDroppedButAScriptWithoutShebangFails() async throws {
        #expect(CheckScriptRunner.runnable("\n   \n#!/bin/sh\n  echo x\n") == "#!/bin/sh\n  echo x\n")
        let directory = try Directory()
        let fake = RecordingProcesses()
        let result = await CheckScriptRunner.run(CheckScript(text: "echo hello\n"), buildDirectory: directory.path, imagePath: nil,
                                                 outputPath: nil, processes: fake, log: LogRecorder().logger)
        #expect(!result.passed)
        #expect(result.message.contains("does not start with a #! line"), "\(result.message)")
        #expect(fake.commands.isEmpty)
    }

    @Test func aRealPassingScriptSeesWhatELBEGivesIt() async throws {
        let directory = try Directory()
        let script = """
            #!/bin/sh
            set -e
            test "$1" = "$(pwd)"
            test -f "$1/source.xml"
            test -f "$ELBE_IMG"
            echo "checked $(basename "$ELBE_IMG") in $1"
            """
        let log = LogRecorder()
        let result = await CheckScriptRunner.run(CheckScript(text: script), buildDirectory: directory.path, imagePath: directory.path + "/sda.img",
                                                 outputPath: directory.path + "/check-script.log", log: log.logger)
        #expect(result.passed, "\(result.message)")
        #expect(result.transcriptTail == "checked sda.img in \(directory.path)")
        #expect(try String(contentsOfFile: directory.path + "/check-script.log", encoding: .utf8) == "checked sda.img in \(directory.path)\n")
        // In the log as tool output (indented), after the line that says what runs.
        #expect(log.lines.contains("  checked sda.img in \(directory.path)"))
        #expect(log.contains("check-script: running #!/bin/sh with \(directory.path), ELBE_IMG=\(directory.path)/sda.img, time-out 1800 s"))
        #expect(directory.leftovers.isEmpty)
    }

    @Test func aRealFailingScriptFailsWithItsStatusAndOutput() async throws {
        let directory = try Directory()
        let script = "#!/bin/sh\necho 'looking for /etc/missing' >&2\necho 'not there'\nexit 3\n"
        let result = await CheckScriptRunner.run(CheckScript(text: script), buildDirectory: directory.path, imagePath: nil,
                                                 outputPath: nil, log: LogRecorder().logger)
        #expect(!result.passed)
        #expect(result.message.hasPrefix("the script ended with exit status 3"), "\(result.message)")
        #expect(result.message.contains("looking for /etc/missing"))
        #expect(result.transcriptTail.contains("not there"))
        let xml = BootChecker.junitXML([result], suite: "havel-checks")
        let document = try XMLDocument(xmlString: xml, options: [])
        let failure = try #require(try document.nodes(forXPath: "//testcase[@name='check-script']/failure").first as? XMLElement)
        #expect(failure.attribute(forName: "message")?.stringValue == "the script ended with exit status 3; its last output:")
        #expect(failure.stringValue?.contains("script output (last lines):\nlooking for /etc/missing\nnot there") == true)
    }

    @Test func aScriptThatHangsIsStoppedAtItsTimeOutWithItsChildren() async throws {
        let directory = try Directory()
        let marker = "havel-check-script-hang-\(getpid())-\(UUID().uuidString.prefix(6))"
        // A child in the background and one in the foreground: both must go.
        let script = "#!/bin/sh\nsh -c 'sleep 300; true' \(marker) &\necho started\nsh -c 'sleep 300; true' \(marker)\n"
        let started = ContinuousClock.now
        let result = await CheckScriptRunner.run(CheckScript(text: script), buildDirectory: directory.path, imagePath: nil,
                                                 timeout: .seconds(2), outputPath: nil, log: LogRecorder().logger)
        let took = ContinuousClock.now - started
        #expect(!result.passed)
        #expect(result.message.hasPrefix("the script was still running after 2 s and was stopped"), "\(result.message)")
        #expect(result.message.contains("started"))
        // The children sleep 300 s: finishing well before that shows they were stopped, not waited for.
        // No tighter bound: on a busy machine stopping them has taken 16 s.
        #expect(took < .seconds(120), "took \(took)")
        let left = try await ProcessRunner.run(Command("pgrep", ["-f", "-a", marker]))
        #expect(left.standardOutput.isEmpty, "still running: \(left.standardOutput)")
        #expect(left.termination == .exited(1), "pgrep found none: \(left.termination)")
        #expect(directory.leftovers.isEmpty)
    }
}
