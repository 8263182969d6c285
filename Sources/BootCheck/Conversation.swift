import Foundation
import HavelCore
import Logging
import QEMU
import SystemKit

/// How a check's talk with the guest ended (before qemu's exit status is known).
struct ConversationOutcome: Sendable {
    var passed: Bool
    var message: String
    /// The script ended with EOF: qemu's own exit status decides as well.
    var waitedForExit = false
}

/// One check's dialogue with the guest over its serial console.
struct Conversation {
    let name: String
    let console: SerialConsole
    let session: ProcessSession
    let context: CheckContext
    let log: Logger
    let started: ContinuousClock.Instant

    /// Until the guest has produced what was first expected of it, waits are boot waits.
    private var booted = false

    init(name: String, console: SerialConsole, session: ProcessSession, context: CheckContext,
         log: Logger, started: ContinuousClock.Instant) {
        self.name = name
        self.console = console
        self.session = session
        self.context = context
        self.log = log
        self.started = started
    }

    /// A failure of one step: which, what was awaited, what happened, and the console's last lines.
    struct StepFailure: Error {
        var message: String
    }

    private var timeout: Duration { booted ? context.stepTimeout : context.bootTimeout }

    private var elapsed: String { Self.format(ContinuousClock.now - started) }

    static func format(_ duration: Duration) -> String {
        let seconds = duration.inSeconds
        return String(format: "%.1f s", seconds)
    }

    private func failure(_ step: String, _ what: String) -> StepFailure {
        var message = "\(step): \(what)"
        if let panic = console.kernelPanic {
            message += "\nthe guest's kernel panicked: " + panic
            if panic.contains("timer doesn't work") {
                message += "\n(under TCG on a busy host the early timer check can miss its ticks: "
                    + "add no_timer_check to the kernel command line)"
            }
        }
        let lines = console.tail(lines: 8, maxBytes: 1200)
        message += lines.isEmpty ? "\n(the serial console stayed silent)" : "\nlast serial output:\n" + lines
        return StepFailure(message: message)
    }

    /// qemu has closed its output: how it ended ("qemu exited (exit status 1)") and the last lines
    /// of its stderr, where its own errors go.
    private func exitDescription() async -> (status: String, said: String) {
        var status = session.exitStatus()
        for _ in 0..<50 where status == nil {
            try? await Task.sleep(for: .milliseconds(20))
            status = session.exitStatus()
        }
        let stderr = console.standardError.split(separator: "\n").suffix(5).joined(separator: "\n")
        return ("qemu exited" + (status.map { " (\($0))" } ?? ""), stderr.isEmpty ? "" : "\nqemu said:\n" + stderr)
    }

    private func exitFailure(_ step: String, before what: String) async -> StepFailure {
        let (status, said) = await exitDescription()
        return failure(step, "\(status) before \(what)" + said)
    }

    /// Waits for one of `patterns`; throws a step failure on time-out or qemu's exit.
    @discardableResult
    private mutating func expect(_ patterns: [ConsolePattern], step: String) async throws -> (index: Int, text: String) {
        let limit = timeout
        switch try await console.expect(patterns, timeout: limit) {
        case .matched(let index, let text):
            booted = true
            return (index, text)
        case .timedOut:
            let what = patterns.map(\.description).joined(separator: " or ")
            throw failure(step, "expected \(what), not seen within \(Self.format(limit))" + (booted ? "" : " of starting qemu"))
        case .ended:
            throw await exitFailure(step, before: patterns.map(\.description).joined(separator: " or ") + " appeared")
        }
    }

    private func send(_ text: String, step: String) async throws {
        if console.hasEnded { throw await exitFailure(step, before: "anything could be sent") }
        do {
            try await session.write(text)
        } catch {
            throw failure(step, "cannot send to qemu: \(error.message)")
        }
    }

    // MARK: - login

    /// systemd's words (bullseye to trixie) when serial-getty@ttyS0's device job timed out: no login will come.
    static var gettyGaveUp: ConsolePattern { .regex("Dependency failed for .*Serial Getty on", shown: "systemd giving up its serial getty") }

