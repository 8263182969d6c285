import Foundation
@testable import Build
import BootCheck
import HavelCore
import SystemKit
import Testing

/// `havel build --check-reproducible` on real amd64 trees with what made builds differ: a plain-text
/// password, openssh-server (host keys made at install time), systemd and a kernel (initramfs-tools). The slow tier also boots such an image and sees the keys made at first boot.
@Suite(.serialized, .enabled(if: Integration.available, Integration.skipReason))
struct ReproducibilityIntegrationTests {

    static func project(name: String, packages: [String], extra: String = "") -> String {
        """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>\(name)</name><version>0.1</version><buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
          </project>
          <target>
            <hostname>repro</hostname>
            <passwd>reprologin</passwd>
            <debootstrap><variant>minbase</variant></debootstrap>
            \(extra)
            <pkg-list>\(packages.map { "<pkg>\($0)</pkg>" }.joined())</pkg-list>
          </target>
        </RootFileSystem>
        """
    }

    /// Both cold builds of `text` through the check `havel build --check-reproducible` runs; nothing may differ.
    func expectReproducible(_ text: String, name: String, in base: String) async throws -> BuildDirectory {
        let directory = BuildDirectory(base + "/build")
        let project = try ValidatedProject(try Integration.load(text))
        let started = ContinuousClock.now
        let outcome = try await ReproducibilityCheck.run(project: project, options: BuildOptions(directory: directory, cache: HavelCache(path: base + "/cache"),
                                                                                              havelVersion: "test"), logger: .discarding)
        print("reproducibility check of \(name): two cold builds in \(started.duration(to: .now))")
        #expect(outcome.differences.isEmpty, "differences:\n\(outcome.differences.joined(separator: "\n"))")
        #expect(outcome.first.stages.first { $0.name == "install packages" }?.cached == false)
        #expect(outcome.second.stages.first { $0.name == "install packages" }?.cached == false)
        let packed = try #require(outcome.first.packedRootfs)
        #expect(FileManager.default.fileExists(atPath: ReproducibilityCheck.secondDirectory(of: directory).path + "/" + packed))
        return directory
    }

    /// What the stage left in the tree: no host keys, the unit that makes them, a salted hash, a clamped date.
    func expectDeviceFiles(_ directory: BuildDirectory) throws {
        let keys = try FileManager.default.contentsOfDirectory(atPath: directory.rootfs + "/etc/ssh").filter { $0.hasPrefix("ssh_host_") }
        #expect(keys.isEmpty, "host keys left in the image: \(keys)")
        #expect(FileManager.default.fileExists(atPath: directory.rootfs + DeviceFiles.unitPath))
        let shadow = try String(contentsOfFile: directory.rootfs + "/etc/shadow", encoding: .utf8)
        let root = try #require(shadow.split(separator: "\n").first { $0.hasPrefix("root:") }).split(separator: ":", omittingEmptySubsequences: false)
        #expect(root[1].hasPrefix("$6$"))
        let epochDay = try #require(ReproducibleTime.newestPackage(in: directory.rootfs)) / 86_400
        #expect(Int(root[2]).map { $0 <= epochDay } == true, "root's last change \(root[2]) is after the newest package's day \(epochDay)")
    }

    /// Two cold builds take 2 to 3 min here (109 s and 168 s measured on a busy machine), so this stays in the default tier.
    @Test func sshServerAPlainPasswordSystemdAndAKernelBuildTheSameTwice() async throws {
        let base = try Integration.temporaryDirectory("repro-kernel")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let directory = try await expectReproducible(Self.project(name: "havel-it-repro-kernel", packages: ["systemd-sysv", "openssh-server", "linux-image-amd64"]),
                                                     name: "repro-kernel", in: base)
        try expectDeviceFiles(directory)
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: directory.rootfs + "/boot").filter { $0.hasPrefix("initrd.img-") }.isEmpty))
    }

    /// The image has no host keys; booted, havel-device-keys.service has made them and sshd runs with them.
    /// Slow tier (`make test-slow`): a 1.5 GB image built and booted under emulation, 1.5 to 4 min here.
    @Test(.enabled(if: SlowMatrix.available, SlowMatrix.skipReason))
    func aBootedImageMakesItsOwnHostKeys() async throws {
        let base = try Integration.temporaryDirectory("repro-boot")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let archive = try Integration.smallInitramfsArchive()
        let images = """
            <console>ttyS0,115200</console>
            <images>
              <gpthd>
                <name>disk.img</name>
                <size>1500MiB</size>
                <grub-install/>
                <partition><size>1MiB</size><label>bios</label><biosgrub/></partition>
                <partition><size>remain</size><label>rfs</label></partition>
              </gpthd>
            </images>
            <fstab><bylabel><label>rfs</label><mountpoint>/</mountpoint><fs><type>ext4</type></fs></bylabel></fstab>
            <project-finetuning><set_packer packer="none"/></project-finetuning>
            """
        let text = Self.project(name: "havel-it-repro-boot", packages: ["systemd-sysv", "openssh-server", "linux-image-amd64", "grub-pc", "initramfs-tools"],
                                extra: images).replacingOccurrences(of: "</RootFileSystem>", with: "<archive>\(archive)</archive></RootFileSystem>")
        let dir = base + "/build"
        let state = try await Integration.build(try Integration.load(text), in: dir, cache: base + "/cache")
        #expect(state.status == .done)
        try expectDeviceFiles(BuildDirectory(dir))
        // The getty comes up before the keys are made (ssh-keygen -A takes a while under emulation): `systemctl start ssh`
        // returns once ssh.service, ordered after the keys, has started. The typed command echoes "KEYS-$(", only
        // its output reads "KEYS-3-active".
        let check = ImageCheck(image: "disk.img", interpreter: "qemu-system-x86_64",
                               interpreterOptions: "-m 1024 -device virtio-rng-pci -drive file=$ELBE_IMG,format=raw,if=virtio -nographic -nic none",
                               action: .serial([.expect("login:"), .sendline("root"), .expect("assword:"), .sendline("reprologin"), .expect("# "),
                                                .sendline("systemctl start ssh; echo KEYS-$(ls /etc/ssh/ssh_host_*_key | wc -l)-$(systemctl is-active ssh)"),
                                                .expect("KEYS-3-active")]))
        let started = ContinuousClock.now
        let results = try await CheckRunner.run([check], buildDirectory: dir, report: dir + "/check.xml", logger: .discarding)
        print("boot of the amd64 image to fresh host keys took \(started.duration(to: .now))")
        #expect(results.first?.passed == true, "\(results.first?.message ?? "")")
        #expect(try await ProcessRunner.run(Command("pgrep", ["-f", "qemu-system-x86_64.*\(dir)"])).standardOutput.isEmpty)
    }
}
