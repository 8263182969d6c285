import Foundation
@testable import Debian
import SystemKit
import Testing

/// The native helpers of the fast install path on a small tree made here: a helper is bound over the tree's
/// program only when the tree holds the host's version of its package and the program's bytes are the package's
/// own (its md5sums entry); nothing stays mounted or written afterwards; a helper copied into a tree is found.
@Suite struct NativeHelpersTests {
    static let needs: String? = {
        if geteuid() != 0 { return "needs root (mount namespaces, bind mounts)" }
        guard (try? HostAptSources.primaryMirror()) != nil else { return "needs a Debian mirror in the host's apt sources (the helpers come from it)" }
        for tool in ["/usr/bin/patchelf", "/usr/bin/unshare"] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing (scripts/setup-host.sh installs it)"
        }
        return nil
    }()

    func write(_ text: String, _ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test(.enabled(if: needs == nil, "\(needs ?? "")"))
    func aHelperServesOnlyTheSameVersionsOwnBytesAndLeavesNothingBehind() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("havel-helpers-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let script = base + "/" + NativeHelpers.fileName, helpers = base + "/helpers", root = base + "/root"
        try write(NativeHelpers.script(), script)
        // The host's own apt configuration stands in for mmdebstrap's: the helpers come from the host's mirror.
        let prepared = try await ProcessRunner.run(Command("bash", [script, "prepare", helpers, "", base + "/cache"]))
        #expect(prepared.succeeded, "\(prepared.standardError)")
        #expect(FileManager.default.fileExists(atPath: helpers + "/ready"), "refused: \((try? String(contentsOfFile: helpers + "/refused", encoding: .utf8)) ?? "")")
        let programs = try String(contentsOfFile: helpers + "/programs", encoding: .utf8)
        #expect(programs.contains(" /bin/true\n") || programs.contains(" /usr/bin/true\n"))
        #expect(!programs.contains("/uname\n"), "uname tells the machine: it stays the target's")

        // The tree: coreutils at the helpers' version, true as the package shipped it, false edited locally.
        let version = try #require(programs.split(separator: "\n").first { $0.hasPrefix("coreutils ") }?.split(separator: " ")[1])
        let truePath = programs.contains(" /bin/true\n") ? "bin/true" : "usr/bin/true"
        let falsePath = truePath.replacingOccurrences(of: "true", with: "false")
        for dir in ["/usr/games", "/var/lib/dpkg/updates"] {
            try FileManager.default.createDirectory(atPath: root + dir, withIntermediateDirectories: true)
        }
        try FileManager.default.createDirectory(atPath: root + "/" + (truePath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/" + truePath, toPath: root + "/" + truePath)
        try write("edited\n", root + "/" + falsePath)
        let trueSum = try await ProcessRunner.check(Command("md5sum", [root + "/" + truePath])).standardOutput.prefix(32)
        try write("\(trueSum)  \(truePath)\nb1946ac92492d2347c6235b4d2611184  \(falsePath)\n", root + "/var/lib/dpkg/info/coreutils.md5sums")
        try write("Package: coreutils\nStatus: install ok installed\nArchitecture: amd64\nVersion: \(version)\n\n", root + "/var/lib/dpkg/status")

        func enter(_ command: String) async throws -> ProcessResult {
            try await ProcessRunner.run(Command("unshare", ["--mount", "--propagation", "private", "--", "bash", script, "enter", helpers, root, command]))
        }
        let served = try await enter("/" + truePath)
        #expect(served.succeeded, "the helper runs in a tree without a C library: \(served.standardError)")
        #expect(served.standardError.contains("native helpers serve the target's scripts"))
        let edited = try await enter("/" + falsePath)
        #expect(!edited.succeeded, "a program whose bytes are not the package's own is not replaced")

        try write("Package: coreutils\nStatus: install ok installed\nArchitecture: amd64\nVersion: 0.1-1\n\n", root + "/var/lib/dpkg/status")
        try FileManager.default.removeItem(atPath: helpers + "/said")
        let otherVersion = try await enter("/" + truePath)
        #expect(!otherVersion.succeeded, "another version's program is not replaced")
        #expect(otherVersion.standardError.contains("not those of coreutils"))

        let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(!mounts.contains(root), "the binds lived in the namespace only")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/usr/games").isEmpty, "nothing was written into the tree")

        // The search after the install: a copied helper fails it.
        #expect(try await ProcessRunner.run(Command("bash", [script, "scan", root])).succeeded)
        try FileManager.default.copyItem(atPath: helpers + "/mount/havel-native-helpers/bin/coreutils/true", toPath: root + "/usr/local-true")
        let scan = try await ProcessRunner.run(Command("bash", [script, "scan", root]))
        #expect(!scan.succeeded && scan.standardError.contains("usr/local-true"))
    }

    /// The initrd made with the helpers is decompressed natively and searched for their path; one the check cannot
    /// read fails it rather than pass unread.
    @Test func anInitrdCarryingAHelperOrUnreadableFailsTheCheck() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("havel-initrd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let script = base + "/" + NativeHelpers.fileName
        try write(NativeHelpers.script(), script)
        func initrd(_ name: String, _ content: String) async throws -> String {
            try write(content, base + "/" + name)
            _ = try await ProcessRunner.check(Command("gzip", ["-n", base + "/" + name]))
            return base + "/" + name + ".gz"
        }
        let clean = try await initrd("clean", "070701 usr/lib/modules/... busybox\n")
        let carrying = try await initrd("carrying", "070701 bin/cp \(NativeHelpers.mountedAt)/lib/ld.so\n")
        try write("not an initrd\n", base + "/garbage")
        let checkedClean = try await ProcessRunner.run(Command("bash", [script, "scan_initrd", clean]))
        #expect(checkedClean.succeeded, "\(checkedClean.standardError)")
        let checkedCarrying = try await ProcessRunner.run(Command("bash", [script, "scan_initrd", clean, carrying]))
        #expect(!checkedCarrying.succeeded && checkedCarrying.standardError.contains("carrying.gz carries a native helper"))
        let checkedGarbage = try await ProcessRunner.run(Command("bash", [script, "scan_initrd", base + "/garbage"]))
        #expect(!checkedGarbage.succeeded && checkedGarbage.standardError.contains("cannot read"))
        try "\u{1f}\u{8b}broken".write(toFile: base + "/broken", atomically: true, encoding: .isoLatin1)
        let checkedBroken = try await ProcessRunner.run(Command("bash", [script, "scan_initrd", base + "/broken"]))
        #expect(!checkedBroken.succeeded && checkedBroken.standardError.contains("cannot decompress"))
    }
}
