import Foundation
@testable import Build
import Debian
import HavelCore
import ProjectXML
import SystemKit
import Testing

/// The fast install path (the host's dpkg unpacks, `NativeUnpack`) against the emulated one: the same project
/// built both ways, without the stage cache, gives the same packed root filesystem: every entry's name, type,
/// mode, owner, time, size and link target, and every file's content (dpkg's status and database, alternatives,
/// users and groups, systemd links, debconf's database among them). The package set covers alternatives
/// (less), system users and systemd units (openssh-server, dbus), a dpkg-statoverride naming a system group,
/// which the fast path must not resolve with the host's groups (dbus), a debconf question answered by
/// `<preseed>` (tzdata) and triggers (libc-bin, and those the packages' own files fire).
/// On arm64 the configure runs also use the native helpers (the host's dash, coreutils, ... bound over the target's).
/// `make test` runs arm64; `make test-slow` runs arm64 and armhf with a kernel (the initramfs compared too), riscv64
/// trixie and amd64, where the other path is the fallback, which the log must name.
@Suite(.serialized, .enabled(if: Integration.available, Integration.skipReason))
struct InstallPathEquivalenceTests {
    static func project(buildtype: String, suite: String, packages: [String]) -> String {
        """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>havel-it-paths</name><version>0.1</version><buildtype>\(buildtype)</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>\(suite)</suite>
          </project>
          <target>
            <hostname>paths</hostname>
            <passwd>havel</passwd>
            <debootstrap><variant>minbase</variant></debootstrap>
            <preseed>
              <conf owner="tzdata" key="tzdata/Areas" type="select" value="Europe"/>
              <conf owner="tzdata" key="tzdata/Zones/Europe" type="select" value="Berlin"/>
            </preseed>
            <package><tar><name>paths-rootfs.tar</name></tar></package>
            <pkg-list>\(packages.map { "<pkg>\($0)</pkg>" }.joined())</pkg-list>
          </target>
        </RootFileSystem>
        """
    }

    static let coverage = ["openssh-server", "tzdata", "less", "iproute2", "dbus"]

    /// openssh-server's postinst makes new random host keys in every build (`--check-reproducible` lists them
    /// too): their content is the one thing two builds cannot share; their names, modes and owners are compared.
    static func isRandomPerBuild(_ path: String) -> Bool { path.hasPrefix("./etc/ssh/ssh_host_") }

    @Test func anArm64TreeIsTheSameOnTheFastAndTheEmulatedPath() async throws {
        try await compare(buildtype: "aarch64", suite: "bookworm", packages: Self.coverage, fastPathTaken: true, helpersServe: true)
    }

    /// bullseye: its dpkg (1.20) unpacks under emulation, the helpers (bullseye's amd64 builds) serve what matches.
    @Test(.enabled(if: SlowMatrix.available, SlowMatrix.skipReason))
    func anArm64BullseyeTreeIsTheSameWithTheHelpers() async throws {
        try await compare(buildtype: "aarch64", suite: "bullseye", packages: Self.coverage, fastPathTaken: false, helpersServe: true)
    }

    @Test(.enabled(if: SlowMatrix.available, SlowMatrix.skipReason), arguments: [
        // trixie's dpkg is not the host's series: its dpkg unpacks under emulation, the helpers (trixie's own
        // amd64 builds) still serve the configuration.
        ("riscv64", "trixie", coverage, false, true),
        ("amd64", "bookworm", coverage, false, false),
        // armhf's word size is not the host's: the helpers whose results do not depend on it serve its scripts
        // and its initramfs (not perl, mawk, od, sort, date, ...).
        ("armhf", "bookworm", coverage + ["linux-image-armmp"], true, true),
        // arm64 with a kernel: its initramfs is made with the native helpers on the fast path, under emulation on the other.
        ("aarch64", "bookworm", coverage + ["linux-image-arm64"], true, true),
    ])
    func otherArchitecturesAndReleasesGiveTheSameTree(buildtype: String, suite: String, packages: [String], fastPathTaken: Bool,
                                                      helpersServe: Bool) async throws {
        // HAVEL_SLOW_CASES, as for the slow matrix: these cases are named paths-BUILDTYPE-SUITE.
        if let names = ProcessInfo.processInfo.environment["HAVEL_SLOW_CASES"]?.split(separator: ",").map(String.init),
           !names.contains("paths-\(buildtype)-\(suite)") {
            print("paths-\(buildtype)-\(suite): not among HAVEL_SLOW_CASES, not run")
            return
        }
        try await compare(buildtype: buildtype, suite: suite, packages: packages, fastPathTaken: fastPathTaken, helpersServe: helpersServe)
    }

