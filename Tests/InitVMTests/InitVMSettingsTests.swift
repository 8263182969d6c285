import DaemonAPI
import Debian
import Foundation
import HavelCore
import Testing
@testable import InitVM
import SystemKit

struct InitVMSettingsTests {
    @Test func defaultsWithoutAnInitVMSection() throws {
        let settings = try InitVMSettings(spec: nil)
        #expect(settings.suite == "bookworm")
        #expect(settings.imageSize == 20 << 30)
        #expect(settings.memoryMiB == 2048)
        #expect(settings.maxCPUs == nil)
        #expect(settings.cpus(hostCPUs: 6) == 6)
        #expect(settings.apiPort == 7588)
        #expect(settings.kernelAppend == "root=/dev/vda rw console=ttyS0" + InitVMDefaults.timerCheckOption)
    }

    @Test func imageFormatSwapAndBuildtype() throws {
        var spec = InitVMSpec(buildtype: "amd64")
        spec.imageFormat = "raw"
        spec.swapSize = "1GiB"
        let settings = try InitVMSettings(spec: spec)
        #expect(settings.diskFormat == "raw")
        #expect(settings.swapBytes == 1 << 30)
        #expect(try InitVMSettings(spec: nil).diskFormat == "qcow2")
        var launch = QemuLaunch(accelerator: .tcg, memoryMiB: 1024, cpus: 1, apiPort: 7588, forwards: [], kernelAppend: "")
        launch.diskFormat = settings.diskFormat
        let arguments = QemuCommandLine.arguments(launch, directory: InitVMDirectory("/srv/vm"))
        #expect(arguments.contains("file=/srv/vm/buildenv.img,format=raw,if=virtio,discard=unmap"))

        let files = ImageRecipe.payloadFiles(token: "t", swapBytes: settings.swapBytes)
        let unit = try #require(files.first { $0.path == "/etc/systemd/system/havel-swap.service" })
        #expect(unit.contents.contains("fallocate -l 1073741824 /swapfile.new"))
        #expect(unit.contents.contains("swapon /swapfile"))
        #expect(!ImageRecipe.payloadFiles(token: "t").contains { $0.path.contains("swap") })
        #expect(ImageRecipe.customizeHook(payload: "/p", finetuning: [], initramfsCommands: "true").contains("systemctl enable havel-swap.service"))

        #expect(throws: HavelError.self) { try InitVMSettings(spec: InitVMSpec(buildtype: "arm64")) }
        var qed = InitVMSpec()
        qed.imageFormat = "vdi"
        #expect(throws: HavelError.self) { try InitVMSettings(spec: qed) }
    }

    @Test func followsTheInitVMSection() throws {
        let spec = InitVMSpec(suite: "trixie", size: "30GiB", memory: "4GiB", maxCPUs: 4,
                              portForwards: [PortForward(proto: "tcp", guestPort: 22, hostPort: 5022)])
        let settings = try InitVMSettings(spec: spec, apiPort: 8000)
        #expect(settings.suite == "trixie")
        #expect(settings.imageSize == 30 << 30)
        #expect(settings.memoryMiB == 4096)
        #expect(settings.cpus(hostCPUs: 2) == 2)
        #expect(settings.cpus(hostCPUs: 16) == 4)
        #expect(settings.forwards == [PortForward(proto: "tcp", guestPort: 22, hostPort: 5022)])
        #expect(settings.apiPort == 8000)
    }

    @Test func memorySizes() {
        #expect(InitVMSettings.memoryMiB(parsing: "2GiB") == 2048)
        #expect(InitVMSettings.memoryMiB(parsing: "1024") == 1024)
        #expect(InitVMSettings.memoryMiB(parsing: "512MiB") == 512)
        #expect(InitVMSettings.memoryMiB(parsing: "100") == nil)
        #expect(InitVMSettings.memoryMiB(parsing: "lots") == nil)
    }

