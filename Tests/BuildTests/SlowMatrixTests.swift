import Foundation
@testable import Build
import Debian
import HavelCore
import ProjectXML
import SystemKit
import Testing

/// `make test-slow`: the broad matrix of real builds (architectures, releases, both install tools, a
/// project as users write it, a GRUB image that boots, every shipped example). Too slow for `make test`;
/// run it before resolving an issue that touches one of these paths. `HAVEL_SLOW_CASES=a,b` runs only the
/// named cases.
enum SlowMatrix {
    static let missingReason: String? = {
        guard ProcessInfo.processInfo.environment["HAVEL_SLOW_TESTS"] == "1" else {
            return "the slow matrix runs with HAVEL_SLOW_TESTS=1 (make test-slow)"
        }
        if let reason = Integration.missingReason { return reason }
        for tool in ["debootstrap", "/usr/libexec/qemu-binfmt/arm-binfmt-P", "qemu-system-x86_64", "openssl"] where ProcessRunner.which(tool) == nil {
            return "needs \(tool) (scripts/setup-host.sh installs it)"
        }
        return nil
    }()

    static var available: Bool { missingReason == nil }
    static var skipReason: Comment { Comment(rawValue: missingReason ?? "") }

    /// The cases to run: all, or those `HAVEL_SLOW_CASES` names.
    static var selected: [MatrixCase] {
        guard let names = ProcessInfo.processInfo.environment["HAVEL_SLOW_CASES"]?.split(separator: ",").map(String.init) else { return all }
        return all.filter { names.contains($0.name) }
    }

    /// A small project: minbase, the packages given, the security suite when asked; `target` goes into `<target>`.
    static func project(_ name: String, buildtype: String, suite: String, tool: DebootstrapSpec.Tool? = nil, security: Bool = false,
                        packages: [String], target: String = "", checks: String = "") -> String {
        let urls = security ? "<url-list><url><binary>http://MIRROR_HOST/debian-security \(suite)-security main</binary></url></url-list>" : ""
        return """
            <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
              <project>
                <name>havel-slow-\(name)</name><version>0.1</version><buildtype>\(buildtype)</buildtype>
                <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto>\(urls)</mirror>
                <suite>\(suite)</suite>
              </project>
              \(checks)
              <target>
                <hostname>slow-\(name)</hostname>
                <debootstrap><variant>minbase</variant>\(tool.map { "<type>\($0.rawValue)</type>" } ?? "")</debootstrap>
                \(target)
                <pkg-list>\(packages.map { "<pkg>\($0)</pkg>" }.joined())</pkg-list>
              </target>
            </RootFileSystem>
            """
    }

    static let small = ["netbase", "less"]

    /// As users write a project: plain-text passwords, a user, ssh and systemd.
    static let usersProject = project("users", buildtype: "amd64", suite: "bookworm", packages: ["openssh-server", "systemd-sysv"], target: """
        <passwd>rootsecret</passwd>
        <finetuning><adduser shell="/bin/bash" passwd="alicesecret">alice</adduser></finetuning>
        """)

    /// ELBE's amd64-with-grub example on bookworm: an msdos image with GRUB for BIOS, a kernel, a login check
    /// whose KVM options Havel rewrites for software emulation.
    static let grubProject = project("grub", buildtype: "amd64", suite: "bookworm", packages: ["grub-pc", "linux-image-amd64", "systemd-sysv"], target: """
        <passwd>root</passwd>
        <console>ttyS0,115200</console>
        <images>
          <msdoshd>
            <name>sda.img</name><size>1500MiB</size><grub-install/>
            <partition><size>1400MiB</size><label>rfs</label></partition>
            <partition><size>64kB</size><label>bindata</label><binary>/etc/hosts</binary></partition>
          </msdoshd>
        </images>
        <fstab><bylabel><label>rfs</label><mountpoint>/</mountpoint><fs><type>ext4</type></fs></bylabel></fstab>
        """, checks: """
        <check-image-list>
          <check>
            <img>sda.img</img><interpreter>qemu-system-x86_64</interpreter>
            <interpreter-opts>-m 1G -enable-kvm -cpu host -drive format=raw,file=$ELBE_IMG -nographic -nic none</interpreter-opts>
            <action><login>root</login></action>
          </check>
        </check-image-list>
        """)

