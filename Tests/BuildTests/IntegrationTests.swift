import Foundation
@testable import Build
import Chroot
import Debian
import HavelCore
import ProjectXML
import SystemKit
import Testing

/// Real builds: mmdebstrap from the host's mirror, qemu-user for arm64, the target checked
/// from the outside and from inside its chroot.
@Suite(.serialized, .enabled(if: Integration.available, Integration.skipReason))
struct IntegrationTests {
    static func arm64Project(archive: String) -> String {
        """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>havel-it-arm64</name>
            <version>0.1</version>
            <buildtype>aarch64</buildtype>
            <mirror>
              <primary_host>MIRROR_HOST</primary_host>
              <primary_path>/debian</primary_path>
              <primary_proto>http</primary_proto>
            </mirror>
            <suite>bookworm</suite>
          </project>
          <target>
            <hostname>it-board</hostname>
            <domain>example.org</domain>
            <passwd>rootpw</passwd>
            <console>ttyAMA0,115200</console>
            <debootstrap><variant>minbase</variant></debootstrap>
            <images>
              <msdoshd>
                <name>sd.img</name>
                <size>1GiB</size>
                <partition><size>64MiB</size><label>boot</label><bootable/></partition>
                <partition><size>remain</size><label>rfs</label></partition>
              </msdoshd>
            </images>
            <fstab>
              <bylabel><label>rfs</label><mountpoint>/</mountpoint><fs><type>ext4</type></fs></bylabel>
              <bylabel><label>boot</label><mountpoint>/boot</mountpoint><fs><type>vfat</type></fs><options>ro</options></bylabel>
            </fstab>
            <finetuning>
              <rm>/etc/overlay-remove-me</rm>
              <mkdir>/srv/app/data</mkdir>
              <mknod opts="c 1 3">/srv/app/null</mknod>
              <cp path="/etc/os-release">/srv/app/os-release</cp>
              <mv path="/srv/app/os-release">/srv/app/os-release.moved</mv>
              <ln path="/srv/app/data">/data</ln>
              <addgroup gid="3000">operators</addgroup>
              <adduser shell="/bin/bash" groups="operators" uid="3001" passwd="fieldpw">fieldeng</adduser>
              <file dst="/etc/app.conf" owner="fieldeng" group="operators" mode="0640">
                setting = 1
              </file>
              <file dst="/etc/app.conf" append="true">more = 2
        </file>
              <command>uname -m > /etc/built-on-machine; id fieldeng > /etc/operator-id</command>
              <raw_cmd>touch /etc/raw-cmd-ran</raw_cmd>
              <artifact>/etc/os-release</artifact>
              <rm_apt_source>this-line-does-not-exist</rm_apt_source>
            </finetuning>
            <project-finetuning>
              <set_packer packer="none"/>
              <losetup img="sd.img">
                <copy_from_partition part="2" artifact="hostname-from-image">/etc/hostname</copy_from_partition>
              </losetup>
            </project-finetuning>
            <pkg-list>
              <pkg>systemd-sysv</pkg>
              <pkg>less</pkg>
              <pkg>procps</pkg>
              <pkg>iproute2</pkg>
              <pkg>netbase</pkg>
            </pkg-list>
          </target>
          <archive>\(archive)</archive>
        </RootFileSystem>
        """
    }

    static let pinProject = """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>havel-it-pin</name><version>0.1</version><buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
            <preseed>
              <conf owner="tzdata" key="tzdata/Areas" type="select" value="Europe"/>
              <conf owner="tzdata" key="tzdata/Zones/Europe" type="select" value="Berlin"/>
            </preseed>
          </project>
          <target>
            <hostname>it-pin</hostname>
            <debootstrap><variant>minbase</variant></debootstrap>
            <package><tar><name>pin-rootfs.tar.gz</name></tar></package>
            <pkg-list><pkg version="6.*">netbase</pkg><pkg>tzdata</pkg></pkg-list>
          </target>
        </RootFileSystem>
        """

