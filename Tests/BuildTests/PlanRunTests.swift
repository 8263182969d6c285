import Foundation
@testable import Build
import HavelCore
import ProjectXML
import SystemKit
import Testing

/// Whole build plans of different projects run through the recording process runner, without root:
/// the stages in order, the commands each ran (written out here by hand, never recorded from the code),
/// and state.json. Dropping or reordering a stage, or a command, fails them.
@Suite struct PlanRunTests {
    /// The Release file is fetched and hashed, the install stage's inputs are hashed into its key, then mmdebstrap runs.
    static let mmdebstrapStart = ["apt-helper InRelease", "sha256sum", "sha256sum", "unshare mmdebstrap", "chpasswd"]
    /// One msdos image with an ext4 root, as most tests here use it.
    static let diskImage = """
        <images><msdoshd><name>disk.img</name><size>64MiB</size><partition><size>remain</size><label>rfs</label></partition></msdoshd></images>
        <fstab><bylabel><label>rfs</label><mountpoint>/</mountpoint><fs><type>ext4</type></fs></bylabel></fstab>
        """
    static let coreStages = ["check host", "probe mirror", "install packages", "configure target", "project file on the device", "initramfs", "finetuning", "device files", "reports and packing", "sbom"]

    func expectDone(_ outcome: (error: HavelError?, state: BuildState?), stages: [String], harness: PlanHarness) throws {
        #expect(outcome.error == nil, "\(outcome.error?.description ?? "")")
        let state = try #require(outcome.state)
        #expect(state.status == .done)
        #expect(state.format == BuildState.currentFormat)
        #expect(state.stages.map(\.name) == stages)
        #expect(FileManager.default.fileExists(atPath: harness.directory.sourceXML))
        #expect(FileManager.default.fileExists(atPath: harness.directory.report))
        #expect(FileManager.default.fileExists(atPath: harness.directory.sbomCycloneDX))
        #expect(FileManager.default.fileExists(atPath: harness.directory.sbomSPDX))
        #expect(!FileManager.default.fileExists(atPath: harness.directory.work), "the work directory is removed")
        // The front end saw each stage start and finish, in order; log.txt says the same.
        #expect(harness.events.stageLines == stages.flatMap { ["started " + $0, "finished " + $0] })
        let logLines = try String(contentsOfFile: harness.directory.log, encoding: .utf8).split(separator: "\n")
            .compactMap { line in line.range(of: "] == ").map { String(line[$0.upperBound...]) } }
        let stageLines = logLines.map { line in line.range(of: " done in ").map { String(line[..<$0.lowerBound]) + " done" } ?? line }
        #expect(stageLines == stages.flatMap { [$0, $0 + " done"] })
    }

    @Test func minbaseWithMmdebstrap() async throws {
        let harness = try PlanHarness("minbase")
        let project = try harness.load(PlanHarness.xml(target: """
            <debootstrap><variant>minbase</variant></debootstrap>
            <package><tar><name>plan.tgz</name></tar></package>
            <pkg-list><pkg>netbase</pkg></pkg-list>
            """))
        let outcome = try await harness.run(project)
        try expectDone(outcome, stages: Self.coreStages, harness: harness)
        #expect(harness.commandLines == Self.mmdebstrapStart + ["bash: tar"])
        let mmdebstrap = try #require(harness.fake.commands.first { $0.arguments.contains("mmdebstrap") })
        #expect(mmdebstrap.arguments.contains("--variant=minbase"))
        #expect(mmdebstrap.arguments.contains { $0.hasPrefix("--include=") && $0.contains("netbase") })
        #expect(outcome.state?.packedRootfs == "plan.tgz")
        #expect(FileManager.default.fileExists(atPath: harness.directory.path + "/plan.tgz"))
        // The install stage is keyed; nothing was cached (the stage cache is off here).
        let install = try #require(outcome.state?.stages.first { $0.name == "install packages" })
        #expect(install.key?.count == 64)
        #expect(install.cached == false)
        let report = try String(contentsOfFile: harness.directory.report, encoding: .utf8)
        #expect(report.contains("netbase 6.4 all"))
    }

