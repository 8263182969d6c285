import Foundation
@testable import Chroot
import SystemKit
import Testing

/// The session command: its namespace's mounts, then `chroot` or what stands for it (the fast path's native
/// helpers enter a tree through their own script, handed the tree and the command as chroot is).
@Suite struct ChrootRunnerTests {
    @Test func anEnterCommandStandsForChrootAndIsHandedTheTreeAndTheCommand() {
        let runner = ChrootRunner(root: "/t")
        let plain = runner.command(["/bin/true"])
        #expect(plain.arguments.suffix(2) == ["/t", "/bin/true"])
        #expect(plain.arguments.contains { $0.contains("exec chroot \"$root\" \"$@\"") })
        let entered = runner.command(["/bin/true"], environment: ["A": "b"], enter: ["bash", "enter.sh", "enter", "/h"])
        #expect(entered.arguments.suffix(6) == ["bash", "enter.sh", "enter", "/h", "/t", "/bin/true"])
        #expect(!entered.arguments.contains { $0.contains("exec chroot") })
        #expect(entered.environment["A"] == "b" && entered.environment["LC_ALL"] == "C")
    }

    @Test(.enabled(if: geteuid() == 0, "needs root (mount namespaces)"))
    func theEnterCommandRunsInsideTheSessionsMounts() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("havel-chroot-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for dir in ["proc", "sys", "dev"] {
            try FileManager.default.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
        }
        let result = try await ProcessRunner.run(ChrootRunner(root: root).command(["/x"], enter: ["sh", "-c", "test -e \"$1/proc/self\" && echo \"$@\"", "enter"]))
        #expect(result.succeeded && result.standardOutput == "\(root) /x\n", "\(result.standardError)")
        #expect(!(try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)).contains(root), "the mounts stayed in the session")
    }
}
