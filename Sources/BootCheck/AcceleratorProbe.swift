import Foundation
import HavelCore
import Synchronization
import SystemKit

/// Tells whether KVM really works here, by booting a kernel with it.
///
/// `/dev/kvm` existing proves little: on a nested host (PVM) qemu with `-enable-kvm -cpu host`
/// aborts ("failed to set MSR"), and with other CPU models a Debian kernel hangs in its
/// decompressor. So KVM counts only if a guest started with `-accel kvm -cpu host` prints
/// `marker` on its serial console before `deadline`; anything else answers `.tcg`.
public enum AcceleratorProbe {
    public struct Outcome: Sendable, Hashable {
        public var accelerator: Accelerator
        /// Why: the marker's time, qemu's error, the time-out, or a missing /dev/kvm.
        public var reason: String
        public var seconds: Double
        /// The probe was stopped before it knew: `.tcg` for now, but not an answer to remember.
        public var cancelled = false
    }

    /// The answer per qemu binary, once per process (concurrent callers share one probe).
    private static let answers = Mutex<[String: Task<Outcome, Never>]>([:])

    /// A real probe: boot `kernel` (+ optional `initrd`) with KVM and a deadline; KVM counts only if
    /// the guest prints `marker` in time. The answer is remembered per process (per qemu binary).
    public static func probe(qemu: String, kernel: String, initrd: String?, append: String, marker: String,
                             deadline: Duration) async -> Accelerator {
        await probeOutcome(qemu: qemu, kernel: kernel, initrd: initrd, append: append, marker: marker,
                           deadline: deadline).accelerator
    }

    /// `probe`, with the reason for the answer (for the log).
    public static func probeOutcome(qemu: String, kernel: String, initrd: String?, append: String, marker: String,
                                    deadline: Duration) async -> Outcome {
        let key = ProcessRunner.which(qemu) ?? qemu
        let task = answers.withLock { answers in
            if let known = answers[key] { return known }
            let task = Task {
                await run(qemu: qemu, kernel: kernel, initrd: initrd, append: append, marker: marker, deadline: deadline)
            }
            answers[key] = task
            return task
        }
        // A cancelled caller stops the probe's qemu too; an answer cut short is not remembered.
        let outcome = await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
        if outcome.cancelled {
            answers.withLock { answers in
                if answers[key] == task { answers[key] = nil }
            }
        }
        return outcome
    }

    /// Forgets remembered answers (tests).
    public static func forget() {
        answers.withLock { $0.removeAll() }
    }

    /// The probe itself, not remembered. `cpu` is the CPU model asked of KVM (`host`, as projects do).
    public static func run(qemu: String, kernel: String, initrd: String?, append: String, marker: String,
                           deadline: Duration, cpu: String = "host") async -> Outcome {
        let started = ContinuousClock.now
        func outcome(_ accelerator: Accelerator, _ reason: String) -> Outcome {
            let elapsed = ContinuousClock.now - started
            let seconds = elapsed.inSeconds
            return Outcome(accelerator: accelerator, reason: reason, seconds: (seconds * 1000).rounded() / 1000)
        }

        let fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            return outcome(.tcg, "/dev/kvm cannot be opened: \(errnoText())")
        }
        close(fd)
        guard ProcessRunner.which(qemu) != nil else { return outcome(.tcg, "\(qemu): not found") }

        var arguments = ["-accel", "kvm", "-cpu", cpu, "-m", "256", "-smp", "1", "-nographic", "-no-reboot",
                         "-kernel", kernel, "-append", append]
        let name = (qemu as NSString).lastPathComponent
        if name.hasSuffix("aarch64") || name.hasSuffix("-arm") { arguments = ["-M", "virt"] + arguments }
        if let initrd { arguments += ["-initrd", initrd] }

        let console = SerialConsole(transcriptPath: nil)
        do {
            let (seen, termination) = try await ProcessRunner.converse(Command(qemu, arguments),
                                                                         onOutput: { console.receive($0) }) { _ in
                (try? await console.expect([.literal(marker)], timeout: deadline)) ?? .timedOut
            }
            if Task.isCancelled {
                var stopped = outcome(.tcg, "the probe was cancelled")
                stopped.cancelled = true
                return stopped
            }
            switch seen {
            case .matched:
                return outcome(.kvm, "a KVM guest printed \"\(marker)\"")
            case .timedOut:
                return outcome(.tcg, "a KVM guest printed no \"\(marker)\" within \(Conversation.format(deadline))")
            case .ended:
                let stderr = console.standardError.split(separator: "\n").prefix(3).joined(separator: " / ")
                return outcome(.tcg, "qemu with KVM ended with \(termination) before the guest printed \"\(marker)\""
                               + (stderr.isEmpty ? "" : ": " + stderr))
            }
        } catch {
            var failed = outcome(.tcg, "qemu with KVM could not be run: \(error.message)")
            failed.cancelled = error.code == .cancelled || Task.isCancelled
            return failed
        }
    }
}