    /// An arm64 GPT image with GRUB for EFI at the removable path, booted under qemu-system-aarch64 -M virt with
    /// the AAVMF firmware that <interpreter-firmware> `features` choose, to a login.
    static func arm64EFI(_ name: String, packages: [String], firmwareFeatures: String) -> String {
        project(name, buildtype: "aarch64", suite: "bookworm", packages: packages + ["grub-efi-arm64-bin", "linux-image-arm64", "systemd-sysv"],
                target: """
        <passwd>root</passwd>
        <console>ttyAMA0,115200</console>
        <images>
          <gpthd>
            <name>sda.img</name><size>1500MiB</size><grub-install/>
            <partition><size>64MiB</size><label>efi</label><name>EFI</name></partition>
            <partition><size>remain</size><label>rfs</label><name>root</name></partition>
          </gpthd>
        </images>
        <fstab>
          <bylabel><label>rfs</label><mountpoint>/</mountpoint><fs><type>ext4</type></fs></bylabel>
          <bylabel><label>efi</label><mountpoint>/boot/efi</mountpoint><fs><type>vfat</type></fs></bylabel>
        </fstab>
        """, checks: """
        <check-image-list>
          <check>
            <img>sda.img</img><interpreter>qemu-system-aarch64</interpreter>
            <interpreter-firmware architecture="aarch64" machine="virt-7.2" interface_types="uefi" features="\(firmwareFeatures)"/>
            <interpreter-opts>-M virt -cpu max -m 1G -drive format=raw,file=$ELBE_IMG,if=virtio -nographic -nic none</interpreter-opts>
            <action><login>root</login></action>
          </check>
        </check-image-list>
        """)
    }

    /// GRUB alone, on the firmware Secure Boot does not enforce.
    static let arm64EFIProject = arm64EFI("arm64-efi", packages: [], firmwareFeatures: "!secure-boot")

    /// shim with Debian's signed GRUB and kernel, booted with Secure Boot enforced (AAVMF with Microsoft's keys
    /// enrolled): the kernel says so on the console (the check's transcript) before the login.
    static let arm64ShimProject = arm64EFI("arm64-shim", packages: ["shim-signed", "grub-efi-arm64-signed"], firmwareFeatures: "secure-boot enrolled-keys")

    static let all: [MatrixCase] = [
        MatrixCase("bookworm-amd64", .inline(project("bookworm-amd64", buildtype: "amd64", suite: "bookworm", packages: small))),
        MatrixCase("bookworm-arm64", .inline(project("bookworm-arm64", buildtype: "aarch64", suite: "bookworm", packages: small))),
        MatrixCase("bookworm-armhf", .inline(project("bookworm-armhf", buildtype: "armhf", suite: "bookworm", packages: small))),
        MatrixCase("bullseye-amd64-mmdebstrap", .inline(project("bullseye-amd64", buildtype: "amd64", suite: "bullseye", tool: .mmdebstrap,
                                                               security: true, packages: small))),
        // Without bullseye-security: this machine's mirror lists its arm64 packages but lacks some of their files (404).
        MatrixCase("bullseye-arm64-mmdebstrap", .inline(project("bullseye-arm64", buildtype: "aarch64", suite: "bullseye", tool: .mmdebstrap,
                                                               packages: small))),
        MatrixCase("trixie-amd64", .inline(project("trixie-amd64", buildtype: "amd64", suite: "trixie", security: true, packages: small))),
        MatrixCase("bookworm-amd64-debootstrap", .inline(project("debootstrap-amd64", buildtype: "amd64", suite: "bookworm", tool: .debootstrap,
                                                                packages: small))),
        MatrixCase("bookworm-arm64-debootstrap", .inline(project("debootstrap-arm64", buildtype: "aarch64", suite: "bookworm", tool: .debootstrap,
                                                                packages: small))),
        MatrixCase("users-ssh-systemd", .inline(usersProject), passwords: ["root": "rootsecret", "alice": "alicesecret"],
                   files: ["/etc/systemd/system/multi-user.target.wants/ssh.service"]),
        MatrixCase("grub-image-boots", .inline(grubProject)),
        MatrixCase("arm64-efi-grub-boots", .inline(arm64EFIProject), files: ["/boot/efi/EFI/BOOT/BOOTAA64.EFI"]),
        MatrixCase("arm64-efi-shim-secure-boot", .inline(arm64ShimProject),
                   files: ["/boot/efi/EFI/BOOT/BOOTAA64.EFI", "/boot/efi/EFI/BOOT/grubaa64.efi", "/boot/efi/EFI/debian/grub.cfg"],
                   console: ["secureboot: Secure boot enabled"]),
    ] + shippedProjects.map { MatrixCase($0, .file($0)) }

