import Foundation
import FoundationXML
import HavelCore
import QEMU
import SystemKit
import Testing
@testable import BootCheck

/// Real boots of the test guest in qemu-system-x86_64 under TCG (KVM does not work on these build
/// machines). One boot to the login prompt takes about 5 s here when nothing else runs; the
/// deadlines (60 s to the first text, 30 s per step) leave room for a loaded machine. Serialized,
/// so that boots do not compete for the two CPUs and the timings printed mean something.
@Suite(.serialized, .enabled(if: TestGuest.available, TestGuest.skipReason))
struct BootTests {
    let directory: String

    init() async throws {
        directory = try await TestGuest.directory.value
    }

    func run(_ action: ImageCheck.Action, options: String, tag: String, context: CheckContext? = nil,
             interpreter: String = TestGuest.qemu, log: LogRecorder = LogRecorder()) async throws -> CheckResult {
        let check = ImageCheck(image: "sda.img", interpreter: interpreter, interpreterOptions: options, action: action)
        let result = await BootChecker.run(check, name: tag, context: context ?? TestGuest.context(directory), log: log.logger)
        print("[\(tag)] \(result.passed ? "passed" : "failed") in \(String(format: "%.1f", result.seconds)) s: "
              + (log.lines.filter { $0.contains("after") }.joined(separator: " | ")))
        if !result.passed { print("[\(tag)] message: " + result.message.split(separator: "\n").prefix(4).joined(separator: " ⏎ ")) }
        #expect(try await !TestGuest.qemuRunning(tag), "qemu \(tag) is still running after the check")
        return result
    }