    /// `<primary_proxy>`: the mirror probe and the bootstrap reach the mirror through the proxy (ELBE's
    /// LOCALMACHINE is this machine); nothing about the proxy goes into the tree's apt configuration.
    @Test func aPrimaryProxyCarriesEveryFetch() async throws {
        let harness = try PlanHarness("proxy")
        let project = try harness.load(PlanHarness.xml(target: "<pkg-list><pkg>netbase</pkg></pkg-list>")
            .replacingOccurrences(of: "</primary_proto>", with: "</primary_proto><primary_proxy>http://LOCALMACHINE:3128</primary_proxy>"))
        let outcome = try await harness.run(project)
        try expectDone(outcome, stages: Self.coreStages, harness: harness)
        for name in ["apt-helper", "mmdebstrap"] {
            let command = try #require(harness.fake.commands.first { $0.executable.hasSuffix(name) || $0.arguments.contains(name) }, "\(name) ran")
            #expect(command.environment["http_proxy"] == "http://localhost:3128", "\(name): \(command.environment)")
            #expect(command.environment["https_proxy"] == "http://localhost:3128")
        }
        let mmdebstrap = try #require(harness.fake.commands.first { $0.arguments.contains("mmdebstrap") })
        #expect(!mmdebstrap.arguments.contains { $0.contains("3128") }, "the proxy is not an apt option written into the tree")
        let log = try String(contentsOfFile: harness.directory.log, encoding: .utf8)
        #expect(log.contains("through the proxy http://localhost:3128"))
    }

