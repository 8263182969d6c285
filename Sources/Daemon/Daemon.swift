// Daemon owns the HTTP server inside the initvm: project database, job queue, builds through Build, logs and files.

import Build
import DaemonAPI
import Debian
import Foundation
import Synchronization
import HavelCore
import Hummingbird
import Logging
import ProjectXML
import ServiceLifecycle
import SystemKit

/// How the daemon runs.
public struct DaemonConfiguration: Sendable {
    /// havel.sqlite and projects/<id>/ live here (default /var/lib/havel).
    public var dataDirectory: String
    public var token: String
    public var host: String
    /// 0: any free port (tests; the port is passed to `onServerRunning`).
    public var port: Int
    /// Builds running at once; the rest wait.
    public var jobs: Int
    /// The package and stage cache every build shares, as for `havel build --cache`.
    public var cache: String
    public var useStageCache: Bool
    /// nil: the MIRROR_HOST placeholder means this machine's apt mirror; "host" or a URL replace every primary mirror.
    public var mirror: String?
    public var havelVersion: String
    /// How often a followed log gets a keep-alive while the build prints nothing.
    public var logKeepAlive: Duration
    /// What `LOCALMACHINE` in a project's `<primary_proxy>` means here (10.0.2.2 inside the initvm).
    public var localMachine: String
    /// The largest project file accepted: the upload limit and the loader's, one setting.
    public var maximumProjectSize: Int
    /// A connection that sends nothing for this long while the daemon waits for it (headers not yet complete,
    /// a request body that stopped arriving, or idle between requests) is closed, so that such connections
    /// cannot pile up; an upload cut off this way stores nothing. Not applied while the daemon is answering.
    public var connectionIdleTimeout: Duration

    public static let defaultDataDirectory = "/var/lib/havel"
    public static let defaultPort = DaemonDefaults.port

    public init(dataDirectory: String = DaemonConfiguration.defaultDataDirectory, token: String, host: String = "127.0.0.1",
                port: Int = DaemonConfiguration.defaultPort, jobs: Int = ProcessInfo.processInfo.activeProcessorCount,
                cache: String = HavelCache.defaultPath, useStageCache: Bool = true, mirror: String? = nil, havelVersion: String,
                logKeepAlive: Duration = LogEvents.defaultKeepAlive, maximumProjectSize: Int = ProjectFile.maximumSize,
                connectionIdleTimeout: Duration = .seconds(60), localMachine: String = "localhost") {
        self.localMachine = localMachine
        self.dataDirectory = dataDirectory
        self.token = token
        self.host = host
        self.port = port
        self.jobs = jobs
        self.cache = cache
        self.useStageCache = useStageCache
        self.mirror = mirror
        self.havelVersion = havelVersion
        self.logKeepAlive = logKeepAlive
        self.maximumProjectSize = maximumProjectSize
        self.connectionIdleTimeout = connectionIdleTimeout
    }
}

/// The daemon: opens (and repairs) the project database, serves the API, runs the builds.
public final class HavelDaemon: Sendable {
    public static let interruptedReason = "the daemon stopped during the build"

    public let configuration: DaemonConfiguration
    let store: ProjectStore
    let data: String
    let stopping = StopFlag()
    /// Held while the daemon lives: one daemon per data directory.
    let dataLock: FileLock
    static let lockFileName = "daemon.lock"
    /// The stages and progress of the builds this daemon ran (shown with each project).
    let progress = BuildProgressBook()
    /// Uploads still streaming in, so that deleting their project ends them.
    let uploads = UploadsInFlight()
    /// Projects whose repository a package upload is writing: one writer per repository at a time.
    let repositoryWriters = Mutex<Set<ProjectID>>([])
    /// Where the daemon itself logs (standard error unless the executable set up logging otherwise).
    let logger: Logger = {
        var logger = Logger(label: "havel.daemon")
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .notice
        return logger
    }()
    /// The cgroups builds run in (or why there are none).
    let cgroups: BuildCgroups
    /// The web page's signed-in browsers.
    let dashboardSessions = DashboardSessions()
    /// Who asked to cancel each running build.
    let cancellations = CancellationBook()
    private let queueBox = QueueBox()
    private let groupBox = GroupBox()
    var queue: BuildQueue { queueBox.queue! }