    @Test func rejectsWhatCannotWork() {
        #expect(throws: HavelError.self) { try InitVMSettings(spec: InitVMSpec(size: "10MiB")) }
        #expect(throws: HavelError.self) { try InitVMSettings(spec: InitVMSpec(memory: "2 bytes")) }
        #expect(throws: HavelError.self) { try InitVMSettings(spec: InitVMSpec(maxCPUs: 0)) }
        #expect(throws: HavelError.self) {
            try InitVMSettings(spec: InitVMSpec(portForwards: [PortForward(proto: "sctp", guestPort: 1, hostPort: 2)]))
        }
        #expect(throws: HavelError.self) {
            try InitVMSettings(spec: InitVMSpec(portForwards: [PortForward(proto: "tcp", guestPort: 80, hostPort: 7588)]))
        }
    }

    @Test func settingsRoundTrip() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        var settings = try InitVMSettings(spec: InitVMSpec(memory: "3GiB"))
        settings.created = Date(timeIntervalSince1970: 1_700_000_000)
        try settings.write(directory.path + "/initvm.json")
        #expect(try InitVMSettings.read(directory.path + "/initvm.json") == settings)
    }

    @Test func directoryLayout() {
        let directory = InitVMDirectory("/srv/vm/")
        #expect(directory.path == "/srv/vm")
        #expect(directory.image == "/srv/vm/buildenv.img")
        #expect(directory.token == "/srv/vm/" + DaemonAuth.tokenFileName)
        #expect(InitVMDirectory("rel").path.hasPrefix("/"))
    }
}

struct InitVMSourcesTests {
    let mirror = HostMirror(proto: "http", host: "deb.example.org", path: "/debian")
    let security = HostMirror(proto: "http", host: "deb.example.org", path: "/debian-security")

    @Test func hostMirrorWithCompanionSuites() throws {
        let lines = try InitVMSources.lines(spec: nil, suite: "bookworm", host: { mirror }, hostSecurity: { security })
        #expect(lines == [
            "deb http://deb.example.org/debian bookworm main",
            "deb http://deb.example.org/debian bookworm-updates main",
            "deb http://deb.example.org/debian-security bookworm-security main",
        ])
        let sid = try InitVMSources.lines(spec: nil, suite: "sid", host: { mirror }, hostSecurity: { security })
        #expect(sid == ["deb http://deb.example.org/debian sid main"])
    }

    @Test func projectMirror() throws {
        var spec = InitVMSpec()
        spec.mirror = Mirror(primary: PrimaryMirror(host: "ftp.example.com", path: "/debian", proto: "https"),
                             urls: [MirrorURL(binary: "http://repo.example.com/extra bookworm main")])
        let lines = try InitVMSources.lines(spec: spec, suite: "bookworm", host: { mirror }, hostSecurity: { security })
        #expect(lines == ["deb https://ftp.example.com/debian bookworm main", "deb http://repo.example.com/extra bookworm main"])
    }

    @Test func placeholderMeansTheHostsMirror() throws {
        var spec = InitVMSpec()
        spec.mirror = Mirror(primary: PrimaryMirror(host: Mirror.placeholderHost, path: "/debian", proto: "http"))
        let lines = try InitVMSources.lines(spec: spec, suite: "bookworm", host: { mirror }, hostSecurity: { nil })
        #expect(lines == ["deb http://deb.example.org/debian bookworm main", "deb http://deb.example.org/debian bookworm-updates main"])
    }
}