    @Test func debootstrapForAForeignArchitecture() async throws {
        let harness = try PlanHarness("debootstrap")
        harness.packages.append(("less", "590-2", "arm64"))
        let project = try harness.load(PlanHarness.xml(arch: "aarch64", target: """
            <debootstrap><variant>minbase</variant><type>debootstrap</type></debootstrap>
            <pkg-list><pkg>netbase</pkg><pkg>less</pkg></pkg-list>
            """))
        let outcome = try await harness.run(project)
        try expectDone(outcome, stages: Self.coreStages, harness: harness)
        #expect(harness.commandLines == [
            "binfmt-register", "apt-helper InRelease", "sha256sum", "sha256sum", "unshare debootstrap", "sh: cp",
            "chroot sh: set", "chroot apt-get -o", "chroot apt-get -y", "sh: set", "chpasswd", "bash: tar",
        ])
        let install = try #require(harness.fake.commands.first { $0.arguments.contains("-y") })
        #expect(install.arguments.suffix(2) == ["netbase", "less"])
        #expect(harness.fake.commands.first?.arguments == ["qemu-aarch64"])
    }

    @Test func aBuildEnvironmentWithItsOwnPackages() async throws {
        let harness = try PlanHarness("buildenv")
        let project = try harness.load(PlanHarness.xml(project: "<buildimage><pkg-list><pkg>make</pkg></pkg-list></buildimage>", target: """
            <pkg-list><pkg>netbase</pkg></pkg-list>
            <finetuning><command>echo in-target</command></finetuning>
            """))
        let outcome = try await harness.run(project)
        try expectDone(outcome, stages: ["check host", "probe mirror", "install packages", "build environment", "configure target", "project file on the device",
                                         "initramfs", "finetuning", "device files", "reports and packing", "sbom"], harness: harness)
        #expect(harness.commandLines == Self.mmdebstrapStart.dropLast() + [
            "cp", "chroot apt-get update", "chroot apt-get -y", "sh", "chroot apt-get clean", "chpasswd", "chroot sh: echo", "bash: tar",
        ])
        #expect(FileManager.default.fileExists(atPath: harness.directory.buildenv + "/var/lib/dpkg/status"), "cp ran for real")
        // apt works in the build environment's tree, never in the target's.
        let aptRuns = harness.fake.commands.filter { $0.arguments.contains("apt-get") }
        #expect(aptRuns.count == 3)
        #expect(aptRuns.allSatisfy { $0.arguments.contains(harness.directory.buildenv) && !$0.arguments.contains(harness.directory.rootfs) })
    }

    @Test func anImageWithoutABootloader() async throws {
        let harness = try PlanHarness("image")
        let project = try harness.load(PlanHarness.xml(target: """
            <pkg-list><pkg>netbase</pkg></pkg-list>
            \(Self.diskImage)
            """))
        let outcome = try await harness.run(project)
        try expectDone(outcome, stages: Self.coreStages + ["disk images", "pack images"], harness: harness)
        // The partition's files are staged hard-linked, and the entries newer than SOURCE_DATE_EPOCH copied to clamp them.
        #expect(harness.commandLines == Self.mmdebstrapStart + ["bash: tar", "cp", "cp", "mke2fs", "dumpe2fs", "sh: exec", "sfdisk", "sfdisk", "bash: tar"])
        #expect(outcome.state?.outputs == ["disk.img.tar.xz"])
        #expect(FileManager.default.fileExists(atPath: harness.directory.path + "/disk.img.tar.xz"))
    }

    @Test func anImageWithGrubForBIOS() async throws {
        let harness = try PlanHarness("grub")
        harness.packages.append(("grub-pc", "2.06-13", "amd64"))
        harness.packages.append(("linux-image-amd64", "6.1.1-1", "amd64"))
        harness.files = [("boot/vmlinuz-6.1.0-1-amd64", Array(repeating: 1, count: 64)),
                         ("usr/lib/grub/i386-pc/boot.img", Array(repeating: 0, count: 512)),
                         ("var/lib/dpkg/info/grub-pc.list", Array("/usr/lib/grub/i386-pc/boot.img\n".utf8)),
                         ("boot/grub/i386-pc/havel-core.img", Array(repeating: 2, count: 4096))]
        let project = try harness.load(PlanHarness.xml(target: """
            <pkg-list><pkg>grub-pc</pkg><pkg>linux-image-amd64</pkg></pkg-list>
            <images><msdoshd><name>boot.img</name><size>64MiB</size><grub-install/>
              <partition><size>remain</size><label>rfs</label><bootable/></partition>
            </msdoshd></images>
            <fstab><bylabel><label>rfs</label><mountpoint>/</mountpoint><fs><type>ext4</type></fs></bylabel></fstab>
            """))
        let outcome = try await harness.run(project)
        try expectDone(outcome, stages: ["check host", "probe mirror", "install packages", "configure target", "project file on the device", "initramfs", "finetuning",
                                         "bootloader", "device files", "reports and packing", "sbom", "disk images", "pack images"], harness: harness)
        #expect(harness.commandLines == Self.mmdebstrapStart + [
            "chroot sh: mkdir", "chroot grub-mkimage -O", "bash: tar", "cp", "cp", "mke2fs", "dumpe2fs", "sh: exec", "sfdisk", "sfdisk", "bash: tar",
        ])
        let mkimage = try #require(harness.fake.commands.first { $0.arguments.contains("grub-mkimage") })
        #expect(mkimage.arguments.contains("i386-pc"))
        let config = try String(contentsOfFile: harness.directory.rootfs + "/boot/grub/grub.cfg", encoding: .utf8)
        #expect(config.contains("root=LABEL=rfs"))
    }

    @Test func cpioAndSquashfsArchives() async throws {
        let harness = try PlanHarness("packers")
        let project = try harness.load(PlanHarness.xml(target: """
            <pkg-list><pkg>netbase</pkg></pkg-list>
            <package><cpio><name>plan.cpio</name></cpio><squashfs><name>plan.squashfs</name></squashfs><base-image><name>plan-base.img</name></base-image></package>
            """))
        let outcome = try await harness.run(project)
        try expectDone(outcome, stages: Self.coreStages + ["rootfs archives"], harness: harness)
        #expect(harness.commandLines == Self.mmdebstrapStart + ["bash: tar", "bash: tar", "mksquashfs", "bash: tar"])
        #expect(outcome.state?.outputs == ["plan.cpio", "plan.squashfs", "plan-base.img"])
        for file in ["plan.cpio", "plan.squashfs", "plan-base.img"] { #expect(FileManager.default.fileExists(atPath: harness.directory.path + "/" + file)) }
    }

    @Test func projectFinetuningChangesThePacker() async throws {
        let harness = try PlanHarness("project-finetuning")
        let project = try harness.load(PlanHarness.xml(target: """
            <pkg-list><pkg>netbase</pkg></pkg-list>
            \(Self.diskImage)
            <project-finetuning><set_packer packer="none">disk.img</set_packer><img_convert dst="disk.qcow2" fmt="qcow2" keep_src="true">disk.img</img_convert></project-finetuning>
            """))
        let outcome = try await harness.run(project)
        try expectDone(outcome, stages: Self.coreStages + ["disk images", "project finetuning", "pack images"], harness: harness)
        #expect(harness.commandLines == Self.mmdebstrapStart + ["bash: tar", "cp", "cp", "mke2fs", "dumpe2fs", "sh: exec", "sfdisk", "sfdisk", "qemu-img"])
        // set_packer none: the image is handed out as it is, beside its qcow2 copy.
        #expect(outcome.state?.outputs == ["disk.img"])
        #expect(outcome.state?.artifacts == ["disk.qcow2"])
        #expect(FileManager.default.fileExists(atPath: harness.directory.path + "/disk.qcow2"))
    }

    @Test func bootChecksAfterTheImagesBeforePacking() async throws {
        let harness = try PlanHarness("checks")
        let project = try harness.load(PlanHarness.xml(top: """
            <check-image-list><check><img>disk.img</img><interpreter>qemu-system-x86_64</interpreter>
              <interpreter-opts>-nographic -hda disk.img</interpreter-opts><action><login>root</login></action></check></check-image-list>
            """, target: """
            <pkg-list><pkg>netbase</pkg></pkg-list>
            \(Self.diskImage)
            """))
        let outcome = try await harness.run(project)
        try expectDone(outcome, stages: Self.coreStages + ["disk images", "boot checks", "pack images"], harness: harness)
        #expect(harness.booted.images.withLock { $0 } == ["disk.img"])
        #expect(outcome.state?.checks == ["check-1-disk.img": true])

        // --skip-checks leaves the stage out of the plan.
        let skipping = try PlanHarness("skip-checks")
        skipping.skipChecks = true
        let again = try await skipping.run(try skipping.load(PlanHarness.xml(top: """
            <check-image-list><check><img>disk.img</img><interpreter>qemu-system-x86_64</interpreter><interpreter-opts>-hda disk.img</interpreter-opts><action><login>root</login></action></check></check-image-list>
            """, target: """
            \(PlanRunTests.diskImage)
            """)))
        try expectDone(again, stages: Self.coreStages + ["disk images", "pack images"], harness: skipping)
        #expect(skipping.booted.images.withLock { $0 }.isEmpty)
    }

    /// A check-script alone (no image) still gets the checks stage, after the reports, and runs beside boot checks.
    @Test func aCheckScriptRunsInTheChecksStage() async throws {
        let harness = try PlanHarness("check-script")
        let project = try harness.load(PlanHarness.xml(top: """
            <check-image-list><check-script>#!/bin/sh
            test -f "$1/source.xml"</check-script></check-image-list>
            """, target: "<pkg-list><pkg>netbase</pkg></pkg-list>"))
        let outcome = try await harness.run(project)
        try expectDone(outcome, stages: Self.coreStages + ["boot checks"], harness: harness)
        #expect(harness.booted.images.withLock { $0 } == ["check-script"])
        #expect(outcome.state?.checks == ["check-script": true])
        let plan = BuildPlan(project, host: harness.host, options: BuildOptions(directory: harness.directory, cache: HavelCache(path: harness.root + "/cache"),
                                                                                  havelVersion: "test"))
        #expect(plan.describe().contains("<check-image-list>: <check-script> with the build directory"))
        #expect(plan.describe().contains("writes: check.xml; check-script.log"))
    }

    /// The real script runner in a whole plan: a script that fails fails the build as a failed boot check
    /// does, with its status and output in the error, state.json and check.xml; one that passes does not.
    @Test func aFailingCheckScriptFailsTheBuild() async throws {
        func run(_ script: String) async throws -> (outcome: (error: HavelError?, state: BuildState?), harness: PlanHarness) {
            let harness = try PlanHarness("check-script-real")
            harness.realChecks = true
            let project = try harness.load(PlanHarness.xml(top: "<check-image-list><check-script>\(script)</check-script></check-image-list>",
                                                           target: "<pkg-list><pkg>netbase</pkg></pkg-list>"))
            return (try await harness.run(project), harness)
        }
        let (passing, passed) = try await run("#!/bin/sh\ntest -f \"$1/source.xml\" &amp;&amp; test \"$PWD\" = \"$1\" &amp;&amp; echo fine")
        try expectDone(passing, stages: Self.coreStages + ["boot checks"], harness: passed)
        #expect(passing.state?.checks == ["check-script": true])
        #expect(try String(contentsOfFile: passed.directory.path + "/check-script.log", encoding: .utf8) == "fine\n")

        let (failing, failed) = try await run("#!/bin/sh\necho 'rootfs lacks /etc/board-id'\nexit 4")
        let error = try #require(failing.error)
        #expect(error.message.hasPrefix("check script failed: check-script: the script ended with exit status 4"), "\(error.message)")
        #expect(error.message.contains("rootfs lacks /etc/board-id"))
        #expect(failing.state?.status == .failed)
        #expect(failing.state?.checks == ["check-script": false])
        // As for a failed boot check, the failed build's results (check.xml among them) are removed; the
        // script's own output stays for the person who reads why.
        #expect(!FileManager.default.fileExists(atPath: failed.directory.checkReport))
        #expect(try String(contentsOfFile: failed.directory.path + "/check-script.log", encoding: .utf8) == "rootfs lacks /etc/board-id\n")
    }

    /// ELBE's /etc/elbe_base.xml: source.xml's project with its installed packages on the device, 0400, the
    /// same bytes for the same input, and no plain-text password (the check login and sendline steps are left out).
    @Test func theProjectFileGoesOntoTheDeviceWithoutPlainPasswords() async throws {
        let checks = """
            <check-image-list><check><img>disk.img</img><interpreter>qemu-system-x86_64</interpreter>
              <interpreter-opts>-hda disk.img</interpreter-opts><action><login>checkpw-plain</login></action></check></check-image-list>
            """
        let target = """
            <passwd>rootpw-plain</passwd>
            <pkg-list><pkg>netbase</pkg></pkg-list>
            <finetuning><adduser passwd="userpw-plain" shell="/bin/sh">operator</adduser></finetuning>
            \(Self.diskImage)
            """
        func build(_ name: String) async throws -> (harness: PlanHarness, file: String) {
            let harness = try PlanHarness(name)
            let outcome = try await harness.run(try harness.load(PlanHarness.xml(top: checks, target: target)))
            try expectDone(outcome, stages: ["check host", "probe mirror", "install packages", "configure target", "project file on the device",
                                             "initramfs", "finetuning", "device files", "reports and packing", "sbom", "disk images", "boot checks", "pack images"],
                           harness: harness)
            return (harness, harness.directory.rootfs + "/etc/elbe_base.xml")
        }
        let (harness, file) = try await build("device-record")
        let attributes = try FileManager.default.attributesOfItem(atPath: file)
        #expect((attributes[.posixPermissions] as? Int) == 0o400)
        let onDevice = try String(contentsOfFile: file, encoding: .utf8)
        let source = try String(contentsOfFile: harness.directory.sourceXML, encoding: .utf8)
        // The installed package list, as source.xml has it.
        #expect(onDevice.contains("<fullpkgs>") && onDevice.contains(">netbase</pkg>"))
        let fullpkgs = { (text: String) in text.components(separatedBy: "<fullpkgs>").last?.components(separatedBy: "</fullpkgs>").first }
        #expect(fullpkgs(onDevice) != nil && fullpkgs(onDevice) == fullpkgs(source))
        // Hashes only: source.xml has the plain check password, the device copy has none of them.
        #expect(source.contains("checkpw-plain"))
        for plain in ["rootpw-plain", "userpw-plain", "checkpw-plain", "<check-image-list", "<passwd>", " passwd="] {
            #expect(!onDevice.contains(plain), "\(plain) is on the device")
        }
        #expect(onDevice.contains("<passwd_hashed>$6$") && onDevice.contains("passwd_hashed=\"$6$"))
        let version = try String(contentsOfFile: harness.directory.rootfs + "/etc/elbe_version", encoding: .utf8)
        #expect(version == "plan 1.0\nthis RFS was generated by havel test\nTue Nov 14 22:13:20 2023\n")
        #expect(try String(contentsOfFile: harness.directory.rootfs + "/etc/updated_version", encoding: .utf8) == "1.0")
        // Reproducible: a second build of the same input writes the same bytes (the password hashes' salts
        // differ between loads, so compare without them).
        let (keptAlive, again) = try await build("device-record-again")
        defer { withExtendedLifetime(keptAlive) {} }
        let withoutHashes = { (text: String) in text.replacingOccurrences(of: #"\$6\$[^<"]*"#, with: "HASH", options: .regularExpression) }
        #expect(withoutHashes(try String(contentsOfFile: again, encoding: .utf8)) == withoutHashes(onDevice))
    }

    /// Without checks (and with finetuning that installs nothing), the device copy is source.xml byte for byte,
    /// as ELBE's own image test asserts of its copy.
    @Test func withoutChecksTheProjectFileIsSourceXML() async throws {
        let harness = try PlanHarness("device-record-same")
        let outcome = try await harness.run(try harness.load(PlanHarness.xml(target: "<passwd>x</passwd><pkg-list><pkg>netbase</pkg></pkg-list>")))
        try expectDone(outcome, stages: Self.coreStages, harness: harness)
        let onDevice = try Data(contentsOf: URL(fileURLWithPath: harness.directory.rootfs + "/etc/elbe_base.xml"))
        #expect(onDevice == (try Data(contentsOf: URL(fileURLWithPath: harness.directory.sourceXML))))
    }

    /// Written before finetuning, as ELBE does, so a project can remove it there.
    @Test func finetuningCanRemoveTheProjectFile() async throws {
        let harness = try PlanHarness("device-record-rm")
        let outcome = try await harness.run(try harness.load(PlanHarness.xml(target: """
            <pkg-list><pkg>netbase</pkg></pkg-list>
            <finetuning><rm>/etc/elbe_base.xml</rm></finetuning>
            """)))
        try expectDone(outcome, stages: Self.coreStages, harness: harness)
        #expect(!FileManager.default.fileExists(atPath: harness.directory.rootfs + "/etc/elbe_base.xml"))
        #expect(FileManager.default.fileExists(atPath: harness.directory.rootfs + "/etc/elbe_version"))
    }

    @Test func usersGroupsAndCommandsInFinetuning() async throws {
        let harness = try PlanHarness("users")
        let project = try harness.load(PlanHarness.xml(target: """
            <pkg-list><pkg>netbase</pkg></pkg-list>
            <finetuning>
              <addgroup>plan</addgroup>
              <adduser passwd="secret" shell="/bin/sh" groups="plan">operator</adduser>
              <file dst="/etc/motd">hello</file>
              <command>systemctl enable plan</command>
            </finetuning>
            """))
        let outcome = try await harness.run(project)
        try expectDone(outcome, stages: Self.coreStages, harness: harness)
        #expect(harness.commandLines == Self.mmdebstrapStart + ["groupadd", "useradd", "chpasswd", "chroot sh: systemctl", "bash: tar"])
        #expect(try String(contentsOfFile: harness.directory.rootfs + "/etc/motd", encoding: .utf8) == "hello")
    }

    @Test func aKernelRunsTheDeferredInitramfsOnce() async throws {
        let harness = try PlanHarness("initramfs")
        harness.files = [("usr/sbin/update-initramfs.havel-deferred", Array("#!/bin/sh\n".utf8))]
        let project = try harness.load(PlanHarness.xml(target: "<pkg-list><pkg>netbase</pkg></pkg-list>"))
        let outcome = try await harness.run(project)
        try expectDone(outcome, stages: Self.coreStages, harness: harness)
        #expect(harness.commandLines == Self.mmdebstrapStart + ["chroot sh: set", "bash: tar"])
    }

    @Test func aFailingInstallStopsTheBuildAndLeavesNoResults() async throws {
        let harness = try PlanHarness("failing")
        harness.fake.on({ $0.arguments.contains("mmdebstrap") }) { _ throws(HavelError) in .failure(1, error: "E: Unable to locate package nosuch") }
        let project = try harness.load(PlanHarness.xml(target: "<pkg-list><pkg>nosuch</pkg></pkg-list>"))
        let outcome = try await harness.run(project)
        #expect(outcome.error?.code == .processFailed)
        let state = try #require(outcome.state)
        #expect(state.status == .failed)
        #expect(state.stages.map(\.name) == ["check host", "probe mirror"])
        #expect(state.reason?.contains("mmdebstrap") == true)
        #expect(harness.commandLines == ["apt-helper InRelease", "sha256sum", "sha256sum", "unshare mmdebstrap"])
        for file in harness.directory.resultFiles(packedRootfs: "plan-1.0-rootfs.tar.zst") {
            #expect(!FileManager.default.fileExists(atPath: file), "\(file) is left after a failed build")
        }
    }

    @Test func notRootIsRefusedBeforeAnythingRuns() async throws {
        let harness = try PlanHarness("not-root")
        harness.host = HostFacts(architecture: .amd64, isRoot: false)
        let outcome = try await harness.run(try harness.load(PlanHarness.xml(target: "<pkg-list><pkg>netbase</pkg></pkg-list>")))
        #expect(outcome.error?.code == .hostNotReady)
        #expect(outcome.state?.status == .failed)
        #expect(outcome.state?.stages.isEmpty == true)
        #expect(harness.fake.commands.isEmpty)
    }
}

/// The plan as data: made without running anything, for hosts other than this one.
@Suite struct BuildPlanTests {
    @Test func outputNamesMustStayInTheBuildDirectory() throws {
        let harness = try PlanHarness("names")
        for (element, xml) in [
            ("tar/name", PlanHarness.xml(target: "<package><tar><name>../../victim.txt</name></tar></package>")),
            ("msdoshd/name", PlanHarness.xml(target: """
                <images><msdoshd><name>/etc/passwd</name><size>64MiB</size><partition><size>remain</size><label>rfs</label></partition></msdoshd></images>
                """)),
            ("project/name", PlanHarness.xml(name: "..", target: "")),
            ("base-image/name", PlanHarness.xml(target: "<package><base-image><name>../outside.tgz</name></base-image></package>")),
        ] {
            do {
                _ = try harness.load(xml)
                Issue.record("\(element): an output outside the build directory was accepted")
            } catch let error as HavelError {
                #expect(error.code == .invalidProject)
                let named = error.diagnostics.contains { (diagnostic: Diagnostic) in
                    diagnostic.elementPath?.hasSuffix("/" + element) == true && diagnostic.location != nil && diagnostic.message.contains("not a plain file name")
                }
                #expect(named, "\(error.diagnostics)")
            }
        }
    }

    @Test func archiveOptionsThatReachTheHostAreRefusedAtTheirLine() throws {
        let harness = try PlanHarness("options")
        for (element, xml) in [
            ("squashfs/options", PlanHarness.xml(target: "<package><squashfs><name>r.sq</name><options>-comp xz -pf /etc/shadow</options></squashfs></package>")),
            ("tar/options", PlanHarness.xml(target: "<package><tar><name>r.tar</name><options>--exclude=./tmp/* --to-command=id</options></tar></package>")),
        ] {
            do {
                _ = try harness.load(xml)
                Issue.record("\(element): an option that reaches the build host was accepted")
            } catch let error as HavelError {
                #expect(error.code == .invalidProject)
                let named = error.diagnostics.contains { (diagnostic: Diagnostic) in
                    diagnostic.elementPath?.hasSuffix("/" + element) == true && diagnostic.location != nil && diagnostic.message.contains("is not passed on")
                }
                #expect(named, "\(error.diagnostics)")
            }
        }
        _ = try harness.load(PlanHarness.xml(target: "<package><tar><name>r.tar</name><options>--exclude=./var/cache/apt/* --one-file-system</options></tar></package>"))
    }

    @Test func thePlanSaysWhyEachStageIsThereAndHowTheInstallIsKeyed() throws {
        let harness = try PlanHarness("describe")
        let project = try harness.load(PlanHarness.xml(arch: "armhf", target: """
            <pkg-list><pkg>netbase</pkg></pkg-list>
            \(PlanRunTests.diskImage)
            """))
        let plan = BuildPlan(project, host: HostFacts(architecture: .amd64, isRoot: true), options: BuildOptions(directory: harness.directory, havelVersion: "test"))
        let text = plan.describe()
        #expect(text.contains("host: amd64 (foreign: qemu-user through binfmt_misc)"))
        #expect(text.contains("1. check host"))
        #expect(text.contains("cache key: sha256 of tool mmdebstrap, architecture armhf"))
        #expect(text.contains("resolved when the build runs: the Release digest"))
        #expect(text.contains("5. project file on the device\n   why: the project with its installed packages on the device"))
        #expect(text.contains("writes: rootfs/etc/elbe_base.xml (0400); rootfs/etc/elbe_version; rootfs/etc/updated_version"))
        #expect(text.contains("10. sbom\n   why: the target's software bill of materials"))
        #expect(text.contains("writes: sbom.cdx.json (CycloneDX 1.6); sbom.spdx.json (SPDX 2.3)"))
        #expect(text.contains("12. pack images"))
        // On an armhf host the same project is native.
        let native = BuildPlan(project, host: HostFacts(architecture: .armhf, isRoot: true), options: BuildOptions(directory: harness.directory, havelVersion: "test"))
        #expect(native.describe().contains("(native)"))
    }

    @Test func anMtdImageIsPlannedAsAStageOfItsOwn() throws {
        let harness = try PlanHarness("mtd")
        let project = try harness.load(PlanHarness.xml(arch: "armhf", target: """
            <images><mtd><name>flash.ubi</name><nr>0</nr><size>64MiB</size>
              <ubivg><label>nand</label><miniosize>2048</miniosize><maxlogicaleraseblockcount>400</maxlogicaleraseblockcount>
                <logicaleraseblocksize>126976</logicaleraseblocksize><physicaleraseblocksize>128KiB</physicaleraseblocksize>
                <ubi><type>dynamic</type><label>rfs</label><id>0</id><size>remain</size></ubi>
              </ubivg></mtd></images>
            <fstab><bylabel><label>rfs</label><mountpoint>/</mountpoint><fs><type>ubifs</type></fs></bylabel></fstab>
            """))
        let plan = BuildPlan(project, host: harness.host, options: BuildOptions(directory: harness.directory, havelVersion: "test"))
        let names = plan.stages.map(\.name)
        #expect(names.contains("mtd images") && !names.contains("disk images") && !names.contains("pack images"))
        let text = plan.describe()
        #expect(text.contains("mtd images\n   why: <images><mtd>: flash.ubi (mtd 0: ubi volumes rfs (dynamic))"), "\(text)")
        #expect(text.contains("writes: flash.ubi"))
    }

    @Test func theBinaryCDIsPlannedAfterTheReportsOnlyWhenAskedFor() throws {
        let harness = try PlanHarness("bincd")
        let project = try harness.load(PlanHarness.xml(target: "<pkg-list><pkg>netbase</pkg></pkg-list>"))
        let cache = HavelCache(path: harness.root + "/cache")
        let plain = BuildPlan(project, host: harness.host, options: BuildOptions(directory: harness.directory, cache: cache, havelVersion: "test"))
        #expect(!plain.stages.map(\.name).contains("binary CD"))
        let asked = BuildPlan(project, host: harness.host, options: BuildOptions(directory: harness.directory, cache: cache, havelVersion: "test",
                                                                                 binaryCdrom: true))
        let names = asked.stages.map(\.name)
        let cd = try #require(names.firstIndex(of: "binary CD"))
        #expect(names[cd - 1] == "sbom" && names[cd - 2] == "reports and packing")
        let text = asked.describe()
        #expect(text.contains("writes: bin-cdrom.iso"))
        #expect(text.contains("the project's signing key in \(harness.root)/cache/keys"))
    }

    @Test func theSourceCDFollowsWithCdromsOrSrcCdrom() throws {
        let harness = try PlanHarness("srccd")
        let cache = HavelCache(path: harness.root + "/cache")
        let project = try harness.load(PlanHarness.xml(target: "<pkg-list><pkg>netbase</pkg></pkg-list>"))
        let plain = BuildPlan(project, host: harness.host, options: BuildOptions(directory: harness.directory, cache: cache, havelVersion: "test"))
        #expect(!plain.stages.map(\.name).contains("source CD"))
        let asked = BuildPlan(project, host: harness.host, options: BuildOptions(directory: harness.directory, cache: cache, havelVersion: "test",
                                                                                 binaryCdrom: true))
        let names = asked.stages.map(\.name)
        let source = try #require(names.firstIndex(of: "source CD"))
        #expect(names[source - 1] == "binary CD")
        #expect(asked.describe().contains("writes: src-cdrom.iso; src-cdrom-missing.txt"))
        #expect(asked.describe().contains("source cache \(harness.root)/cache/sources"))

        // <src-cdrom> asks for it without --cdroms (and without the binary CD).
        let element = try harness.load(PlanHarness.xml(top: "<src-cdrom/>", target: "<pkg-list><pkg>netbase</pkg></pkg-list>"))
        #expect(element.project.sourceCdrom)
        let byElement = BuildPlan(element, host: harness.host, options: BuildOptions(directory: harness.directory, cache: cache, havelVersion: "test"))
        #expect(byElement.stages.map(\.name).contains("source CD") && !byElement.stages.map(\.name).contains("binary CD"))
        #expect(byElement.describe().contains("why: <src-cdrom>:"))
    }
}
