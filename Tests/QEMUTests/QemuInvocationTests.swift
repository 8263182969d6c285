import HavelCore
import Testing
@testable import QEMU

/// The command line value and the option steps both users share (no qemu needed).
@Suite struct QemuInvocationTests {
    @Test func directKernelBootRendersAcceleratorMemoryAndKernel() {
        let kvm = QemuInvocation.directKernelBoot(qemu: "qemu-system-x86_64", accelerator: .kvm, memoryMiB: 256, cpus: 1,
                                                  kernel: "/k/vmlinuz", initrd: nil, append: "console=ttyS0 panic=-1")
        #expect(kvm.arguments == ["-accel", "kvm", "-cpu", "host", "-m", "256", "-smp", "1", "-kernel", "/k/vmlinuz",
                                  "-append", "console=ttyS0 panic=-1"])
        #expect(kvm.description == "qemu-system-x86_64 -accel kvm -cpu host -m 256 -smp 1 -kernel /k/vmlinuz -append 'console=ttyS0 panic=-1'")
        let tcg = QemuInvocation.directKernelBoot(qemu: "qemu-system-x86_64", accelerator: .tcg, memoryMiB: 2048, cpus: 4,
                                                  kernel: "/vm/vmlinuz", initrd: "/vm/initrd.img", append: "root=/dev/vda")
        #expect(tcg.arguments == ["-accel", "tcg", "-m", "2048", "-smp", "4", "-kernel", "/vm/vmlinuz", "-initrd", "/vm/initrd.img",
                                  "-append", "root=/dev/vda"])
        #expect(tcg.command.executable == "qemu-system-x86_64")
        #expect(tcg.command.workingDirectory == nil)
    }

    @Test func theProbeBootsWithKVMOnItsConsoleAndNeverReboots() {
        let boot = AcceleratorProbe.Boot(qemu: "qemu-system-aarch64", kernel: "/boot/vmlinuz", initrd: "/boot/initrd",
                                         append: "console=ttyAMA0", marker: "Linux version", deadline: .seconds(5))
        let arguments = AcceleratorProbe.command(boot, cpu: "host").arguments
        #expect(arguments.prefix(6) == ["-M", "virt", "-accel", "kvm", "-cpu", "host"])
        #expect(arguments.suffix(2) == ["-nographic", "-no-reboot"])
        #expect(arguments.contains("/boot/initrd"))
    }

    @Test func kvmRequestsAreRewrittenForTCG() {
        var invocation = QemuInvocation(executable: "qemu-system-x86_64", arguments: ["-enable-kvm", "-cpu", "host,+x", "-m", "1G"])
        invocation.rewriteForTCG()
        #expect(invocation.arguments == ["-cpu", "max", "-m", "1G", "-accel", "tcg"])
        #expect(invocation.rewrites == ["-enable-kvm dropped", "-cpu host,+x → -cpu max", "-accel tcg added"])
        var untouched = QemuInvocation(executable: "qemu-system-x86_64", arguments: ["-m", "1G"])
        untouched.rewriteForTCG()
        #expect(untouched.arguments == ["-m", "1G"])
        #expect(QemuInvocation.tcgCPU(forInterpreter: "/usr/bin/qemu-system-aarch64") == "cortex-a57")
        #expect(QemuInvocation.optionName("--kernel") == "-kernel")
    }

    @Test func consoleOptionsAndFilesRelativeToTheWorkingDirectory() {
        var invocation = QemuInvocation(executable: "qemu-system-arm", arguments: ["-kernel", "zImage", "-dtb", "/abs/x.dtb"],
                                        workingDirectory: "/build")
        invocation.absolutizeFileOptions(against: "/build")
        invocation.addConsoleOptions()
        #expect(invocation.arguments == ["-kernel", "/build/zImage", "-dtb", "/abs/x.dtb", "-no-reboot", "-nographic", "-snapshot"])
        #expect(invocation.additions == ["-no-reboot", "-nographic", "-snapshot"])
        #expect(invocation.command.workingDirectory == "/build")
    }

    /// ELBE's examples name artifacts by plain names (`-kernel vmlinuz -dtb dtb`); Havel keeps them in artifacts/.
    @Test func relativeFilesNotInTheDirectoryResolveInAFallback() {
        var invocation = QemuInvocation(executable: "qemu-system-arm",
                                        arguments: ["-kernel", "vmlinuz", "-initrd", "initrd.img", "-dtb", "dtb", "-bios", "/abs/fw"])
        let present: Set<String> = ["/build/artifacts/vmlinuz", "/build/initrd.img", "/build/artifacts/initrd.img", "/build/artifacts/fw"]
        invocation.absolutizeFileOptions(against: "/build", fallbacks: ["/build/artifacts"], exists: { present.contains($0) })
        // In the directory first, then the fallback; a file found nowhere stays against the directory, so
        // qemu's error names where it was looked for; absolute paths are kept.
        #expect(invocation.arguments == ["-kernel", "/build/artifacts/vmlinuz", "-initrd", "/build/initrd.img", "-dtb", "/build/dtb",
                                         "-bios", "/abs/fw"])
    }

    @Test func escapeStrippingOfWholeText() {
        #expect(TerminalTextFilter.strip("\u{1B}[?2004lroot@vm:~# \u{1B}[0mok\r\n") == "root@vm:~# ok\n")
        #expect(TerminalTextFilter.strip("\u{1B}]0;title\u{07}plain €") == "plain €")
        #expect(TerminalTextFilter.strip("no escapes") == "no escapes")
        #expect(Accelerator.kvm.description == "kvm")
    }
}