    @Test func arm64BuildThenAnUnchangedRebuildReusesTheInstallStage() async throws {
        let base = try Integration.temporaryDirectory("arm64")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let archive = try Integration.archive("""
            mkdir -p etc usr/local/bin opt/overlay
            echo 'from the archive' > etc/overlay.conf; chmod 600 etc/overlay.conf
            printf '#!/bin/sh\\necho hello\\n' > usr/local/bin/hello; chmod 755 usr/local/bin/hello
            echo data > opt/overlay/data.txt
            echo gone > etc/overlay-remove-me
            """)
        let loaded = try Integration.load(Self.arm64Project(archive: archive))
        let dir = base + "/build"
        let cache = base + "/cache"
        let first = try await Integration.build(loaded, in: dir, cache: cache)
        let rootfs = dir + "/rootfs"
        func read(_ path: String) -> String? { try? String(contentsOfFile: rootfs + path, encoding: .utf8) }
        func mode(_ path: String) -> Int? { (try? FileManager.default.attributesOfItem(atPath: rootfs + path))?[.posixPermissions] as? Int }

        #expect(first.status == .done)
        let install = try #require(first.stages.first { $0.name == "install packages" })
        #expect(!install.cached)
        #expect((install.downloads ?? 0) > 50)

        // Archive and finetuning.
        #expect(read("/etc/overlay.conf") == "from the archive\n")
        #expect(mode("/etc/overlay.conf") == 0o600)
        #expect(mode("/usr/local/bin/hello") == 0o755)
        #expect(read("/opt/overlay/data.txt") == "data\n")
        #expect(!FileManager.default.fileExists(atPath: rootfs + "/etc/overlay-remove-me"))
        #expect(FileManager.default.fileExists(atPath: rootfs + "/srv/app/data"))
        // cp -a copies a symlink as a symlink, as ELBE's `cp -av` does.
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: rootfs + "/srv/app/os-release.moved") == "../usr/lib/os-release")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: rootfs + "/data") == "/srv/app/data")
        var node = stat()
        #expect(lstat(rootfs + "/srv/app/null", &node) == 0 && (node.st_mode & S_IFMT) == S_IFCHR)
        #expect(read("/etc/app.conf") == "setting = 1\nmore = 2\n")
        #expect(mode("/etc/app.conf") == 0o640)
        #expect(read("/etc/built-on-machine") == "aarch64\n")
        #expect(read("/etc/operator-id")?.contains("uid=3001(fieldeng) gid=3001(fieldeng) groups=3001(fieldeng),3000(operators)") == true)
        #expect(FileManager.default.fileExists(atPath: rootfs + "/etc/raw-cmd-ran"))
        #expect((try? String(contentsOfFile: dir + "/artifacts/os-release", encoding: .utf8))?.contains("bookworm") == true)
        #expect(first.artifacts == ["artifacts/os-release", "hostname-from-image"])

        // Identity, accounts, fstab, getty, provenance.
        #expect(read("/etc/hostname") == "it-board\n")
        #expect(read("/etc/hosts")?.contains("it-board.example.org it-board") == true)
        let shadow = read("/etc/shadow") ?? ""
        let rootHash = try #require(shadow.split(separator: "\n").first { $0.hasPrefix("root:") }?.split(separator: ":")[1])
        #expect(rootHash.hasPrefix("$6$"))
        #expect(try PasswordHash.sha512crypt("rootpw", salt: String(rootHash.split(separator: "$")[1])) == rootHash)
        #expect(read("/etc/fstab")?.contains("LABEL=rfs / ext4 defaults 0 1\nLABEL=boot /boot vfat ro 0 2\n") == true)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: rootfs + "/etc/systemd/system/getty.target.wants/serial-getty@ttyAMA0.service").hasSuffix("/serial-getty@.service"))
        #expect(read("/etc/havel_version")?.contains("project: havel-it-arm64\nversion: 0.1\n") == true)
        #expect(!FileManager.default.fileExists(atPath: rootfs + "/usr/sbin/policy-rc.d"))

        // Inside the chroot: the target's machine, the host's kernel.
        let chroot = ChrootRunner(root: rootfs)
        #expect(try await chroot.run(["uname", "-m"]).standardOutput == "aarch64\n")
        let hostKernel = try String(contentsOfFile: "/proc/version", encoding: .utf8)
        #expect(try await chroot.run(["cat", "/proc/version"]).standardOutput == hostKernel)

        // source.xml pins exactly what dpkg says is installed; validation is clean.
        let query = try await chroot.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package} ${Version} ${Architecture}\n"])
        let dpkg = Set(query.standardOutput.split(separator: "\n").filter { $0.hasPrefix("ii ") }.map { String($0.dropFirst(3)).trimmingWhitespace() })
        let source = try ProjectLoader.load(path: dir + "/source.xml")
        #expect(source.isValid, "\(source.errors)")
        let pinned = Set(source.project.fullPackages.map { "\($0.name) \($0.version) \($0.arch ?? "")" })
        #expect(pinned == dpkg)
        #expect(source.project.fullPackages.allSatisfy { ($0.sha256?.count ?? 0) == 64 })
        let validation = try String(contentsOfFile: dir + "/validation.txt", encoding: .utf8)
        #expect(validation.contains("validation passed"))
        #expect(!validation.contains("ERROR"))
        let licences = try String(contentsOfFile: dir + "/licence-target.xml", encoding: .utf8)
        #expect(licences.contains("<pkglicense name=\"systemd\">"))
        let report = try String(contentsOfFile: dir + "/report.txt", encoding: .utf8)
        #expect(report.contains("/etc/overlay.conf") && report.contains("/etc/app.conf"))
        #expect(FileManager.default.fileExists(atPath: dir + "/havel-it-arm64-0.1-rootfs.tar.zst"))
        #expect(Mounts.mountPoints(under: dir).isEmpty)

        // The disk image: the table as the project says, the tree split by mountpoint, read back without mounting.
        #expect(first.outputs == ["sd.img"])
        let table = try await ProcessRunner.check(Command("sfdisk", ["--json", dir + "/sd.img"])).standardOutput
        let compact = table.filter { !$0.isWhitespace }
        #expect(compact.contains("\"start\":2048,\"size\":131072,\"type\":\"c\",\"bootable\":true"))
        #expect(compact.contains("\"start\":133120,\"size\":1964032,\"type\":\"83\""))
        let rfsOffset = (2048 + 131072) * 512
        #expect(try await ProcessRunner.run(Command("e2fsck", ["-fn", "\(dir)/sd.img?offset=\(rfsOffset)"])).succeeded)
        let listing = try await ProcessRunner.check(Command("debugfs", ["-R", "ls -p /etc", "\(dir)/sd.img?offset=\(rfsOffset)"])).standardOutput
        #expect(listing.contains("/app.conf/"))
        #expect((try? String(contentsOfFile: dir + "/hostname-from-image", encoding: .utf8)) == "it-board\n")
        #expect(first.artifacts.contains("hostname-from-image"))

        // The install's native helpers are kept with the stage, for a rebuild's initramfs.
        let stage = cache + "/stages/" + (install.key ?? "")
        #expect(FileManager.default.fileExists(atPath: stage + "/" + InstallStage.helpersEntry + "/ready"), "no native helpers kept in \(stage)")

        // An unchanged rebuild: the install stage comes from the stage cache and nothing is downloaded.
        let second = try await Integration.build(loaded, in: dir, cache: cache)
        let reused = try #require(second.stages.first { $0.name == "install packages" })
        #expect(reused.cached)
        let rebuildLog = (try? String(contentsOfFile: dir + "/log.txt", encoding: .utf8)) ?? ""
        #expect(rebuildLog.contains("the cached install's native helpers are at hand"), "the rebuild has the install's helpers")
        #expect(reused.downloads == 0)
        #expect(reused.key == install.key)
        #expect(read("/etc/app.conf") == "setting = 1\nmore = 2\n")
        let again = try ProjectLoader.load(path: dir + "/source.xml")
        #expect(Set(again.project.fullPackages.map { "\($0.name) \($0.version) \($0.sha256 ?? "")" }) ==
                Set(source.project.fullPackages.map { "\($0.name) \($0.version) \($0.sha256 ?? "")" }))
        #expect(Mounts.mountPoints(under: dir).isEmpty)
    }

    static let debootstrapProject = """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>havel-it-debootstrap</name><version>0.1</version><buildtype>amd64</buildtype>
            <mirror>
              <primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto>
              <url-list><url><source>http://MIRROR_HOST/debian bookworm main</source></url></url-list>
            </mirror>
            <suite>bookworm</suite>
            <buildimage><pkg-list><pkg>bzip2</pkg></pkg-list></buildimage>
            <preseed>
              <conf owner="locales" key="locales/locales_to_be_generated" type="multiselect" value="de_DE.UTF-8 UTF-8"/>
              <conf owner="locales" key="locales/default_environment_locale" type="select" value="de_DE.UTF-8"/>
            </preseed>
          </project>
          <target>
            <hostname>it-debootstrap</hostname>
            <debootstrap><variant>minbase</variant><type>debootstrap</type></debootstrap>
            <finetuning>
              <buildenv_command>echo made in the build environment > /buildenv-marker</buildenv_command>
              <b2t_cp path="/bin/bzip2">/usr/local/bin/bzip2-from-buildenv</b2t_cp>
              <t2b_cp path="/etc/hostname">/target-hostname</t2b_cp>
            </finetuning>
            <pkg-list><pkg arch="all">netbase</pkg><pkg>locales</pkg><pkg arch="i386">zlib1g</pkg></pkg-list>
          </target>
        </RootFileSystem>
        """

    @Test func debootstrapWithABuildEnvironment() async throws {
        let base = try Integration.temporaryDirectory("debootstrap")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let dir = base + "/build"
        let state = try await Integration.build(try Integration.load(Self.debootstrapProject), in: dir, cache: base + "/cache")
        #expect(state.status == .done)
        #expect(state.stages.map(\.name).contains("build environment"))
        let target = try DpkgStatus.read(root: dir + "/rootfs").map(\.name)
        let buildenv = try DpkgStatus.read(root: dir + "/buildenv").map(\.name)
        #expect(target.contains("netbase"))
        #expect(!target.contains("bzip2"), "buildimage packages never go into the target")
        // <pkg arch="i386">: apt in the debootstrapped tree installed it through multiarch.
        #expect(try DpkgStatus.read(root: dir + "/rootfs").contains { $0.name == "zlib1g" && $0.architecture == "i386" })
        #expect(buildenv.contains("bzip2"))
        // The build environment's licences, as ELBE's licence-chroot; the target's name only the target's packages.
        let chrootLicences = try String(contentsOfFile: dir + "/licence-chroot.txt", encoding: .utf8)
        #expect(chrootLicences.contains("\nbzip2:\n"))
        #expect(FileManager.default.fileExists(atPath: dir + "/licence-chroot.xml"))
        #expect(!(try String(contentsOfFile: dir + "/licence-target.txt", encoding: .utf8)).contains("\nbzip2:\n"))
        // source.xml records the build environment's packages (<debootstrappkgs>), bzip2 with the sha256 of its .deb,
        // which the build kept in the package cache, checked, for the binary CD.
        let recorded = try ProjectLoader.load(path: dir + "/source.xml").project
        let bzip2 = try #require(recorded.buildEnvironmentPackages.first { $0.name == "bzip2" })
        #expect(!recorded.fullPackages.contains { $0.name == "bzip2" })
        #expect(recorded.fullPackages.contains { $0.priority != nil }, "prio is recorded")
        let onlyThere = try BinaryCdromStage.buildEnvironmentOnly(BuildDirectory(dir), target: try DpkgStatus.read(root: dir + "/rootfs"))
        let package = try #require(onlyThere.first { $0.name == "bzip2" })
        let deb = base + "/cache/debs/" + DebVerification.debFileName(package)
        let digest = try await Digest.sha256(files: [deb])[deb]
        #expect(digest != nil && digest == bzip2.sha256)
        #expect(HavelCache(path: base + "/cache").readDebIndex()[DebVerification.debFileName(package)] == bzip2.sha256)
        #expect(FileManager.default.isExecutableFile(atPath: dir + "/rootfs/usr/local/bin/bzip2-from-buildenv"))
        #expect((try? String(contentsOfFile: dir + "/buildenv/buildenv-marker", encoding: .utf8)) == "made in the build environment\n")
        #expect((try? String(contentsOfFile: dir + "/buildenv/target-hostname", encoding: .utf8)) == "it-debootstrap\n")
        #expect(!FileManager.default.fileExists(atPath: dir + "/rootfs/buildenv-marker"))
        // <preseed>: locales, installed by apt after debootstrap, found the answers.
        #expect((try? String(contentsOfFile: dir + "/rootfs/etc/default/locale", encoding: .utf8))?.contains("LANG=de_DE.UTF-8") == true)
        #expect((try? String(contentsOfFile: dir + "/rootfs/etc/locale.gen", encoding: .utf8))?.contains("\nde_DE.UTF-8 UTF-8") == true)
        // A url-list source line becomes deb-src in the target's sources.list; no apt lists or .debs are left in it.
        let sources = try String(contentsOfFile: dir + "/rootfs/etc/apt/sources.list", encoding: .utf8)
        #expect(sources.contains("deb-src http://"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/rootfs/var/cache/apt/archives").filter { $0.hasSuffix(".deb") }.isEmpty)
        #expect(try String(contentsOfFile: dir + "/validation.txt", encoding: .utf8).contains("validation passed"))
        #expect(Mounts.mountPoints(under: dir).isEmpty)
    }

    /// amd64, so that it costs CI little: foreign architectures are built by the arm64 test above and ELBE's
    /// armel example (`ElbeExampleTests`), and armhf by the slow matrix.
    @Test func aVersionPinAPreseedAnswerAndATarPackage() async throws {
        let base = try Integration.temporaryDirectory("pin")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let dir = base + "/build"
        let state = try await Integration.build(try Integration.load(Self.pinProject), in: dir, cache: base + "/cache")
        #expect(state.status == .done)
        #expect(state.packedRootfs == "pin-rootfs.tar.gz")
        #expect(try await ChrootRunner(root: dir + "/rootfs").run(["dpkg", "--print-architecture"]).standardOutput == "amd64\n")
        #expect((try? String(contentsOfFile: dir + "/rootfs/etc/apt/preferences.d/havel", encoding: .utf8))?.contains("Pin: version 6.*") == true)
        // <preseed>: tzdata was configured with the project's answers, not its default (Etc/UTC).
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/rootfs/etc/localtime").hasSuffix("zoneinfo/Europe/Berlin"))
        #expect(try String(contentsOfFile: dir + "/validation.txt", encoding: .utf8).contains("validation passed"))
        let listing = try await ProcessRunner.check(Command("tar", ["-tzf", dir + "/pin-rootfs.tar.gz"])).standardOutput
        let entries = listing.split(separator: "\n").map(String.init)
        #expect(entries.contains("./etc/hostname"))
        #expect(entries == entries.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } || entries.first == "./")
    }
}