    /// Every project the repository ships: examples/*.xml and bench/reference-*.xml.
    static let shippedProjects: [String] = ["examples", "bench"].flatMap { folder in
        ((try? FileManager.default.contentsOfDirectory(atPath: Integration.repositoryRoot + "/" + folder)) ?? [])
            .filter { $0.hasSuffix(".xml") && (folder == "examples" || $0.hasPrefix("reference-")) }
            .sorted().map { folder + "/" + $0 }
    }
}

/// One build of the matrix and what it must show beyond what every build shows.
struct MatrixCase: Sendable, CustomTestStringConvertible {
    enum Source: Sendable {
        /// Project text with `MIRROR_HOST`, built through the Builder API.
        case inline(String)
        /// A file of the repository, built as a user would: `havel build FILE --mirror host`.
        case file(String)
    }

    var name: String
    var source: Source
    /// Accounts whose /etc/shadow hash must verify against this plain password.
    var passwords: [String: String]
    /// Paths that must exist in the tree (links are not followed).
    var files: [String]

    /// Text the boot checks' serial transcripts (`check-*.log` in the build directory) must hold.
    var console: [String]

    init(_ name: String, _ source: Source, passwords: [String: String] = [:], files: [String] = [], console: [String] = []) {
        self.name = name
        self.source = source
        self.passwords = passwords
        self.files = files
        self.console = console
    }

    var testDescription: String { name }
}

// Serialized: two builds at once only compete for the cores. The gate sits on the one parameterized test
// rather than on the suite, so `make test` prints a single skip line for the whole matrix (a skipped suite
// adds its own line for each of its tests); a test added here needs the same trait.
@Suite(.serialized)
struct SlowMatrixTests {
    @Test(.enabled(if: SlowMatrix.available, SlowMatrix.skipReason), arguments: SlowMatrix.selected)
    func build(_ matrixCase: MatrixCase) async throws {
        let base = try Integration.temporaryDirectory("slow")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let dir = base + "/build"
        let started = Date()
        let project: Project
        let state: BuildState
        switch matrixCase.source {
        case .inline(let text):
            let loaded = try Integration.load(text, file: matrixCase.name + ".xml")
            project = loaded.project
            state = try await Integration.build(loaded, in: dir, cache: base + "/cache", useStageCache: false)
        case .file(let path):
            let havel = try #require(Integration.havelExecutable, "swift build makes .build/debug/havel")
            let file = Integration.repositoryRoot + "/" + path
            project = try Integration.load(try String(contentsOfFile: file, encoding: .utf8), file: path).project
            let result = try await ProcessRunner.run(Command(havel, ["build", file, "-o", dir, "--mirror", "host", "--cache", base + "/cache", "--quiet"]))
            #expect(result.succeeded, "\(result.standardError)")
            state = try #require(BuildState.read(dir + "/state.json"))
        }
        print("slow matrix: \(matrixCase.name) took \(Int(Date().timeIntervalSince(started))) s")
        try await verify(matrixCase, project: project, state: state, in: dir)
    }

