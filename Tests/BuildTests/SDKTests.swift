// The SDK's parts that need no mirror: ELBE's rule for the sysroot's -dev packages, conflicts among them,
// the links made relative, the plan and the installer's script.

import Foundation
@testable import Build
import Debian
import HavelCore
import SystemKit
import Testing

@Suite struct SysrootSelectionTests {
    typealias Package = InstallRecord.Package

    static func indexed(_ name: String, _ version: String, source: String? = nil, sourceVersion: String? = nil,
                        architecture: String = "arm64", priority: String = "optional") -> IndexedPackage {
        var package = IndexedPackage(name: name, version: version, architecture: architecture, sourceName: source, sourceVersion: sourceVersion)
        package.priority = priority
        return package
    }

    static func installed(_ name: String, _ version: String, architecture: String = "arm64") -> Package {
        Package(name: name, version: version, architecture: architecture)
    }

    static let index = [
        indexed("libc6", "2.36-9", source: "glibc", priority: "required"),
        indexed("libc6-dev", "2.36-9", source: "glibc"),
        indexed("zlib1g", "1:1.2.13-1", source: "zlib", priority: "required"),
        indexed("zlib1g-dev", "1:1.2.13-1", source: "zlib"),
        indexed("libssl3", "3.0.11-1", source: "openssl"),
        indexed("libssl-dev", "3.0.11-1", source: "openssl"),
        indexed("libssl-dev", "3.0.9-1", source: "openssl"),
        indexed("libcurl4", "7.88.1-10", source: "curl"),
        indexed("libcurl4-openssl-dev", "7.88.1-10", source: "curl"),
        indexed("libcurl4-gnutls-dev", "7.88.1-10", source: "curl"),
        indexed("libfoo1", "1.0-1+b1", source: "foo", sourceVersion: "1.0-1"),
        indexed("libfoo-dev", "1.0-1+b1", source: "foo", sourceVersion: "1.0-1"),
        indexed("libbar-dev", "2.0", source: "foo", sourceVersion: "2.0"),
        indexed("bash", "5.2-1", priority: "required"),
    ]

    static let record = [
        installed("libc6", "2.36-9"), installed("zlib1g", "1:1.2.13-1"), installed("libssl3", "3.0.11-1"),
        installed("libcurl4", "7.88.1-10"), installed("libfoo1", "1.0-1+b1"), installed("bash", "5.2-1"),
    ]

    @Test func devPackagesOfTheSameSourceVersionFollowButNotTheBaseSystems() {
        let selection = SysrootSelection.choose(installed: Self.record, index: Self.index, relations: [:], requested: ["libssl3"],
                                                variant: "minbase", blacklist: [], architecture: "arm64")
        let dev = selection.devPackages.map(\.name)
        // libc6 counts although it is required; zlib1g is required and not asked for, so zlib1g-dev stays out.
        #expect(dev == ["libc6-dev", "libcurl4-gnutls-dev", "libcurl4-openssl-dev", "libfoo-dev", "libssl-dev"])
        #expect(selection.devPackages.first { $0.name == "libssl-dev" }?.version == "3.0.11-1")
        #expect(!dev.contains("libbar-dev"), "another source version")
        #expect(selection.packages.contains("zlib1g=1:1.2.13-1"))
        #expect(selection.packages.contains("libc6-dbg") && selection.packages.contains("gdbserver"))
        #expect(selection.packages.first == "libc6=2.36-9")
    }

    @Test func aRequestedBasePackageCountsAndTheBlacklistKeepsOut() {
        let selection = SysrootSelection.choose(installed: Self.record, index: Self.index, relations: [:], requested: ["zlib1g"],
                                                variant: "minbase", blacklist: ["libcurl4-gnutls-dev", "gdbserver"], architecture: "arm64")
        let dev = selection.devPackages.map(\.name)
        #expect(dev.contains("zlib1g-dev"))
        #expect(!dev.contains("libcurl4-gnutls-dev"))
        #expect(!selection.packages.contains("gdbserver"))
        #expect(selection.leftOut.contains { $0.hasPrefix("libcurl4-gnutls-dev: in <pkg-blacklist><sysroot>") })
    }