    func compare(buildtype: String, suite: String, packages: [String], fastPathTaken: Bool, helpersServe: Bool) async throws {
        let base = try Integration.temporaryDirectory("paths-\(buildtype)")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let loaded = try Integration.load(Self.project(buildtype: buildtype, suite: suite, packages: packages))
        var trees: [InstallMode: String] = [:]
        for mode in InstallMode.allCases {
            let dir = base + "/" + mode.rawValue
            let state = try await Integration.build(loaded, in: dir, cache: base + "/cache", useStageCache: false, installMode: mode)
            #expect(state.status == .done, "\(mode) build of \(buildtype) \(suite)")
            trees[mode] = dir
        }
        let fast = try #require(trees[.fast]), emulated = try #require(trees[.emulated])
        let fastLog = try String(contentsOfFile: fast + "/log.txt", encoding: .utf8)
        let unpackedNatively = fastLog.contains("essential packages natively") && fastLog.contains("remaining packages natively")
        let pathLines = fastLog.split(separator: "\n").filter { $0.contains("havel:") || $0.contains("install path") }.joined(separator: "\n")
        print("install paths of \(buildtype) \(suite):\n\(pathLines)")
        #expect(unpackedNatively == fastPathTaken, "the fast path was \(unpackedNatively ? "" : "not ")taken:\n\(pathLines)")
        if !fastPathTaken {
            #expect(fastLog.contains("install path: the target's dpkg, as") || fastLog.contains("under emulation"),
                    "the log names why the fast path was not taken")
        }
        #expect(!fastLog.contains("failed to unpack"))
        // The native helpers (NativeHelpers) served the configure runs, where the target's byte order is the host's.
        #expect(fastLog.contains("native helpers serve the target's scripts") == helpersServe, "native helpers:\n\(pathLines)")
        if packages.contains(where: { $0.hasPrefix("linux-image-") }) {
            #expect(fastLog.contains("update-initramfs with the native helpers") == helpersServe, "the initramfs's path")
        }
        if helpersServe && buildtype == "aarch64" && suite == "bookworm" {
            #expect(pathLines.contains(" of dash coreutils sed grep findutils") && pathLines.contains("gzip perl-base"),
                    "the shell, the small tools and perl served:\n\(pathLines)")
        }
        if helpersServe && buildtype == "armhf" {
            let served = pathLines.split(separator: "\n").first { $0.contains("native helpers serve") }.map(String.init) ?? ""
            #expect(served.contains(" of dash coreutils sed grep findutils diffutils gzip;") && served.contains("depend on the word size"),
                    "a 32-bit target: the helpers whose results do not depend on the word size:\n\(pathLines)")
        }

        // Entries: name, type and mode, owner, size, time, link target, as tar lists them.
        var listings: [String] = []
        for dir in [fast, emulated] {
            listings.append(try await ProcessRunner.check(Command("tar", ["--numeric-owner", "-tvf", dir + "/paths-rootfs.tar"])).standardOutput)
        }
        #expect(listings[0] == listings[1], "the archives list different entries:\n\(Self.lineDifferences(listings[0], listings[1]))")
        // Contents: every regular file's digest (random host keys left out).
        var digests: [String] = []
        for dir in [fast, emulated] {
            let extracted = dir + "/extracted"
            try FileManager.default.createDirectory(atPath: extracted, withIntermediateDirectories: true)
            _ = try await ProcessRunner.check(Command("tar", ["--numeric-owner", "-xpf", dir + "/paths-rootfs.tar", "-C", extracted]))
            let sums = try await ProcessRunner.check(Command("sh", ["-c", "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum"],
                                                              workingDirectory: extracted)).standardOutput
            digests.append(sums.split(separator: "\n").filter { !Self.isRandomPerBuild(String($0.dropFirst(66))) }.joined(separator: "\n"))
        }
        #expect(digests[0] == digests[1], "files differ:\n\(Self.lineDifferences(digests[0], digests[1]))")
        #expect(digests[0].contains("./var/lib/dpkg/status"), "the comparison reached dpkg's database")
        // No native helper stayed in the tree (a copy would carry the helpers' library path).
        let copies = try await ProcessRunner.run(Command("grep", ["-rlF", NativeHelpers.mountedAt, fast + "/extracted"]))
        #expect(copies.standardOutput.isEmpty, "host programs in the tree: \(copies.standardOutput)")
        // dpkg's own check of every installed file against its package (the host's dpkg reads the target's database).
        let verify = try await ProcessRunner.run(Command("dpkg", ["--root=" + fast + "/extracted", "--verify"]))
        #expect(verify.succeeded && verify.standardOutput.isEmpty, "dpkg --verify: \(verify.standardOutput)\(verify.standardError)")
    }

    static func lineDifferences(_ a: String, _ b: String) -> String {
        let left = Set(a.split(separator: "\n")), right = Set(b.split(separator: "\n"))
        return (left.subtracting(right).sorted().prefix(20).map { "fast:     \($0)" }
                + right.subtracting(left).sorted().prefix(20).map { "emulated: \($0)" }).joined(separator: "\n")
    }
}