struct ImageRecipeTests {
    @Test func packagesAndDaemonUnit() {
        let packages = ImageRecipe.packages(extra: ["libcrypt1", "busybox", "zstd"])
        for name in ["linux-image-amd64", "systemd-sysv", "mmdebstrap", "debootstrap", "qemu-user-static", "e2fsprogs",
                     "dosfstools", "mtools", "squashfs-tools", "fdisk", "zstd", "xz-utils", "libcrypt1", "busybox"] {
            #expect(packages.contains(name), "\(name)")
        }
        #expect(packages.filter { $0 == "zstd" }.count == 1)
        #expect(ImageRecipe.daemonUnit.contains(
            "ExecStart=/usr/local/bin/havel daemon --listen 0.0.0.0:7588 --data /var/lib/havel --token-file /etc/havel/api-token"))
        #expect(ImageRecipe.daemonUnit.contains("WantedBy=multi-user.target"))
        // The daemon makes a cgroup per build below its service's, which systemd allows only when delegated.
        #expect(ImageRecipe.daemonUnit.split(separator: "\n").contains("Delegate=yes"))
    }

    @Test func payloadKeepsTheInitramfsSmall() {
        let files = ImageRecipe.payloadFiles(token: "abc")
        let conf = files.first { $0.path == "/etc/initramfs-tools/conf.d/havel-initvm" }
        #expect(conf?.contents.contains("MODULES=list") == true)
        let modules = files.first { $0.path == "/etc/initramfs-tools/modules" }?.contents ?? ""
        #expect(modules.split(separator: "\n") == ["virtio_pci", "virtio_blk", "virtio_net", "ext4"])
        let token = files.first { $0.path == "/etc/havel/api-token" }
        #expect(token?.contents == "abc\n")
        #expect(token?.mode == 0o600)
        #expect(files.contains { $0.path.hasSuffix(".network") && $0.contents.contains("DHCP=ipv4") })
        #expect(ImageRecipe.resolvConf == "nameserver 10.0.2.3\n")
    }

    /// The console's getty must not wait for udev: systemd's serial-getty@ttyS0 is bound to dev-ttyS0.device
    /// and fails for good when udev's coldplug takes over 90 s (seen under emulation on a busy host).
    @Test func theConsoleGettyDoesNotWaitForUdev() throws {
        let files = ImageRecipe.payloadFiles(token: "t")
        let unit = try #require(files.first { $0.path == "/etc/systemd/system/havel-console.service" })
        let lines = unit.contents.split(separator: "\n")
        #expect(lines.contains("ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 ttyS0 $TERM"))
        #expect(lines.contains("WantedBy=getty.target"))
        #expect(!lines.contains { $0.contains(".device") }, "no dependency on a udev device unit: \(lines)")
        #expect(!files.contains { $0.path.contains("serial-getty") })
        let hook = ImageRecipe.customizeHook(payload: "/p", finetuning: [], initramfsCommands: "true")
        #expect(hook.contains("systemctl enable systemd-networkd.service havel-daemon.service havel-console.service"))
        #expect(hook.split(separator: "\n").contains { $0.contains("systemctl mask") && $0.hasSuffix(" serial-getty@ttyS0.service") })
    }

    @Test func customizeHookRunsFinetuningQuoted() {
        let hook = ImageRecipe.customizeHook(payload: "/tmp/p", finetuning: ["echo 'hi there' > /x"], initramfsCommands: "update-initramfs -u")
        #expect(hook.contains("cp -a /tmp/p/. \"$root\"/"))
        #expect(hook.contains("chroot \"$root\" /bin/sh -c 'echo '\\''hi there'\\'' > /x'"))
        #expect(hook.contains("systemctl enable systemd-networkd.service havel-daemon.service"))
        // The initramfs is made last, after finetuning had its say.
        #expect(hook.range(of: "update-initramfs")!.lowerBound > hook.range(of: "hi there")!.lowerBound)
    }

    @Test func binaryDependenciesFromLddAndDpkg() {
        let ldd = """
        \tlinux-vdso.so.1 (0x00007ffd)
        \tlibcrypt.so.1 => /lib/x86_64-linux-gnu/libcrypt.so.1 (0x00007f8c)
        \tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f8c)
        \t/lib64/ld-linux-x86-64.so.2 (0x00007f8c)
        """
        #expect(BinaryDependencies.libraryPaths(lddOutput: ldd) == ["/lib/x86_64-linux-gnu/libcrypt.so.1", "/lib/x86_64-linux-gnu/libstdc++.so.6"])
        let dpkg = """
        libcrypt1:amd64: /lib/x86_64-linux-gnu/libcrypt.so.1
        libstdc++6:amd64: /usr/lib/x86_64-linux-gnu/libstdc++.so.6
        """
        let owners = BinaryDependencies.owners(dpkgOutput: dpkg)
        #expect(owners.packages == ["libcrypt1", "libstdc++6"])
        #expect(owners.paths.contains("/usr/lib/x86_64-linux-gnu/libstdc++.so.6"))
    }

    /// A development build's runtime is the toolchain's directory beside libswiftCore.so; packaged libraries are not part of it.
    @Test func theSwiftRuntimeIsWhatLiesBesideLibswiftCore() {
        let libraries = ["/lib/x86_64-linux-gnu/libcrypt.so.1", "/opt/swift/usr/lib/swift/linux/libswiftCore.so",
                         "/opt/swift/usr/lib/swift/linux/lib_FoundationICU.so", "/lib/x86_64-linux-gnu/libstdc++.so.6"]
        #expect(BinaryDependencies.swiftRuntimeLibraries(libraries)
                == ["/opt/swift/usr/lib/swift/linux/libswiftCore.so", "/opt/swift/usr/lib/swift/linux/lib_FoundationICU.so"])
        #expect(BinaryDependencies.swiftRuntimeLibraries(["/lib/x86_64-linux-gnu/libcrypt.so.1"]).isEmpty)
    }

    /// The test binary itself is a development build: its needs are packages of this host and the runtime.
    @Test(.enabled(if: ProcessRunner.which("dpkg-query") != nil, "needs dpkg-query"))
    func aDevelopmentBuildNeedsPackagesAndItsRuntime() async throws {
        let needs = try await BinaryDependencies.needs(of: CommandLine.arguments[0])
        #expect(needs.swiftRuntime.contains { $0.hasSuffix("/libswiftCore.so") }, "\(needs)")
        #expect(needs.swiftRuntime.allSatisfy { $0.hasPrefix("/") && FileManager.default.fileExists(atPath: $0) })
        #expect(needs.packages.contains("libc6"), "\(needs)")
    }

    @Test func tokenFileIsPrivate() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let path = directory.path + "/api-token"
        let token = try APIToken.create(at: path)
        #expect(token.count == 64)
        #expect((try? APIToken.read(at: path)) == token)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try APIToken.create(at: path) != token)
    }
}

