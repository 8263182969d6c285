import DaemonAPI
import Foundation
import HavelCore
import Logging
import QEMU
import SystemKit

/// Whether KVM works, decided by booting `kernel` with it (`InitVMController.hostProbe`; tests pass stand-ins).
public typealias KVMProbe = @Sendable (_ kernel: String, _ initrd: String) async -> (works: Bool, reason: String)

/// Which accelerator `start` uses: the probe's answer, or one forced.
public enum AcceleratorChoice: String, Sendable, CaseIterable {
    case auto, kvm, tcg
}

/// The state of an initvm as the host sees it.
public enum InitVMState: Sendable, Equatable {
    /// No buildenv.img in the directory.
    case notCreated
    case stopped
    /// qemu runs, the API does not answer yet (or no longer); `lastConsoleLine` tells how far it got.
    case booting(pid: Int32, why: String)
    case ready(pid: Int32, health: HealthResponse)

    public var word: String {
        switch self {
        case .notCreated: "not-created"
        case .stopped: "stopped"
        case .booting: "booting"
        case .ready: "ready"
        }
    }
}

public struct InitVMStatus: Sendable {
    public var directory: InitVMDirectory
    public var state: InitVMState
    public var runtime: InitVMRuntime?
    public var settings: InitVMSettings?
    /// The last line the guest printed on its serial console (booting only).
    public var lastConsoleLine: String?
}

public struct StartOptions: Sendable {
    public var apiPort: Int?
    public var memoryMiB: Int?
    public var cpus: Int?
    public var accelerator: AcceleratorChoice
    /// Probe again instead of using the answer remembered for this kernel.
    public var reprobe: Bool

    public init(apiPort: Int? = nil, memoryMiB: Int? = nil, cpus: Int? = nil, accelerator: AcceleratorChoice = .auto, reprobe: Bool = false) {
        self.apiPort = apiPort
        self.memoryMiB = memoryMiB
        self.cpus = cpus
        self.accelerator = accelerator
        self.reprobe = reprobe
    }
}

public enum StartOutcome: Sendable {
    case started(pid: Int32, launch: QemuLaunch, acceleratorReason: String)
    case alreadyRunning(pid: Int32)
}

public enum StopOutcome: Sendable, Equatable {
    case notRunning
    /// The guest shut down after `system_powerdown`.
    case poweredOff(seconds: Double)
    /// It did not within the time-out: qemu was ended (QMP quit, then SIGTERM/SIGKILL).
    case killed(seconds: Double)
}

/// A remembered KVM probe: valid for the same kernel file and qemu binary.
struct AcceleratorRecord: Codable, Equatable {
    var kernelSize: UInt64
    var kernelModified: Double
    var qemu: String
    var kvm: Bool
    var reason: String
}

/// Starts, watches and stops the initvm of one directory. Every state change holds the
/// directory's lock, and a VM is recognised by its command line: one qemu per initvm.
public struct InitVMController: Sendable {
    public let directory: InitVMDirectory
    /// Runs qemu (a recording stand-in in tests).
    public let processes: any ProcessRunning

    public init(directory: InitVMDirectory, processes: any ProcessRunning = SystemProcesses()) {
        self.directory = directory
        self.processes = processes
    }

    // MARK: status

    public func status(timeout: Duration = .seconds(2)) async -> InitVMStatus {
        let settings = JSONFile.read(InitVMSettings.self, from: directory.settings)
        var status = InitVMStatus(directory: directory, state: .stopped, runtime: nil, settings: settings)
        guard directory.exists else {
            status.state = .notCreated
            return status
        }
        guard let pid = QemuProcesses.find(directory).first else { return status }
        let runtime = JSONFile.read(InitVMRuntime.self, from: directory.runtime)
        status.runtime = runtime
        let port = runtime?.apiPort ?? settings?.apiPort ?? InitVMDefaults.hostPort
        switch await HealthCheck.check(port: port, timeout: timeout) {
        case .healthy(let health):
            status.state = .ready(pid: pid, health: health)
        case .noAnswer(let why):
            status.state = .booting(pid: pid, why: why)
            status.lastConsoleLine = Self.lastLine(of: directory.consoleLog)
        }
        return status
    }

    static func lastLine(of path: String) -> String? {
        lastLines(of: path, count: 1).last
    }

