import Logging
import BootCheck
import Chroot
import Debian
import Foundation
import HavelCore
import SystemKit

/// What every stage runs against: where the build goes, how it was asked for, where it logs, and the
/// seams to the system (programs through `processes`, chroot sessions through `chroot(_:)`), so that a
/// test can run a whole plan through a recording runner.
public struct BuildContext: Sendable {
    public let project: ValidatedProject
    public let options: BuildOptions
    public let host: HostFacts
    public let log: Logger
    public let processes: any ProcessRunning
    /// The cgroup every command of the build runs in (`processes` puts them there), if any: cancellation
    /// kills everything in it, also what left its session.
    public var cgroup: ProcessCgroup?
    /// Boots images and runs their checks (qemu; a recording stand-in in unit tests).
    public var checkImages: ImageChecking = { checks, script, directory, log throws(HavelError) in
        try await CheckRunner.run(checks, script: script, buildDirectory: directory.path, report: directory.checkReport, logger: log)
    }

    public init(project: ValidatedProject, options: BuildOptions, host: HostFacts, log: Logger,
                processes: any ProcessRunning = SystemProcesses()) {
        self.project = project
        self.options = options
        self.host = host
        self.log = log
        self.processes = processes
    }

    public var directory: BuildDirectory { options.directory }
    var architecture: Architecture { project.architecture }

    /// A chroot session factory: commands inside `root` (the target or the build environment).
    func chroot(_ root: String) -> ChrootRunner { ChrootRunner(root: root, processes: processes) }

    /// The packed root filesystem's file name within the build directory.
    var packedName: String { Self.packedName(project.project) }

    static func packedName(_ project: Project) -> String {
        if let tar = project.target.outputs.tar, !tar.isEmpty { return tar }
        return "\(project.name)-\(project.version)-rootfs.tar.zst"
    }

    /// Runs a bootstrap tool or apt, streaming its output into the log; a failure is explained in one sentence.
    func runTool(_ command: Command, what: String, sources: [String]) async throws(HavelError) {
        log.info("$ \(command.description)")
        let tail = LineTail(limit: 60)
        let log = self.log
        let status = try await processes.stream(command) { line in
            tail.append(line)
            log.tool(line)
        }
        guard status == .exited(0) else {
            let explanation = BootstrapFailure.explain(tail.all, suite: project.project.suite, architecture: architecture, sources: sources)
            throw HavelError(.processFailed, "installing the packages failed (\(what) \(status)): " +
                             (explanation ?? "see the log for details:\n" + tail.all.suffix(8).joined(separator: "\n")))
        }
    }
}

/// Boots a project's images and runs its checks, then its check script, against a build directory.
public typealias ImageChecking = @Sendable ([ImageCheck], CheckScript?, BuildDirectory, Logger) async throws(HavelError) -> [CheckResult]

/// What the stages made so far, handed from each to the next by `StageRunner`: the only way one
/// stage's results reach another.
public struct BuildProducts: Sendable {
    /// The mirror's Release files as probed (their digests key the install stage).
    var releases: [RepositoryProbe.Release] = []
    /// The project repository the own-package builds wrote (the install reads it).
    var projectRepository: ProjectRepository.Written?
    var install: InstallRecord?
    /// `--from-cdrom`: the checked binary CD the install reads instead of the mirror.
    var cdrom: BinaryCdromSource?
    /// `<mirror><cdrom>`: the checked CD the install reads besides the mirrors.
    var cdromMirror: CdromMirror?
    /// The installed packages when the target no longer holds dpkg's database (`<tighten/>`, `<diet/>`):
    /// the whole installed tree's, as ELBE's reports read its build environment's.
    var installedPackages: [InstalledPackage]?
    /// The packages whose files the minimised target keeps (its licences are theirs, as ELBE's target licences).
    var keptPackages: Set<String>?
    /// The clamp for every file time: SOURCE_DATE_EPOCH, else the newest installed package.
    var epoch = 0
    /// The build environment's tree, when the plan made one.
    var buildenv: RootedFileSystem?
    /// Files the `<archive>` overlay added, and files finetuning touched (for report.txt).
    var archiveFiles: [String] = []
    var finetunedFiles: [String] = []
    /// GRUB's BIOS core image, when an image asks for grub-install and the target has grub-pc.
    var grubCore: String?
    /// The packer of each image (project-finetuning's set_packer changes them).
    var packers: [String: String] = [:]
    /// What goes into state.json beside the stage records.
    var packedRootfs: String?
    var outputs: [String] = []
    var artifacts: [String] = []
    var checks: [String: Bool] = [:]
    /// The stages finished so far, as state.json records them (kept by the runner; report.txt lists them).
    var finishedStages: [BuildState.Stage] = []
    /// How the running stage came by its result, for its state.json record (the install stage's cache).
    var stageRecord: StageRecord?

    struct StageRecord: Sendable {
        var key: String?
        var cached: Bool
        var downloads: Int?
    }

    init() {}

    /// The build's installed packages: those kept by the minimise stage, else dpkg's status in the target.
    func installed(in directory: BuildDirectory) throws(HavelError) -> [InstalledPackage] {
        if let installedPackages { return installedPackages }
        return try DpkgStatus.read(root: directory.rootfs)
    }
}
