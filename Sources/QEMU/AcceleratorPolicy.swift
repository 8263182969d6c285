import Foundation
import HavelCore
import SystemKit

/// The one rule for choosing an accelerator: KVM when `/dev/kvm` can be used and a real probe boot
/// (`AcceleratorProbe`) shows that it works; otherwise TCG, with the reason. The facts it rests on
/// come in as closures, so that its decisions can be checked without a KVM host.
public struct AcceleratorPolicy: Sendable {
    public typealias Outcome = AcceleratorProbe.Outcome

    /// Why `/dev/kvm` cannot be used, or nil when it can.
    public var kvmDeviceProblem: @Sendable () -> String?
    /// Boots a kernel with KVM and tells whether the guest came up.
    public var probe: @Sendable (AcceleratorProbe.Boot) async -> Outcome
    /// Kernels of this host a probe may boot when the guest brings none, best first.
    public var hostKernels: @Sendable () -> [String]
    public var isReadable: @Sendable (String) -> Bool

    public init(kvmDeviceProblem: @escaping @Sendable () -> String?,
                probe: @escaping @Sendable (AcceleratorProbe.Boot) async -> Outcome,
                hostKernels: @escaping @Sendable () -> [String] = { [] },
                isReadable: @escaping @Sendable (String) -> Bool = { FileManager.default.isReadableFile(atPath: $0) }) {
        self.kvmDeviceProblem = kvmDeviceProblem
        self.probe = probe
        self.hostKernels = hostKernels
        self.isReadable = isReadable
    }

    /// This host: the real `/dev/kvm`, a real probe boot remembered per qemu binary for the process,
    /// and the newest `/boot/vmlinuz-*` (or the kernel `scripts/setup-host.sh` leaves for tests).
    public static let host = AcceleratorPolicy(
        kvmDeviceProblem: { AcceleratorProbe.kvmDeviceProblem() },
        probe: { await AcceleratorProbe.remembered($0) },
        hostKernels: {
            let boot = ((try? FileManager.default.contentsOfDirectory(atPath: "/boot")) ?? [])
                .filter { $0.hasPrefix("vmlinuz-") }.sorted().reversed().map { "/boot/" + $0 }
            return boot + ["/var/cache/havel/test-kernel/vmlinuz"]
        })

    /// The decision for a guest started from `boot`'s kernel (nil: there is no kernel to probe with).
    public func choose(_ boot: AcceleratorProbe.Boot?) async -> Outcome {
        if let problem = kvmDeviceProblem() { return Outcome(accelerator: .tcg, reason: problem) }
        guard let boot else { return Outcome(accelerator: .tcg, reason: "no kernel to probe KVM with") }
        return await probe(boot)
    }

    /// The decision for a guest run by `interpreter` with `options` (qemu's words, files relative to
    /// `directory`) on a host of `host` architecture. KVM can only run a guest of the host's own
    /// architecture; the probe boots the guest's own `-kernel`, or else one of the host's.
    public func choose(interpreter: String, options: [String], directory: String, host: Architecture?) async -> Outcome {
        if let problem = kvmDeviceProblem() { return Outcome(accelerator: .tcg, reason: problem) }
        let name = (interpreter as NSString).lastPathComponent
        guard let host, name == "qemu-system-" + host.qemuSystemName else {
            var foreign = Outcome(accelerator: .tcg, reason: "\(name) does not run guests of this host's architecture (\(host?.description ?? "unknown"))")
            foreign.foreignGuest = true
            return foreign
        }
        var kernel: String?
        if let index = options.firstIndex(where: { QemuInvocation.optionName($0) == "-kernel" }), index + 1 < options.count {
            kernel = QemuInvocation.absolute(options[index + 1], against: directory)
        } else {
            kernel = hostKernels().first(where: isReadable)
        }
        guard let kernel, isReadable(kernel) else { return await choose(nil) }
        let console = host == .arm64 ? "ttyAMA0" : "ttyS0"
        return await choose(AcceleratorProbe.Boot(qemu: name, kernel: kernel, append: "console=\(console) panic=-1",
                                                  marker: "Linux version", deadline: .seconds(30)))
    }
}