    /// The last `count` lines with something printable of the console log's last 8 KiB.
    static func lastLines(of path: String, count: Int) -> [String] {
        guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > 8192 ? size - 8192 : 0)
        let text = String(decoding: (try? handle.read(upToCount: 8192)) ?? Data(), as: UTF8.self)
        // Drop terminal escapes and carriage returns; keep lines with something printable.
        return Array(TerminalTextFilter.strip(text).split(whereSeparator: \.isNewline)
            .map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }.suffix(count))
    }

    // MARK: start

    public func start(_ options: StartOptions = StartOptions(), probe: KVMProbe,
                      log: Logger = .discarding) async throws(HavelError) -> StartOutcome {
        guard directory.exists else {
            throw HavelError(.notFound, "no initvm in \(directory.path) (no buildenv.img); run havel initvm create --directory \(directory.path)")
        }
        let lock = try FileLock(directory.lockFile)
        defer { lock.release() }
        if let pid = QemuProcesses.find(directory).first { return .alreadyRunning(pid: pid) }
        for file in [directory.kernel, directory.initrd, directory.settings] where !FileManager.default.fileExists(atPath: file) {
            throw HavelError(.notFound, "the initvm in \(directory.path) is incomplete: \(file) is missing; destroy and create it again")
        }
        try QemuCommandLine.checkSocketPaths(directory)
        guard processes.which(QemuCommandLine.qemu) != nil else {
            throw HavelError(.hostNotReady, "\(QemuCommandLine.qemu): command not found; install qemu-system-x86")
        }
        removeRuntimeFiles()

        let settings = try InitVMSettings.read(directory.settings)
        let apiPort = options.apiPort ?? settings.apiPort
        guard (1...65535).contains(apiPort) else { throw HavelError(.invalidArgument, "port \(apiPort): must be 1-65535") }
        guard Sockets.isFree(port: apiPort) else {
            throw HavelError(.invalidArgument, "port \(apiPort) on 127.0.0.1 is in use (another initvm?); start with --port PORT")
        }
        for forward in settings.forwards where !Sockets.isFree(port: forward.hostPort, udp: forward.proto == "udp") {
            throw HavelError(.invalidArgument, "port \(forward.hostPort)/\(forward.proto) on 127.0.0.1 is in use: the initvm's portforwarding needs it")
        }

        let (accelerator, reason) = await chooseAccelerator(options, probe: probe)
        if accelerator == .tcg {
            log.warning("KVM is not used (\(reason)): the initvm runs under software emulation (TCG), 5-15x slower than the host")
        }
        var launch = QemuLaunch(accelerator: accelerator, memoryMiB: options.memoryMiB ?? settings.memoryMiB,
                                cpus: options.cpus ?? settings.cpus(), apiPort: apiPort, forwards: settings.forwards,
                                kernelAppend: settings.kernelAppend)
        launch.diskFormat = settings.diskFormat
        let result = try await processes.run(QemuCommandLine.invocation(launch, directory: directory).command)
        guard result.succeeded else {
            removeRuntimeFiles()
            let message = result.standardError.trimmingWhitespace()
            throw HavelError(.processFailed, "qemu could not start the initvm (\(result.termination))" + (message.isEmpty ? "" : ": " + message))
        }
        // -daemonize returns once the VM runs; its pid file names the one qemu process.
        guard let pid = QemuProcesses.readPidFile(directory.pidFile) ?? QemuProcesses.find(directory).first else {
            throw HavelError(.processFailed, "qemu started but left no pid file at \(directory.pidFile)")
        }
        let runtime = InitVMRuntime(processIdentifier: pid, apiPort: apiPort, accelerator: accelerator,
                                    memoryMiB: launch.memoryMiB, cpus: launch.cpus, started: Date())
        try JSONFile.write(runtime, to: directory.runtime)
        return .started(pid: pid, launch: launch, acceleratorReason: reason)
    }

    /// The real KVM probe, by the QEMU module's policy: the initvm's own kernel booted with
    /// `-accel kvm -cpu host` and a deadline, when /dev/kvm can be used at all.
    public static let hostProbe: KVMProbe = { kernel, _ in
        let outcome = await AcceleratorPolicy.host.choose(
            AcceleratorProbe.Boot(qemu: QemuCommandLine.qemu, kernel: kernel, append: "console=ttyS0 panic=-1" + InitVMDefaults.timerCheckOption,
                                  marker: "Linux version", deadline: .seconds(20)))
        return (outcome.accelerator == .kvm, outcome.reason)
    }

    func chooseAccelerator(_ options: StartOptions, probe: KVMProbe) async -> (Accelerator, String) {
        switch options.accelerator {
        case .kvm: return (.kvm, "--accel kvm")
        case .tcg: return (.tcg, "--accel tcg")
        case .auto: break
        }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: directory.kernel) else {
            return (.tcg, "the initvm has no kernel to probe KVM with")
        }
        let size = (attributes[.size] as? NSNumber)?.uint64Value ?? 0
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let qemu = processes.which(QemuCommandLine.qemu) ?? QemuCommandLine.qemu
        if !options.reprobe, let record = JSONFile.read(AcceleratorRecord.self, from: directory.acceleratorRecord),
           record.kernelSize == size, record.kernelModified == modified, record.qemu == qemu {
            return (record.kvm ? .kvm : .tcg, record.reason + " (remembered; --reprobe probes again)")
        }
        let answer = await probe(directory.kernel, directory.initrd)
        if !Task.isCancelled {
            let record = AcceleratorRecord(kernelSize: size, kernelModified: modified, qemu: qemu, kvm: answer.works, reason: answer.reason)
            try? JSONFile.write(record, to: directory.acceleratorRecord)
        }
        return (answer.works ? .kvm : .tcg, answer.reason)
    }

    /// The loopback port the API is forwarded to: the running qemu's, else the one the initvm was made with.
    public var apiPort: Int {
        JSONFile.read(InitVMRuntime.self, from: directory.runtime)?.apiPort
            ?? JSONFile.read(InitVMSettings.self, from: directory.settings)?.apiPort ?? InitVMDefaults.hostPort
    }

    /// The daemon's base URL on this host.
    public var apiURL: String { "http://127.0.0.1:\(apiPort)" }

    /// Polls GET /health until it answers; fails early if qemu ends, with the console's last line.
    public func waitUntilReady(timeout: Duration, poll: Duration = .milliseconds(250)) async throws(HavelError) -> HealthResponse {
        let deadline = ContinuousClock.now + timeout
        let port = apiPort
        var last = "no answer yet"
        while ContinuousClock.now < deadline {
            if Task.isCancelled { throw HavelError(.cancelled, "waiting for the initvm was interrupted") }
            guard !QemuProcesses.find(directory).isEmpty else {
                let line = Self.lastLine(of: directory.consoleLog).map { "; its console's last line: " + $0 } ?? ""
                throw HavelError(.processFailed, "the initvm's qemu ended before the daemon answered\(line)")
            }
            switch await HealthCheck.check(port: port, timeout: .seconds(2)) {
            case .healthy(let health): return health
            case .noAnswer(let why): last = why
            }
            try? await Task.sleep(for: poll)
        }
        let tail = Self.lastLines(of: directory.consoleLog, count: 12)
        let console = tail.isEmpty ? "" : "; the console's last lines:\n" + tail.joined(separator: "\n")
        throw HavelError(.processFailed, "the initvm's daemon did not answer GET \(DaemonRoute.health) on 127.0.0.1:\(port) within \(Int(InitVMTime.seconds(timeout))) s (\(last)); see \(directory.consoleLog)\(console)")
    }

    /// Starts the VM if it is not running and waits until its daemon answers.
    public func ensure(_ options: StartOptions = StartOptions(), probe: KVMProbe, timeout: Duration,
                       log: Logger = .discarding) async throws(HavelError) -> (outcome: StartOutcome, health: HealthResponse) {
        let outcome = try await start(options, probe: probe, log: log)
        return (outcome, try await waitUntilReady(timeout: timeout))
    }

    // MARK: stop

    /// `system_powerdown` through QMP and a wait; after `timeout`, QMP `quit`, then SIGTERM and SIGKILL.
    public func stop(timeout: Duration = .seconds(60)) async throws(HavelError) -> StopOutcome {
        let lock = try FileLock(directory.lockFile)
        defer { lock.release() }
        let started = ContinuousClock.now
        let pids = QemuProcesses.find(directory)
        guard !pids.isEmpty else {
            removeRuntimeFiles()
            return .notRunning
        }
        // qemu answers at once; the long deadline is for a busy host, where this task may wait seconds for a
        // thread. A qemu that does not answer at all is quit and then killed below.
        if (try? await QMP.execute("system_powerdown", socket: directory.qmpSocket, timeout: .seconds(30))) != nil,
           await QemuProcesses.waitForExit(pids, timeout: timeout) {
            removeRuntimeFiles()
            return .poweredOff(seconds: seconds(ContinuousClock.now - started))
        }
        try? await QMP.execute("quit", socket: directory.qmpSocket, timeout: .seconds(2))
        if !(await QemuProcesses.waitForExit(pids, timeout: .seconds(3))) {
            for pid in pids { kill(pid, SIGTERM) }
            if !(await QemuProcesses.waitForExit(pids, timeout: .seconds(3))) {
                for pid in pids { kill(pid, SIGKILL) }
                guard await QemuProcesses.waitForExit(pids, timeout: .seconds(5)) else {
                    throw HavelError(.processFailed, "the initvm's qemu (pid \(pids.map(String.init).joined(separator: ", "))) does not end, not even with SIGKILL")
                }
            }
        }
        removeRuntimeFiles()
        return .killed(seconds: seconds(ContinuousClock.now - started))
    }

    /// Stops the VM and removes the directory's files (and the directory if nothing else is in it).
    public func destroy(timeout: Duration = .seconds(30)) async throws(HavelError) {
        _ = try await stop(timeout: timeout)
        for file in directory.allFiles { try? FileManager.default.removeItem(atPath: file) }
        try InitVMCreator.removeTree(directory.work)
        if let rest = try? FileManager.default.contentsOfDirectory(atPath: directory.path), rest.isEmpty {
            try? FileManager.default.removeItem(atPath: directory.path)
        }
    }

    func removeRuntimeFiles() {
        for file in [directory.runtime, directory.pidFile, directory.consoleSocket, directory.qmpSocket] {
            try? FileManager.default.removeItem(atPath: file)
        }
    }
}
