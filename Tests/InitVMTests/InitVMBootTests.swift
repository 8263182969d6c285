import DaemonAPI
import Foundation
import HavelCore
import Testing
@testable import InitVM
import SystemKit
import TestFixtures

/// The whole life of an initvm on this host, with the real daemon inside: create (mmdebstrap, kernel,
/// mke2fs, qcow2), start under TCG, ready, `havel initvm submit` of a small native project whose results
/// come back here (with its own packages: two `<archivedir>` sources packed on this side, built in the VM with
/// pbuilder in Build-Depends order into the signed project repository, installed from it, the repository
/// downloaded with the results), `havel chroot` inside the VM (the project's tree and a foreign-arch tree), graceful
/// stop, destroy. While it runs there is one qemu and no target tree on the host.
@Suite(.serialized, .enabled(if: BootEnvironment.available, BootEnvironment.skipReason))
struct InitVMBootTests {
    static let project = """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>havel-initvm-e2e</name><version>0.1</version><buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
          </project>
          <target>
            <hostname>e2e</hostname>
            <passwd>havel</passwd>
            <debootstrap><variant>minbase</variant></debootstrap>
            <finetuning><command>echo built-in-the-initvm &gt; /etc/havel-e2e</command></finetuning>
            <pbuilder><archivedir>hello-prog</archivedir><archivedir>libhello</archivedir></pbuilder>
            <package><tar><name>e2e-rootfs.tar.gz</name></tar></package>
            <pkg-list><pkg>netbase</pkg><pkg>hello-prog</pkg></pkg-list>
          </target>
        </RootFileSystem>
        """

    /// The initvm as the create step makes it: finetuning, a preseed answer, an apt preference and a swap file.
    /// The second finetuning command makes udev take 100 s over ttyS0 after the switch to the real root (the
    /// initramfs has no /etc/havel), as a busy host's coldplug can: the console's getty must not wait for it
    /// (systemd's serial-getty@ttyS0 gives up after 90 s and the console never answers).
    static let initvmProject = """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <initvm>
            <buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <preference pin="release n=bookworm-backports">100</preference>
            <suite>bookworm</suite>
            <preseed><conf owner="havel-test" key="havel-test/answer" type="string" value="forty two"/></preseed>
            <swap-size>256MiB</swap-size>
            <finetuning>
              <command>echo finetuned &gt; /etc/havel/finetuned</command>
              <command>echo 'KERNEL=="ttyS0", TEST=="/etc/havel/finetuned", RUN+="/bin/sleep 100"' &gt; /etc/udev/rules.d/99-havel-test-slow-ttys0.rules</command>
            </finetuning>
          </initvm>
          <project>
            <name>havel-initvm-e2e-vm</name><version>0.1</version><buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
          </project>
          <target><hostname>e2e</hostname></target>
        </RootFileSystem>
        """

    /// A hang guard, not a speed bound: 20 minutes on an idle 2-core machine, about twice that on a busy one.
    @Test(.timeLimit(.minutes(75)))
    func createStartSubmitChrootStopDestroy() async throws {
        let havel = try #require(BootEnvironment.daemonHavel)
        let base = try TestDirectory()
        let directory = InitVMDirectory(base.path + "/initvm")
        let controller = InitVMController(directory: directory)
        defer {
            BootEnvironment.killLeftovers(directory)
            base.remove()
        }

        // create, as a user does: `havel initvm create` with a project file's <initvm> section.
        let port = BootEnvironment.freePort()
        let initvmFile = base.path + "/initvm.xml"
        try Self.initvmProject.write(toFile: initvmFile, atomically: true, encoding: .utf8)
        let createStart = ContinuousClock.now
        // With the same priority as the VM below (see `prioritise`): under make test's load the create step alone
        // took 535 s against 60 s idle.
        let created = try await ProcessRunner.run(Command("nice", ["-n", "-10", havel, "initvm", "create",
                                                                   "--directory", directory.path, "--port", "\(port)", initvmFile]))
        #expect(created.succeeded, "\(created.standardError.suffix(3000))")
        print("initvm create: \(InitVMTime.seconds(ContinuousClock.now - createStart)) s; "
              + created.standardOutput.split(separator: "\n").filter { $0.hasPrefix("made ") }.joined())
        guard created.succeeded else { return }
        let kernelVersion = try #require(created.standardOutput.firstMatch(of: /kernel ([^ ,]+),/).map { String($0.1) },
                                         "create names the kernel: \(created.standardOutput)")

