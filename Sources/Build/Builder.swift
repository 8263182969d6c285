import Logging
import Debian
import Foundation
import HavelCore
import ProjectXML
import SystemKit

/// How to build.
public struct BuildOptions: Sendable {
    public var directory: BuildDirectory
    public var cache: HavelCache
    /// Read and write the stage cache (`--no-cache` turns it off; packages still come from the verified .deb cache).
    public var useStageCache: Bool
    /// Clamp for file times in archives; nil: the build's start.
    public var sourceDateEpoch: Int?
    public var havelVersion: String
    /// Leave out the boot checks of `check-image-list` (`--skip-checks`).
    public var skipChecks: Bool
    /// Append to log.txt instead of starting it afresh (the daemon writes when a build was queued first).
    public var continueLog: Bool
    /// What `LOCALMACHINE` in a `<primary_proxy>` means where this build runs (10.0.2.2 inside the initvm).
    public var localMachine: String
    /// Also write bin-cdrom.iso: every installed package as a signed apt repository (`--cdroms`).
    public var binaryCdrom: Bool
    /// Cross-build the `<pbuilder>` packages of a foreign target in a host-architecture chroot (`--cross`)
    /// instead of building them under qemu-user in a target-architecture one.
    public var crossBuild: Bool = false
    /// Build only the `<pbuilder>` packages and the project repository (`havel pbuilder build`).
    public var onlyOwnPackages: Bool = false
    /// Only make the `<pbuilder>` packages' build chroot in the stage cache (`havel pbuilder create|update`);
    /// implies `onlyOwnPackages`.
    public var buildChrootOnly: BuildChrootAction? = nil
    /// Do not build the `<pbuilder>` packages; install from the project repository the build directory holds
    /// (`--skip-pbuilder`).
    public var skipOwnPackages: Bool = false
    /// Install from this binary CD (an ISO image `--cdroms` wrote) instead of the mirror, without the stage
    /// cache (`--from-cdrom`).
    public var fromCdrom: String? = nil
    /// Also write the SDK installer (`--sdk`): the target's sysroot and the cross tools.
    public var sdk: Bool = false
    /// How a foreign target's packages are installed (`--install-mode`): the host's dpkg unpacking natively
    /// (the default) or everything under qemu-user.
    public var installMode: InstallMode = .fast

    public init(directory: BuildDirectory, cache: HavelCache = HavelCache(), useStageCache: Bool = true,
                sourceDateEpoch: Int? = nil, havelVersion: String, skipChecks: Bool = false, continueLog: Bool = false,
                localMachine: String = "localhost", binaryCdrom: Bool = false) {
        self.localMachine = localMachine
        self.binaryCdrom = binaryCdrom
        self.directory = directory
        self.cache = cache
        self.useStageCache = useStageCache
        self.sourceDateEpoch = sourceDateEpoch
        self.havelVersion = havelVersion
        self.skipChecks = skipChecks
        self.continueLog = continueLog
    }
}

/// A build of one project on this host: its plan (`BuildPlan`), run by a `StageRunner` with the build
/// log open in the build directory. The CLI and the daemon build through this.
public struct Builder: Sendable {
    public let plan: BuildPlan
    var context: BuildContext
    /// log.txt: every record of the build's logger also goes here.
    let logFile: LogFile

    /// How the boot checks stage boots images (CheckRunner: qemu, unless replaced).
    public var checkImages: ImageChecking {
        get { context.checkImages }
        set { context.checkImages = newValue }
    }

    /// `logger` is the front end's (a progress line, the daemon's project status); the builder adds log.txt.
    /// With a `cgroup`, every command joins it and cancelling the build kills everything in it.
    public init(project: ValidatedProject, options: BuildOptions, host: HostFacts = .current,
                processes: any ProcessRunning = SystemProcesses(), cgroup: ProcessCgroup? = nil, logger: Logger) throws(HavelError) {
        do {
            try FileManager.default.createDirectory(atPath: options.directory.path, withIntermediateDirectories: true)
        } catch {
            throw HavelError(.io, "cannot create the build directory \(options.directory.path): \(error.localizedDescription)")
        }
        logFile = try LogFile(path: options.directory.log, appending: options.continueLog)
        plan = BuildPlan(project, host: host, options: options)
        var processes = processes
        if let cgroup { processes = CgroupProcesses(processes, cgroup: cgroup) }
        if let proxy = project.project.mirror.primary?.proxy, !proxy.trimmingWhitespace().isEmpty {
            processes = ProxiedProcesses(processes, proxy: proxy, localMachine: options.localMachine)
        }
        context = BuildContext(project: project, options: options, host: host, log: logger.alsoWriting(to: logFile),
                               processes: processes)
        context.cgroup = cgroup
        if let proxied = processes as? ProxiedProcesses {
            context.log.info("apt and the bootstrap reach the mirrors through the proxy \(proxied.proxy) (<primary_proxy>)")
        }
    }

    /// From a loaded project; one with errors or without a known architecture is refused.
    public init(project: LoadedProject, options: BuildOptions, logger: Logger) throws(HavelError) {
        try self.init(project: try ValidatedProject(project), options: options, logger: logger)
    }

    /// Runs the whole build. On failure or cancellation the state says so and the error is rethrown.
    public func run() async throws(HavelError) -> BuildState {
        defer { logFile.close() }
        return try await StageRunner(plan: plan, context: context).run()
    }
}

/// `havel pbuilder create|update`: the own packages' build chroot alone, as ELBE's commands of those names
/// make its pbuilder chroot.
public enum BuildChrootAction: String, Sendable, CaseIterable {
    /// The chroot for the project's mirror as it is now, taken from the stage cache when it holds one.
    case create
    /// Made afresh from the mirror and stored in place of the cached one (a changed mirror already gives a
    /// new chroot, whose key holds the Release digests; this also renews one of an unchanged mirror).
    case update
}