struct QemuCommandLineTests {
    let directory = InitVMDirectory("/srv/initvm")

    @Test func tcgLaunch() {
        let launch = QemuLaunch(accelerator: .tcg, memoryMiB: 2048, cpus: 2, apiPort: 7588,
                                forwards: [PortForward(proto: "tcp", guestPort: 22, hostPort: 5022)],
                                kernelAppend: InitVMDefaults.kernelAppend)
        let arguments = QemuCommandLine.arguments(launch, directory: directory)
        let line = arguments.joined(separator: " ")
        #expect(line.contains("-accel tcg"))
        #expect(!line.contains("kvm"))
        #expect(line.contains("-m 2048 -smp 2"))
        #expect(line.contains("-kernel /srv/initvm/vmlinuz -initrd /srv/initvm/initrd.img -append root=/dev/vda rw console=ttyS0"))
        #expect(arguments.contains("file=/srv/initvm/buildenv.img,format=qcow2,if=virtio,discard=unmap"))
        #expect(arguments.contains("user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:7588-:7588,hostfwd=tcp:127.0.0.1:5022-:22"))
        #expect(arguments.contains { $0.hasPrefix("socket,id=serial0,path=/srv/initvm/console.sock,server=on,wait=off") })
        #expect(line.contains("-serial chardev:serial0"))
        #expect(line.contains("-qmp unix:/srv/initvm/qmp.sock,server=on,wait=off"))
        #expect(line.contains("-daemonize -pidfile /srv/initvm/qemu.pid"))
    }

    @Test func kvmLaunch() {
        let launch = QemuLaunch(accelerator: .kvm, memoryMiB: 1024, cpus: 1, apiPort: 9000, forwards: [], kernelAppend: "x")
        let line = QemuCommandLine.arguments(launch, directory: directory).joined(separator: " ")
        #expect(line.contains("-accel kvm -cpu host"))
        #expect(line.contains("hostfwd=tcp:127.0.0.1:9000-:7588"))
    }

    @Test func socketPathsMustFit() {
        #expect(throws: HavelError.self) { try QemuCommandLine.checkSocketPaths(InitVMDirectory("/tmp/" + String(repeating: "x", count: 120))) }
        #expect(throws: HavelError.self) { try QemuCommandLine.checkSocketPaths(InitVMDirectory("/tmp/a,b")) }
        #expect(throws: Never.self) { try QemuCommandLine.checkSocketPaths(InitVMDirectory("/tmp/initvm")) }
    }
}