    @Test func loginWithTheRightPasswordPasses() async throws {
        let tag = TestGuest.newTag()
        let transcript = directory + "/\(tag).log"
        let log = LogRecorder()
        let result = try await run(.login(password: "s3cret"), options: TestGuest.options(password: "s3cret", tag: tag), tag: tag,
                                   context: TestGuest.context(directory, transcript: transcript), log: log)
        #expect(result.passed, "\(result.message)")
        #expect(result.transcriptTail.contains("HAVEL-CHECK-42"))
        #expect(log.contains("login prompt after"))
        #expect(log.contains("added: -no-reboot -nographic -snapshot"))
        // The transcript is the raw serial output, kernel messages included.
        let text = try String(contentsOfFile: transcript, encoding: .utf8)
        #expect(text.contains("Linux version"))
        #expect(text.contains("havel-test login: "))
        #expect(text.contains("HAVEL-CHECK-42"))
        // -snapshot: the image is untouched.
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory + "/sda.img")) == Data(count: 1 << 20))
    }

    @Test func anEmptyLoginPasswordMeansRoot() async throws {
        let tag = TestGuest.newTag()
        let result = try await run(.login(password: ""), options: TestGuest.options(password: "root", tag: tag), tag: tag)
        #expect(result.passed, "\(result.message)")
    }

    @Test func aWrongPasswordFailsClearlyAndQuickly() async throws {
        let tag = TestGuest.newTag()
        // A step time-out far above any boot: ending well before it shows the rejection was seen, not waited out.
        let context = TestGuest.context(directory, step: .seconds(900))
        let result = try await run(.login(password: "wrong"), options: TestGuest.options(password: "s3cret", tag: tag), tag: tag,
                                   context: context)
        #expect(!result.passed)
        #expect(result.message.hasPrefix("password: the guest rejected the password for root"), "\(result.message)")
        #expect(result.message.contains("last serial output:"))
        #expect(result.transcriptTail.contains("Login incorrect"))
        #expect(result.seconds < 600, "a rejected password is noticed at once, not after the step time-out")
    }

    @Test func aGettyThatSystemdGaveUpFailsAtOnceWithTheReason() async throws {
        let tag = TestGuest.newTag()
        // A boot time-out far above any boot: ending well before it shows the message was recognised.
        let context = TestGuest.context(directory, boot: .seconds(900))
        let result = try await run(.login(password: ""), options: TestGuest.options(append: " havel.getty=gaveup", tag: tag), tag: tag,
                                   context: context)
        #expect(!result.passed)
        #expect(result.message.hasPrefix("login prompt: the guest's systemd gave up its serial getty"), "\(result.message)")
        #expect(result.message.contains("JobRunningTimeoutSec=infinity"))
        #expect(result.seconds < 600, "seen at once, not after the boot time-out")
    }

    /// Emergency mode ends the boot wait at once, for a login and for an ELBE expect alike, naming the device.
    @Test func aGuestInEmergencyModeFailsAtOnceNamingTheDevice() async throws {
        for action in [ImageCheck.Action.login(password: ""), .serial([.expect(".*[Ll]ogin:.*")])] {
            let tag = TestGuest.newTag()
            let context = TestGuest.context(directory, boot: .seconds(900))
            let result = try await run(action, options: TestGuest.options(append: " havel.boot=emergency", tag: tag), tag: tag,
                                       context: context)
            #expect(!result.passed)
            #expect(result.message.contains("the guest's systemd entered emergency mode"), "\(result.message)")
            #expect(result.message.contains("Timed out waiting for device dev-disk-by\\x2dlabel-efi.device - /dev/disk/by-label/efi"),
                    "\(result.message)")
            #expect(result.message.contains("x-systemd.device-timeout=0") && result.message.contains("DefaultDeviceTimeoutSec=infinity"))
            #expect(result.seconds < 600, "seen at once, not after the boot time-out")
        }
    }

    @Test func aBootTimeOutSaysWhetherTheGuestFellSilentOrWasStillPrinting() {
        let start = ContinuousClock.now
        let silent = Conversation.bootTimeOutDescription(now: start + .seconds(1000), started: start, lastOutput: start + .seconds(100),
                                                         silence: .seconds(900), ceiling: .seconds(1800))
        #expect(silent == "not seen: the guest printed nothing for 900.0 s (its last output came 100.0 s after qemu started)")
        let printing = Conversation.bootTimeOutDescription(now: start + .seconds(1800), started: start, lastOutput: start + .seconds(1798),
                                                           silence: .seconds(900), ceiling: .seconds(1800))
        #expect(printing.hasPrefix("not seen within 1800.0 s of starting qemu") && printing.hasSuffix("(the guest was still printing, last 2.0 s before)"))
        let never = Conversation.bootTimeOutDescription(now: start + .seconds(900), started: start, lastOutput: nil,
                                                        silence: .seconds(900), ceiling: .seconds(1800))
        #expect(never == "not seen: the guest printed nothing in 900.0 s of starting qemu")
        #expect(CheckContext(buildDirectory: "/b", imagePath: "i", accelerator: .tcg, bootTimeout: .seconds(900)).bootCeiling == .seconds(1800))
    }

    @Test func aSerialScriptWithEOFPasses() async throws {
        let tag = TestGuest.newTag()
        let steps: [ImageCheck.SerialStep] = [
            .expect("login:"), .sendline("root"), .expect("Password:"), .sendline("pw"), .expect("# "),
            .sendline("echo serial-$((40+2))"), .expect("serial-42"), .sendline("poweroff -f"), .eof,
        ]
        let result = try await run(.serial(steps), options: TestGuest.options(password: "pw", tag: tag), tag: tag)
        #expect(result.passed, "\(result.message)")
        #expect(result.message.contains("qemu exited"))
        #expect(result.transcriptTail.contains("reboot: Power down"))
    }

    @Test func anExpectationThatNeverComesTimesOutNamingTheStep() async throws {
        let tag = TestGuest.newTag()
        let context = TestGuest.context(directory, boot: .seconds(180), step: .seconds(3))
        let result = try await run(.serial([.expect(".*[Ll]ogin:.*"), .expect("never-printed-text")]),
                                   options: TestGuest.options(tag: tag), tag: tag, context: context)
        #expect(!result.passed)
        #expect(result.message.hasPrefix("step 2 of 2 (expect \"never-printed-text\"): expected \"never-printed-text\", not seen within 3.0 s"),
                "\(result.message)")
        // The message carries the last few lines; under load the kernel may still be printing after the
        // prompt, so the prompt itself is looked for in the longer tail.
        #expect(result.message.contains("\nlast serial output:\n"), "\(result.message)")
        #expect(result.transcriptTail.contains("havel-test login:"), "\(result.transcriptTail)")
    }

    /// `<interpreter-firmware>` as ELBE's UEFI examples write it: the guest boots through OVMF, chosen from
    /// Debian's descriptor, with a copy of its variables that is gone afterwards.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/usr/share/qemu/firmware/60-edk2-x86_64.json"),
                   "needs Debian's ovmf (scripts/setup-host.sh installs it)"))
    func aCheckWithInterpreterFirmwareBootsThroughUEFI() async throws {
        let tag = TestGuest.newTag()
        let log = LogRecorder()
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path)) ?? [])
            .filter { $0.hasPrefix("havel-firmware-vars-") }
        let firmware = FirmwareRequest(architecture: "x86_64", machine: "pc-q35-7.2", interfaceTypes: "uefi !bios", features: "!requires-smm")
        let check = ImageCheck(image: "sda.img", interpreter: TestGuest.qemu, interpreterOptions: "-M q35 " + TestGuest.options(tag: tag),
                               action: .login(password: "root"), firmware: firmware)
        let context = TestGuest.context(directory, transcript: directory + "/\(tag).log")
        let result = await BootChecker.run(check, name: tag, context: context, log: log.logger)
        #expect(result.passed, "\(result.message)")
        #expect(log.contains("firmware UEFI firmware for x86_64"), "the descriptor's description is logged")
        #expect(log.contains("if=pflash,unit=0,readonly=on,format=raw,file=/usr/share/OVMF/OVMF_CODE_4M.fd"))
        let serial = try String(contentsOfFile: directory + "/\(tag).log", encoding: .utf8)
        #expect(serial.contains("EFI v2"), "the kernel was started by the UEFI firmware")
        let after = Set((try? FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path)) ?? [])
            .filter { $0.hasPrefix("havel-firmware-vars-") }
        #expect(after.subtracting(before).isEmpty, "the variables copy is removed")
        #expect(try await !TestGuest.qemuRunning(tag))
    }

    @Test func kvmOptionsAreRewrittenUnderTCGAndStillBoot() async throws {
        let tag = TestGuest.newTag()
        let log = LogRecorder()
        let result = try await run(.login(password: "root"), options: TestGuest.options(extra: "-enable-kvm -cpu host", tag: tag),
                                   tag: tag, log: log)
        #expect(result.passed, "\(result.message)")
        #expect(log.contains("WARNING: check \(tag): KVM is not usable on this host"))
        #expect(log.contains("-enable-kvm dropped; -cpu host → -cpu max; -accel tcg added"))
    }

    @Test func cancellingTheTaskStopsQemu() async throws {
        let tag = TestGuest.newTag()
        let log = LogRecorder()
        let check = ImageCheck(image: "sda.img", interpreter: TestGuest.qemu, interpreterOptions: TestGuest.options(tag: tag),
                               action: .serial([.expect("never-printed-text")]))
        let context = TestGuest.context(directory, boot: .seconds(900))
        let task = Task { await BootChecker.run(check, name: tag, context: context, log: log.logger) }
        let waitingSince = ContinuousClock.now
        while try await !TestGuest.qemuRunning(tag), ContinuousClock.now - waitingSince < .seconds(300) {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await TestGuest.qemuRunning(tag))
        try await Task.sleep(for: .seconds(2))
        let cancelled = ContinuousClock.now
        task.cancel()
        let result = await task.value
        let stopping = ContinuousClock.now - cancelled
        print("[\(tag)] cancelled; qemu gone \(stopping) after the cancel")
        #expect(!result.passed)
        #expect(result.message.contains("cancel"), "\(result.message)")
        #expect(stopping < .seconds(300), "SIGTERM, a 3 s grace period, SIGKILL: far less than the 900 s boot time-out")
        #expect(try await !TestGuest.qemuRunning(tag))
    }

    @Test func qemuErrorsAreReportedWithItsMessage() async throws {
        let tag = TestGuest.newTag()
        let result = try await run(.login(password: ""), options: "-m 256 -name \(tag) -kernel no-such-kernel", tag: tag)
        #expect(!result.passed)
        #expect(result.message.hasPrefix("login prompt: qemu exited (exit status 1)"), "\(result.message)")
        #expect(result.message.contains("no-such-kernel"))
    }

    @Test func aMissingInterpreterIsNamed() async throws {
        let tag = TestGuest.newTag()
        let result = try await run(.login(password: ""), options: "", tag: tag, interpreter: "qemu-system-havel-none")
        #expect(!result.passed)
        #expect(result.message.contains("qemu-system-havel-none: not found"))
    }

    @Test func theJUnitReportParsesAndCounts() async throws {
        let good = TestGuest.newTag()
        let bad = TestGuest.newTag()
        let results = [
            try await run(.login(password: ""), options: TestGuest.options(tag: good), tag: good),
            try await run(.login(password: ""), options: "-m 256 -name \(bad) -kernel no-such-kernel", tag: bad),
        ]
        let xml = BootChecker.junitXML(results, suite: "check-image-list")
        let document = try XMLDocument(xmlString: xml, options: [])
        let suite = try #require(try document.nodes(forXPath: "/testsuites/testsuite").first as? XMLElement)
        #expect(suite.attribute(forName: "tests")?.stringValue == "2")
        #expect(suite.attribute(forName: "failures")?.stringValue == "1")
        let cases = try document.nodes(forXPath: "//testcase").compactMap { $0 as? XMLElement }
        #expect(cases.map { $0.attribute(forName: "name")?.stringValue } == [good, bad])
        #expect(try document.nodes(forXPath: "//testcase[@name='\(good)']/failure").isEmpty)
        let failure = try #require(try document.nodes(forXPath: "//testcase[@name='\(bad)']/failure").first as? XMLElement)
        #expect(failure.attribute(forName: "message")?.stringValue?.hasPrefix("login prompt: qemu exited") == true)
        #expect(failure.stringValue?.contains("no-such-kernel") == true)
    }

    @Test func theProbeAnswersTCGHereWithinItsDeadline() async throws {
        AcceleratorProbe.forget()
        let directory = self.directory
        let deadline = Duration.seconds(30)
        let outcome = await AcceleratorProbe.probeOutcome(qemu: TestGuest.qemu, kernel: directory + "/vmlinuz",
                                                          initrd: directory + "/initrd.gz", append: "console=ttyS0 panic=-1 no_timer_check",
                                                          marker: "havel-test login:", deadline: deadline)
        print("AcceleratorProbe: \(outcome.accelerator) in \(outcome.seconds) s: \(outcome.reason)")
        #expect(outcome.accelerator == .tcg)
        #expect(outcome.seconds < 30 + 180, "the deadline plus time to stop qemu on a busy machine (50 s seen)")
        // Remembered: the second answer comes without a boot.
        let again = ContinuousClock.now
        let second = await AcceleratorProbe.probe(qemu: TestGuest.qemu, kernel: directory + "/vmlinuz", initrd: nil,
                                                  append: "", marker: "x", deadline: deadline)
        #expect(second == .tcg)
        #expect(ContinuousClock.now - again < .seconds(5), "a second probe would boot again")
        let leftovers = try await ProcessRunner.run(Command("pgrep", ["-f", "accel kvm.*havel-bootcheck-\(getpid())"]))
        #expect(!leftovers.succeeded, "a KVM probe qemu is still running: \(leftovers.standardOutput)")
    }

    /// With a CPU model KVM accepts here, the guest hangs (in the kernel's decompressor): the
    /// deadline ends the probe and its qemu.
    @Test func aHangingKVMGuestIsStoppedAtTheDeadline() async throws {
        let deadline = Duration.seconds(5)
        let outcome = await AcceleratorProbe.run(qemu: TestGuest.qemu, kernel: directory + "/vmlinuz",
                                                 initrd: directory + "/initrd.gz", append: "console=ttyS0 panic=-1 no_timer_check",
                                                 marker: "havel-test login:", deadline: deadline, cpu: "kvm64")
        print("AcceleratorProbe with -cpu kvm64: \(outcome.accelerator) in \(outcome.seconds) s: \(outcome.reason)")
        #expect(outcome.accelerator == .tcg)
        #expect(outcome.seconds < 5 + 180, "the deadline plus time to stop qemu on a busy machine (50 s seen); the guest itself never ends")
        let leftovers = try await ProcessRunner.run(Command("pgrep", ["-f", "accel kvm.*havel-bootcheck-\(getpid())"]))
        #expect(!leftovers.succeeded, "a KVM probe qemu is still running: \(leftovers.standardOutput)")
    }

    @Test func aCancelledProbeStopsItsQemuAndIsNotAnAnswer() async throws {
        let directory = self.directory
        // The deadline is far away so that "stopped by the cancel" and "ran to the deadline" stay apart
        // on a busy machine too (there, stopping a KVM qemu has taken 50 s; here it takes milliseconds).
        let task = Task {
            await AcceleratorProbe.run(qemu: TestGuest.qemu, kernel: directory + "/vmlinuz", initrd: directory + "/initrd.gz",
                                       append: "console=ttyS0 no_timer_check", marker: "havel-test login:", deadline: .seconds(900), cpu: "kvm64")
        }
        try await Task.sleep(for: .seconds(1))
        task.cancel()
        let outcome = await task.value
        #expect(outcome.cancelled)
        #expect(outcome.accelerator == .tcg)
        #expect(outcome.seconds < 450, "well before the 900 s deadline")
        let leftovers = try await ProcessRunner.run(Command("pgrep", ["-f", "accel kvm.*havel-bootcheck-\(getpid())"]))
        #expect(!leftovers.succeeded, "a KVM probe qemu is still running: \(leftovers.standardOutput)")
    }

    /// The TCG guest can also be asked for the marker: the probe is not just always saying no.
    @Test func theProbeBootSeesItsMarkerUnderTCG() async throws {
        let tag = TestGuest.newTag()
        let result = try await run(.serial([.expect("havel-test login:")]), options: TestGuest.options(tag: tag), tag: tag)
        #expect(result.passed, "\(result.message)")
    }
}

