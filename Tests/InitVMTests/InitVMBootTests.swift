import DaemonAPI
import Foundation
import HavelCore
import Testing
@testable import InitVM
import SystemKit

/// The whole life of an initvm on this host: create (mmdebstrap, kernel, mke2fs, qcow2), start under
/// TCG, ready on the forwarded port, status, one qemu only, graceful stop, destroy.
///
/// Until `havel daemon` exists, the image's `havel` binary is a stand-in script that serves
/// GET /health with busybox httpd; everything else (the systemd unit, token, forwarding) is real.
@Suite(.serialized, .enabled(if: BootEnvironment.available, BootEnvironment.skipReason))
struct InitVMBootTests {
    @Test(.timeLimit(.minutes(10)))
    func createStartReadyStopDestroy() async throws {
        let base = try TestDirectory()
        let directory = InitVMDirectory(base.path + "/initvm")
        let controller = InitVMController(directory: directory)
        defer {
            BootEnvironment.killLeftovers(directory)
            base.remove()
        }

        let standIn = base.path + "/havel-standin"
        try BootEnvironment.standInDaemon.write(toFile: standIn, atomically: true, encoding: .utf8)
        let port = BootEnvironment.freePort()
        var spec = InitVMSpec()
        spec.packages = [PackageSpec(name: "busybox")]
        spec.memory = "1GiB"
        spec.finetuningCommands = ["echo finetuned > /etc/havel/finetuned"]
        let settings = try InitVMSettings(spec: spec, apiPort: port)
        let request = CreateRequest(directory: directory, spec: spec, settings: settings,
                                    sourceLines: try InitVMSources.lines(spec: spec, suite: settings.suite),
                                    keys: [], havelBinary: standIn, packageCache: "/var/cache/havel/debs")

        let createStart = ContinuousClock.now
        let report = try await InitVMCreator.create(request) { _ in }
        let createSeconds = InitVMTime.seconds(ContinuousClock.now - createStart)
        print("initvm create: \(createSeconds) s; " + report.steps.map { "\($0.name) \($0.seconds) s" }.joined(separator: ", ")
              + "; image \(ByteCount.format(report.imageBytes)) allocated; kernel \(report.kernelVersion)")

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

        let startClock = ContinuousClock.now
        let outcome = try await controller.start(probe: { _, _ in (false, "the test runs under TCG") })
        guard case .started(let pid, let launch, _) = outcome else {
            Issue.record("expected a fresh start, got \(outcome)")
            return
        }
        #expect(launch.accelerator == .tcg)
        #expect(launch.apiPort == port)
        let health = try await controller.waitUntilReady(timeout: .seconds(120))
        let readySeconds = InitVMTime.seconds(ContinuousClock.now - startClock)
        print("initvm start -> ready (TCG): \(readySeconds) s; health \(health)")
        #expect(health.status == "ok")

        let status = await controller.status()
        #expect(status.state == .ready(pid: pid, health: health))
        #expect(QemuProcesses.find(directory) == [pid])
        #expect(BootEnvironment.qemuProcesses(directory).count == 1)
        let again = try await controller.start(probe: { _, _ in (false, "") })
        guard case .alreadyRunning(let samePid) = again else {
            Issue.record("a second start must not start a second qemu")
            return
        }
        #expect(samePid == pid)
        let console = (try? String(contentsOfFile: directory.consoleLog, encoding: .utf8)) ?? ""
        #expect(console.contains("Linux version"))

        let stopClock = ContinuousClock.now
        let stopped = try await controller.stop(timeout: .seconds(60))
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
        return nil
    }()

    static var available: Bool { missingReason == nil }
    static var skipReason: Comment { Comment(rawValue: missingReason ?? "") }

    /// Stands in for `havel daemon` in the image until the daemon exists: same unit, same arguments.
    static let standInDaemon = """
        #!/bin/sh
        # Test stand-in for the Havel daemon: answers GET /health with busybox httpd.
        [ "$1" = daemon ] || exit 64
        [ -s /etc/havel/api-token ] || { echo "no token" >&2; exit 1; }
        mkdir -p /run/havel-health
        printf '{"status":"ok","havelVersion":"stand-in"}' > /run/havel-health/health
        exec busybox httpd -f -p 7588 -h /run/havel-health

        """

    static func freePort() -> Int {
        for _ in 0..<50 {
            let port = Int.random(in: 20000...40000)
            if Sockets.isFree(port: port) { return port }
        }
        return 27588
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