        for file in [directory.image, directory.kernel, directory.initrd, directory.token, directory.settings] {
            #expect(FileManager.default.fileExists(atPath: file), "\(file) missing")
        }
        #expect(!FileManager.default.fileExists(atPath: directory.work), "the tree must not stay on the host")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/buildenv.raw"))
        let tokenMode = try FileManager.default.attributesOfItem(atPath: directory.token)[.posixPermissions] as? Int
        #expect(tokenMode == 0o600)
        let info = try await ProcessRunner.check(Command("qemu-img", ["info", "--output=json", directory.image]))
        #expect(info.standardOutput.contains("\"format\": \"qcow2\""))
        #expect(info.standardOutput.contains("\"virtual-size\": \(InitVMDefaults.imageSize)"))
        #expect(Mounts.mountPoints(under: directory.path).isEmpty)

        // start, as a person does: the real KVM probe decides (here it fails and TCG is used, with a warning)
        let startClock = ContinuousClock.now
        let started = try await ProcessRunner.run(Command(havel, ["initvm", "start", "--directory", directory.path]))
        #expect(started.succeeded, "\(started.standardError)")
        // Generous: under TCG on a busy 2-core machine the guest's boot took over 180 s once.
        let health = try await controller.waitUntilReady(timeout: .seconds(600))
        let runtime = try #require(await controller.status().runtime)
        print("initvm start -> ready (\(runtime.accelerator)): \(InitVMTime.seconds(ContinuousClock.now - startClock)) s; health \(health)")
        if runtime.accelerator == .tcg { #expect(started.standardError.contains("software emulation (TCG)")) }
        let pid = runtime.processIdentifier
        BootEnvironment.prioritise(pid)
        #expect(runtime.apiPort == port)
        #expect(health.status == "ok")
        // The unit's Delegate=yes lets the daemon make a cgroup per build (the submit below runs every
        // command of its build in one), so cancelling a build reaches every process of it.
        #expect(health.buildConfinement == HealthResponse.cgroupConfinement, "\(health)")
        #expect(controller.apiURL == "http://127.0.0.1:\(port)")
        #expect(await controller.status().state == .ready(pid: pid, health: health))
        #expect(QemuProcesses.find(directory) == [pid])
        let again = try await controller.start(probe: { _, _ in (false, "") })
        guard case .alreadyRunning(let samePid) = again else {
            Issue.record("a second start must not start a second qemu")
            return
        }
        #expect(samePid == pid)
        let console = (try? String(contentsOfFile: directory.consoleLog, encoding: .utf8)) ?? ""
        #expect(console.contains("Linux version"))

        // submit: the build runs in the VM; the host sees one qemu and gets the results
        let projectFile = base.path + "/e2e.xml"
        try Self.project.write(toFile: projectFile, atomically: true, encoding: .utf8)
        try OwnPackageFixtures.library(in: base.path + "/libhello")
        try OwnPackageFixtures.program(in: base.path + "/hello-prog")
        let results = base.path + "/results"
        let submitClock = ContinuousClock.now
        let sampler = HostSampler(directory: directory)
        let sampling = Task { await sampler.run() }
        let said = LockedLines()
        let submitted = try await ProcessRunner.stream(Command(havel, [
            "initvm", "submit", "--directory", directory.path, "--output", results, "--keep", projectFile,
        ])) { said.append($0) }
        sampling.cancel()
        let samples = await sampling.value
        print("initvm submit: \(InitVMTime.seconds(ContinuousClock.now - submitClock)) s; \(samples.count) samples of the host")
        #expect(submitted == .exited(0), "submit failed:\n\(said.lines.suffix(30).joined(separator: "\n"))")
        #expect(samples.count > 5)
        #expect(samples.allSatisfy { $0.qemu == [pid] }, "exactly one qemu while the build runs: \(Set(samples.map(\.qemu)))")
        #expect(samples.contains { $0.submitRunning }, "the sampler never saw the submit process")
        #expect(samples.allSatisfy { $0.submitChildren.isEmpty }, "submit ran processes on the host: \(Set(samples.flatMap(\.submitChildren)))")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: directory.path)).isSubset(of: Set(directory.allFiles.map { ($0 as NSString).lastPathComponent })))
        #expect(!FileManager.default.fileExists(atPath: results + "/rootfs"), "the target tree stays in the VM")
        let trees = try await ProcessRunner.check(Command("find", [base.path, "-name", "rootfs"])).standardOutput
        #expect(trees.isEmpty, "a rootfs appeared on the host: \(trees)")

        let source = try String(contentsOfFile: results + "/source.xml", encoding: .utf8)
        #expect(source.contains("<fullpkgs>") && source.contains(">netbase<"))
        let validation = try String(contentsOfFile: results + "/validation.txt", encoding: .utf8)
        #expect(validation.contains("validation passed"))
        let log = try String(contentsOfFile: results + "/log.txt", encoding: .utf8)
        #expect(log.contains("build done"))
        #expect(!log.contains("without a cgroup of its own"), "\(log.suffix(2000))")
        let marker = try await ProcessRunner.check(Command("tar", ["-xzOf", results + "/e2e-rootfs.tar.gz", "./etc/havel-e2e"]))
        #expect(marker.standardOutput == "built-in-the-initvm\n")

        // The own packages were built in the VM, in Build-Depends order (the library first, though named second);
        // the signed repository came back and verifies with its exported key; the target has them from it.
        #expect(log.contains("own packages: 2 source(s), native builds with pbuilder"), "\(log.suffix(3000))")
        #expect(log.contains("own packages in build order: libhello, hello-prog"))
        let keyring = base.path + "/key.gpg"
        _ = try await ProcessRunner.check(Command("gpg", ["--batch", "--yes", "--dearmor", "-o", keyring, results + "/repo/archive-key.asc"]))
        let verified = try await ProcessRunner.run(Command("gpgv", ["--keyring", keyring, results + "/repo/dists/bookworm/InRelease"]))
        #expect(verified.succeeded, "gpgv: \(verified.standardError)")
        let repositoryIndex = try String(contentsOfFile: results + "/repo/dists/bookworm/main/binary-amd64/Packages", encoding: .utf8)
        for name in ["libhello1", "libhello-dev", "hello-prog"] {
            #expect(repositoryIndex.contains("Package: \(name)\n"), "\(name) in the project repository")
        }
        let listing = try await ProcessRunner.check(Command("tar", ["-tzf", results + "/e2e-rootfs.tar.gz"])).standardOutput
        #expect(listing.contains("./usr/bin/hello-prog\n") && listing.contains("./usr/lib/libhello.so.1\n"))
        let kept = said.lines.compactMap { line -> String? in
            line.hasPrefix("kept as project ") ? String(line.dropFirst("kept as project ".count)) : nil
        }.first
        let projectID = try #require(kept, "submit --keep names the project")

        // inside the VM: the VM's kernel, havel chroot on the project's tree and on a foreign-arch tree
        let shell = try await GuestShell(directory: directory)
        defer { shell.finish() }
        let guestKernel = try await shell.run("uname -r")
        #expect(guestKernel == .init(status: 0, output: kernelVersion + "\n"))
        #expect(try await shell.run("cat /etc/havel/finetuned").output == "finetuned\n")
        // <initvm>: preseed answers in debconf's database, apt preferences, the swap file made at first boot.
        #expect(try await shell.run("grep -A3 'Name: havel-test/answer' /var/cache/debconf/config.dat").output.contains("Value: forty two"))
        #expect(try await shell.run("cat /etc/apt/preferences.d/havel").output.contains("Pin: release n=bookworm-backports\nPin-Priority: 100"))
        let swaps = try await shell.run("systemctl is-active havel-swap.service; cat /proc/swaps")
        #expect(swaps.output.hasPrefix("active\n") && swaps.output.contains("/swapfile"), "\(swaps.output)")
        let build = "\(InitVMDefaults.guestDataPath)/projects/\(projectID)/build"
        let native = try await shell.run("havel chroot \(build) -- cat /etc/havel-e2e")
        #expect(native == .init(status: 0, output: "built-in-the-initvm\n"))
        let ran = try await shell.run("havel chroot \(build) -- /usr/bin/hello-prog")
        #expect(ran == .init(status: 0, output: "hello from libhello, hello-prog\n"))

        let foreign = "/tmp/foreign"
        let fetched = try await shell.run(
            "dpkg --add-architecture arm64 && apt-get update -qq && mkdir -p \(foreign)/rootfs && cd \(foreign) "
            + "&& apt-get download -q busybox-static:arm64 && dpkg-deb -x busybox-static_*_arm64.deb rootfs "
            + "&& ln -s busybox rootfs/bin/sh && mkdir -p rootfs/proc rootfs/sys rootfs/dev rootfs/tmp", timeout: .seconds(300))
        #expect(fetched.status == 0, "a static arm64 busybox in the VM: \(fetched.output)")
        let machine = try await shell.run("havel chroot \(foreign) -- /bin/busybox uname -m")
        #expect(machine == .init(status: 0, output: "aarch64\n"))
        let release = try await shell.run("havel chroot \(foreign) -- /bin/busybox uname -r")
        #expect(release == .init(status: 0, output: kernelVersion + "\n"))
        #expect(try await shell.run("grep -c \(foreign) /proc/mounts").output == "0\n", "chroot mounts left in the VM")
        let failing = try await shell.run("havel chroot \(foreign) -- /bin/busybox false")
        #expect(failing.status == 1)
        shell.finish()

        // A foreign-architecture project: qemu-user inside the VM. Under TCG that is emulation inside
        // emulation (far too slow for a test run), so only where the VM has KVM.
        if runtime.accelerator == .kvm {
            let arm64File = base.path + "/arm64.xml"
            try Self.project.replacingOccurrences(of: "<buildtype>amd64</buildtype>", with: "<buildtype>aarch64</buildtype>")
                .write(toFile: arm64File, atomically: true, encoding: .utf8)
            let foreignResults = base.path + "/results-arm64"
            let foreignSubmit = try await ProcessRunner.run(Command(havel, [
                "initvm", "submit", "--directory", directory.path, "--output", foreignResults, arm64File]))
            #expect(foreignSubmit.succeeded, "\(foreignSubmit.standardOutput.suffix(2000))")
            let pinned = try String(contentsOfFile: foreignResults + "/source.xml", encoding: .utf8)
            #expect(pinned.contains("arch=\"arm64\""))
        } else {
            print("initvm foreign-architecture submit skipped: the VM runs under TCG here (KVM does not work), qemu-user inside it would take too long")
        }

        // stop, destroy
        let stopClock = ContinuousClock.now
        let stopped = try await controller.stop(timeout: .seconds(90))
        print("initvm stop: \(stopped) in \(InitVMTime.seconds(ContinuousClock.now - stopClock)) s")
        guard case .poweredOff = stopped else {
            Issue.record("the guest did not power down gracefully: \(stopped)")
            return
        }
        #expect(QemuProcesses.find(directory).isEmpty)
        #expect(BootEnvironment.qemuProcesses(directory).isEmpty)
        #expect(await controller.status().state == .stopped)

        try await controller.destroy()
        #expect(!FileManager.default.fileExists(atPath: directory.path))
    }
}

