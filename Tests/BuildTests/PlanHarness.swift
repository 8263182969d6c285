import Foundation
@testable import Build
import HavelCore
import ProjectXML
import SystemKit
import BootCheck
import Logging
import Synchronization

/// Runs build plans through `RecordingProcesses`, without root, a mirror or qemu: what a bootstrap tool
/// would have installed is laid down as a small fixture tree, packers and image tools run for real on it
/// (they need no root), and everything else is only recorded. The tests compare the recorded commands
/// with lists written out by hand.
final class PlanHarness: @unchecked Sendable {
    let root: String
    let fake = RecordingProcesses()
    var host = HostFacts(architecture: .amd64, isRoot: true)
    var skipChecks = false
    /// Run the checks stage's real CheckRunner (a check script needs no qemu) instead of recording.
    var realChecks = false
    /// What the boot checks stage was asked to boot (the checks seam records instead of starting qemu).
    let booted = BootedImages()

    /// What the front end was told: every event the build's log records meant (through `BuildEventHandler`).
    let events = Events()

    final class BootedImages: Sendable {
        let images = Mutex<[String]>([])
    }

    final class Events: Sendable {
        let all = Mutex<[BuildEvent]>([])
        var logger: Logger { Logger(label: "test") { _ in BuildEventHandler { event in self.all.withLock { $0.append(event) } } } }
        /// "started NAME" and "finished NAME" in the order the front end saw them.
        var stageLines: [String] {
            all.withLock { events in
                events.compactMap { event -> String? in
                    switch event {
                    case .stageStarted(let name): "started " + name
                    case .stageFinished(let name, _, _): "finished " + name
                    default: nil
                    }
                }
            }
        }
    }

    init(_ name: String) throws {
        root = NSTemporaryDirectory() + "havel-plan-\(name)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        setUpFixtures()
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    var directory: BuildDirectory { BuildDirectory(root + "/build") }

    /// A project file from `target` (the inside of `<target>`) and optional extra `<project>` and top-level XML.
    static func xml(name: String = "plan", arch: String = "amd64", suite: String = "bookworm", project: String = "",
                    top: String = "", target: String) -> String {
        """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>\(name)</name><version>1.0</version><buildtype>\(arch)</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>\(suite)</suite>
            \(project)
          </project>
          \(top)
          <target>
            <hostname>plan</hostname>
            \(target)
          </target>
        </RootFileSystem>
        """
    }

    func load(_ xml: String) throws -> ValidatedProject {
        let file = root + "/project.xml"
        try xml.write(toFile: file, atomically: true, encoding: .utf8)
        return try BuildEntry.load(path: file, options: .init(preprocess: .init(hashPasswords: true)), mirror: "http://mirror.test/debian")
    }

    /// Runs the plan; returns how it ended and state.json as written.
    func run(_ project: ValidatedProject) async throws -> (error: HavelError?, state: BuildState?) {
        let options = BuildOptions(directory: directory, cache: HavelCache(path: root + "/cache"), useStageCache: false,
                                   sourceDateEpoch: 1_700_000_000, havelVersion: "test", skipChecks: skipChecks)
        var builder = try Builder(project: project, options: options, host: host, processes: fake, logger: events.logger)
        let booted = self.booted
        if !realChecks { builder.checkImages = { checks, script, _, _ in
            booted.images.withLock { $0 += checks.map(\.image) + (script == nil ? [] : [CheckScriptRunner.checkName]) }
            return checks.enumerated().map { CheckResult(name: "check-\($0.offset + 1)-\($0.element.image)", passed: true, seconds: 0, message: "", transcriptTail: "") }
                + (script == nil ? [] : [CheckResult(name: CheckScriptRunner.checkName, passed: true, seconds: 0, message: "", transcriptTail: "")])
        } }
        do throws(HavelError) {
            _ = try await builder.run()
            return (nil, BuildState.read(directory.state))
        } catch {
            return (error, BuildState.read(directory.state))
        }
    }

    /// Each command as a short line: the program and what tells it apart (the program inside a chroot
    /// or a private mount namespace, the first word of a shell pipeline).
    var commandLines: [String] { fake.commands.map(Self.line) }

    static func line(_ command: Command) -> String {
        let words = command.arguments
        if command.executable == "unshare", let wrapper = words.firstIndex(of: "havel-chroot"), wrapper + 2 < words.count {
            let inside = Array(words[(wrapper + 2)...])
            if inside.first == "/bin/sh" || inside.first == "sh", inside.count > 2 {
                return "chroot sh: " + (inside[2].split(separator: " ").first.map(String.init) ?? "")
            }
            return "chroot " + inside.prefix(2).joined(separator: " ")
        }
        if command.executable == "unshare", let dashes = words.firstIndex(of: "--"), dashes + 1 < words.count {
            return "unshare " + ((words[dashes + 1] as NSString).lastPathComponent)
        }
        if command.executable == "bash" || command.executable == "sh", let script = words.firstIndex(of: "-c"), script + 1 < words.count {
            let text = words[script + 1].trimmingCharacters(in: .whitespacesAndNewlines)
            let first = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).first.map(String.init) ?? ""
            return command.executable + ": " + first
        }
        let name = (command.executable as NSString).lastPathComponent
        if name == "apt-helper" { return "apt-helper " + (words.first { $0.hasSuffix("Release") }.map { ($0 as NSString).lastPathComponent } ?? "") }
        return name
    }

