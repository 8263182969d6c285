import Foundation
import HavelCore
import SystemKit
import QEMU
import Testing
@testable import BootCheck

/// The qemu command line built from `interpreter-opts` (no qemu needed).
@Suite struct CommandLineTests {
    func invocation(_ options: String, interpreter: String = "qemu-system-x86_64",
                    accelerator: Accelerator = .tcg, image: String = "sda.img") throws -> QemuInvocation {
        let check = ImageCheck(image: "sda.img", interpreter: interpreter, interpreterOptions: options, action: .login(password: ""))
        return try QemuInvocation(check: check, context: CheckContext(buildDirectory: "/build/dir", imagePath: image,
                                                                      accelerator: accelerator))
    }

    @Test func imageVariablesExpandInsideWords() throws {
        let inv = try invocation("-drive format=raw,file=$ELBE_IMG -hdb ${ELBE_IMG} -hdc $HAVEL_IMG -x ${HAVEL_IMG}.b -y $ELBE_IMGX -z $HOME")
        #expect(inv.arguments.contains("format=raw,file=/build/dir/sda.img"))
        #expect(inv.arguments.contains("/build/dir/sda.img.b"))
        #expect(inv.arguments.filter { $0 == "/build/dir/sda.img" }.count == 2)
        #expect(inv.arguments.contains("$ELBE_IMGX"))
        #expect(inv.arguments.contains("$HOME"))
        // A path with a blank stays one word: expansion happens after splitting.
        let spaced = try invocation("-drive file=$ELBE_IMG,format=raw", image: "/tmp/my images/a.img")
        #expect(spaced.arguments.contains("file=/tmp/my images/a.img,format=raw"))
    }

    @Test func elbeAmd64ExampleIsRewrittenForTCG() throws {
        let inv = try invocation("-m 2G -enable-kvm -cpu host -drive format=raw,file=$ELBE_IMG -nographic")
        #expect(inv.arguments == ["-m", "2G", "-cpu", "max", "-drive", "format=raw,file=/build/dir/sda.img", "-nographic",
                                  "-accel", "tcg", "-no-reboot", "-snapshot"])
        #expect(inv.rewrites.contains("-enable-kvm dropped"))
        #expect(inv.rewrites.contains("-cpu host → -cpu max"))
        #expect(inv.workingDirectory == "/build/dir")
    }

    @Test func kvmIsKeptWhenItWorks() throws {
        let inv = try invocation("-m 2G -enable-kvm -cpu host -nographic -no-reboot", accelerator: .kvm)
        #expect(inv.arguments == ["-m", "2G", "-enable-kvm", "-cpu", "host", "-nographic", "-no-reboot", "-snapshot"])
        #expect(inv.rewrites.isEmpty)
    }

    @Test func acceleratorSpellingsAreAllRewritten() throws {
        let machine = try invocation("-machine q35,accel=kvm:tcg,usb=off --cpu host,+invtsc -nographic")
        #expect(machine.arguments.prefix(4) == ["-machine", "q35,accel=tcg,usb=off", "--cpu", "max"])
        #expect(!machine.arguments.contains("-accel"))           // -machine accel= and -accel cannot be mixed
        let accel = try invocation("-accel kvm,kernel-irqchip=on -M virt -cpu host", interpreter: "qemu-system-aarch64")
        #expect(accel.arguments.prefix(6) == ["-accel", "tcg", "-M", "virt", "-cpu", "cortex-a57"])
        let arm = try invocation("--enable-kvm -cpu host", interpreter: "/usr/bin/qemu-system-arm")
        #expect(arm.arguments.prefix(4) == ["-cpu", "cortex-a15", "-accel", "tcg"])
        let plain = try invocation("-accel tcg -cpu cortex-a53 -M virt", interpreter: "qemu-system-aarch64")
        #expect(plain.rewrites.isEmpty)
    }

    @Test func serialConsoleAndNoRebootAreEnsured() throws {
        let bare = try invocation("-m 256")
        #expect(bare.arguments == ["-m", "256", "-no-reboot", "-nographic", "-snapshot"])
        let serial = try invocation("-serial mon:stdio -m 256")
        #expect(serial.arguments == ["-serial", "mon:stdio", "-m", "256", "-no-reboot", "-display", "none", "-snapshot"])
        let both = try invocation("-nographic -serial mon:stdio -no-reboot -snapshot")
        #expect(both.arguments == ["-nographic", "-serial", "mon:stdio", "-no-reboot", "-snapshot"])
    }

    @Test func elbeArmhfExampleResolvesFilesInTheBuildDirectory() throws {
        let options = #"-m 2G -M vexpress-a15 -drive format=raw,file=$ELBE_IMG,if=sd -nographic -kernel vmlinuz -initrd initrd.img -dtb dtb -append "console=ttyAMA0,115200 root=/dev/mmcblk0p1""#
        let inv = try invocation(options, interpreter: "qemu-system-arm")
        #expect(inv.arguments == ["-m", "2G", "-M", "vexpress-a15", "-drive", "format=raw,file=/build/dir/sda.img,if=sd",
                                  "-nographic", "-kernel", "/build/dir/vmlinuz", "-initrd", "/build/dir/initrd.img",
                                  "-dtb", "/build/dir/dtb", "-append", "console=ttyAMA0,115200 root=/dev/mmcblk0p1",
                                  "-no-reboot", "-snapshot"])
        #expect(inv.rewrites.isEmpty)
    }

    @Test func badOptionsAreAProjectError() {
        #expect(throws: HavelError.self) { try invocation("-append 'console=ttyS0") }
        let check = ImageCheck(image: "a.img", interpreter: " ", interpreterOptions: "", action: .serial([.eof]))
        #expect(throws: HavelError.self) {
            try QemuInvocation(check: check, context: CheckContext(buildDirectory: "/b", imagePath: "a.img", accelerator: .tcg))
        }
    }
}
