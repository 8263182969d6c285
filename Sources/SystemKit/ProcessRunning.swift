import Foundation
import HavelCore
import Synchronization

/// The seam between code that runs programs and the programs: the build's stages take one of these,
/// so that a test can run a whole build plan through `RecordingProcesses` without root or a mirror.
/// It also answers which programs exist and registers qemu-user with binfmt_misc (what "running a
/// target binary" needs of the host), so those too can be recorded instead of done.
public protocol ProcessRunning: Sendable {
    /// The absolute path of a program, or nil when it is not installed.
    func which(_ name: String) -> String?
    /// Makes sure `qemu-<qemuName>` runs foreign binaries; true when it was registered now.
    func ensureBinfmtHandler(qemuName: String) async throws(HavelError) -> Bool
    /// Runs to completion and collects output (each stream up to `outputLimit` bytes).
    func run(_ command: Command, input: [UInt8], outputLimit: Int) async throws(HavelError) -> ProcessResult
    /// Runs and hands every line of standard output and error (merged, in order) to `onLine`.
    func stream(_ command: Command, onLine: @escaping @Sendable (String) -> Void) async throws(HavelError) -> ProcessResult.Termination
}

extension ProcessRunning {
    public func which(_ name: String) -> String? { ProcessRunner.which(name) }

    public func ensureBinfmtHandler(qemuName: String) async throws(HavelError) -> Bool {
        try await Binfmt.ensureHandler(qemuName: qemuName)
    }

    public func run(_ command: Command, input: [UInt8] = []) async throws(HavelError) -> ProcessResult {
        try await run(command, input: input, outputLimit: 16 << 20)
    }

    /// Runs and throws unless the process exits 0; the message carries the tail of its error output.
    @discardableResult
    public func check(_ command: Command, input: [UInt8] = []) async throws(HavelError) -> ProcessResult {
        let result = try await run(command, input: input)
        guard result.succeeded else {
            let tail = result.standardError.split(separator: "\n").suffix(5).joined(separator: "\n")
            throw HavelError(.processFailed, "\(command) failed with \(result.termination)" + (tail.isEmpty ? "" : ":\n" + tail))
        }
        return result
    }
}

/// The real thing: `ProcessRunner`, which spawns, streams and reaps.
public struct SystemProcesses: ProcessRunning {
    public init() {}

    public func run(_ command: Command, input: [UInt8], outputLimit: Int) async throws(HavelError) -> ProcessResult {
        try await ProcessRunner.run(command, input: input, outputLimit: outputLimit)
    }

    public func stream(_ command: Command, onLine: @escaping @Sendable (String) -> Void) async throws(HavelError) -> ProcessResult.Termination {
        try await ProcessRunner.stream(command, onLine: onLine)
    }
}

/// A stand-in for unit tests of the code around processes: records every command in order and answers
/// from rules (the first rule whose predicate matches). A rule may lay down files, as the real tool
/// would, before it answers. Unmatched commands exit 0 with no output.
public final class RecordingProcesses: ProcessRunning {
    public struct Answer: Sendable {
        public var termination: ProcessResult.Termination
        public var output: String
        public var error: String

        public init(_ termination: ProcessResult.Termination = .exited(0), output: String = "", error: String = "") {
            self.termination = termination
            self.output = output
            self.error = error
        }

        public static let success = Answer()
        public static func failure(_ code: Int32, error: String = "") -> Answer { Answer(.exited(code), error: error) }
    }

    public struct Rule: Sendable {
        let matches: @Sendable (Command) -> Bool
        let answer: @Sendable (Command) throws(HavelError) -> Answer
    }

    private let state = Mutex<(commands: [Command], rules: [Rule], passThrough: [@Sendable (Command) -> Bool])>(([], [], []))
    private let real = SystemProcesses()

    public init() {}

    /// Every command run so far, in order.
    public var commands: [Command] { state.withLock { $0.commands } }

    /// Answers commands for which `matches` holds; `answer` may write what the tool would have written.
    /// A rule added later is asked first, so a test can override a harness's general rule.
    public func on(_ matches: @escaping @Sendable (Command) -> Bool,
                   _ answer: @escaping @Sendable (Command) throws(HavelError) -> Answer) {
        state.withLock { $0.rules.insert(Rule(matches: matches, answer: answer), at: 0) }
    }

    /// Runs commands for which `matches` holds for real (still recording them): tools whose work a later
    /// step reads, such as mkfs and sfdisk for an image, where a fixture would only copy the tool.
    public func passThrough(_ matches: @escaping @Sendable (Command) -> Bool) {
        state.withLock { $0.passThrough.append(matches) }
    }

    /// Answers commands whose executable (or, for wrappers such as unshare and chroot, any word) is `word`.
    public func on(program word: String, _ answer: @escaping @Sendable (Command) throws(HavelError) -> Answer) {
        on({ $0.executable == word || $0.arguments.contains(word) }, answer)
    }

    /// Every program exists.
    public func which(_ name: String) -> String? { name.hasPrefix("/") ? name : "/usr/bin/" + name }

    /// Recorded as the command `binfmt-register qemu-NAME`, answered by the rules like any other.
    public func ensureBinfmtHandler(qemuName: String) async throws(HavelError) -> Bool {
        let answer = try answer(Command("binfmt-register", ["qemu-" + qemuName]))
        guard answer.termination == .exited(0) else { throw HavelError(.io, "registering qemu-\(qemuName) failed: \(answer.error)") }
        return true
    }

    private func answer(_ command: Command) throws(HavelError) -> Answer {
        let rule = state.withLock { state -> Rule? in
            state.commands.append(command)
            return state.rules.first { $0.matches(command) }
        }
        guard let rule else { return .success }
        return try rule.answer(command)
    }

    private func isPassedThrough(_ command: Command) -> Bool {
        state.withLock { state in state.passThrough.contains { $0(command) } }
    }

    public func run(_ command: Command, input: [UInt8], outputLimit: Int) async throws(HavelError) -> ProcessResult {
        if isPassedThrough(command) {
            state.withLock { $0.commands.append(command) }
            return try await real.run(command, input: input, outputLimit: outputLimit)
        }
        let answer = try answer(command)
        return ProcessResult(termination: answer.termination, standardOutput: answer.output, standardError: answer.error)
    }

    public func stream(_ command: Command, onLine: @escaping @Sendable (String) -> Void) async throws(HavelError) -> ProcessResult.Termination {
        if isPassedThrough(command) {
            state.withLock { $0.commands.append(command) }
            return try await real.stream(command, onLine: onLine)
        }
        let answer = try answer(command)
        for line in (answer.output + answer.error).split(separator: "\n") { onLine(String(line)) }
        return answer.termination
    }
}
