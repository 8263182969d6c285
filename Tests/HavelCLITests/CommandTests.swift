import Foundation
@testable import HavelCLI
import HavelCore
import ProjectXML
import SystemKit
import Testing

@Suite struct CommandTests {
    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
    static let example = repositoryRoot + "/examples/default.xml"

    func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("havel-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func validateExitCodes() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let broken = dir + "/broken.xml"
        try String(contentsOfFile: Self.example, encoding: .utf8)
            .replacingOccurrences(of: "<suite>bookworm</suite>", with: "<suite>bookwrom</suite>")
            .write(toFile: broken, atomically: true, encoding: .utf8)
        #expect(await HavelMain.run(["validate", Self.example]) == 0)
        #expect(await HavelMain.run(["validate", Self.example, broken]) == 1)
        #expect(await HavelMain.run(["validate"]) == 2)
        #expect(await HavelMain.run(["validate", "--no-such-flag", Self.example]) == 2)
        #expect(await HavelMain.run(["no-such-command"]) == 2)
    }

    @Test func preprocessWritesPlainXMLAtomically() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/out.xml"
        #expect(await HavelMain.run(["preprocess", Self.example, "-o", out]) == 0)
        let text = try String(contentsOfFile: out, encoding: .utf8)
        #expect(text.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"))
        #expect(text.contains("<passwd_hashed>$6$"))
        #expect(!text.contains("<passwd>"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["out.xml"])
        // An invalid file writes nothing.
        let bad = dir + "/bad.xml"
        try "<RootFileSystem xmlns=\"https://www.linutronix.de/projects/Elbe\" revision=\"6\"/>".write(toFile: bad, atomically: true, encoding: .utf8)
        #expect(await HavelMain.run(["preprocess", bad, "-o", dir + "/never.xml"]) == 1)
        #expect(!FileManager.default.fileExists(atPath: dir + "/never.xml"))
    }

    /// The whole path of a check script: `location` inlined by preprocess, then run by check-image from the
    /// build directory's source.xml; its verdict is the exit status, its output in check.xml.
    @Test func checkImageRunsTheCheckScriptThatPreprocessInlined() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/build", withIntermediateDirectories: true)
        for (script, expected) in [("test -f \"$1/source.xml\" && echo \"found $1/source.xml\"", 0), ("echo 'board id missing'; exit 5", 1)] {
            try "#!/bin/sh\n\(script)\n".write(toFile: dir + "/verify.sh", atomically: true, encoding: .utf8)
            // The example's boot check needs its image; only the script is checked here.
            try String(contentsOfFile: Self.example, encoding: .utf8)
                .replacing(/<check-image-list>[\s\S]*<\/check-image-list>/, with: "")
                .replacingOccurrences(of: "</RootFileSystem>", with: "<check-image-list><check-script location=\"verify.sh\"/></check-image-list>\n</RootFileSystem>")
                .write(toFile: dir + "/project.xml", atomically: true, encoding: .utf8)
            try? FileManager.default.removeItem(atPath: dir + "/build/source.xml")
            #expect(await HavelMain.run(["preprocess", dir + "/project.xml", "-o", dir + "/build/source.xml"]) == 0)
            #expect(await HavelMain.run(["check-image", "--quiet", dir + "/build"]) == Int32(expected))
            let report = try String(contentsOfFile: dir + "/build/check.xml", encoding: .utf8)
            #expect(report.contains("name=\"check-script\""))
            if expected == 0 {
                #expect(report.contains("failures=\"0\"") && report.contains("found \(dir)/build/source.xml"))
            } else {
                #expect(report.contains("failures=\"1\"") && report.contains("exit status 5") && report.contains("board id missing"))
            }
        }
    }

    @Test func preprocessGzipOutputLoads() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(await HavelMain.run(["preprocess", Self.example, "--gzip", "-o", dir + "/p.xml.gz"]) == 0)
        let loaded = try ProjectLoader.load(path: dir + "/p.xml.gz")
        #expect(loaded.isValid)
        #expect(loaded.project.name == "havel-example")
    }

    @Test func summaryShowsTheImageTable() throws {
        var project = try ProjectLoader.load(path: Self.example, options: .init(preprocess: .init(hashPasswords: true))).project
        try MirrorOptions.parse(["--mirror", "http://mirror.invalid/debian"]).apply(to: &project)
        let text = ProjectSummary(project).text
        #expect(text.contains("havel-example 1.0"))
        #expect(text.contains("arm64 (buildtype aarch64"))
        #expect(text.contains("http://mirror.invalid/debian"))
        #expect(text.contains("sdcard.img  gpt  1.5 GiB  grub-install"))
        #expect(text.contains("1  efi        64 MiB     at sector 2048  vfat /boot/efi"))
        #expect(text.contains("2  rootfs     1.4 GiB    at sector 133120  ext4 /"))
        #expect(text.contains("Finetuning  10 actions"))
    }

    @Test func mirrorPlaceholderBecomesTheHostMirror() throws {
        var project = try ProjectLoader.load(path: Self.example).project
        #expect(project.mirror.primary?.host == Mirror.placeholderHost)
        try MirrorOptions.parse([]).apply(to: &project)
        #expect(project.mirror.primary?.host != Mirror.placeholderHost)
        #expect(project.mirror.primary?.host.isEmpty == false)
    }

    @Test func mirrorOptionRejectsNonsense() {
        #expect(throws: (any Error).self) { try MirrorOptions.parse(["--mirror", "not-a-url"]) }
    }

    @Test func showJSONIsTheModel() async throws {
        let summary = ProjectSummary(try ProjectLoader.load(path: Self.example).project)
        let data = try JSONEncoder().encode(summary)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let project = try #require(object["project"] as? [String: Any])
        #expect(project["name"] as? String == "havel-example")
        #expect(project["architecture"] as? String == "arm64")
        let layouts = try #require(object["layouts"] as? [String: Any])
        #expect((layouts["sdcard.img"] as? [Any])?.count == 2)
    }

    /// `initvm run` takes everything after the first `--`, later `--` included (havel chroot needs its own).
    @Test func initvmRunKeepsTheWholeCommandLine() throws {
        let run = try InitVMCommand.Run.parse(["--directory", "vm", "--", "havel", "chroot", "/b", "--", "uname", "-m"])
        #expect(run.command == ["havel", "chroot", "/b", "--", "uname", "-m"])
        #expect(throws: (any Error).self) { try InitVMCommand.Run.parse(["--directory", "vm"]) }
    }

    /// Without /proc the Swift runtime gives a program no arguments at all: havel says so and exits 2 instead of
    /// printing its help with status 0 as if asked for nothing.
    @Test(.enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: repositoryRoot + "/.build/debug/havel"),
                   "needs root (a mount namespace) and .build/debug/havel"))
    func withoutProcHavelRefusesInsteadOfSeeingNoArguments() async throws {
        let result = try await ProcessRunner.run(Command("unshare", ["--mount", "--propagation", "private", "--", "sh", "-c",
                                                                     "mount -t tmpfs none /proc && exec \"$0\" build project.xml",
                                                                     Self.repositoryRoot + "/.build/debug/havel"]))
        #expect(result.termination == .exited(2))
        #expect(result.standardError.contains("/proc is not mounted"))
        #expect(!result.standardOutput.contains("OVERVIEW"))
    }
}