/// Looks at the host every half second while a submitted build runs: which qemu processes serve the
/// initvm, and which processes `havel initvm submit` has started on the host (none: the build runs in
/// the VM). Other tests may build on the host at the same time; only the submit's descendants count.
actor HostSampler {
    struct Sample: Sendable {
        var qemu: [Int32]
        var submitRunning: Bool
        var submitChildren: [String]
    }

    let directory: InitVMDirectory
    init(directory: InitVMDirectory) { self.directory = directory }

    func run() async -> [Sample] {
        var samples: [Sample] = []
        while !Task.isCancelled {
            let (submit, children) = Self.submitAndDescendants(directory)
            samples.append(Sample(qemu: BootEnvironment.qemuProcesses(directory), submitRunning: submit != nil, submitChildren: children))
            try? await Task.sleep(for: .milliseconds(500))
        }
        return samples
    }

    /// The `havel initvm submit` process for this initvm, and the command lines of its descendants.
    static func submitAndDescendants(_ directory: InitVMDirectory) -> (Int32?, [String]) {
        var parent: [Int32: Int32] = [:]
        var commandLine: [Int32: [String]] = [:]
        for pid in ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap({ Int32($0) }) {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.range(of: ") ", options: .backwards),
                  let ppid = stat[close.upperBound...].split(separator: " ").dropFirst().first.flatMap({ Int32($0) }),
                  let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
            parent[pid] = ppid
            commandLine[pid] = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        }
        // The submit itself (and a wrapper that execs it, if any) has the whole command line.
        let submits = Set(commandLine.filter { _, words in
            words.contains("initvm") && words.contains("submit") && words.contains(directory.path)
        }.keys)
        guard let submit = submits.min() else { return (nil, []) }
        let descendants = parent.keys.filter { pid in
            guard !submits.contains(pid) else { return false }
            var current = parent[pid]
            while let ancestor = current, ancestor > 1 {
                if submits.contains(ancestor) { return true }
                current = parent[ancestor]
            }
            return false
        }
        return (submit, descendants.sorted().map { commandLine[$0]?.joined(separator: " ") ?? "\($0)" })
    }
}