    /// Opens the data directory and database; projects a killed daemon left busy become failed.
    public init(configuration: DaemonConfiguration) async throws(HavelError) {
        self.configuration = configuration
        let data = configuration.dataDirectory.hasPrefix("/") ? configuration.dataDirectory
            : FileManager.default.currentDirectoryPath + "/" + configuration.dataDirectory
        self.data = data
        do {
            try FileManager.default.createDirectory(atPath: data + "/projects", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: data + "/trash", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: data + "/uploads", withIntermediateDirectories: true)
        } catch {
            throw HavelError(.io, "cannot create the data directory \(data): \(error.localizedDescription)")
        }
        guard !configuration.token.isEmpty else { throw HavelError(.invalidArgument, "the API token is empty") }
        guard let lock = try FileLock.attempt(data + "/" + Self.lockFileName) else {
            throw HavelError(.conflict, "another havel daemon is using the data directory \(data) (it holds \(data)/\(Self.lockFileName)); "
                             + "stop it first, or give this one another --data")
        }
        dataLock = lock
        Self.removeStagedUploads(data + "/uploads")
        let database = data + "/havel.sqlite"
        let projects = (try? FileManager.default.contentsOfDirectory(atPath: data + "/projects")) ?? []
        if !FileManager.default.fileExists(atPath: database), !projects.isEmpty {
            throw HavelError(.io, "the project database \(database) is missing, but \(data)/projects holds \(projects.count) project "
                             + "director\(projects.count == 1 ? "y" : "ies"); restore the database, or move projects/ away to start afresh")
        }
        store = try ProjectStore(path: database)
        cgroups = BuildCgroups(dataDirectory: data)
        if let reason = cgroups.unavailableReason {
            logger.warning("builds run without a cgroup of their own: \(reason); cancelling a build stops its running command's process group only, so a daemon a build detached (setsid) survives. Run the daemon as root with cgroup2 writable (Delegate=yes under systemd).")
        }
        let jobs = configuration.jobs
        queueBox.queue = BuildQueue(limit: jobs) { [weak self] id, request in await self?.runBuild(id, request) }
        try await recover()
    }

    /// What a killed daemon left: busy projects (now failed, also in their state.json and log), the processes
    /// still working on them (killed), mounts, trash.
    func recover() async throws(HavelError) {
        let integrity = try await store.integrityCheck()
        guard integrity == "ok" else {
            throw HavelError(.io, "the project database \(store.path) is damaged (\(integrity)); restore it or move it away")
        }
        let interrupted = try await store.failInterruptedBuilds(reason: Self.interruptedReason)
        for id in interrupted {
            let directory = ProjectDirectory(data: data, id: id).build
            let orphans = await ProcessReaper.killAll(using: directory.path)
            _ = try? await Mounts.unmountAll(under: directory.path)
            if var state = BuildState.read(directory.state), state.status == .running {
                state.status = .failed
                state.reason = Self.interruptedReason
                state.finished = Date()
                try? state.write(directory.state)
            }
            if !orphans.isEmpty {
                Self.appendLog(directory, "ended \(orphans.count) process\(orphans.count == 1 ? "" : "es") the stopped daemon's build left running (pids \(orphans.map(String.init).joined(separator: ", ")))")
            }
            Self.appendLog(directory, "build FAILED: " + Self.interruptedReason)
        }
        let stale = await cgroups.removeStale()
        if !stale.removed.isEmpty {
            logger.notice("removed \(stale.removed.count) build cgroup(s) a stopped daemon left: \(stale.removed.joined(separator: ", "))")
        }
        for problem in stale.problems { logger.warning("\(problem)") }
        emptyTrash()
    }

