import Foundation
import HavelCore
import SystemKit
import Testing

@Suite struct ProcessRunnerTests {
    @Test func collectsOutputAndStatus() async throws {
        let result = try await ProcessRunner.run(Command("sh", ["-c", "echo out; echo err >&2; exit 3"]))
        #expect(result.termination == .exited(3))
        #expect(result.standardOutput == "out\n")
        #expect(result.standardError == "err\n")
        #expect(!result.succeeded)
    }

    @Test func environmentIsAnAllowList() async throws {
        setenv("HAVEL_TEST_LEAK", "leaked", 1)
        let result = try await ProcessRunner.run(Command("sh", ["-c", "echo ${HAVEL_TEST_LEAK:-none} $LC_ALL $X"], environment: ["X": "y"]))
        #expect(result.standardOutput == "none C y\n")
    }

    @Test func feedsStandardInput() async throws {
        let result = try await ProcessRunner.run(Command("tr", ["a-z", "A-Z"]), input: Array("havel".utf8))
        #expect(result.standardOutput == "HAVEL")
    }

    @Test func checkThrowsWithTheErrorTail() async {
        await #expect {
            try await ProcessRunner.check(Command("sh", ["-c", "echo broken mirror >&2; exit 100"]))
        } throws: { error in
            let message = (error as? HavelError)?.message ?? ""
            return message.contains("exit status 100") && message.contains("broken mirror")
        }
    }

    @Test func missingExecutableNamesIt() async {
        await #expect {
            try await ProcessRunner.run(Command("havel-no-such-tool"))
        } throws: { error in
            "\(error)".contains("havel-no-such-tool: command not found")
        }
    }

    @Test func streamsLinesInOrder() async throws {
        let lines = LineCollector()
        let status = try await ProcessRunner.stream(Command("sh", ["-c", "echo one; echo two >&2; echo three"])) { lines.append($0) }
        #expect(status == .exited(0))
        #expect(lines.all == ["one", "two", "three"])
    }

    /// The child would sleep for 10 minutes; cancelling ends it long before (the bound is generous, so a
    /// busy machine cannot make it flaky, and far below what the child would take on its own).
    @Test func cancellationTerminatesTheChild() async throws {
        let started = ContinuousClock.now
        let task = Task { try await ProcessRunner.run(Command("sleep", ["600"])) }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        let outcome = await task.result
        #expect(ContinuousClock.now - started < .seconds(300))
        // Either reported as a cancellation, or the child's end by the teardown's signal: never a normal exit.
        switch outcome {
        case .failure(let error): #expect((error as? HavelError)?.code == .cancelled, "\(error)")
        case .success(let result): #expect(result.termination == .signaled(SIGTERM) || result.termination == .signaled(SIGKILL), "\(result.termination)")
        }
    }

    @Test func shellQuotingForLogs() {
        #expect(Command("chroot", ["/x y", "sh", "-c", "echo 'hi'"]).description == "chroot '/x y' sh -c 'echo '\\''hi'\\'''")
    }
}

final class LineCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    func append(_ line: String) {
        lock.lock()
        lines.append(line)
        lock.unlock()
    }

    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }
}