/// Lines a child printed, collected from its output callback.
final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ line: String) { lock.withLock { storage.append(line) } }
    var lines: [String] { lock.withLock { storage } }
}

enum BootEnvironment {
    static let missingReason: String? = {
        if geteuid() != 0 { return "needs root (mmdebstrap --mode=root)" }
        for tool in ["mmdebstrap", "mke2fs", "qemu-img", "qemu-system-x86_64", "unshare", "dpkg-query"] where ProcessRunner.which(tool) == nil {
            return "needs \(tool) (scripts/setup-host.sh installs it)"
        }
        var host = utsname()
        uname(&host)
        let machine = withUnsafeBytes(of: host.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if machine != "x86_64" { return "the initvm is amd64 and made natively" }
        guard (try? InitVMSources.lines(spec: nil, suite: "bookworm")) != nil else { return "needs a Debian mirror in the host's apt sources" }
        if ProcessInfo.processInfo.environment["HAVEL_SKIP_INITVM_BOOT"] == "1" { return "HAVEL_SKIP_INITVM_BOOT=1" }
        if daemonHavel == nil { return "needs .build/debug/havel (swift build)" }
        return nil
    }()

    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The havel the initvm runs: swift build's, the one this test run was built with (its Swift runtime goes
    /// along; make static's could be older).
    static let daemonHavel: String? = {
        let path = repositoryRoot + "/.build/debug/havel"
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }()

    static var available: Bool { missingReason == nil }
    static var skipReason: Comment { Comment(rawValue: missingReason ?? "") }

    static func freePort() -> Int {
        for _ in 0..<50 {
            let port = Int.random(in: 20000...40000)
            if Sockets.isFree(port: port) { return port }
        }
        return 27588
    }

    /// This test is the longest of `make test`, and its VM (under TCG: one busy host thread per virtual CPU) would
    /// otherwise get an equal share of the two cores with the twenty-odd processes of the tests running beside it,
    /// which made it take four times as long as alone. Every thread of its qemu gets nice -10, so the other tests
    /// share what the VM leaves. The test itself is unchanged by it.
    static func prioritise(_ pid: Int32) {
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return }
        for thread in threads.compactMap({ id_t($0) }) {
            if setpriority(__priority_which_t(PRIO_PROCESS.rawValue), thread, -10) != 0 {
                print("initvm test: cannot raise the priority of qemu thread \(thread): errno \(errno)")
            }
        }
    }

    /// Every qemu-system process whose command line names this directory (pgrep's view).
    static func qemuProcesses(_ directory: InitVMDirectory) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let text = String(decoding: data, as: UTF8.self)
            return text.contains("qemu-system") && text.contains(directory.path) && QemuProcesses.isAlive(pid)
        }
    }

    /// No qemu may outlive a test, whatever failed.
    static func killLeftovers(_ directory: InitVMDirectory) {
        for pid in qemuProcesses(directory) { kill(pid, SIGKILL) }
    }
}

/// A fresh directory under /tmp, removed by `remove()`.
struct TestDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "havel-initvm-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