    @Test func conflictingDevPackagesKeepTheFirstAndSayWhy() {
        let relations = ["libcurl4-gnutls-dev 7.88.1-10": SysrootSelection.Relation.parse("libcurl4-openssl-dev, libcurl3-dev (<< 7)"),
                         "libcurl4-openssl-dev 7.88.1-10": SysrootSelection.Relation.parse("libcurl4-gnutls-dev"),
                         "libc6-dev 2.36-9": SysrootSelection.Relation.parse("bash (<< 5.0), libssl3 (>= 3.0.11-1)")]
        let selection = SysrootSelection.choose(installed: Self.record, index: Self.index, relations: relations, requested: [],
                                                variant: nil, blacklist: [], architecture: "arm64")
        let dev = selection.devPackages.map(\.name)
        #expect(dev.contains("libcurl4-gnutls-dev"))
        #expect(!dev.contains("libcurl4-openssl-dev"))
        // bash 5.2 is not << 5.0, but libssl3 3.0.11-1 is >= 3.0.11-1: libc6-dev breaks an installed package.
        #expect(!dev.contains("libc6-dev"))
        #expect(selection.leftOut.contains("libc6-dev: conflicts with libssl3, which the sysroot already has"))
        #expect(selection.leftOut.contains { $0.hasPrefix("libcurl4-openssl-dev:") })
    }

    @Test func relationsParseOperatorsAndQualifiers() {
        let relations = SysrootSelection.Relation.parse("a (<< 1.0), b:any, c (>= 2:1.0-1), d")
        #expect(relations.map(\.name) == ["a", "b", "c", "d"])
        #expect(relations[0].matches(name: "a", version: "0.9"))
        #expect(!relations[0].matches(name: "a", version: "1.0"))
        #expect(relations[2].matches(name: "c", version: "2:1.0-1"))
        #expect(!relations[2].matches(name: "c", version: "1:9"))
        #expect(relations[3].matches(name: "d", version: "anything"))
    }

    @Test func theDefaultVariantTreatsImportantAsBase() {
        #expect(SysrootSelection.isBase(priority: "important", variant: nil))
        #expect(!SysrootSelection.isBase(priority: "important", variant: "minbase"))
        #expect(SysrootSelection.isBase(priority: "required", variant: "minbase"))
    }
}

@Suite struct SDKFilesTests {
    let files = SDKFiles(projectName: "my board", projectVersion: "1.0", architecture: .arm64, triplet: "aarch64-linux-gnu", hostArchitecture: .amd64)

    @Test func namesFollowELBEsAndArePlain() {
        #expect(files.installerName == "setup-havel-sdk-aarch64-linux-gnu-my_board-1.0.sh")
        #expect(files.environmentName == "environment-setup-havel-aarch64-linux-gnu-my_board-1.0")
        #expect(Architecture.i386.gnuTriplet == "i686-linux-gnu" && Architecture.i386.multiarchTuple == "i386-linux-gnu")
    }

