import Foundation
import HavelCore
import SystemKit
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

    @Test func splitsLikeAShellWithoutExpansion() throws {
        let words = try ShellWords.split(#"  -m 2G -append "console=ttyAMA0,115200 root=/dev/mmcblk0p1"  -x 'a b $HOME' c\ d "q\"x\$y\n" "#)
        #expect(words == ["-m", "2G", "-append", "console=ttyAMA0,115200 root=/dev/mmcblk0p1", "-x", "a b $HOME", "c d", #"q"x$y\n"#])
        #expect(try ShellWords.split("") == [])
        #expect(try ShellWords.split("a '' b") == ["a", "", "b"])
        #expect(throws: HavelError.self) { try ShellWords.split("-append \"console=ttyS0") }
        #expect(throws: HavelError.self) { try ShellWords.split("-name 'x") }
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

/// Console text cleaning and matching, fed by hand.
@Suite struct ConsoleTests {
    @Test func escapesAndCarriageReturnsAreRemovedAcrossChunks() {
        var filter = TerminalTextFilter()
        var text = filter.feed(Array("\u{1B}[0;32m  OK  \u{1B}[0m] Started\r\n# \u{1B}[".utf8))
        text += filter.feed(Array("6nls\r\n\u{1B}]0;title\u{07}done ".utf8))
        let euro = Array("€".utf8)                                  // three bytes, split over two chunks
        text += filter.feed([euro[0], euro[1]])
        text += filter.feed([euro[2]] + Array("\n".utf8))
        #expect(text == "  OK  ] Started\n# ls\ndone €\n")
    }

    @Test func elbePatternsAreLiteralOrRegularExpressions() {
        let text = "Debian GNU/Linux 12 debian ttyS0\n\ndebian login: "
        #expect(ConsolePattern.elbe(".*[Ll]ogin:.*").firstMatch(in: text[...]) != nil)
        #expect(ConsolePattern.elbe("1+1=2").firstMatch(in: "sum: 1+1=2"[...]) != nil)   // as regex it would not match
        #expect(ConsolePattern.elbe("login: (").firstMatch(in: "x login: ("[...]) != nil) // not a valid regex
        #expect(ConsolePattern.elbe("Password:").firstMatch(in: text[...]) == nil)
        #expect(ConsolePattern.isLineLocal(".*[Ll]ogin:\\.x\\d+"))
        #expect(!ConsolePattern.isLineLocal("a\\sb"))
        #expect(!ConsolePattern.isLineLocal("a[^x]b"))
    }

    @Test func expectConsumesAndTimesOut() async throws {
        let console = SerialConsole(transcriptPath: nil)
        console.receive(.standardOutput(Array("boot...\nhost lo".utf8)))
        let feeder = Task {
            try await Task.sleep(for: .milliseconds(100))
            console.receive(.standardOutput(Array("gin: ".utf8)))
        }
        // Generous: on a loaded 2-core machine the feeder task may wait for a thread.
        let first = try await console.expect([.regex("[Ll]ogin:")], timeout: .seconds(60))
        guard case .matched(0, "login:") = first else { Issue.record("got \(first)"); return }
        try await feeder.value
        // The same text is consumed: it does not match twice.
        let again = try await console.expect([.literal("login:")], timeout: .milliseconds(200))
        guard case .timedOut = again else { Issue.record("got \(again)"); return }
        console.receive(.standardOutputEnded)
        let ended = try await console.expect([.literal("never")], timeout: .seconds(60))
        guard case .ended = ended else { Issue.record("got \(ended)"); return }
    }

    @Test func aChattyGuestDoesNotSlowMatchingDown() async throws {
        let console = SerialConsole(transcriptPath: nil)
        let line = "[    1.234567] systemd[1]: Started some-service.service - A unit with a long description.\n"
        let feeder = Task {
            for chunk in 0..<200 {
                console.receive(.standardOutput(Array(String(repeating: line, count: 50).utf8)))
                if chunk % 20 == 0 { try await Task.sleep(for: .milliseconds(25)) }
            }
            console.receive(.standardOutput(Array("\nDebian GNU/Linux 12 debian ttyS0\n\ndebian login: ".utf8)))
        }
        let result = try await console.expect([.elbe(".*[Ll]ogin:.*")], timeout: .seconds(30))
        try await feeder.value
        // 10 000 lines (900 kB) of boot messages, then the prompt: found, not lost in the flood.
        guard case .matched(0, "debian login: ") = result else { Issue.record("got \(result)"); return }
    }

    @Test func earliestOfSeveralPatternsWins() async throws {
        let console = SerialConsole(transcriptPath: nil)
        console.receive(.standardOutput(Array("Login incorrect\nhost login: ".utf8)))
        let result = try await console.expect([.literal("login:"), .regex("[Ll]ogin incorrect")], timeout: .seconds(1))
        guard case .matched(1, _) = result else { Issue.record("got \(result)"); return }
    }
}