    static let gettyGaveUpExplanation = "the guest's systemd gave up its serial getty (\"Dependency failed for ... Serial Getty\"): "
        + "udev did not announce the console's tty within systemd's device time-out (90 s by default), so no login prompt "
        + "will come. A guest under software emulation on a busy host can be that slow; with KVM it is not. To let the "
        + "image wait longer, give it a drop-in such as /etc/systemd/system/dev-ttyS0.device.d/timeout.conf with "
        + "\"[Unit]\" and \"JobRunningTimeoutSec=infinity\" (a finetuning <file>)"

    /// ELBE's login action: log in as root on the console, then prove that a shell answers.
    mutating func login(password: String) async throws -> ConversationOutcome {
        // ELBE: "The element takes an (optional) plain-text password for root. Default password is "root"."
        let password = password.isEmpty ? "root" : password
        let (first, _) = try await expect([.regex("[Ll]ogin:", shown: "a login prompt (\"login:\")"), Self.gettyGaveUp], step: "login prompt")
        if first == 1 {
            throw failure("login prompt", Self.gettyGaveUpExplanation)
        }
        log.info("check \(name): login prompt after \(elapsed)")
        try await send("root\n", step: "login prompt")

        let passwordPrompt = ConsolePattern.regex("[Pp]assword:", shown: "\"Password:\"")
        let rejected = ConsolePattern.regex("[Ll]ogin incorrect|[Aa]uthentication failure|[Ll]ogin:", shown: "a refusal")
        let prompt = ConsolePattern.regex("[#$] |[#$]$", shown: "a shell prompt (\"#\")")
        let (answer, _) = try await expect([passwordPrompt, prompt, rejected], step: "user name \"root\"")
        switch answer {
        case 0:
            try await send(password + "\n", step: "password")
            let (result, text) = try await expect([prompt, rejected], step: "password")
            if result == 1 {
                throw failure("password", "the guest rejected the password for root (\"\(text.trimmingCharacters(in: .whitespaces))\")")
            }
        case 1:
            log.info("check \(name): root got a shell without a password")
        default:
            throw failure("user name \"root\"", "the guest refused the login before asking for a password")
        }
        log.info("check \(name): logged in as root after \(elapsed)")

        // The command echoes back as typed; only a shell that ran it prints 42.
        try await send("echo HAVEL-CHECK-$((6*7))\n", step: "shell command")
        try await expect([.literal("HAVEL-CHECK-42")], step: "shell command \"echo HAVEL-CHECK-$((6*7))\"")
        return ConversationOutcome(passed: true, message: "logged in as root and ran a shell command (\(elapsed))")
    }

    // MARK: - serial

    /// ELBE's serial action: expect, sendline and EOF steps in order.
    mutating func serial(_ steps: [ImageCheck.SerialStep]) async throws -> ConversationOutcome {
        guard !steps.isEmpty else {
            throw StepFailure(message: "the check has no steps: give <action><login/></action> or <serial> with expect/sendline/EOF")
        }
        for (offset, step) in steps.enumerated() {
            let number = "step \(offset + 1) of \(steps.count)"
            switch step {
            case .expect(let text):
                try await expect([.elbe(text)], step: "\(number) (expect \"\(text)\")")
                log.info("check \(name): \(number): saw \"\(text)\" after \(elapsed)")
            case .sendline(let text):
                try await send(text + "\n", step: "\(number) (sendline \"\(text)\")")
            case .eof:
                let limit = timeout
                let deadline = ContinuousClock.now.advanced(by: limit)
                while session.exitStatus() == nil || !console.hasEnded {
                    guard ContinuousClock.now < deadline else {
                        throw failure("\(number) (EOF)", "qemu was still running after \(Self.format(limit)); the guest did not power off")
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
                if offset + 1 < steps.count {
                    log.warning("check \(name): \(steps.count - offset - 1) step(s) after EOF were not run")
                }
                log.info("check \(name): qemu exited after \(elapsed)")
                return ConversationOutcome(passed: true, message: "\(steps.count) steps done, qemu exited (\(elapsed))",
                                           waitedForExit: true)
            }
        }
        return ConversationOutcome(passed: true, message: "\(steps.count) steps done (\(elapsed))")
    }
}