    // MARK: - Fixtures

    /// Installed packages of the fixture tree (name, version, architecture), beyond base-files.
    var packages: [(String, String, String)] = [("base-files", "12.4+deb12u5", "amd64"), ("netbase", "6.4", "all")]
    /// Extra files of the fixture tree (path inside it, contents).
    var files: [(String, [UInt8])] = []

    func setUpFixtures() {
        // Release files: apt-helper download-file URL FILE.
        fake.on({ $0.executable.hasSuffix("apt-helper") }) { command throws(HavelError) in
            guard let file = command.arguments.last else { return .failure(1) }
            _ = FileManager.default.createFile(atPath: file, contents: Data("Origin: Debian\nSuite: test\n".utf8))
            return .success
        }
        // The bootstrap tools: the fixture tree at the output, apt's lists where the build reads them.
        fake.on({ $0.executable == "unshare" && ($0.arguments.contains("mmdebstrap") || $0.arguments.contains("debootstrap")) }) {
            [unowned self] command throws(HavelError) in
            do {
                try self.layDownTree(self.directory.rootfs)
                try self.layDownLists(self.directory.work + "/lists/var/lib/apt/lists")
            } catch {
                throw HavelError(.io, "fixture: \(error)")
            }
            return .success
        }
        // Packers, image tools, the staging of partitions (cp, find) and hashing run for real on the fixture tree
        // (none of them needs root).
        fake.passThrough { command in
            let name = (command.executable as NSString).lastPathComponent
            if ["mke2fs", "mkfs.vfat", "sfdisk", "dumpe2fs", "mmd", "mcopy", "mksquashfs", "mkswap", "qemu-img", "cp", "find", "sha256sum"]
                .contains(name) { return true }
            if name == "bash", let script = command.arguments.last {
                return script.hasPrefix("tar ") || script.hasPrefix("xz ") || script.hasPrefix("bsdtar ") || script.contains("| bsdtar")
            }
            if name == "sh", let script = command.arguments.dropFirst().first, script.contains("debugfs") { return true }
            return false
        }
    }

    func layDownTree(_ rootfs: String) throws {
        let fm = FileManager.default
        for dir in ["etc/apt", "var/lib/dpkg/info", "usr/share/doc", "usr/sbin", "usr/bin", "bin", "boot", "tmp", "proc", "sys", "dev", "root", "var/cache/apt/archives"] {
            try fm.createDirectory(atPath: rootfs + "/" + dir, withIntermediateDirectories: true)
        }
        var status = ""
        for (name, version, arch) in packages {
            status += "Package: \(name)\nStatus: install ok installed\nPriority: optional\nArchitecture: \(arch)\nVersion: \(version)\nDescription: \(name)\n\n"
            try fm.createDirectory(atPath: rootfs + "/usr/share/doc/" + name, withIntermediateDirectories: true)
            try "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n"
                .write(toFile: rootfs + "/usr/share/doc/\(name)/copyright", atomically: true, encoding: .utf8)
        }
        try status.write(toFile: rootfs + "/var/lib/dpkg/status", atomically: true, encoding: .utf8)
        try "deb http://mirror.test/debian bookworm main\n".write(toFile: rootfs + "/etc/apt/sources.list", atomically: true, encoding: .utf8)
        try "root:x:0:0:root:/root:/bin/sh\n".write(toFile: rootfs + "/etc/passwd", atomically: true, encoding: .utf8)
        try "root:x:0:\n".write(toFile: rootfs + "/etc/group", atomically: true, encoding: .utf8)
        try "#!/bin/sh\n".write(toFile: rootfs + "/bin/sh", atomically: true, encoding: .utf8)
        for (path, contents) in files {
            try fm.createDirectory(atPath: rootfs + "/" + (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            _ = fm.createFile(atPath: rootfs + "/" + path, contents: Data(contents))
        }
    }

    func layDownLists(_ lists: String) throws {
        try FileManager.default.createDirectory(atPath: lists, withIntermediateDirectories: true)
        var text = ""
        for (name, version, arch) in packages {
            let digest = String(repeating: "ab", count: 32)
            text += "Package: \(name)\nVersion: \(version)\nArchitecture: \(arch)\nFilename: pool/main/\(name)_\(version)_\(arch).deb\nSHA256: \(digest)\n\n"
        }
        try text.write(toFile: lists + "/mirror.test_debian_dists_bookworm_main_binary-amd64_Packages", atomically: true, encoding: .utf8)
    }
}
