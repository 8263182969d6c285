// BootCheck owns boot-checking an image (ELBE's check-image-list: login, expect/sendline, EOF) with
// the QEMU module, its time-outs, and a JUnit report.

import Foundation
import HavelCore
import Logging
import QEMU
import SystemKit

/// Where and how checks run.
public struct CheckContext: Sendable {
    /// Relative file arguments (artifacts, kernels) resolve here, or in its `artifacts/` where the build
    /// directory has no such file; qemu runs in this directory.
    public var buildDirectory: String
    /// Where a build keeps the files `<artifact>`, `<t2p_mv>` and `copy_from_partition` register.
    public static let artifactsSubdirectory = "artifacts"
    /// `$ELBE_IMG` and `$HAVEL_IMG` expand to this (relative: against `buildDirectory`).
    public var imagePath: String
    /// From a real probe (`AcceleratorProbe`). With `.tcg`, requests for KVM in the options are rewritten.
    public var accelerator: Accelerator
    /// Until the first expected text appears, the longest the guest may print nothing (TCG is slow).
    public var bootTimeout: Duration
    /// Until the first expected text appears, the longest wait however much the guest prints.
    public var bootCeiling: Duration
    /// The silence allowed to a booting guest with KVM, and under software emulation, where an amd64
    /// GRUB image on a busy 2-core machine (a CI run) showed no login prompt within 300 s. A guest booting
    /// with a quiet kernel prints nothing between its boot loader and its login prompt.
    public static let defaultBootTimeout: Duration = .seconds(300)
    public static let emulatedBootTimeout: Duration = .seconds(900)
    /// A guest that keeps printing is waited for up to twice its silence limit: in CI runs on a busy
    /// machine an amd64 GRUB image under TCG was still probing devices when 900 s were over.
    public static func ceiling(forBootTimeout timeout: Duration) -> Duration { timeout * 2 }
    /// Each later step.
    public var stepTimeout: Duration
    /// The whole serial output is written here as it arrives (qemu's stderr appended at the end).
    public var transcriptPath: String?

    public init(buildDirectory: String, imagePath: String, accelerator: Accelerator,
                bootTimeout: Duration = defaultBootTimeout, bootCeiling: Duration? = nil, stepTimeout: Duration = .seconds(120),
                transcriptPath: String? = nil) {
        self.buildDirectory = buildDirectory
        self.imagePath = imagePath
        self.accelerator = accelerator
        self.bootTimeout = bootTimeout
        self.bootCeiling = max(bootCeiling ?? Self.ceiling(forBootTimeout: bootTimeout), bootTimeout)
        self.stepTimeout = stepTimeout
        self.transcriptPath = transcriptPath
    }
}

/// The outcome of one check, as it goes into check.xml.
public struct CheckResult: Sendable, Codable, Hashable {
    public var name: String
    public var passed: Bool
    public var seconds: Double
    /// What passed, or which step failed, what it waited for, and the last serial lines.
    public var message: String
    /// The last lines of serial output (escape sequences and carriage returns removed), or of a script's output.
    public var transcriptTail: String
    /// What `transcriptTail` holds, for check.xml; nil: the serial console.
    public var tailSource: String?

    public init(name: String, passed: Bool, seconds: Double, message: String, transcriptTail: String) {
        self.name = name
        self.passed = passed
        self.seconds = seconds
        self.message = message
        self.transcriptTail = transcriptTail
    }
}

/// Runs `check-image-list` checks: boots the image in qemu with the serial console on stdio and
/// talks to it. qemu is always stopped at the end (SIGTERM, then SIGKILL after a grace period) —
/// on success, failure, time-out and cancellation.
public enum BootChecker {
    /// Lines of serial output kept in `CheckResult.transcriptTail`.
    public static let tailLines = 40

    public static func run(_ check: ImageCheck, name: String, context: CheckContext,
                           log: Logger) async -> CheckResult {
        let started = ContinuousClock.now
        func result(_ passed: Bool, _ message: String, tail: String = "") -> CheckResult {
            let elapsed = ContinuousClock.now - started
            let seconds = elapsed.inSeconds
            return CheckResult(name: name, passed: passed, seconds: (seconds * 1000).rounded() / 1000,
                               message: message, transcriptTail: tail)
        }

        let invocation: QemuInvocation
        var firmwareVariables: String?
        defer { if let firmwareVariables { unlink(firmwareVariables) } }
        do throws(HavelError) {
            var firmware: [String] = []
            if let request = check.firmware {
                let choice = try QemuFirmware.choose(request)
                log.info("check \(name): firmware \(choice.description) (\(choice.descriptor))")
                if let template = choice.variablesTemplate {
                    // Each boot starts from the template's variables; nothing a boot writes is kept.
                    let copy = FileManager.default.temporaryDirectory.path + "/havel-firmware-vars-\(UUID().uuidString.prefix(8)).fd"
                    do {
                        try FileManager.default.copyItem(atPath: template, toPath: copy)
                    } catch {
                        throw HavelError(.io, "cannot copy the firmware's variables \(template): \(error.localizedDescription)")
                    }
                    firmwareVariables = copy
                }
                firmware = QemuFirmware.options(choice, variables: firmwareVariables)
            }
            invocation = try QemuInvocation(check: check, context: context, firmware: firmware)
        } catch {
            log.info("check \(name): FAILED: \(error.message)")
            return result(false, error.message)
        }
        if !invocation.rewrites.isEmpty {
            log.warning("check \(name): KVM is not usable on this host, so the guest runs under TCG (5–15× slower); changed in interpreter-opts: \(invocation.rewrites.joined(separator: "; "))")
        }
        guard ProcessRunner.which(invocation.executable) != nil else {
            let message = "\(invocation.executable): not found; install qemu-system for the image's architecture "
                + "(Debian: qemu-system-x86 or qemu-system-arm)"
            log.info("check \(name): FAILED: \(message)")
            return result(false, message)
        }
        let added = invocation.additions.isEmpty ? "" : "  (added: \(invocation.additions.joined(separator: " ")))"
        log.info("check \(name): \(invocation)\(added)")
        if let path = context.transcriptPath { log.info("check \(name): serial transcript in \(path)") }

        let console = SerialConsole(transcriptPath: context.transcriptPath)
        defer { console.closeTranscript() }
        let command = invocation.command
        let outcome: ConversationOutcome
        let termination: ProcessResult.Termination
        do {
            (outcome, termination) = try await ProcessRunner.converse(command, onOutput: { console.receive($0) }) { session in
                var conversation = Conversation(name: name, console: console, session: session, context: context,
                                                log: log, started: started)
                do {
                    switch check.action {
                    case .login(let password): return try await conversation.login(password: password)
                    case .serial(let steps): return try await conversation.serial(steps)
                    }
                } catch let failure as Conversation.StepFailure {
                    return ConversationOutcome(passed: false, message: failure.message)
                } catch {
                    return ConversationOutcome(passed: false, message: "stopped: the check was cancelled")
                }
            }
        } catch {
            log.info("check \(name): FAILED: \(error.message)")
            return result(false, error.message, tail: console.tail(lines: tailLines))
        }

        var passed = outcome.passed
        var message = outcome.message
        if passed && outcome.waitedForExit && termination != .exited(0) {
            passed = false
            let stderr = console.standardError.split(separator: "\n").suffix(5).joined(separator: "\n")
            message = "EOF: qemu ended with \(termination)" + (stderr.isEmpty ? "" : ":\n" + stderr)
        }
        log.info("check \(name): \(passed ? "passed" : "FAILED"): \(message)")
        return result(passed, message, tail: console.tail(lines: tailLines))
    }
}