    /// What every build must show: the packed rootfs, the release, the packages, the architecture, the
    /// install tool, each image and boot check, the passwords, and nothing left mounted.
    func verify(_ matrixCase: MatrixCase, project: Project, state: BuildState, in dir: String) async throws {
        #expect(state.status == .done, "\(state.reason ?? "")")
        let rootfs = dir + "/rootfs"
        let packed = try #require(state.packedRootfs)
        #expect(((try? FileManager.default.attributesOfItem(atPath: dir + "/" + packed))?[.size] as? Int ?? 0) > 1_000_000, "\(packed)")

        let osRelease = (try? String(contentsOfFile: rootfs + "/etc/os-release", encoding: .utf8)) ?? ""
        #expect(osRelease.contains("VERSION_CODENAME=\(project.suite)\n"), "\(osRelease)")

        let installed = try DpkgStatus.read(root: rootfs)
        let names = Set(installed.map(\.name))
        let missing = project.target.packages.map(\.name).filter { !names.contains($0) }
        #expect(missing.isEmpty, "not installed: \(missing)")
        let architecture = try #require(project.architecture)
        #expect(installed.first { $0.name == "dpkg" }?.architecture == architecture.debianName)

        // /bin/sh's ELF header: class (32/64 bit) and machine.
        let shell = try RootedFileSystem(root: rootfs).readFile("/bin/sh")
        let (elfClass, machine) = try #require(Self.elf[architecture])
        #expect(shell.count > 20 && shell[0..<4] == [0x7F, 0x45, 0x4C, 0x46])
        #expect(shell.count > 20 && shell[4] == elfClass && UInt16(shell[18]) | UInt16(shell[19]) << 8 == machine, "/bin/sh is not \(architecture)")

        // The install tool the project chose ran (its own success line is in the log).
        let log = (try? String(contentsOfFile: dir + "/log.txt", encoding: .utf8)) ?? ""
        switch project.target.debootstrap.tool ?? .mmdebstrap {
        case .debootstrap: #expect(log.contains("I: Base system installed successfully."))
        default: #expect(log.contains("I: success in"), "no mmdebstrap success line in log.txt")
        }

        for image in project.target.images {
            let output = state.outputs.first { $0 == image.name || $0.hasPrefix(image.name + ".") }
            #expect(output.map { FileManager.default.fileExists(atPath: dir + "/" + $0) } == true, "\(image.name) not in \(state.outputs)")
        }
        #expect(state.checks.count == project.checks.count && state.checks.values.allSatisfy { $0 }, "\(state.checks)")

        let shadow = (try? String(contentsOfFile: rootfs + "/etc/shadow", encoding: .utf8)) ?? ""
        for (user, password) in matrixCase.passwords.sorted(by: { $0.key < $1.key }) {
            let hash = shadow.split(separator: "\n").first { $0.hasPrefix(user + ":") }?.split(separator: ":", omittingEmptySubsequences: false)[1] ?? ""
            let fields = hash.split(separator: "$")
            #expect(hash.hasPrefix("$6$") && fields.count == 3, "\(user): \(hash)")
            guard fields.count == 3 else { continue }
            let openssl = try await ProcessRunner.check(Command("openssl", ["passwd", "-6", "-salt", String(fields[1]), password]))
            #expect(openssl.standardOutput.trimmingWhitespace() == hash, "\(user)'s hash does not verify")
        }
        for path in matrixCase.files {
            #expect((try? FileManager.default.attributesOfItem(atPath: rootfs + path)) != nil, "\(path) missing")
        }
        if !matrixCase.console.isEmpty {
            let logs = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("check-") && $0.hasSuffix(".log") }
            let transcripts = logs.compactMap { try? String(contentsOfFile: dir + "/" + $0, encoding: .utf8) }.joined()
            for text in matrixCase.console { #expect(transcripts.contains(text), "\(text) not in \(logs)") }
        }
        #expect(Mounts.mountPoints(under: dir).isEmpty)
    }

    /// ELF class (1: 32 bit, 2: 64 bit) and e_machine by architecture.
    static let elf: [Architecture: (UInt8, UInt16)] = [
        .amd64: (2, 62), .i386: (1, 3), .arm64: (2, 183), .armhf: (1, 40), .armel: (1, 40),
        .riscv64: (2, 243), .ppc64el: (2, 21), .powerpc: (1, 20),
    ]
}