    /// Deletes what delete and reset moved aside, in the background.
    func emptyTrash() {
        let trash = data + "/trash"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: trash)) ?? []
        guard !names.isEmpty else { return }
        let paths = names.map { trash + "/" + $0 }
        Task.detached {
            for path in paths { _ = try? await Mounts.unmountAll(under: path) }
            _ = try? await ProcessRunner.run(Command("rm", ["-rf", "--one-file-system", "--"] + paths))
        }
    }

    /// Moves a directory into the trash (instantly, by rename) and empties the trash.
    func discard(_ path: String) throws(HavelError) {
        guard FileManager.default.fileExists(atPath: path) else { return }
        let target = data + "/trash/" + (path as NSString).lastPathComponent + "-" + UUID().uuidString.prefix(8)
        guard rename(path, target) == 0 else {
            throw HavelError(.io, "cannot move \(path) aside: \(errnoText())")
        }
    }

    func directory(_ id: ProjectID) -> ProjectDirectory { ProjectDirectory(data: data, id: id) }

    static func appendLog(_ directory: BuildDirectory, _ line: String) {
        try? FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        let fd = open(directory.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    // MARK: - Builds

    /// One build: the uploaded project loaded as `havel build` loads it, its mirror resolved, built by
    /// `Build.Builder` into the project's build directory in a cgroup of its own (removed when it ends, with
    /// anything still in it); the outcome recorded in the database.
    func runBuild(_ id: ProjectID, _ request: BuildRequest = BuildRequest()) async {
        let directory = directory(id)
        var builderStarted = false
        var cgroup: ProcessCgroup?
        var failure: HavelError?
        do throws(HavelError) {
            try await store.update(id) { record in
                record.buildStarted = Date()
                record.buildFinished = nil
            }
            let project = try BuildEntry.load(path: directory.source, options: buildLoading(request),
                                              mirror: configuration.mirror)
            do throws(HavelError) {
                cgroup = try cgroups.make(for: id)
            } catch {
                Self.appendLog(directory.build, "warning: the build runs without a cgroup of its own: \(error.message)")
            }
            let builder = try Builder(project: project, options: buildOptions(id, request), cgroup: cgroup,
                                      logger: progress.logger(for: id, daemon: logger))
            builderStarted = true
            _ = try await builder.run()
        } catch {
            failure = error
        }
        if let cgroup {
            do throws(HavelError) {
                try await cgroup.remove()
            } catch {
                logger.error("project \(id): \(error.message)")
            }
        }
        guard let error = failure else {
            _ = cancellations.take(id)
            await finish(id, .buildDone, reason: nil)
            return
        }
        var reason = error.description
        var status = ProjectStatus.buildFailed
        if error.code == .cancelled || Task.isCancelled {
            if let requester = cancellations.take(id) {
                reason = "cancelled by \(requester)"
                status = .cancelled
            } else {
                reason = stopping.value ? Self.interruptedReason : "the build was cancelled"
            }
        }
        // A tool killed on cancellation may have mounted after the builder cleaned up.
        _ = try? await Mounts.unmountAll(under: directory.build.path)
        if !builderStarted, status != .cancelled {
            Self.appendLog(directory.build, "build FAILED: \(reason)")
            for diagnostic in error.diagnostics { Self.appendLog(directory.build, diagnostic.description) }
        }
        if status == .cancelled { Self.appendLog(directory.build, "build \(reason)") }
        await finish(id, status, reason: reason)
    }

    /// How a build runs: the daemon's cache and mirror settings, the request's choices.
    func buildOptions(_ id: ProjectID, _ request: BuildRequest) -> BuildOptions {
        var options = BuildOptions(directory: directory(id).build, cache: HavelCache(path: configuration.cache),
                                   useStageCache: configuration.useStageCache, havelVersion: configuration.havelVersion,
                                   continueLog: true, localMachine: configuration.localMachine, binaryCdrom: request.binaryCdrom)
        options.crossBuild = request.crossBuild
        options.skipOwnPackages = request.skipPbuilder
        options.sdk = request.sdk
        options.onlyOwnPackages = request.pbuilderOnly
        options.buildChrootOnly = request.pbuilderChroot.flatMap(BuildChrootAction.init(rawValue:))
        options.installMode = request.installMode.flatMap(InstallMode.init(rawValue:)) ?? .fast
        return options
    }

    /// How a build loads the uploaded project: passwords hashed as `havel build` does, not-built items as asked.
    func buildLoading(_ request: BuildRequest) -> ProjectLoader.Options {
        var options = Self.daemonLoaderOptions(limit: configuration.maximumProjectSize, hashPasswords: true)
        options.allowUnsupported = request.allowUnsupported
        return options
    }

    func finish(_ id: ProjectID, _ status: ProjectStatus, reason: String?) async {
        let files = directory(id).resultFiles()
        do {
            try await store.update(id) { record in
                record.status = status.rawValue
                record.reason = reason
                record.buildFinished = Date()
            }
            try await store.setFiles(id, files)
        } catch {
            logger.error("project \(id): cannot record the end of its build: \(error)")
        }
    }

    /// Cancels every build (they end as failed: the daemon stopped during the build) and waits for them.
    public func stop() async {
        stopping.set()
        let notStarted = await queue.shutdown()
        for id in notStarted {
            Self.appendLog(directory(id).build, "build FAILED: " + Self.interruptedReason)
            await finish(id, .buildFailed, reason: Self.interruptedReason)
        }
    }

    // MARK: - Serving

    /// The application: the routes on `host:port`, and a service that stops the builds first on shutdown.
    public func makeApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
        -> Application<RouterResponder<BasicRequestContext>> {
        let idle = configuration.connectionIdleTimeout
        return Application(
            router: makeRouter(),
            server: .http1(configuration: .init(idleTimeout: .milliseconds(idle.inMilliseconds))),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "havel"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// Serves until SIGTERM or SIGINT (or `shutdown()`); then running builds are cancelled (and recorded as
    /// failed) before the server stops.
    public func run(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try await serve(handlingSignals: true, onServerRunning: onServerRunning)
    }

    /// Serves until `shutdown()` (and, handling signals, SIGTERM or SIGINT). The server and the build
    /// service form one service group; on graceful shutdown the builds stop first.
    public func serve(handlingSignals: Bool, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = makeApplication(onServerRunning: onServerRunning)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: app), .init(service: BuildService(daemon: self)),
                       // Ending (on a lost database, or at shutdown) shuts the group down gracefully, builds first.
                       .init(service: DatabaseWatch(daemon: self), successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: handlingSignals ? [.sigterm, .sigint] : [],
            logger: app.logger))
        groupBox.set(group)
        try await group.run()
        if let problem = store.file.problem() {
            throw HavelError(.io, "\(problem); the daemon stopped so that nothing more is written into a lost file. "
                             + "Restore the database and start the daemon again")
        }
    }

    /// Stops serving as SIGTERM does: builds first, then the server.
    public func shutdown() async {
        await groupBox.group?.triggerGracefulShutdown()
    }
}

final class GroupBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: ServiceGroup?

    func set(_ group: ServiceGroup) {
        lock.lock()
        value = group
        lock.unlock()
    }

    var group: ServiceGroup? {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}

/// Runs until graceful shutdown, then stops the builds. Registered after the application, so it
/// is shut down before it.
struct BuildService: Service {
    let daemon: HavelDaemon

    func run() async throws {
        try? await gracefulShutdown()
        await daemon.stop()
    }
}

/// Watches the project database while the daemon serves: a havel.sqlite deleted or replaced under it would
/// take writes into a file nobody will read again, so the daemon stops with a clear message instead
/// (`serve` throws it; every write checks the file first as well).
struct DatabaseWatch: Service {
    let daemon: HavelDaemon
    static let interval: Duration = .seconds(2)

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if let problem = daemon.store.file.problem() {
                    daemon.logger.critical("\(problem); stopping so that nothing more is written into a lost file. Restore the database and start the daemon again.")
                    return
                }
                try? await Task.sleep(for: Self.interval)
            }
        }
    }
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false

    func set() {
        lock.lock()
        stopped = true
        lock.unlock()
    }

    var value: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }
}

/// Holds the queue, whose job refers back to the daemon (set once in init).
final class QueueBox: @unchecked Sendable {
    var queue: BuildQueue?
}
