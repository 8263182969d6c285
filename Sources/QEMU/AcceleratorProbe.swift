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
        /// TCG because the guest is not of this host's architecture: expected, not worth a warning.
        public var foreignGuest = false

        public init(accelerator: Accelerator, reason: String, seconds: Double = 0) {
            self.accelerator = accelerator
            self.reason = reason
            self.seconds = seconds
        }
    }

    /// One probe boot: `kernel` (+ optional `initrd`) with `append`, until `marker` or `deadline`.
    public struct Boot: Sendable, Hashable {
        public var qemu: String
        public var kernel: String
        public var initrd: String?
        public var append: String
        public var marker: String
        public var deadline: Duration

        public init(qemu: String, kernel: String, initrd: String? = nil, append: String, marker: String, deadline: Duration) {
            self.qemu = qemu
            self.kernel = kernel
            self.initrd = initrd
            self.append = append
            self.marker = marker
            self.deadline = deadline
        }
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
        await remembered(Boot(qemu: qemu, kernel: kernel, initrd: initrd, append: append, marker: marker, deadline: deadline))
    }

    /// `run`, remembered per qemu binary for the life of the process.
    public static func remembered(_ boot: Boot) async -> Outcome {
        let key = ProcessRunner.which(boot.qemu) ?? boot.qemu
        let task = answers.withLock { answers in
            if let known = answers[key] { return known }
            let task = Task { await run(boot) }
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

    /// Why `/dev/kvm` cannot be used, or nil when it can be opened.
    public static func kvmDeviceProblem(_ path: String = "/dev/kvm") -> String? {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return "\(path) cannot be opened: \(errnoText())" }
        close(fd)
        return nil
    }

    /// The probe itself, not remembered. `cpu` is the CPU model asked of KVM (`host`, as projects do).
    public static func run(qemu: String, kernel: String, initrd: String?, append: String, marker: String,
                           deadline: Duration, cpu: String = "host") async -> Outcome {
        await run(Boot(qemu: qemu, kernel: kernel, initrd: initrd, append: append, marker: marker, deadline: deadline), cpu: cpu)
    }

    static func run(_ boot: Boot, cpu: String = "host") async -> Outcome {
        let started = ContinuousClock.now
        func outcome(_ accelerator: Accelerator, _ reason: String) -> Outcome {
            Outcome(accelerator: accelerator, reason: reason, seconds: ((ContinuousClock.now - started).inSeconds * 1000).rounded() / 1000)
        }

        if let problem = kvmDeviceProblem() { return outcome(.tcg, problem) }
        guard ProcessRunner.which(boot.qemu) != nil else { return outcome(.tcg, "\(boot.qemu): not found") }

        let marker = boot.marker
        let console = SerialConsole(transcriptPath: nil)
        do {
            let (seen, termination) = try await ProcessRunner.converse(command(boot, cpu: cpu).command,
                                                                         onOutput: { console.receive($0) }) { _ in
                (try? await console.expect([.literal(marker)], timeout: boot.deadline)) ?? .timedOut
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
                return outcome(.tcg, "a KVM guest printed no \"\(marker)\" within \(String(format: "%.1f s", boot.deadline.inSeconds))")
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

    /// The probe's qemu: a small KVM guest with its console on stdio that never reboots.
    static func command(_ boot: Boot, cpu: String) -> QemuInvocation {
        var invocation = QemuInvocation.directKernelBoot(qemu: boot.qemu, accelerator: .kvm, cpu: cpu, memoryMiB: 256, cpus: 1,
                                                         kernel: boot.kernel, initrd: boot.initrd, append: boot.append)
        invocation.arguments += ["-nographic", "-no-reboot"]
        let name = (boot.qemu as NSString).lastPathComponent
        if name.hasSuffix("aarch64") || name.hasSuffix("-arm") { invocation.arguments = ["-M", "virt"] + invocation.arguments }
        return invocation
    }
}
