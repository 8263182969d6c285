import Foundation
@testable import Build
import Debian
import HavelCore
import Images
import Logging
import ProjectXML
import Synchronization
import SystemKit
import Testing

@Suite struct AptPlanningTests {
    func project() -> Project {
        var project = Project(name: "p", version: "1", buildtype: "armhf", architecture: .armhf, suite: "bookworm")
        project.mirror = Mirror(primary: PrimaryMirror(host: "mirror.test", path: "/debian", proto: "http"),
                                urls: [MirrorURL(binary: "http://mirror.test/debian-security  bookworm-security main",
                                                 source: "http://mirror.test/debian-security bookworm-security main",
                                                 rawKey: "    -----BEGIN PGP PUBLIC KEY BLOCK-----\n    abc\n    -----END PGP PUBLIC KEY BLOCK-----",
                                                 options: ["trusted=yes"])],
                                options: ["check-valid-until=no"])
        project.target.packages = [PackageSpec(name: "bash", pin: .version("5.2*")),
                                   PackageSpec(name: "less", pin: .release(["name": "bookworm", "component": "main"])),
                                   PackageSpec(name: "vim")]
        project.preferences = [AptPreference(pin: "Debian", priority: 600)]
        return project
    }

    @Test func sourcesLinesFollowELBE() {
        #expect(AptSources.lines(for: project()) == [
            "deb [check-valid-until=no] http://mirror.test/debian bookworm main",
            "deb [trusted=yes] http://mirror.test/debian-security bookworm-security main",
        ])
        #expect(AptSources.lines(for: project(), includeSource: true).count == 4)
        #expect(AptSources.repositories(for: project()).map { "\($0.uri) \($0.suite)" } ==
                ["http://mirror.test/debian bookworm", "http://mirror.test/debian-security bookworm-security"])
    }

    @Test func preferencesPinPackagesAndOrigins() {
        #expect(AptSources.preferences(for: project()) == """
        Package: bash
        Pin: version 5.2*
        Pin-Priority: 1001

        Package: less
        Pin: release c=main,n=bookworm
        Pin-Priority: 1001

        Package: *
        Pin: release o=Debian
        Pin-Priority: 600

        """)
    }

    /// `havel build -o build/default` (make run): tools that run elsewhere (cp in a tree, qemu in the
    /// build directory) must get paths that hold there.
    @Test func aRelativeBuildDirectoryIsKeptAbsolute() {
        let here = FileManager.default.currentDirectoryPath
        #expect(BuildDirectory("build/default/").path == here + "/build/default")
        #expect(BuildDirectory("./build/../out").rootfs == here + "/out/rootfs")
        #expect(BuildDirectory("/srv/b/").path == "/srv/b")
    }

    @Test func keysAreDedented() {
        let keys = AptSources.keys(for: project())
        #expect(keys.map(\.fileName) == ["havel-url-1-key.asc"])
        #expect(keys[0].armored.hasPrefix("-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n"))
    }

    @Test func mmdebstrapCommandCarriesTheProject() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("havel-mm-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        let request = BootstrapRequest(tool: .mmdebstrap, architecture: .armhf, suite: "bookworm", variant: "minbase",
                                       packages: ["bash", "less"], exclude: ["e2fsprogs"], sourceLines: AptSources.lines(for: project()),
                                       preferences: AptSources.preferences(for: project()), keys: AptSources.keys(for: project()),
                                       installRecommends: false, packageCache: work + "/debs", listsDirectory: work + "/lists")
        let command = try Mmdebstrap.prepare(request, workDirectory: work, output: work + "/rootfs")
        #expect(command.executable == "mmdebstrap")
        #expect(command.arguments.contains("--architectures=armhf"))
        #expect(command.arguments.contains("--variant=minbase"))
        #expect(command.arguments.contains("--include=bash,less,e2fsprogs-"))
        #expect(command.arguments.contains("--aptopt=APT::Install-Recommends \"false\""))
        #expect(Array(command.arguments.suffix(4)) == ["bookworm", work + "/rootfs"] + AptSources.lines(for: project()))
        #expect(FileManager.default.isExecutableFile(atPath: work + "/hooks/setup00-havel.sh"))
        #expect(FileManager.default.fileExists(atPath: work + "/keyring/havel-url-1-key.asc"))
        #expect((try? String(contentsOfFile: work + "/payload/preferences", encoding: .utf8))?.contains("Pin: version 5.2*") == true)
        #expect(!FileManager.default.fileExists(atPath: work + "/hooks/essential10-havel-debconf.sh"), "no <preseed>, no debconf hook")
    }

    /// The fast install path: a `chroot` wrapper first in mmdebstrap's PATH, a dpkg wrapper for apt and an essential
    /// hook that hands apt mmdebstrap's own list (includes, then the variant's priority pattern); the emulated path
    /// has none of them.
    @Test func theFastPathPutsItsWrappersBeforeMmdebstrapAndNothingInTheTree() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("havel-mm-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        var request = BootstrapRequest(tool: .mmdebstrap, architecture: .arm64, suite: "bookworm", variant: "minbase",
                                       packages: ["less"], exclude: ["e2fsprogs"], sourceLines: ["deb http://m/debian bookworm main"],
                                       preferences: "", keys: [], installRecommends: false, packageCache: work + "/debs", listsDirectory: work + "/lists")
        let emulated = try Mmdebstrap.prepare(request, workDirectory: work + "/e", output: work + "/rootfs")
        #expect(emulated.environment["PATH"] == Command.baseEnvironment["PATH"])
        #expect(!FileManager.default.fileExists(atPath: work + "/e/hooks/" + NativeUnpack.hookName))

        request.nativeUnpack = true
        let fast = try Mmdebstrap.prepare(request, workDirectory: work + "/f", output: work + "/rootfs")
        let bin = work + "/f/native-unpack/bin"
        #expect(fast.environment["PATH"]?.hasPrefix(bin + ":") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: bin) == ["chroot"], "only chroot is shadowed")
        let hook = try String(contentsOfFile: work + "/f/hooks/" + NativeUnpack.hookName, encoding: .utf8)
        #expect(hook.contains("Dir::Bin::dpkg=" + work + "/f/native-unpack/dpkg-for-apt"))
        #expect(hook.contains("    less e2fsprogs- '?narrow(?or(?archive(^bookworm$),?codename(^bookworm$)),?architecture(arm64),?and(?priority(required),?not(?essential)))'"))
        for script in [bin + "/chroot", work + "/f/native-unpack/dpkg-for-apt", work + "/f/hooks/" + NativeUnpack.hookName,
                       work + "/f/native-unpack/checks.sh", work + "/f/native-unpack/" + NativeHelpers.fileName] {
            #expect(script.hasSuffix("checks.sh") || script.hasSuffix(NativeHelpers.fileName) || FileManager.default.isExecutableFile(atPath: script))
            let syntax = try await ProcessRunner.run(Command("bash", ["-n", script]))
            #expect(syntax.succeeded, "\(script): \(syntax.standardError)")
        }
        // Every other chroot goes to the real one, unchanged.
        guard geteuid() == 0 else { return }
        let passed = try await ProcessRunner.run(Command(bin + "/chroot", ["/", "/bin/echo", "through"]))
        #expect(passed.standardOutput == "through\n")
    }

    /// The checks that send an unpack to the target's dpkg: a dpkg configuration in the tree that the host's dpkg
    /// would not read, and a dpkg of another series.
    @Test func theFastPathStepsAsideForConfigurationTheHostCannotMatch() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("havel-nu-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for dir in ["etc/dpkg/dpkg.cfg.d", "var/lib/dpkg"] {
            try FileManager.default.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
        }
        let checks = root + "/checks.sh"
        try NativeUnpack.checks(ownerView: root + "/owner-view").write(toFile: checks, atomically: true, encoding: .utf8)
        func ask(_ function: String) async throws -> ProcessResult {
            try await ProcessRunner.run(Command("bash", ["-c", "source \(checks); root=\(root); \(function)"]))
        }
        #expect(try await ask("other_configuration").succeeded == false || !FileManager.default.fileExists(atPath: "/etc/dpkg/dpkg.cfg"),
                "the host's and an empty tree's configuration change no file")
        try "# documentation is kept\npath-exclude=/usr/share/doc/*\n".write(toFile: root + "/etc/dpkg/dpkg.cfg.d/excludes", atomically: true, encoding: .utf8)
        let configuration = try await ask("other_configuration")
        #expect(configuration.succeeded && configuration.standardOutput.contains("path-exclude=/usr/share/doc/*"))
        #expect(try await ask("other_series 0.1").standardOutput.contains("another series"))
    }

    /// The host's dpkg gives the files of an archive the owners the target's dpkg would: names resolved with the
    /// tree's passwd and group (here `daemon`, which the host numbers 1 and the tree 4242; a user a preinst adds
    /// counts for the files after it), a name the tree lacks keeps the archive's number, and the tree's
    /// statoverride is read with the tree's names. Nothing of the view stays mounted.
    @Test(.enabled(if: geteuid() == 0, "needs root (a mount namespace, chown)"))
    func theHostsDpkgOwnsFilesAsTheTreeNamesThem() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("havel-owners-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let root = base + "/root", package = base + "/pkg"
        for dir in [root + "/etc", root + "/var/lib/dpkg/info", root + "/var/lib/dpkg/updates", root + "/var/log",
                    package + "/DEBIAN", package + "/usr/share/havel-owners", base + "/view"] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        #expect(FileManager.default.createFile(atPath: root + "/var/lib/dpkg/status", contents: Data()))
        try "root:x:0:0:root:/root:/bin/sh\ndaemon:x:4242:4242::/:/bin/false\nhavel-stat:x:4343:4343::/:/bin/false\n"
            .write(toFile: root + "/etc/passwd", atomically: true, encoding: .utf8)
        try "root:x:0:\ndaemon:x:4242:\nhavel-stat:x:4343:\n".write(toFile: root + "/etc/group", atomically: true, encoding: .utf8)
        try "havel-stat havel-stat 0640 /usr/share/havel-owners/overridden\n"
            .write(toFile: root + "/var/lib/dpkg/statoverride", atomically: true, encoding: .utf8)
        try "Package: havel-owners\nVersion: 1\nArchitecture: all\nMaintainer: Havel <havel@example.org>\nDescription: owners\n"
            .write(toFile: package + "/DEBIAN/control", atomically: true, encoding: .utf8)
        // daemon (1:1 on every Debian host), and bin's group (2) which the tree does not have.
        for (name, owner) in [("by-daemon", "1:1"), ("by-bin-group", "0:2"), ("overridden", "0:0")] {
            let file = package + "/usr/share/havel-owners/" + name
            #expect(FileManager.default.createFile(atPath: file, contents: Data(name.utf8)))
            _ = try await ProcessRunner.check(Command("chown", [owner, file]))
        }
        let deb = base + "/havel-owners_1_all.deb"
        _ = try await ProcessRunner.check(Command("dpkg-deb", ["--build", "-Zgzip", package, deb]))

        let checks = base + "/checks.sh"
        try NativeUnpack.checks(ownerView: base + "/view").write(toFile: checks, atomically: true, encoding: .utf8)
        let missing = try await ProcessRunner.run(Command("bash", ["-c", "source \(checks); root=\(root); owner_view_missing"]))
        #expect(!missing.succeeded, "this host can make the view: \(missing.standardOutput)")
        let unpacked = try await ProcessRunner.run(Command("bash", ["-c", "source \(checks); root=\(root); host_dpkg --unpack \(deb)"]))
        #expect(unpacked.succeeded, "\(unpacked.standardError)")
        func owner(_ name: String) throws -> String {
            let attributes = try FileManager.default.attributesOfItem(atPath: root + "/usr/share/havel-owners/" + name)
            let mode = String((attributes[.posixPermissions] as? Int) ?? 0, radix: 8)
            return "\(attributes[.ownerAccountID] as? Int ?? -1):\(attributes[.groupOwnerAccountID] as? Int ?? -1) \(mode)"
        }
        #expect(try owner("by-daemon") == "4242:4242 644", "the tree's daemon, not the host's")
        #expect(try owner("by-bin-group") == "0:2 644", "a group the tree lacks keeps the archive's number")
        #expect(try owner("overridden") == "4343:4343 640", "the statoverride's names are the tree's")
        let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(!mounts.contains("havel-owner-view"), "the view stays in its namespace")
        #expect(try FileManager.default.contentsOfDirectory(atPath: base + "/view").isEmpty)

        // A link in the tree would be followed from the host's root: that tree's unpack goes to the target's dpkg.
        try FileManager.default.removeItem(atPath: root + "/etc/group")
        try FileManager.default.createSymbolicLink(atPath: root + "/etc/group", withDestinationPath: "/etc/group")
        let linked = try await ProcessRunner.run(Command("bash", ["-c", "source \(checks); root=\(root); owner_view_missing"]))
        #expect(linked.succeeded && linked.standardOutput.contains("/etc/group in the tree is a link"), "\(linked.standardOutput)")
    }

    /// apt hands a large unpack batch as "--recursive DIR" of numbered links in a temporary directory outside the
    /// tree (whatever DPkg::Install::Recursive says): the dpkg wrapper hands dpkg the archives themselves, in the
    /// links' order, and refuses a link that leads out of the tree.
    @Test func aptsRecursiveBatchReachesDpkgAsTheArchivesInTheLinksOrder() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("havel-rec-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let root = base + "/root", links = base + "/apt-dpkg-install", bin = base + "/bin"
        let archives = root + "/var/cache/apt/archives"
        for dir in [archives, root + "/var/lib/dpkg/updates", links, bin, base + "/view"] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        // The tree's dpkg is the host's (the host's dpkg unpacks); the host's dpkg itself only echoes what it is handed.
        let version = try await ProcessRunner.check(Command("dpkg-query", ["-W", "-f", "${Version}", "dpkg"])).standardOutput
        try "Package: dpkg\nStatus: install ok installed\nArchitecture: all\nVersion: \(version)\n\n"
            .write(toFile: root + "/var/lib/dpkg/status", atomically: true, encoding: .utf8)
        try "#!/bin/sh\nprintf '%s\\n' \"$@\"\n".write(toFile: bin + "/dpkg", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin + "/dpkg")
        for (index, name) in ["zz_1_all.deb", "aa_1_all.deb"].enumerated() {
            #expect(FileManager.default.createFile(atPath: archives + "/" + name, contents: Data()))
            try FileManager.default.createSymbolicLink(atPath: links + "/0\(index)-" + name, withDestinationPath: archives + "/" + name)
        }
        let checks = base + "/checks.sh", wrapper = base + "/dpkg-for-apt"
        try NativeUnpack.checks(ownerView: base + "/view").write(toFile: checks, atomically: true, encoding: .utf8)
        try NativeUnpack.aptDpkgWrapper(checks: checks).write(toFile: wrapper, atomically: true, encoding: .utf8)
        func unpack() async throws -> ProcessResult {
            try await ProcessRunner.run(Command("bash", [wrapper, "--status-fd", "3", "--no-triggers", "--unpack", "--recursive", links],
                                                environment: ["HAVEL_TREE": root, "PATH": bin + ":" + (Command.baseEnvironment["PATH"] ?? "/usr/bin:/bin")]))
        }
        let handed = try await unpack()
        let words = handed.standardOutput.split(separator: "\n").map(String.init)
        #expect(handed.succeeded, "\(handed.standardError)")
        #expect(words.suffix(2) == [archives + "/zz_1_all.deb", archives + "/aa_1_all.deb"], "\(words)")
        #expect(words.contains("--root=" + root) && !words.contains("--recursive") && !words.contains(links))

        try FileManager.default.createSymbolicLink(atPath: links + "/02-outside_1_all.deb", withDestinationPath: "/etc/hostname")
        let outside = try await unpack()
        #expect(!outside.succeeded && outside.standardError.contains("is not in the tree"))
    }

    /// gzip outputs are written by pigz (the same bytes for any number of threads): the host check asks for it
    /// only where an output is gzipped.
    @Test func aGzipOutputAsksTheHostForPigz() {
        var project = project()
        #expect(!CheckHostStage.writesGzip(project), "the default packed tree is a tar.zst")
        project.target.outputs.tar = "rootfs.tgz"
        #expect(CheckHostStage.writesGzip(project))
        project.target.outputs.tar = "rootfs.tar.xz"
        #expect(!CheckHostStage.writesGzip(project))
        project.target.outputs.baseImage = "base"
        #expect(CheckHostStage.writesGzip(project), "a base image without a known suffix is gzipped")
        project.target.outputs.baseImage = nil
        project.target.projectFinetuning = [FinetuningStep(.setPacker("targz"))]
        #expect(CheckHostStage.writesGzip(project))
        project.target.projectFinetuning = [FinetuningStep(.setPacker("tarxz"))]
        #expect(!CheckHostStage.writesGzip(project))
    }

    @Test func mmdebstrapsRemainingPackagesFollowItsVariants() {
        let important = "?narrow(?or(?archive(^trixie$),?codename(^trixie$)),?architecture(riscv64),?and(?or(?priority(required),?priority(important)),?not(?essential)))"
        #expect(NativeUnpack.remainingPackages(variant: nil, include: ["a"], suite: "trixie", architecture: .riscv64) == ["a", important])
        #expect(NativeUnpack.remainingPackages(variant: "debootstrap", include: [], suite: "trixie", architecture: .riscv64) == [important])
        #expect(NativeUnpack.remainingPackages(variant: "buildd", include: ["a"], suite: "trixie", architecture: .riscv64).prefix(2) == ["a", "build-essential"])
        #expect(NativeUnpack.remainingPackages(variant: "essential", include: ["a"], suite: "trixie", architecture: .riscv64) == ["a"])
        #expect(NativeUnpack.remainingPackages(variant: "standard", include: [], suite: "trixie", architecture: .riscv64).first?.contains("~pstandard") == true)
        #expect(NativeUnpack.obstacle(tool: .debootstrap, variant: nil, runsNatively: false) != nil)
        #expect(NativeUnpack.obstacle(tool: .mmdebstrap, variant: "extract", runsNatively: false) != nil)
        #expect(NativeUnpack.obstacle(tool: .mmdebstrap, variant: "minbase", runsNatively: true) != nil)
    }

    /// `<pkg arch>`: a foreign architecture becomes `name:arch` and one more of mmdebstrap's architectures;
    /// after the install each marked package must have the architecture named.
    @Test func aPackageOfAnotherArchitectureIsInstalledThroughMultiarchAndChecked() throws {
        var project = project()
        project.target.packages = [PackageSpec(name: "less"), PackageSpec(name: "zlib1g"), PackageSpec(name: "netbase"), PackageSpec(name: "libc6")]
        project.target.packages[1].architecture = "arm64"
        project.target.packages[2].architecture = "all"
        project.target.packages[3].architecture = "armhf"
        project.target.debootstrap.include = ["bash"]
        #expect(BootstrapRequest.packages(for: project) == ["bash", "less", "zlib1g:arm64", "netbase", "libc6"])
        #expect(BootstrapRequest.foreignArchitectures(for: project) == ["arm64"])

        let work = FileManager.default.temporaryDirectory.appendingPathComponent("havel-mm-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        var request = BootstrapRequest(tool: .mmdebstrap, architecture: .armhf, suite: "bookworm", variant: "minbase",
                                       packages: BootstrapRequest.packages(for: project), exclude: [], sourceLines: ["deb http://m/debian bookworm main"],
                                       preferences: "", keys: [], installRecommends: false, packageCache: work + "/debs", listsDirectory: work + "/lists")
        request.foreignArchitectures = BootstrapRequest.foreignArchitectures(for: project)
        let command = try Mmdebstrap.prepare(request, workDirectory: work, output: work + "/rootfs")
        #expect(command.arguments.contains("--architectures=armhf,arm64"))
        #expect(command.arguments.contains("--include=bash,less,zlib1g:arm64,netbase,libc6"))

        let installed = [InstalledPackage(name: "less", version: "1", architecture: "armhf"),
                         InstalledPackage(name: "zlib1g", version: "1", architecture: "armhf"),
                         InstalledPackage(name: "zlib1g", version: "1", architecture: "arm64"),
                         InstalledPackage(name: "netbase", version: "6", architecture: "all"),
                         InstalledPackage(name: "libc6", version: "2", architecture: "armhf")]
        try BootstrapRun.checkArchitectures(project.target.packages, installed: installed, target: .armhf)
        project.target.packages[2].architecture = "armhf"
        project.target.packages[2].location = SourceLocation(file: "p.xml", line: 17, column: 9)
        do {
            try BootstrapRun.checkArchitectures(project.target.packages, installed: installed, target: .armhf)
            Issue.record("netbase is arch all, not armhf")
        } catch {
            #expect(error.message.contains("<pkg arch=\"armhf\">netbase</pkg>: netbase is installed for all, not armhf"), "\(error.message)")
            #expect(error.location?.line == 17)
        }
    }

    @Test(arguments: [("bookworm", true), ("trixie", true), ("bullseye", false), ("buster", false)])
    func mergedUsrHooksOnlyForSuitesWithUsrIsMerged(suite: String, merged: Bool) throws {
        try #require(FileManager.default.fileExists(atPath: Mmdebstrap.mergedUsrHooks), "mmdebstrap's merged-usr hooks are not installed")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("havel-mm-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        let request = BootstrapRequest(tool: .mmdebstrap, architecture: .amd64, suite: suite, variant: "minbase",
                                       packages: [], exclude: [], sourceLines: ["deb http://m/debian \(suite) main"],
                                       preferences: "", keys: [], installRecommends: false,
                                       packageCache: work + "/debs", listsDirectory: work + "/lists")
        let command = try Mmdebstrap.prepare(request, workDirectory: work, output: work + "/rootfs")
        #expect(command.arguments.contains("--hook-dir=\(Mmdebstrap.mergedUsrHooks)") == merged)
        // Where the hook cannot serve, Havel's own links merge /usr as debootstrap would.
        let links = work + "/hooks/setup01-havel-merged-usr.sh"
        #expect(FileManager.default.isExecutableFile(atPath: links) == !merged)
        if !merged { #expect(try String(contentsOfFile: links, encoding: .utf8).contains("for dir in bin sbin lib lib32 lib64 libx32; do")) }
    }

    @Test func preseedAnswersGoInAfterTheEssentialPackages() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("havel-mm-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        var request = BootstrapRequest(tool: .mmdebstrap, architecture: .arm64, suite: "bookworm", variant: "minbase",
                                       packages: ["tzdata"], exclude: [], sourceLines: ["deb http://m/debian bookworm main"],
                                       preferences: "", keys: [], installRecommends: false,
                                       packageCache: work + "/debs", listsDirectory: work + "/lists")
        request.debconfSelections = [DebconfSelection(owner: "tzdata", key: "tzdata/Areas", type: "select", value: "Europe")]
        _ = try Mmdebstrap.prepare(request, workDirectory: work, output: work + "/rootfs")
        #expect(try String(contentsOfFile: work + "/payload/debconf-selections", encoding: .utf8) == "tzdata tzdata/Areas select Europe\n")
        let hook = try String(contentsOfFile: work + "/hooks/essential10-havel-debconf.sh", encoding: .utf8)
        #expect(FileManager.default.isExecutableFile(atPath: work + "/hooks/essential10-havel-debconf.sh"))
        #expect(hook.contains("chroot \"$1\" debconf-set-selections < \(work)/payload/debconf-selections"))
        // mmdebstrap runs hooks of one kind in name order: the initramfs deferral first.
        #expect("essential00-havel.sh" < "essential10-havel-debconf.sh")
    }

    @Test func bootstrapFailuresAreExplained() {
        let sources = ["deb http://m/debian bookworm main"]
        func explain(_ line: String) -> String {
            BootstrapFailure.explain(["I: something", line], suite: "bookworm", architecture: .arm64, sources: sources) ?? ""
        }
        #expect(explain("E: Unable to locate package no-such-pkg").contains("package no-such-pkg was not found in bookworm for arm64"))
        #expect(explain("E: Failed to fetch http://m/debian/pool/x.deb  404  Not Found").contains("http://m/debian/pool/x.deb  404"))
        #expect(explain("W: GPG error: http://m bookworm InRelease: NO_PUBKEY 0123ABCD").contains("missing key 0123ABCD"))
        #expect(explain("E: Version '9.9' for 'bash' was not found").contains("version pin"))
        #expect(BootstrapFailure.explain(["nothing useful"], suite: "s", architecture: .arm64, sources: []) == nil)
    }

    @Test func aptSizesInProgress() {
        #expect(BuildEventReader.parseSize("1,234 kB") == 1_234_000)
        #expect(BuildEventReader.parseSize("12.5 MB") == 12_500_000)
        #expect(BuildEventReader.parseSize("nonsense") == nil)
    }

    /// Tool output read as progress: packages set up against apt's count, bytes fetched, mmdebstrap's phases;
    /// warnings by level; stages from their records.
    @Test func logRecordsReadAsFrontEndEvents() {
        let events = Mutex<[BuildEvent]>([])
        let logger = Logger(label: "test") { _ in BuildEventHandler { event in events.withLock { $0.append(event) } } }
        logger.stageStarted("install packages")
        logger.tool("I: downloading packages with apt...")
        logger.tool("Get:1 http://m/debian bookworm/main arm64 netbase all 6.4 [12.9 kB]")
        logger.tool("Get:2 http://m/debian bookworm/main arm64 less arm64 590-2 [1,100 kB]")
        logger.tool("2 upgraded, 3 newly installed, 0 to remove and 0 not upgraded.")
        logger.tool("Setting up netbase (6.4) ...")
        logger.warning("something odd")
        logger.stageFinished("install packages", seconds: 12.5, cached: true)
        let progress = events.withLock { $0 }.filter { if case .log = $0 { false } else { true } }
        #expect(progress == [.stageStarted("install packages"), .detail("downloading packages with apt..."),
                             .fetched(bytes: 12_900), .fetched(bytes: 1_112_900), .packages(done: 1, total: 3),
                             .warning("something odd"), .stageFinished("install packages", seconds: 12.5, cached: true)])
        #expect(LogFileHandler.line(.info, "Setting up x", tool: true) == "  Setting up x")
        #expect(LogFileHandler.line(.warning, "odd", tool: false) == "WARNING: odd")
    }

    @Test func tarCompressionFollowsTheName() {
        #expect(Tar.compressor(for: "x.tar.zst")?.first == "zstd")
        #expect(Tar.compressor(for: "x.tgz")?.first == "pigz", "gzip through pigz: the same bytes on any number of cores")
        #expect(Tar.compressor(for: "x.tar") == [])
        #expect(Tar.compressor(for: "x.zip") == nil)
    }
}

/// A project using items Havel does not build is refused before anything is built, naming each such line,
/// and builds anyway with --allow-unsupported.
@Suite struct UnsupportedRefusalTests {
    @Test func notBuiltOutputItemsRefuseTheBuildUnlessAllowed() throws {
        let loaded = try ProjectLoader.load(path: Integration.repositoryRoot + "/Tests/ProjectXMLTests/Fixtures/not-built.xml")
        #expect(loaded.isValid)
        do {
            _ = try ValidatedProject(loaded)
            Issue.record("a project with not-built output items was accepted")
        } catch {
            #expect(error.code == .unsupported)
            let refused = loaded.unsupported.filter(\.changesOutput)
            #expect(!refused.isEmpty)
            #expect(error.diagnostics.map { $0.location?.line } == refused.map { $0.location.line })
            #expect(error.diagnostics.allSatisfy { $0.message.contains("is not built by Havel") })
        }
        #expect(throws: Never.self) { _ = try ValidatedProject(loaded, allowUnsupported: true) }
    }
}
