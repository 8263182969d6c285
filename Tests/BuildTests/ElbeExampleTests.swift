import Foundation
@testable import Build
import HavelCore
import SystemKit
import Testing

/// Two of ELBE's own example projects (`../shared/elbe-examples`), built as a user migrating from ELBE
/// builds them: `havel build FILE --mirror host`, unchanged. `x86_64-pc-rescue-busybox-dyn-cpio.xml` is a
/// `<diet/>` busybox system packed as a cpio (`make test`); `armhf.xml` is foreign (bullseye armhf under
/// qemu-user, with a kernel whose initramfs is made under emulation) and its check-image-list boots the
/// image under qemu-system-arm to a login (`make test-slow`: about 15 minutes with a cold package cache).
/// `make examples` builds all of them (README's table).
enum ElbeExamples {
    static let directory = URL(fileURLWithPath: Integration.repositoryRoot + "/../shared/elbe-examples").standardizedFileURL.path

    static let missingReason: String? = {
        if let reason = Integration.missingReason { return reason }
        if Integration.havelExecutable == nil { return "needs .build/debug/havel (swift build)" }
        for name in ["armhf.xml", "x86_64-pc-rescue-busybox-dyn-cpio.xml"] where !FileManager.default.fileExists(atPath: directory + "/" + name) {
            return "needs ELBE's example \(name) in \(directory)"
        }
        if ProcessRunner.which("cpio") == nil { return "needs cpio (scripts/setup-host.sh installs it)" }
        return nil
    }()

    static let hasArmTools = ["qemu-system-arm", "/usr/libexec/qemu-binfmt/arm-binfmt-P"].allSatisfy { ProcessRunner.which($0) != nil }

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
        let result = try await ElbeExamples.build("armhf.xml", into: dir, cache: base + "/cache")
        #expect(result.succeeded, "\(result.standardError.suffix(3000))")
        #expect(BuildState.read(dir + "/state.json")?.status == .done)
        let check = (try? String(contentsOfFile: dir + "/check.xml", encoding: .utf8)) ?? ""
        #expect(check.contains("<testcase"), "the example's check-image-list did not run: \(check)")
        #expect(!check.contains("<failure") && !check.contains("<error"), "\(check)")
        let source = try String(contentsOfFile: dir + "/source.xml", encoding: .utf8)
        #expect(source.contains(">linux-image-armmp</pkg>"), "the example's kernel is not in source.xml")
        #expect(Mounts.mountPoints(under: base).isEmpty)
    }

    @Test(.timeLimit(.minutes(30)))
    func theBusyboxRescueSystemBecomesACpio() async throws {
        let base = try Integration.temporaryDirectory("elbe-rescue")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let dir = base + "/build"
        let result = try await ElbeExamples.build("x86_64-pc-rescue-busybox-dyn-cpio.xml", into: dir, cache: base + "/cache")
        #expect(result.succeeded, "\(result.standardError.suffix(3000))")
        #expect(BuildState.read(dir + "/state.json")?.status == .done)
        let listing = try await ProcessRunner.check(Command("sh", ["-c", "cpio -it --quiet < \"$1\"", "sh", dir + "/rescue.cpio"]))
        let names = Set(listing.standardOutput.split(separator: "\n").map { $0.hasPrefix("./") ? String($0.dropFirst(2)) : String($0) })
        #expect(names.contains("bin/busybox") || names.contains("usr/bin/busybox"), "\(names.sorted().prefix(40))")
        #expect(Mounts.mountPoints(under: base).isEmpty)
    }
}
