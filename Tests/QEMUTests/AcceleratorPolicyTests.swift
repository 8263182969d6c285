import HavelCore
import Synchronization
import Testing
@testable import QEMU

/// The one accelerator policy, given its facts by hand: which answer, and whether a probe boot was tried.
@Suite struct AcceleratorPolicyTests {
    /// A policy whose /dev/kvm, probe and files are stand-ins; `boots` records what the probe was asked.
    final class Recorder: Sendable {
        let boots = Mutex<[AcceleratorProbe.Boot]>([])
    }

    struct Host {
        let recorder: Recorder
        let policy: AcceleratorPolicy

        init(device: String? = nil, works: Bool = true, hostKernels: [String] = ["/boot/vmlinuz-6.1"],
             readable: Set<String> = ["/boot/vmlinuz-6.1", "/build/vmlinuz"]) {
            let recorder = Recorder()
            self.recorder = recorder
            policy = AcceleratorPolicy(
                kvmDeviceProblem: { device },
                probe: { boot in
                    recorder.boots.withLock { $0.append(boot) }
                    return AcceleratorProbe.Outcome(accelerator: works ? .kvm : .tcg, reason: works ? "it booted" : "it hung")
                },
                hostKernels: { hostKernels },
                isReadable: { readable.contains($0) })
        }

        var asked: [AcceleratorProbe.Boot] { recorder.boots.withLock { $0 } }
    }

    let boot = AcceleratorProbe.Boot(qemu: "qemu-system-x86_64", kernel: "/vm/vmlinuz", append: "console=ttyS0",
                                     marker: "Linux version", deadline: .seconds(20))

    @Test func kvmOnlyWhenTheDeviceIsThereAndTheProbeBootWorks() async {
        let good = Host()
        #expect(await good.policy.choose(boot).accelerator == .kvm)
        #expect(good.asked == [boot])

        let hanging = Host(works: false)
        let outcome = await hanging.policy.choose(boot)
        #expect(outcome.accelerator == .tcg)
        #expect(outcome.reason == "it hung")

        let noDevice = Host(device: "/dev/kvm cannot be opened: No such file or directory")
        let missing = await noDevice.policy.choose(boot)
        #expect(missing.accelerator == .tcg)
        #expect(missing.reason.contains("No such file"))
        #expect(noDevice.asked.isEmpty, "no probe boot without /dev/kvm")

        let noKernel = Host()
        let nothing = await noKernel.policy.choose(nil)
        #expect(nothing.accelerator == .tcg)
        #expect(nothing.reason == "no kernel to probe KVM with")
        #expect(noKernel.asked.isEmpty)
    }

    @Test func aBootCheckProbesWithItsOwnKernelOrTheHosts() async {
        let own = Host()
        let outcome = await own.policy.choose(interpreter: "/usr/bin/qemu-system-x86_64", options: ["-m", "1G", "-kernel", "vmlinuz"],
                                              directory: "/build", host: .amd64)
        #expect(outcome.accelerator == .kvm)
        #expect(own.asked.map(\.kernel) == ["/build/vmlinuz"])
        #expect(own.asked.map(\.qemu) == ["qemu-system-x86_64"])
        #expect(own.asked.map(\.append) == ["console=ttyS0 panic=-1"])

        let host = Host()
        _ = await host.policy.choose(interpreter: "qemu-system-aarch64", options: [], directory: "/build", host: .arm64)
        #expect(host.asked.map(\.kernel) == ["/boot/vmlinuz-6.1"])
        #expect(host.asked.map(\.append) == ["console=ttyAMA0 panic=-1"])

        let none = Host(hostKernels: [], readable: [])
        let noKernel = await none.policy.choose(interpreter: "qemu-system-x86_64", options: [], directory: "/build", host: .amd64)
        #expect(noKernel.accelerator == .tcg)
        #expect(!noKernel.foreignGuest)
        #expect(none.asked.isEmpty)
    }

    @Test func aForeignGuestIsTCGWithoutAProbe() async {
        let host = Host()
        let outcome = await host.policy.choose(interpreter: "qemu-system-arm", options: ["-kernel", "vmlinuz"], directory: "/build",
                                               host: .amd64)
        #expect(outcome.accelerator == .tcg)
        #expect(outcome.foreignGuest)
        #expect(host.asked.isEmpty)
        let unknown = await host.policy.choose(interpreter: "qemu-system-x86_64", options: [], directory: "/build", host: nil)
        #expect(unknown.foreignGuest)
    }

    @Test func noDeviceComesBeforeTheArchitectureQuestion() async {
        let host = Host(device: "/dev/kvm cannot be opened: Permission denied")
        let outcome = await host.policy.choose(interpreter: "qemu-system-arm", options: [], directory: "/build", host: .amd64)
        #expect(outcome.accelerator == .tcg)
        #expect(!outcome.foreignGuest, "a missing /dev/kvm is worth a warning")
        #expect(host.asked.isEmpty)
    }
}
