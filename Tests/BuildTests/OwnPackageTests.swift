// The project's own packages (`<pbuilder>`): Build-Depends ordering and decoding as units, and a real
// build of a tiny library and a program that links it (git and <archive> sources), installed into the target.

import Foundation
@testable import Build
import Debian
import HavelCore
import ProjectXML
import SystemKit
import TestFixtures
import Testing

@Suite struct BuildDependsOrderTests {
    typealias Source = BuildDependsOrder.Source

    @Test func aSourceIsBuiltAfterTheOneMakingItsBuildDepends() throws {
        let program = Source(name: "hello-prog", binaries: ["hello-prog"], buildDepends: ["debhelper-compat", "libhello-dev"])
        let library = Source(name: "libhello", binaries: ["libhello1", "libhello-dev"], buildDepends: ["debhelper-compat"])
        #expect(try BuildDependsOrder.order([program, library]).map(\.name) == ["libhello", "hello-prog"])
        #expect(try BuildDependsOrder.order([library, program]).map(\.name) == ["libhello", "hello-prog"])
    }

    @Test func aCycleIsRefusedWithItsNames() {
        let a = Source(name: "alpha", binaries: ["alpha-dev"], buildDepends: ["beta-dev"])
        let b = Source(name: "beta", binaries: ["beta-dev"], buildDepends: ["alpha-dev"])
        #expect { try BuildDependsOrder.order([a, b]) } throws: { error in
            (error as? HavelError)?.message.contains("alpha -> beta -> alpha") == true
        }
    }

    @Test func controlFieldsGiveBinariesAndBuildDependsNames() throws {
        let control = """
            Source: foo
            Build-Depends: debhelper-compat (= 13), libbar-dev:any [amd64] <!nocheck> | libbaz-dev,
             pkg-config
            Build-Depends-Indep: python3

            Package: foo-bin
            Architecture: any

            Package: foo-doc
            Architecture: all

            """
        let source = try BuildDependsOrder.source(control: control, file: "control")
        #expect(source.name == "foo")
        #expect(source.binaries == ["foo-bin", "foo-doc"])
        #expect(source.buildDepends == ["debhelper-compat", "libbar-dev", "libbaz-dev", "pkg-config", "python3"])
    }

    @Test func pbuilderChildrenAreDecodedAndBadURLsRefused() throws {
        let text = """
            <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
              <project><name>p</name><version>1</version><buildtype>amd64</buildtype><suite>bookworm</suite>
                <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror></project>
              <target><hostname>h</hostname>
                <pbuilder><src-pkg>hello=2.10-3</src-pkg><git revision="v1">file:///srv/lib.git</git><archive>QUJD</archive></pbuilder>
              </target>
            </RootFileSystem>
            """
        let loaded = try ProjectLoader.load(text: text, file: "p.xml")
        #expect(loaded.isValid)
        #expect(loaded.project.target.ownPackages.map(\.origin) == [
            .sourcePackage(name: "hello", version: "2.10-3"), .git(url: "file:///srv/lib.git", revision: "v1"), .archive(base64: "QUJD"),
        ])
        let ssh = try ProjectLoader.load(text: text.replacingOccurrences(of: "file:///srv/lib.git", with: "ssh://host/lib.git"), file: "p.xml")
        #expect(ssh.errors.contains { $0.message.contains("git URL must start with") })
    }
}

@Suite struct OwnPackagePlanTests {
    @Test func packageBuildsComeBeforeTheInstallAndStandAloneWithPbuilderBuild() throws {
        let harness = try PlanHarness("own-packages")
        let project = try harness.load(PlanHarness.xml(arch: "aarch64", target: "<pbuilder><git>https://git.example.org/lib.git</git></pbuilder>"))
        let host = HostFacts(architecture: .amd64, isRoot: true)
        var options = BuildOptions(directory: harness.directory, havelVersion: "test")
        let names = BuildPlan(project, host: host, options: options).stages.map(\.name)
        let own = try #require(names.firstIndex(of: "build own packages"))
        #expect(own < (names.firstIndex(of: "install packages") ?? -1))
        #expect(BuildPlan(project, host: host, options: options).describe().contains("qemu-user, in a target (arm64) chroot"))
        options.crossBuild = true
        #expect(BuildPlan(project, host: host, options: options).describe().contains("cross-building (--cross)"))
        options.onlyOwnPackages = true
        #expect(BuildPlan(project, host: host, options: options).stages.map(\.name) == ["check host", "probe mirror", "build own packages"])
        // havel pbuilder create|update: the same stages, which say they make only the chroot.
        options.onlyOwnPackages = false
        options.buildChrootOnly = .update
        let chrootOnly = BuildPlan(project, host: host, options: options)
        #expect(chrootOnly.stages.map(\.name) == ["check host", "probe mirror", "build own packages"])
        #expect(chrootOnly.describe().contains("havel pbuilder update: only the build chroot of the <pbuilder> packages, made afresh"))
    }

