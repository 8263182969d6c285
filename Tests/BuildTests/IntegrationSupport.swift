import Foundation
@testable import Build
import Debian
import HavelCore
import ProjectXML
import SystemKit
import Testing

/// What the integration tests need from the machine: root, the tools `make test` installs, and the
/// Debian mirror named in this host's apt sources. Without them the tests are skipped, and say why.
enum Integration {
    static let missingReason: String? = {
        if geteuid() != 0 { return "needs root (bootstraps a root filesystem)" }
        for tool in ["mmdebstrap", "/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "zstd", "unshare"] where ProcessRunner.which(tool) == nil {
            return "needs \(tool) (scripts/setup-host.sh installs it)"
        }
        guard (try? HostAptSources.primaryMirror()) != nil else { return "needs a Debian mirror in the host's apt sources" }
        return nil
    }()

    static var available: Bool { missingReason == nil }
    static var skipReason: Comment { Comment(rawValue: missingReason ?? "") }

    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The havel executable `swift build` made next to the tests.
    static var havelExecutable: String? {
        for candidate in [".build/debug/havel", ".build/x86_64-unknown-linux-gnu/debug/havel", ".build/aarch64-unknown-linux-gnu/debug/havel"] {
            let path = repositoryRoot + "/" + candidate
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    static func temporaryDirectory(_ name: String) throws -> String {
        let path = "/var/tmp/havel-it-\(name)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Loads project text as `havel build` does: preprocessed, passwords hashed, the placeholder mirror resolved.
    static func load(_ text: String, file: String = "it.xml", mirror: HostMirror? = nil) throws -> LoadedProject {
        var loaded = try ProjectLoader.load(text: text, file: file, options: .init(preprocess: .init(hashPasswords: true)))
        guard loaded.isValid else { throw HavelError(.invalidProject, "fixture invalid", diagnostics: loaded.errors) }
        guard let mirror else {
            // As havel build resolves it: the primary mirror and url-list lines that name the placeholder.
            try MirrorResolution.apply(nil, to: &loaded.project)
            return loaded
        }
        if loaded.project.mirror.primary?.usesPlaceholder == true {
            loaded.project.mirror.primary?.host = mirror.host
            loaded.project.mirror.primary?.path = mirror.path
            loaded.project.mirror.primary?.proto = mirror.proto
        }
        return loaded
    }

    static func build(_ loaded: LoadedProject, in directory: String, cache: String, useStageCache: Bool = true,
                      binaryCdrom: Bool = false, crossBuild: Bool = false, sdk: Bool = false,
                      installMode: InstallMode = .fast) async throws(HavelError) -> BuildState {
        var options = BuildOptions(directory: BuildDirectory(directory), cache: HavelCache(path: cache), useStageCache: useStageCache,
                                   havelVersion: "test", binaryCdrom: binaryCdrom)
        options.crossBuild = crossBuild
        options.sdk = sdk
        options.installMode = installMode
        let builder = try Builder(project: loaded, options: options, logger: .discarding)
        return try await builder.run()
    }

    /// apt options for an apt of its own below `apt` (lists, cache, empty status; `apt/download` made for
    /// downloads) reading `apt/sources.list`, as the CD tests use it to read a CD like a user.
    static func isolatedApt(_ apt: String, sources: String) throws -> [String] {
        for sub in ["lists/partial", "cache/archives/partial", "parts", "download"] {
            try FileManager.default.createDirectory(atPath: apt + "/" + sub, withIntermediateDirectories: true)
        }
        try sources.write(toFile: apt + "/sources.list", atomically: true, encoding: .utf8)
        guard FileManager.default.createFile(atPath: apt + "/status", contents: Data()) else { throw HavelError(.io, "cannot create \(apt)/status") }
        return ["-o", "Dir::Etc::sourcelist=\(apt)/sources.list", "-o", "Dir::Etc::sourceparts=\(apt)/parts",
                "-o", "Dir::Etc::preferences=\(apt)/none", "-o", "Dir::Etc::preferencesparts=\(apt)/parts",
                "-o", "Dir::State::Lists=\(apt)/lists", "-o", "Dir::State::status=\(apt)/status", "-o", "Dir::Cache=\(apt)/cache",
                "-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1"]
    }

    /// An `<archive>` whose initramfs needs only the virtio disk and ext4, for images that boot under qemu
    /// (MODULES=list takes ~30 s under emulation, MODULES=most ~7 min).
    static func smallInitramfsArchive() throws -> String {
        try archive("""
            mkdir -p etc/initramfs-tools/conf.d
            echo MODULES=list > etc/initramfs-tools/conf.d/havel-boot-check
            printf 'virtio_pci\nvirtio_blk\next4\n' > etc/initramfs-tools/modules
            """)
    }

    /// A tar.bz2 made from shell commands run in an empty directory, as base64 for `<archive>`.
    static func archive(_ script: String) throws -> String {
        let dir = try temporaryDirectory("archive")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/in", withIntermediateDirectories: true)
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/bin/sh")
        make.arguments = ["-c", "set -e; cd \(dir)/in; \(script); tar --owner=0 --group=0 -cjf ../a.tar.bz2 ."]
        try make.run()
        make.waitUntilExit()
        return try Data(contentsOf: URL(fileURLWithPath: dir + "/a.tar.bz2")).base64EncodedString(options: .lineLength76Characters)
    }
}

extension Integration {
    /// Interrupts a running havel as Ctrl-C would and waits (up to 180 s) for it to end; returns how long that took.
    static func interrupt(_ process: Process) async throws -> TimeInterval {
        let interrupted = Date()
        process.interrupt()
        while process.isRunning, Date().timeIntervalSince(interrupted) < 180 {
            try await Task.sleep(for: .milliseconds(100))
        }
        return Date().timeIntervalSince(interrupted)
    }

    /// What an interrupted build must leave: exit status 130, state.json cancelled, nothing mounted under `base`
    /// and no process still working there.
    static func expectCleanInterruption(_ process: Process, build: String, base: String) async throws {
        #expect(!process.isRunning)
        #expect(process.terminationStatus == 130)
        #expect(BuildState.read(build + "/state.json")?.status == .cancelled)
        #expect(Mounts.mountPoints(under: base).isEmpty)
        let leftovers = try await ProcessRunner.run(Command("pgrep", ["-f", base])).standardOutput.trimmingWhitespace()
        #expect(leftovers.isEmpty, "processes still working in \(base): \(leftovers)")
        if process.isRunning { process.terminate() }
    }
}
