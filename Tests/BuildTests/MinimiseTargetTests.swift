// Tests of <tighten/>, <diet/> and <setsel/>: where the minimise stage sits in the plan, and real amd64
// minbase builds (root and the host's mirror) that share one stage cache, so the install runs once for
// tighten and diet and once more for setsel's longer pkg-list.
import Foundation
@testable import Build
import Debian
import HavelCore
import SystemKit
import Testing

@Suite struct MinimiseTargetPlanTests {
    @Test func theMinimiseStageRunsAfterTheInstallAndTheBuildEnvironmentAndBeforeTheSettings() throws {
        let harness = try PlanHarness("minimise-plan")
        let project = try harness.load(PlanHarness.xml(project: "<buildimage><pkg-list><pkg>make</pkg></pkg-list></buildimage>",
                                                       target: "<diet/><pkg-list><pkg>less</pkg></pkg-list>"))
        let plan = BuildPlan(project, host: harness.host, options: BuildOptions(directory: harness.directory, havelVersion: "test"))
        let names = plan.stages.map(\.name)
        let index = try #require(names.firstIndex(of: "minimise target"))
        #expect(names[index - 1] == "build environment")
        #expect(names[index + 1] == "configure target")
        let text = plan.describe()
        #expect(text.contains("minimise target\n   why: <diet/>: only the files of the pkg-list's 1 package and of what they depend on"))
        // Like its neighbours it has no cache of its own: only the install is cached.
        #expect(text.components(separatedBy: "cache key:").count == 2)

        let plain = try harness.load(PlanHarness.xml(target: "<pkg-list><pkg>less</pkg></pkg-list>"))
        #expect(!BuildPlan(plain, host: harness.host, options: BuildOptions(directory: harness.directory, havelVersion: "test"))
            .stages.map(\.name).contains("minimise target"))
        let setsel = try harness.load(PlanHarness.xml(target: "<setsel/><pkg-list><pkg>less</pkg></pkg-list>"))
        #expect(BuildPlan(setsel, host: harness.host, options: BuildOptions(directory: harness.directory, havelVersion: "test"))
            .describe().contains("<setsel/>: dpkg's selection becomes the pkg-list's 1 package"))
    }

    @Test func setselWithTightenIsRefusedBeforeTheBuild() throws {
        let harness = try PlanHarness("minimise-refused")
        #expect(throws: HavelError.self) {
            try harness.load(PlanHarness.xml(target: "<tighten/><setsel/><pkg-list><pkg>less</pkg></pkg-list>"))
        }
    }
}

/// One stage cache (and package cache) for the whole suite, removed after it.
struct SharedBuildCache: SuiteTrait, TestScoping {
    @TaskLocal static var path: String?

    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let directory = try Integration.temporaryDirectory("minimise-cache")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await Self.$path.withValue(directory) { try await function() }
    }
}

@Suite(.serialized, .enabled(if: Integration.available, Integration.skipReason), SharedBuildCache())
struct MinimiseTargetIntegrationTests {
    static func project(_ element: String, packages: [String] = ["less"]) -> String {
        """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>havel-it-minimise</name><version>0.1</version><buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
          </project>
          <target>
            <hostname>it-minimise</hostname>
            <debootstrap><variant>minbase</variant></debootstrap>
            \(element)
            <pkg-list>\(packages.map { "<pkg>\($0)</pkg>" }.joined())</pkg-list>
          </target>
        </RootFileSystem>
        """
    }

    /// Builds in a fresh directory under the suite's cache; the directory is removed by `body`'s caller.
    static func build(_ text: String, _ name: String) async throws -> (state: BuildState, directory: String) {
        let cache = try #require(SharedBuildCache.path)
        let directory = cache + "/build-" + name
        let state = try await Integration.build(try Integration.load(text), in: directory, cache: cache + "/cache")
        return (state, directory)
    }

    static func exists(_ rootfs: String, _ path: String) -> Bool { FileManager.default.fileExists(atPath: rootfs + path) }