    @Test func skipPbuilderReadsTheRepositoryAsItIsAndFailsWithoutOne() async throws {
        let harness = try PlanHarness("skip-pbuilder")
        let project = try harness.load(PlanHarness.xml(arch: "amd64", target: "<pbuilder><git>https://git.example.org/lib.git</git></pbuilder>"))
        var options = BuildOptions(directory: harness.directory, havelVersion: "test")
        options.skipOwnPackages = true
        let plan = BuildPlan(project, host: HostFacts(architecture: .amd64, isRoot: true), options: options)
        let names = plan.stages.map(\.name)
        #expect(names.contains("project repository") && !names.contains("build own packages"))
        #expect(try await ProjectRepository.existing(harness.directory.projectRepository, suite: "bookworm") == nil)
    }

    @Test func crossAndSkipPbuilderSayWhenTheyChangeNothing() throws {
        let harness = try PlanHarness("options-without-pbuilder")
        let project = try harness.load(PlanHarness.xml(arch: "amd64", target: ""))
        var options = BuildOptions(directory: harness.directory, havelVersion: "test")
        options.skipOwnPackages = true
        options.crossBuild = true
        let notes = BuildPlan(project, host: HostFacts(architecture: .amd64, isRoot: true), options: options).notes
        #expect(notes.contains("--skip-pbuilder changes nothing: the project has no <pbuilder>"))
        #expect(notes.contains("--cross changes nothing: the project has no <pbuilder>"))
        let plain = BuildPlan(project, host: HostFacts(architecture: .amd64, isRoot: true), options: BuildOptions(directory: harness.directory, havelVersion: "test"))
        #expect(plain.notes.allSatisfy { !$0.contains("changes nothing") })
    }
}

@Suite struct FromCdromPlanTests {
    @Test func aRebuildFromTheCdReadsTheCdInsteadOfTheMirrorAndWritesNoCds() throws {
        let harness = try PlanHarness("from-cdrom")
        let project = try harness.load(PlanHarness.xml(arch: "aarch64", target: ""))
        let host = HostFacts(architecture: .amd64, isRoot: true)
        var options = BuildOptions(directory: harness.directory, havelVersion: "test", binaryCdrom: true)
        #expect(BuildPlan(project, host: host, options: options).stages.map(\.name).contains("binary CD"))
        options.fromCdrom = "/srv/bin-cdrom.iso"
        let names = BuildPlan(project, host: host, options: options).stages.map(\.name)
        #expect(Array(names.prefix(3)) == ["check host", "read binary CD", "install packages"])
        #expect(!names.contains("probe mirror") && !names.contains("binary CD") && !names.contains("source CD"))
        #expect(BuildPlan(project, host: host, options: options).describe().contains("/srv/bin-cdrom.iso"))
    }
}