/// check.xml from made-up results: escaping and counts.
@Suite struct JUnitTests {
    @Test func escapesAndCountsParse() throws {
        let results = [
            CheckResult(name: "sda.img #1", passed: true, seconds: 12.5, message: "ok", transcriptTail: "# echo\nHAVEL-CHECK-42"),
            CheckResult(name: "<odd> & \"name\"", passed: false, seconds: 300, message: "step 1 of 1 (expect \"a<b\"): time-out\nmore",
                        transcriptTail: "\u{1B}[0;32m OK \u{1B}[0m ]]> \u{07}\u{0}€"),
            CheckResult(name: "empty", passed: false, seconds: 0, message: "", transcriptTail: ""),
        ]
        let xml = BootChecker.junitXML(results, suite: "check-image-list")
        let document = try XMLDocument(xmlString: xml, options: [])
        let root = try #require(document.rootElement())
        #expect(root.name == "testsuites")
        #expect(root.attribute(forName: "tests")?.stringValue == "3")
        #expect(root.attribute(forName: "failures")?.stringValue == "2")
        #expect(root.attribute(forName: "time")?.stringValue == "312.500")
        let cases = try document.nodes(forXPath: "//testcase").compactMap { $0 as? XMLElement }
        #expect(cases.count == 3)
        #expect(cases[1].attribute(forName: "name")?.stringValue == "<odd> & \"name\"")
        let failure = try #require(cases[1].elements(forName: "failure").first)
        #expect(failure.attribute(forName: "message")?.stringValue == "step 1 of 1 (expect \"a<b\"): time-out")
        #expect(failure.stringValue?.contains("␛[0;32m OK ␛[0m ]]> ␇␀€") == true)
        #expect(cases[2].elements(forName: "failure").count == 1)
        #expect(cases[0].elements(forName: "failure").isEmpty)
        #expect(cases[0].elements(forName: "system-out").first?.stringValue == "# echo\nHAVEL-CHECK-42")
    }
}