    /// What both tighten and diet leave in and out: the chosen package's files, the settings, no dpkg database.
    static func expectMinimised(_ rootfs: String) {
        #expect(exists(rootfs, "/usr/bin/less"), "a file of the chosen package")
        #expect(exists(rootfs, "/etc/passwd") && exists(rootfs, "/etc/shadow"), "the /etc files no package owns")
        #expect((try? String(contentsOfFile: rootfs + "/etc/hostname", encoding: .utf8)) == "it-minimise\n")
        #expect(!exists(rootfs, "/var/lib/dpkg/status"), "dpkg's database is left out, as ELBE does")
        #expect(!exists(rootfs, "/usr/bin/dpkg") && !exists(rootfs, "/usr/bin/apt-get"), "files of packages not chosen")
        #expect(!exists(rootfs, "/etc/apt/sources.list"), "no apt, so no apt sources")
        for mountPoint in ["/dev", "/proc", "/sys"] { #expect(exists(rootfs, mountPoint)) }
    }

    @Test func tightenKeepsOnlyThePkgListsOwnFiles() async throws {
        let (state, directory) = try await Self.build(Self.project("<tighten/>"), "tighten")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rootfs = directory + "/rootfs"
        Self.expectMinimised(rootfs)
        #expect(!Self.exists(rootfs, "/usr/lib/x86_64-linux-gnu/libtinfo.so.6"), "less's dependency libtinfo6 is not kept")
        #expect(state.stages.map(\.name).contains("minimise target"))
        // The reports list the whole installed tree's packages, as ELBE's read its build environment.
        let source = try String(contentsOfFile: directory + "/source.xml", encoding: .utf8)
        #expect(source.contains(">libtinfo6</pkg>"))
        // The SBOM describes what the image holds: the kept package, from the minimise stage's record.
        let sbom = try String(contentsOfFile: directory + "/sbom.cdx.json", encoding: .utf8)
        #expect(sbom.contains("pkg:deb/debian/less@"))
        #expect(!sbom.contains("pkg:deb/debian/dpkg@") && !sbom.contains("pkg:deb/debian/libtinfo6@"))
    }

    @Test func dietKeepsThePkgListWithItsDependencies() async throws {
        let (state, directory) = try await Self.build(Self.project("<diet/>"), "diet")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rootfs = directory + "/rootfs"
        Self.expectMinimised(rootfs)
        #expect(Self.exists(rootfs, "/usr/lib/x86_64-linux-gnu/libtinfo.so.6"), "less's dependency libtinfo6")
        #expect(Self.exists(rootfs, "/usr/lib/x86_64-linux-gnu/libc.so.6"), "libtinfo6's dependency libc6")
        #expect(!Self.exists(rootfs, "/usr/bin/bash"), "bash is essential but not a dependency of less")
        #expect(state.stages.first { $0.name == "install packages" } != nil)
        // What is kept is enough to run the program.
        let result = try await SystemProcesses().run(Command("chroot", [rootfs, "/usr/bin/less", "--version"]))
        #expect(result.termination == .exited(0))
        #expect(result.standardOutput.contains("less "))
    }

    @Test func setselPurgesEveryPackageOutsideThePkgList() async throws {
        // The selection: everything a plain build installs except apt (nothing in minbase needs apt).
        let (_, plainDirectory) = try await Self.build(Self.project(""), "plain")
        let installed = try DpkgStatus.read(root: plainDirectory + "/rootfs").map(\.name)
        try? FileManager.default.removeItem(atPath: plainDirectory)
        #expect(installed.contains("apt") && installed.contains("less"))
        let selection = installed.filter { $0 != "apt" }
        let (state, directory) = try await Self.build(Self.project("<setsel/>", packages: selection), "setsel")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rootfs = directory + "/rootfs"
        let after = try DpkgStatus.read(root: rootfs).map(\.name)
        #expect(!after.contains("apt"), "apt is purged")
        #expect(!Self.exists(rootfs, "/usr/bin/apt-get"))
        #expect(after.contains("less") && after.contains("libapt-pkg6.0") && after.contains("dpkg"), "the selection is kept")
        #expect(Self.exists(rootfs, "/usr/bin/less") && Self.exists(rootfs, "/etc/passwd"))
        #expect(state.stages.map(\.name).contains("minimise target"))
    }
}