    @Test func hostPackagesDefaultToTheCrossCompilerAndAlwaysHavePatchelf() {
        #expect(SDKFiles.hostPackages(listed: [], triplet: "aarch64-linux-gnu", hostArchitecture: .amd64).first == "g++-aarch64-linux-gnu")
        #expect(SDKFiles.hostPackages(listed: [], triplet: "x86_64-linux-gnu", hostArchitecture: .amd64).first == "g++")
        #expect(SDKFiles.hostPackages(listed: ["gcc-aarch64-linux-gnu"], triplet: "aarch64-linux-gnu", hostArchitecture: .amd64)
                == ["gcc-aarch64-linux-gnu", "patchelf"])
    }

    @Test func theInstallerScriptIsValidShellAndEndsAtItsMarker() async throws {
        let script = files.installerScript(loader: "lib64/ld-linux-x86-64.so.2")
        #expect(script.hasSuffix("exit 0\n\(SDKFiles.payloadMarker)\n"))
        for text in [script, files.pkgConfigWrapper, files.environmentSetup] {
            let check = try await SystemProcesses().run(Command("/bin/sh", ["-n", "-c", text]))
            #expect(check.succeeded, "\(check.standardError)")
        }
        #expect(files.environmentSetup.contains("export CMAKE_TOOLCHAIN_FILE=\"$HAVEL_SDK/toolchain.cmake\""))
        #expect(files.toolchainCMake.contains("set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static -L ${CMAKE_SYSROOT})"))
    }

    @Test func absoluteLinksBecomeRelativeInsideTheTree() throws {
        let root = NSTemporaryDirectory() + "havel-sdk-links-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/usr/lib/aarch64-linux-gnu", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root + "/usr/lib/aarch64-linux-gnu/libz.so", withDestinationPath: "/lib/aarch64-linux-gnu/libz.so.1")
        try FileManager.default.createSymbolicLink(atPath: root + "/usr/lib/libm.so", withDestinationPath: "/usr/lib/libm.so.6")
        try FileManager.default.createSymbolicLink(atPath: root + "/usr/lib/keep", withDestinationPath: "relative/already")
        #expect(try SDKFiles.relativizeLinks(root: root, under: "usr/lib") == 2)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/usr/lib/aarch64-linux-gnu/libz.so") == "../../../lib/aarch64-linux-gnu/libz.so.1")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/usr/lib/libm.so") == "libm.so.6")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/usr/lib/keep") == "relative/already")
    }
}

@Suite struct SDKPlanTests {
    @Test func theSDKStageComesWithSdkAndNotInARebuildFromTheCD() throws {
        let harness = try PlanHarness("sdk")
        let project = try harness.load(PlanHarness.xml(arch: "aarch64", target: ""))
        let host = HostFacts(architecture: .amd64, isRoot: true)
        var options = BuildOptions(directory: harness.directory, havelVersion: "test")
        #expect(!BuildPlan(project, host: host, options: options).stages.map(\.name).contains("sdk"))
        options.sdk = true
        let plan = BuildPlan(project, host: host, options: options)
        #expect(plan.stages.map(\.name).contains("sdk"))
        #expect(plan.describe().contains("setup-havel-sdk-aarch64-linux-gnu-"))
        options.fromCdrom = "/srv/bin-cdrom.iso"
        let rebuild = BuildPlan(project, host: host, options: options)
        #expect(!rebuild.stages.map(\.name).contains("sdk"))
        #expect(rebuild.notes.contains { $0.contains("--sdk is not made") })
    }
}

@Suite struct SDKLinkerScriptTests {
    @Test func absolutePathsInALinkerScriptBecomeBareNamesAndCommentsStay() {
        let script = """
            /* GNU ld script
               Use the shared library, but some functions are only in
               the static library, so try that secondarily.  */
            OUTPUT_FORMAT(elf64-littleaarch64)
            GROUP ( /usr/aarch64-linux-gnu/lib/libc.so.6 /usr/aarch64-linux-gnu/lib/libc_nonshared.a  AS_NEEDED ( /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ) )

            """
        let bare = SDKFiles.bareNames(script)
        #expect(bare.contains("GROUP ( libc.so.6 libc_nonshared.a  AS_NEEDED ( ld-linux-aarch64.so.1 ) )"))
        #expect(bare.hasPrefix("/* GNU ld script\n   Use the shared library"))
    }

    @Test func theBaseSystemIsTheVariantsPrioritiesWithAptAndTheirDependencies() {
        let installed = ["bash", "apt", "libapt-pkg6.0", "libaudit1", "login", "libssl3", "curl"].map {
            InstallRecord.Package(name: $0, version: "1", architecture: "arm64")
        }
        let base = SysrootSelection.baseSystem(installed: installed, priorities: ["bash": "required", "login": "required", "apt": "important"],
                                               dependencies: ["apt": ["libapt-pkg6.0"], "login": ["libaudit1"], "curl": ["libssl3"]],
                                               variant: "minbase")
        #expect(base == ["bash", "apt", "libapt-pkg6.0", "login", "libaudit1"])
    }
}
