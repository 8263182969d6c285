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
        // Until the guest has shown its first expected text, it is booting: waited for as long as it keeps
        // printing (up to the ceiling), given up once it has been silent for the boot time-out.
        // A booting guest that has given up (emergency mode, no root device) fails the wait at once.
        let wasBooted = booted
        let limit = wasBooted ? context.stepTimeout : context.bootCeiling
        let watched = wasBooted ? patterns : patterns + BootFailure.allCases.map(\.pattern)
        switch try await console.expect(watched, timeout: limit, silence: wasBooted ? nil : context.bootTimeout) {
        case .matched(let index, _) where index >= patterns.count:
            let failed = BootFailure.allCases[index - patterns.count]
            throw failure(step, failed.explanation(timedOutDevices: console.lines(containing: "Timed out waiting for device", limit: 4)))
        case .matched(let index, let text):
            booted = true
            return (index, text)
        case .timedOut:
            let what = "expected " + patterns.map(\.description).joined(separator: " or ")
            guard !wasBooted else { throw failure(step, what + ", not seen within \(Self.format(limit))") }
            throw failure(step, what + ", " + Self.bootTimeOutDescription(now: .now, started: started, lastOutput: console.lastOutput,
                                                                             silence: context.bootTimeout, ceiling: context.bootCeiling))
        case .ended:
            throw await exitFailure(step, before: patterns.map(\.description).joined(separator: " or ") + " appeared")
        }
    }

    /// Why a boot wait ended: the guest fell silent (and when it last printed), or it was still printing
    /// when the ceiling came.
    static func bootTimeOutDescription(now: ContinuousClock.Instant, started: ContinuousClock.Instant,
                                       lastOutput: ContinuousClock.Instant?, silence: Duration, ceiling: Duration) -> String {
        guard let lastOutput else { return "not seen: the guest printed nothing in \(format(now - started)) of starting qemu" }
        if now - lastOutput < silence {
            return "not seen within \(format(ceiling)) of starting qemu, the longest a boot is waited for "
                + "(the guest was still printing, last \(format(now - lastOutput)) before)"
        }
        return "not seen: the guest printed nothing for \(format(now - lastOutput)) "
            + "(its last output came \(format(lastOutput - started)) after qemu started)"
    }

    private func send(_ text: String, step: String) async throws {
        if console.hasEnded { throw await exitFailure(step, before: "anything could be sent") }
        do {
            try await session.write(text)
        } catch {
            throw failure(step, "cannot send to qemu: \(error.message)")
        }
    }

    /// What a guest prints when its boot has stopped short of anything a check can expect.
    enum BootFailure: CaseIterable {
        /// systemd 247-257: a unit the default target needs failed (often a mount whose device did not come).
        case emergencyMode
        /// initramfs-tools: the root device did not appear.
        case noRootDevice

        var pattern: ConsolePattern {
            switch self {
            case .emergencyMode: .regex("You are in emergency mode", shown: "systemd's emergency mode")
            case .noRootDevice: .regex("Gave up waiting for root (file system )?device", shown: "the initramfs giving up on the root device")
            }
        }

        func explanation(timedOutDevices: [String]) -> String {
            switch self {
            case .emergencyMode:
                var text = "the guest's systemd entered emergency mode: a unit the boot needs failed, so no login prompt will come"
                guard !timedOutDevices.isEmpty else { return text + " (the transcript names the unit)" }
                text += ". It said: " + timedOutDevices.map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "; ")
                return text + ". udev did not announce the device within systemd's device time-out (90 s by default): a guest under "
                    + "software emulation on a busy host can be that slow; with KVM it is not. To let the image wait longer, give the "
                    + "fstab entry the option x-systemd.device-timeout=0 (<options> of <bylabel>), or give the image a drop-in such as "
                    + "/etc/systemd/system.conf.d/device-timeout.conf with \"[Manager]\" and \"DefaultDeviceTimeoutSec=infinity\" "
                    + "(systemd 252 and later, bookworm on; a finetuning <file>)"
            case .noRootDevice:
                return "the guest's initramfs gave up waiting for its root device: check root= on the kernel command line, the fstab "
                    + "labels, and that the initramfs holds the disk's driver (e.g. virtio_blk with MODULES=list); on a slow guest, "
                    + "rootdelay= lengthens the wait"
            }
        }
    }

    // MARK: - login

    /// systemd's words (bullseye to trixie) when serial-getty@ttyS0's device job timed out: no login will come.
    static var gettyGaveUp: ConsolePattern { .regex("Dependency failed for .*Serial Getty on", shown: "systemd giving up its serial getty") }

    static let gettyGaveUpExplanation = "the guest's systemd gave up its serial getty (\"Dependency failed for ... Serial Getty\"): "
        + "udev did not announce the console's tty within systemd's device time-out (90 s by default), so no login prompt "
        + "will come. A guest under software emulation on a busy host can be that slow; with KVM it is not. To let the "
        + "image wait longer, give it a drop-in such as /etc/systemd/system/dev-ttyS0.device.d/timeout.conf with "
        + "\"[Unit]\" and \"JobRunningTimeoutSec=infinity\", or for every device /etc/systemd/system.conf.d/device-timeout.conf "
        + "with \"[Manager]\" and \"DefaultDeviceTimeoutSec=infinity\" (systemd 252 and later; a finetuning <file>)"

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
                let limit = booted ? context.stepTimeout : context.bootCeiling
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