@Suite struct PbuilderArchivedirTests {
    @Test func eachArchivedirIsPackedIntoItsOwnArchiveInPlace() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("havel-pbuilder-archivedir-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        try OwnPackageFixtures.library(in: base + "/libhello")
        try OwnPackageFixtures.program(in: base + "/hello-prog")
        let file = base + "/project.xml"
        try """
            <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
              <project><name>p</name><version>1</version><buildtype>amd64</buildtype><suite>bookworm</suite>
                <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror></project>
              <target><hostname>h</hostname>
                <pbuilder><archivedir>libhello</archivedir><src-pkg>hello</src-pkg><archivedir>hello-prog</archivedir></pbuilder>
              </target>
            </RootFileSystem>
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let options = ProjectLoader.Options(preprocess: .init(hashPasswords: false))
        let resolved = try await ClientResources.resolve(try ProjectLoader.load(path: file, options: options), options: options)
        #expect(resolved.isValid, "\(resolved.errors)")
        let origins = resolved.project.target.ownPackages.map(\.origin)
        #expect(origins.count == 3)
        #expect(origins[1] == .sourcePackage(name: "hello", version: nil))
        for (index, name) in [(0, "libhello"), (2, "hello-prog")] {
            guard case .archive(let base64) = origins[index], let data = Data(base64Encoded: base64.filter { !$0.isWhitespace }) else {
                Issue.record("source \(index) is not an archive: \(origins[index])")
                continue
            }
            let archive = base + "/\(name).out.tar.bz2"
            try data.write(to: URL(fileURLWithPath: archive))
            let listing = try await SystemProcesses().check(Command("tar", ["-t", "-f", archive]))
            #expect(listing.standardOutput.contains("debian/control"))
            #expect(listing.standardOutput.contains(name == "libhello" ? "hello.c" : "main.c"))
        }
    }
}

@Suite(.serialized, .enabled(if: Integration.available && ProcessRunner.which("pbuilder") != nil && ProcessRunner.which("git") != nil
                             && ProcessRunner.which("apt-ftparchive") != nil && ProcessRunner.which("gpgv") != nil,
                             Comment(rawValue: Integration.missingReason ?? "needs pbuilder, git, apt-ftparchive and gpgv (scripts/setup-host.sh installs them)")))
struct OwnPackageIntegrationTests {
    @Test func aLibraryAndAProgramAreBuiltSignedAndInstalled() async throws {
        try await buildAndCheck(architecture: "amd64", cross: false)
    }

    /// Ctrl-C while `havel pbuilder build` makes its build chroot: as for havel build, every process it started
    /// stops (through its cgroup), nothing stays mounted, the exit status is 130 and state.json says cancelled.
    @Test func sigintStopsAPackageBuildCleanly() async throws {
        let havel = try #require(Integration.havelExecutable, "swift build makes .build/debug/havel")
        let base = try Integration.temporaryDirectory("pbuilder-sigint")
        defer { try? FileManager.default.removeItem(atPath: base) }
        try OwnPackageFixtures.library(in: base + "/libhello")
        let archive = try await OwnPackageFixtures.archive(base + "/libhello")
        try """
            <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
              <project>
                <name>havel-it-pbuilder-sigint</name><version>0.1</version><buildtype>amd64</buildtype>
                <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
                <suite>bookworm</suite>
              </project>
              <target>
                <hostname>it-sigint</hostname>
                <debootstrap><variant>minbase</variant></debootstrap>
                <pbuilder><archive>\(archive)</archive></pbuilder>
                <pkg-list><pkg>libhello1</pkg></pkg-list>
              </target>
            </RootFileSystem>
            """.write(toFile: base + "/p.xml", atomically: true, encoding: .utf8)
        let dir = base + "/build"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: havel)
        process.arguments = ["pbuilder", "build", base + "/p.xml", "-o", dir, "--cache", base + "/cache", "--quiet"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until the build chroot's mmdebstrap works (generously: a busy machine), then interrupt.
        let deadline = Date().addingTimeInterval(600)
        while process.isRunning, Date() < deadline,
              try await !ProcessRunner.run(Command("pgrep", ["-f", "mmdebstrap.*\(base)"])).succeeded {
            try await Task.sleep(for: .milliseconds(200))
        }
        try await Task.sleep(for: .seconds(2))
        #expect(process.isRunning, "the package build ended before it could be interrupted")
        _ = try await Integration.interrupt(process)
        try await Integration.expectCleanInterruption(process, build: dir, base: base)
    }

    /// The same with --sdk, whose installer is then installed and used: CMake cross-builds a program that links
    /// libhello from the sysroot (found by pkg-config-less find_library), and it runs against the sysroot under
    /// qemu-user. About 330 s plus 90 s for the SDK here, so in the slow tier (`make test-slow`).
    @Test(.enabled(if: HostFacts.current.architecture?.debianName == "amd64", "cross-builds arm64 from an amd64 host"),
          .enabled(if: SlowMatrix.available, SlowMatrix.skipReason))
    func theCrossSDKBuildsAProgramThatRunsAgainstTheSysroot() async throws {
        try await buildAndCheck(architecture: "arm64", cross: true, sdk: true)
    }

    /// arm64 on an amd64 host without --cross: built under qemu-user in an arm64 chroot, as ELBE builds by default.
    /// Slow under emulation (dpkg-buildpackage, gcc and debhelper all emulated), so in the slow tier.
    @Test(.enabled(if: HostFacts.current.architecture?.debianName == "amd64", "builds arm64 under emulation on an amd64 host"),
          .enabled(if: SlowMatrix.available, SlowMatrix.skipReason))
    func anEmulatedBuildRunsInAnArm64Target() async throws {
        try await buildAndCheck(architecture: "arm64", cross: false)
    }

    /// `<src-pkg>`: Debian's own hello, downloaded from the mirror's deb-src in the build chroot and rebuilt at the
    /// mirror's version, and the test's library and program offered as .dsc files by a url-list `<source>` (a local
    /// file: repository, bound into the chroot), all installed from the project repository (their .debs checked
    /// against the repository's index, not the mirror's) and run; then `havel pbuilder create` and `update`. In the
    /// slow tier: about 200 s here for hello alone.
    @Test(.enabled(if: SlowMatrix.available, SlowMatrix.skipReason))
    func sourcePackagesFromTheMirrorAndAUrlListAreRebuiltAndInstalled() async throws {
        let base = try Integration.temporaryDirectory("srcpkg")
        defer { try? FileManager.default.removeItem(atPath: base) }
        try OwnPackageFixtures.library(in: base + "/trees/libhello")
        try OwnPackageFixtures.program(in: base + "/trees/hello-prog")
        try await OwnPackageFixtures.sourceRepository(of: [base + "/trees/libhello", base + "/trees/hello-prog"], in: base + "/sources")
        let project = """
            <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
              <project>
                <name>havel-it-srcpkg</name><version>0.1</version><buildtype>amd64</buildtype>
                <mirror>
                  <primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto>
                  <url-list><url><source>file://\(base)/sources ./</source><options><option>trusted=yes</option></options></url></url-list>
                </mirror>
                <suite>bookworm</suite>
              </project>
              <target>
                <hostname>it-srcpkg</hostname>
                <debootstrap><variant>minbase</variant></debootstrap>
                <pbuilder><src-pkg>hello</src-pkg><src-pkg>hello-prog</src-pkg><src-pkg>libhello</src-pkg></pbuilder>
                <pkg-list><pkg>hello</pkg><pkg>hello-prog</pkg></pkg-list>
              </target>
            </RootFileSystem>
            """
        let dir = base + "/build"
        let state = try await Integration.build(try Integration.load(project), in: dir, cache: base + "/cache")
        #expect(state.status == .done)
        let run = try await SystemProcesses().run(Command("chroot", [dir + "/rootfs", "/usr/bin/hello"]))
        #expect(run.standardOutput == "Hello, world!\n", "\(run.standardError)")
        let program = try await SystemProcesses().run(Command("chroot", [dir + "/rootfs", "/usr/bin/hello-prog"]))
        #expect(program.standardOutput == "hello from libhello, hello-prog\n", "\(program.standardError)")
        for dsc in ["libhello_1.0.dsc", "hello-prog_1.0.dsc"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/pbuilder/sources/" + dsc), "\(dsc), downloaded from the url-list's deb-src")
        }
        let sourceXML = try String(contentsOfFile: dir + "/source.xml", encoding: .utf8)
        for name in ["hello", "hello-prog"] {
            let entry = try #require(sourceXML.split(separator: "\n").first { $0.contains(">\(name)</pkg>") && $0.contains(" version=") })
            #expect(entry.contains("uri=\"repo/pool/"), "\(entry)")
        }
        // Here (slow tier) havel pbuilder update too: mmdebstrap makes the chroot again.
        try await checkChrootCommands(project, base: base, cache: base + "/cache", cross: false,
                                      builtKey: state.stages.first { $0.name == "build own packages" }?.key, update: true)
    }

    func buildAndCheck(architecture: String, cross: Bool, sdk: Bool = false) async throws {
        let base = try Integration.temporaryDirectory("prjrepo")
        defer { try? FileManager.default.removeItem(atPath: base) }
        try OwnPackageFixtures.library(in: base + "/libhello")
        try OwnPackageFixtures.program(in: base + "/hello-prog")
        let libraryURL = try await OwnPackageFixtures.gitRepository(base + "/libhello")
        let programArchive = try await OwnPackageFixtures.archive(base + "/hello-prog")
        // The program first: Build-Depends, not document order, decides.
        let project = """
            <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
              <project>
                <name>havel-it-prjrepo</name><version>0.1</version><buildtype>\(architecture == "amd64" ? "amd64" : "aarch64")</buildtype>
                <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
                <suite>bookworm</suite>
              </project>
              <target>
                <hostname>it-prjrepo</hostname>
                <debootstrap><variant>minbase</variant></debootstrap>
                <pbuilder><archive>\(programArchive)</archive><git>\(libraryURL)</git></pbuilder>
                <pkg-list><pkg>hello-prog</pkg></pkg-list>
              </target>
            </RootFileSystem>
            """
        let dir = base + "/build", cache = base + "/cache"
        let started = Date()
        let state = try await Integration.build(try Integration.load(project), in: dir, cache: cache, crossBuild: cross, sdk: sdk)
        print("own-package build (\(architecture)\(cross ? ", --cross" : "")) took \(Int(Date().timeIntervalSince(started))) s")
        #expect(state.status == .done)
        #expect(FileManager.default.fileExists(atPath: dir + "/pbuilder/libhello.log"))
        #expect(FileManager.default.fileExists(atPath: dir + "/pbuilder/hello-prog.log"))
        // Each source as built, for the source CD.
        for dsc in ["libhello_1.0.dsc", "hello-prog_1.0.dsc"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/pbuilder/sources/" + dsc), "\(dsc)")
        }

        // The repository verifies with the exported public key and lists both sources' packages.
        let keyring = base + "/key.gpg"
        _ = try await SystemProcesses().check(Command("gpg", ["--batch", "--yes", "--dearmor", "-o", keyring, dir + "/repo/archive-key.asc"]))
        let verified = try await SystemProcesses().run(Command("gpgv", ["--keyring", keyring, dir + "/repo/dists/bookworm/InRelease"]))
        #expect(verified.succeeded, "gpgv: \(verified.standardError)")
        let packages = try String(contentsOfFile: dir + "/repo/dists/bookworm/main/binary-\(architecture)/Packages", encoding: .utf8)
        let names = Set(PackagesIndex.parse(packages, origin: "repo").map(\.name))
        #expect(names.isSuperset(of: ["libhello1", "libhello-dev", "hello-prog"]))
        #expect(!FileManager.default.fileExists(atPath: dir + "/repo/" + "havel-it-prjrepo.secret.asc"))

        // Installed in the target from the repository, runs there, and the report names the origin.
        #expect(FileManager.default.fileExists(atPath: dir + "/rootfs/usr/bin/hello-prog"))
        let run = try await SystemProcesses().run(Command("chroot", [dir + "/rootfs", "/usr/bin/hello-prog"]))
        #expect(run.standardOutput == "hello from libhello, hello-prog\n", "\(run.standardError)")
        let report = try String(contentsOfFile: dir + "/report.txt", encoding: .utf8)
        #expect(report.contains(ProjectRepository.originName))
        // source.xml names the project repository too: by its place in the build directory, never the build host's path.
        let sourceXML = try String(contentsOfFile: dir + "/source.xml", encoding: .utf8)
        let entry = try #require(sourceXML.split(separator: "\n").first { $0.contains(">hello-prog</pkg>") && $0.contains(" version=") })
        #expect(entry.contains("uri=\"repo/pool/") && entry.contains("release-origin=\"\(ProjectRepository.originField)\""), "\(entry)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/rootfs" + BootstrapRequest.installPreferencesFile), "the install's pin stays out of the target")
        #expect(!sourceXML.contains("copy://"))
        let sources = try String(contentsOfFile: dir + "/rootfs/etc/apt/sources.list", encoding: .utf8)
        #expect(!sources.contains(dir + "/repo"))
        if sdk { try await checkSDK(dir, base: base) }
        try await checkChrootCommands(project, base: base, cache: cache, cross: cross,
                                      builtKey: state.stages.first { $0.name == "build own packages" }?.key, update: false)
    }

    /// `havel pbuilder create` finds the chroot the build made in the stage cache; `update` (where asked:
    /// it runs mmdebstrap again) makes it afresh under the same key.
    func checkChrootCommands(_ project: String, base: String, cache: String, cross: Bool, builtKey: String?, update: Bool) async throws {
        let havel = try #require(Integration.havelExecutable, "havel pbuilder create needs a built havel (swift build)")
        let file = base + "/project.xml"
        try project.write(toFile: file, atomically: true, encoding: .utf8)
        // The build's own-package stage records its chroot's key.
        let chrootKey = try #require(builtKey)
        var arguments = ["pbuilder", "create", "--mirror", "host", "--cache", cache, "-o", base + "/chroot-build", "-q", file]
        if cross { arguments.insert("--cross", at: 2) }
        let created = try await SystemProcesses().run(Command(havel, arguments))
        #expect(created.succeeded, "\(created.standardError)")
        #expect(created.standardOutput == "\(cache)/stages/\(chrootKey)/base.tgz (from the stage cache)\n", "\(created.standardOutput)")
        guard update else { return }
        arguments[1] = "update"
        let before = try FileManager.default.attributesOfItem(atPath: "\(cache)/stages/\(chrootKey)/complete")[.modificationDate] as? Date
        let updated = try await SystemProcesses().run(Command(havel, arguments))
        #expect(updated.succeeded, "\(updated.standardError)")
        #expect(updated.standardOutput == "\(cache)/stages/\(chrootKey)/base.tgz (made now)\n", "\(updated.standardOutput)")
        let after = try FileManager.default.attributesOfItem(atPath: "\(cache)/stages/\(chrootKey)/complete")[.modificationDate] as? Date
        #expect(before != nil && after != nil && after! > before!, "the cached chroot was not replaced")
    }

    /// check-build's SDK check, then a CMake project of the test's own linking libhello from the sysroot (its -dev
    /// package followed libhello1 there by ELBE's rule), run against the sysroot.
    func checkSDK(_ dir: String, base: String) async throws {
        let check = await BuildCheck.sdk(BuildDirectory(dir))
        #expect(check.outcome == .passed, "\(check.detail)")
        let installer = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasPrefix("setup-havel-sdk-aarch64-linux-gnu-") })
        let work = base + "/sdk-use"
        try OwnPackageFixtures.write([
            "main.c": "#include <hello.h>\nint main(void) { hello_greet(\"the SDK\"); return 0; }\n",
            "CMakeLists.txt": "cmake_minimum_required(VERSION 3.13)\nproject(greet C)\nfind_library(HELLO hello REQUIRED)\nfind_path(HELLO_H hello.h REQUIRED)\n"
                + "add_executable(greet main.c)\ntarget_include_directories(greet PRIVATE ${HELLO_H})\ntarget_link_libraries(greet ${HELLO})\n",
        ], in: work + "/src")
        let script = """
            set -e
            sh "$1/\(installer)" -y -d "$2/sdk" >/dev/null
            . "$2"/sdk/environment-setup-havel-*
            cmake -S "$2/src" -B "$2/build" >/dev/null
            cmake --build "$2/build" >/dev/null
            qemu-aarch64-static -L "$SDKTARGETSYSROOT" "$2/build/greet"
            """
        let run = try await SystemProcesses().run(Command("/usr/bin/env", ["-i", "PATH=/usr/bin:/bin", "HOME=/root", "/bin/sh", "-c", script, "sh", dir, work]))
        #expect(run.standardOutput == "hello from libhello, the SDK\n", "\(run.standardError.suffix(2000))")
        // The sysroot has the own library's -dev files, libc6-dbg's and gdbserver, with links relative.
        for path in ["usr/include/hello.h", "usr/lib/libhello.so", "usr/bin/gdbserver", "usr/include/stdio.h"] {
            #expect(FileManager.default.fileExists(atPath: work + "/sdk/sysroots/target/" + path), "\(path) in the sysroot")
        }
    }
}

/// The project repository on its own and through `havel prjrepo`: hand-made packages written, listed,
/// uploaded (re-signed) and downloaded; no network.
@Suite(.enabled(if: ProcessRunner.which("apt-ftparchive") != nil && ProcessRunner.which("gpgv") != nil && ProcessRunner.which("dpkg-deb") != nil
                && Integration.havelExecutable != nil, "needs apt-ftparchive, gpgv, dpkg-deb and a built havel (swift build)"))
struct ProjectRepositoryTests {
    /// A minimal binary package `name` 1.0 for amd64, made with dpkg-deb.
    static func deb(_ name: String, in directory: String) async throws -> String {
        let tree = directory + "/" + name
        try OwnPackageFixtures.write(["DEBIAN/control": "Package: \(name)\nVersion: 1.0\nArchitecture: amd64\nMaintainer: t <t@example.org>\nDescription: test\n",
                                      "usr/share/doc/\(name)/README": "test\n"], in: tree)
        _ = try await SystemProcesses().check(Command("dpkg-deb", ["--root-owner-group", "--build", tree, tree + ".deb"]))
        return tree + ".deb"
    }

    func havel(_ arguments: [String]) async throws -> ProcessResult {
        let result = try await SystemProcesses().run(Command(Integration.havelExecutable!, arguments))
        #expect(result.succeeded, "havel \(arguments.joined(separator: " ")): \(result.standardError)")
        return result
    }

    @Test func uploadAddsAPackageAndSignsAgain() async throws {
        let base = try Integration.temporaryDirectory("prjrepo-upload")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let build = BuildDirectory(base + "/build"), cache = HavelCache(path: base + "/cache")
        let first = try await Self.deb("first-tool", in: base)
        let project = Project(name: "upload-test", version: "2.0", suite: "bookworm")
        let written = try await ProjectRepository.write([try await AptRepository.Package.reading(first)], to: build.projectRepository,
                                                        project: project, architecture: "amd64", keys: cache.keys, epoch: 1_700_000_000)
        #expect(written.packages.map(\.name) == ["first-tool"])

        let second = try await Self.deb("second-tool", in: base)
        let uploaded = try await havel(["prjrepo", "upload", "--cache", cache.path, build.path, second])
        #expect(uploaded.standardOutput.contains("first-tool 1.0 amd64"))
        #expect(uploaded.standardOutput.contains("second-tool 1.0 amd64"))
        let listed = try await havel(["prjrepo", "list", build.path])
        #expect(listed.standardOutput == uploaded.standardOutput)

        let keyring = base + "/key.gpg"
        _ = try await SystemProcesses().check(Command("gpg", ["--batch", "--yes", "--dearmor", "-o", keyring, build.projectRepository + "/archive-key.asc"]))
        let verified = try await SystemProcesses().run(Command("gpgv", ["--keyring", keyring, build.projectRepository + "/dists/bookworm/InRelease"]))
        #expect(verified.succeeded, "gpgv: \(verified.standardError)")
        let release = try String(contentsOfFile: build.projectRepository + "/dists/bookworm/Release", encoding: .utf8)
        #expect(release.contains("Label: upload-test project repository"))
        #expect(release.contains("Description: upload-test 2.0:"))

        _ = try await havel(["prjrepo", "download", build.path, "-o", base + "/copy"])
        #expect(FileManager.default.fileExists(atPath: base + "/copy/dists/bookworm/main/binary-amd64/Packages"))
        #expect(!FileManager.default.fileExists(atPath: base + "/copy/" + "upload-test.secret.asc"))
    }
}

/// arm64 on an amd64 host with --cross: built in a host chroot with crossbuild-essential-arm64, installed into an
/// arm64 target from the project repository and run there through qemu-user. In `make test` (CI runs cross arm64
/// and amd64), as a suite of its own so that it runs beside the amd64 case instead of after it: 318 s here idle,
/// 612 s in a busy CI run when it ran after the amd64 case and made that run 47 minutes.
@Suite(.enabled(if: Integration.available && ProcessRunner.which("pbuilder") != nil && ProcessRunner.which("apt-ftparchive") != nil
                && ProcessRunner.which("gpgv") != nil,
                Comment(rawValue: Integration.missingReason ?? "needs pbuilder, apt-ftparchive and gpgv (scripts/setup-host.sh installs them)")))
struct OwnPackageCrossIntegrationTests {
    @Test(.enabled(if: HostFacts.current.architecture?.debianName == "amd64", "cross-builds arm64 from an amd64 host"))
    func aCrossBuiltProgramRunsInAnArm64Target() async throws {
        try await OwnPackageIntegrationTests().buildAndCheck(architecture: "arm64", cross: true)
    }
}
