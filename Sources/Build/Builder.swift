import Foundation
import HavelCore
import Chroot
import Debian
import ProjectXML
import Reports
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

    public init(directory: BuildDirectory, cache: HavelCache = HavelCache(), useStageCache: Bool = true,
                sourceDateEpoch: Int? = nil, havelVersion: String, skipChecks: Bool = false, continueLog: Bool = false) {
        self.directory = directory
        self.cache = cache
        self.useStageCache = useStageCache
        self.sourceDateEpoch = sourceDateEpoch
        self.havelVersion = havelVersion
        self.skipChecks = skipChecks
        self.continueLog = continueLog
    }
}

/// What the install stage produced, kept with the stage in the cache so a reused stage needs nothing else.
struct InstallRecord: Codable, Sendable {
    struct Package: Codable, Sendable {
        var name: String
        var version: String
        var architecture: String
        var sha256: String?
        var origin: String?
    }

    var packages: [Package]
    var sourcesList: String
    var preferences: String

    func sha256(name: String, version: String, architecture: String) -> String? {
        packages.first { $0.name == name && $0.version == version && $0.architecture == architecture }?.sha256
    }
}

/// Runs the stages of a build: host checks, mirror probe, install (cached by content), target set-up,
/// archive and finetuning, reports, packing. Records every stage in state.json and ends in `done` or
/// `failed`; results of a failed build are removed so that nothing half-made looks finished.
public final class Builder: @unchecked Sendable {
    let loaded: LoadedProject
    let project: Project
    let options: BuildOptions
    let log: BuildLog
    var state: BuildState
    let started = Date()
    /// Deletes what an earlier build left, in the background; awaited before the build ends.
    var cleanup: Task<Void, Never>?
    /// The clamp for every file time: SOURCE_DATE_EPOCH, else the newest installed package.
    var epoch = 0
    /// GRUB's BIOS core image, when an image asks for grub-install and the target has grub-pc.
    var grubCore: String?
    var directory: BuildDirectory { options.directory }

    public init(project loaded: LoadedProject, options: BuildOptions, events: @escaping @Sendable (BuildEvent) -> Void) throws(HavelError) {
        guard loaded.isValid else {
            throw HavelError(.invalidProject, "the project has errors; run havel validate", diagnostics: loaded.errors)
        }
        guard let architecture = loaded.project.architecture else {
            throw HavelError(.invalidProject, "the project names no architecture Havel knows")
        }
        self.loaded = loaded
        self.project = loaded.project
        self.options = options
        do {
            try FileManager.default.createDirectory(atPath: options.directory.path, withIntermediateDirectories: true)
        } catch {
            throw HavelError(.io, "cannot create the build directory \(options.directory.path): \(error.localizedDescription)")
        }
        self.log = try BuildLog(path: options.directory.log, appending: options.continueLog, sink: events)
        self.state = BuildState(project: loaded.project.name, version: loaded.project.version,
                                architecture: architecture.debianName, havelVersion: options.havelVersion, started: Date())
    }

    var architecture: Architecture { project.architecture! }
    var packedName: String {
        if let tar = project.target.outputs.tar, !tar.isEmpty { return tar }
        return "\(project.name)-\(project.version)-rootfs.tar.zst"
    }

    /// Runs the whole build. On failure or cancellation the state says so and the error is rethrown.
    public func run() async throws(HavelError) -> BuildState {
        defer { log.close() }
        log.info("Havel \(options.havelVersion): building \(project.name) \(project.version) for \(architecture.debianName) (\(project.suite)) in \(directory.path)")
        do {
            try await prepareDirectory()
            try await stage("check host") { () async throws(HavelError) in try await self.checkHost() }
            let releases = try await stage("probe mirror") { () async throws(HavelError) in try await self.probeMirror() }
            let record = try await installStage(releases: releases)
            epoch = options.sourceDateEpoch ?? ReproducibleTime.newestPackage(in: directory.rootfs) ?? Int(started.timeIntervalSince1970)
            log.info("file times are clamped to \(epoch) (\(options.sourceDateEpoch != nil ? "SOURCE_DATE_EPOCH" : "the newest installed package"))")
            var buildenv: RootedFileSystem?
            if needsBuildEnvironment {
                buildenv = try await stage("build environment") { () async throws(HavelError) in try await self.makeBuildEnvironment() }
            } else if let packages = project.buildimage?.packages, !packages.isEmpty {
                log.info("buildimage/pkg-list is for the build environment only; it is not installed into the target")
            }
            var added: [String] = []
            var touched: [String] = []
            try await stage("configure target") { () async throws(HavelError) in
                let target = try RootedFileSystem(root: self.directory.rootfs)
                try await TargetSetup.apply(self.project, to: target, havelVersion: self.options.havelVersion,
                                            date: Date(timeIntervalSince1970: TimeInterval(self.epoch)), log: self.log)
            }
            if let archive = project.archive {
                added = try await stage("archive") { () async throws(HavelError) in
                    try await ArchiveOverlay.apply(archive, to: try RootedFileSystem(root: self.directory.rootfs),
                                                   work: self.directory.work, log: self.log)
                }
            }
            // Deferred from the install stage: once, with the archive's initramfs settings, before finetuning
            // (which may take the kernel and initrd as artifacts, as with ELBE).
            try await stage("initramfs") { () async throws(HavelError) in try await self.finishInitramfs() }
            try await stage("finetuning") { () async throws(HavelError) in
                let target = try RootedFileSystem(root: self.directory.rootfs)
                var runner = FinetuningRunner(target: target, chroot: ChrootRunner(root: self.directory.rootfs),
                                              buildenv: buildenv, directory: self.directory, log: self.log)
                let excursions = try ChrootExcursions.enter(target)
                do throws(HavelError) {
                    try await runner.run(self.project.target.finetuning)
                } catch {
                    excursions.leave(warn: self.log.warning)
                    throw error
                }
                excursions.leave(warn: self.log.warning)
                touched = runner.touched
                self.state.artifacts = runner.artifacts
            }
            if project.target.images.contains(where: { $0.grubInstall != nil }) {
                try await stage("bootloader") { () async throws(HavelError) in
                    let target = try RootedFileSystem(root: self.directory.rootfs)
                    try? FileManager.default.createDirectory(atPath: self.directory.work, withIntermediateDirectories: true)
                    self.grubCore = try await Bootloader(project: self.project, target: target,
                                                         chroot: ChrootRunner(root: self.directory.rootfs), log: self.log)
                        .prepare(work: self.directory.work)
                }
            }
            // The reports and the packed rootfs only read the finished tree: they run side by side.
            try await stage("reports and packing") { () async throws(HavelError) in
                let packed = self.directory.path + "/" + self.packedName
                let clamp = self.epoch
                let rootfs = self.directory.rootfs
                let packing = Task { try await Tar.pack(rootfs, to: packed, mtimeClamp: clamp) }
                do throws(HavelError) {
                    try await ReportWriter(builder: self, record: record, added: added, touched: touched).write()
                } catch {
                    packing.cancel()
                    _ = await packing.result
                    throw error
                }
                if case .failure(let error) = await packing.result {
                    throw error as? HavelError ?? HavelError(.internalError, "packing failed: \(error)")
                }
                self.state.packedRootfs = self.packedName
            }
            try await imageStages()
            await cleanup?.value
            state.status = .done
            state.finished = Date()
            try state.write(directory.state)
            try? FileManager.default.removeItem(atPath: directory.work)
            log.info("build done in \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(directory.path)")
            return state
        } catch {
            let failure = Task.isCancelled && error.code != .cancelled ?
                HavelError(.cancelled, "the build was interrupted (\(error.message))") : error
            await fail(failure)
            throw failure
        }
    }

    func fail(_ error: HavelError) async {
        await cleanup?.value
        state.status = .failed
        state.reason = error.description
        state.finished = Date()
        log.info("build FAILED: \(error.description)")
        for diagnostic in error.diagnostics { log.info(diagnostic.description) }
        for file in directory.resultFiles(packedRootfs: packedName) + resultsOfThisBuild() { unlink(file) }
        unlink(directory.path + "/" + packedName + ".partial")
        _ = try? await Mounts.unmountAll(under: directory.path)
        try? FileManager.default.removeItem(atPath: directory.work)
        try? state.write(directory.state)
    }

    /// Runs one stage, timing it and recording it in state.json.
    func stage<T>(_ name: String, key: String? = nil, _ body: () async throws(HavelError) -> T) async throws(HavelError) -> T {
        try Task.checkCancellationAsHavelError()
        log.event(.stageStarted(name))
        let clock = ContinuousClock.now
        let result = try await body()
        let elapsed = ContinuousClock.now - clock
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        if let index = state.stages.firstIndex(where: { $0.name == name }) {
            state.stages[index].seconds = seconds
        } else {
            state.stages.append(.init(name: name, key: key, cached: false, seconds: seconds))
        }
        log.event(.stageFinished(name, seconds: seconds, cached: state.stages.last?.cached ?? false))
        try state.write(directory.state)
        return result
    }

    // MARK: - Stages

    /// Clears what an earlier run left: its mounts (after a SIGKILL), its results and its tree.
    func prepareDirectory() async throws(HavelError) {
        let stale = try await Mounts.unmountAll(under: directory.path)
        if !stale.isEmpty { log.warning("removed \(stale.count) mount(s) an earlier run left: \(stale.joined(separator: ", "))") }
        for file in directory.resultFiles(packedRootfs: packedName) { unlink(file) }
        // The trees of an earlier build are renamed away at once and deleted while this build runs.
        var old: [String] = []
        for dir in [directory.rootfs, directory.buildenv, directory.work, directory.artifacts] where FileManager.default.fileExists(atPath: dir) {
            let trash = "\(directory.path)/.old-\((dir as NSString).lastPathComponent)-\(UUID().uuidString.prefix(8))"
            guard rename(dir, trash) == 0 else {
                throw HavelError(.io, "cannot move \(dir) of an earlier build aside: \(String(cString: strerror(errno)))")
            }
            old.append(trash)
        }
        let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasPrefix(".old-") }.map { directory.path + "/" + $0 }
        let trash = Set(old + leftovers).sorted()
        if !trash.isEmpty {
            cleanup = Task.detached { _ = try? await ProcessRunner.run(Command("rm", ["-rf", "--one-file-system", "--"] + trash)) }
        }
        do {
            try FileManager.default.createDirectory(atPath: directory.work, withIntermediateDirectories: true)
        } catch {
            throw HavelError(.io, "cannot create \(directory.work)")
        }
        try state.write(directory.state)
    }

    /// Undoes the install stage's deferral of update-initramfs and, with a kernel installed, runs it once.
    func finishInitramfs() async throws(HavelError) {
        let target = try RootedFileSystem(root: directory.rootfs)
        guard target.exists(InitramfsDeferral.diverted) || target.exists(InitramfsDeferral.tool) else { return }
        let excursions = try ChrootExcursions.enter(target)
        do throws(HavelError) {
            try await runTool(ChrootRunner(root: directory.rootfs).command(["/bin/sh", "-c", InitramfsDeferral.finishCommands]),
                              what: "update-initramfs", sources: [])
        } catch {
            excursions.leave(warn: log.warning)
            throw error
        }
        excursions.leave(warn: log.warning)
    }

    /// Whether the project needs a build environment beside the target.
    var needsBuildEnvironment: Bool {
        if let packages = project.buildimage?.packages, !packages.isEmpty { return true }
        return project.target.finetuning.contains { step in
            switch step.action {
            case .makeDirectory(_, let place), .command(_, let place): return place == .buildenv
            case .copy(_, _, let source, let destination), .move(_, _, let source, let destination):
                return source == .buildenv || destination == .buildenv
            default: return false
            }
        }
    }

    /// A copy of the installed tree, with the buildimage packages installed into it (under emulation).
    func makeBuildEnvironment() async throws(HavelError) -> RootedFileSystem {
        try await ProcessRunner.check(Command("cp", ["-a", "--reflink=auto", directory.rootfs, directory.buildenv]))
        let buildenv = try RootedFileSystem(root: directory.buildenv)
        let packages = project.buildimage?.packages.map(\.name) ?? []
        guard !packages.isEmpty else { return buildenv }
        log.info("installing into the build environment: \(packages.joined(separator: " "))")
        let sources = AptSources.lines(for: project)
        let excursions = try ChrootExcursions.enter(buildenv)
        do throws(HavelError) {
            let chroot = ChrootRunner(root: directory.buildenv)
            try await runTool(chroot.command(["apt-get", "update"]), what: "apt-get update", sources: sources)
            try await runTool(chroot.command(["apt-get", "-y", "install"] + packages), what: "apt-get install", sources: sources)
            try await runTool(chroot.command(["apt-get", "clean"]), what: "apt-get clean", sources: sources)
        } catch {
            excursions.leave(warn: log.warning)
            throw error
        }
        excursions.leave(warn: log.warning)
        return buildenv
    }

    func checkHost() async throws(HavelError) {
        guard geteuid() == 0 else {
            throw HavelError(.hostNotReady, "havel build needs root (it installs packages into a tree and runs them in a chroot); run it with sudo")
        }
        var missing: [(tool: String, package: String)] = []
        let tool = project.target.debootstrap.tool ?? .mmdebstrap
        var tools: [(String, String)] = [("tar", "tar"), ("zstd", "zstd"), ("unshare", "util-linux"), ("chpasswd", "passwd"),
                                        ("sha256sum", "coreutils"), ("/usr/lib/apt/apt-helper", "apt")]
        switch tool {
        case .mmdebstrap: tools.append(("mmdebstrap", "mmdebstrap"))
        case .debootstrap: tools.append(("debootstrap", "debootstrap"))
        case .baseImage: throw HavelError(.unsupported, "debootstrap type base-image is not supported yet; use mmdebstrap or debootstrap")
        }
        let host = HostArchitecture.current
        let foreign = host.map { !architecture.runsNatively(on: $0) } ?? true
        if foreign { tools.append(("/usr/libexec/qemu-binfmt/\(architecture.qemuUserName)-binfmt-P", "qemu-user-static")) }
        for (name, package) in tools where ProcessRunner.which(name) == nil {
            missing.append((name, package))
        }
        if !missing.isEmpty {
            let packages = Set(missing.map(\.package)).sorted()
            throw HavelError(.hostNotReady, "missing tools: \(missing.map(\.tool).joined(separator: ", ")); install them with: apt-get install \(packages.joined(separator: " "))")
        }
        if foreign {
            let registered = try await Binfmt.ensureHandler(qemuName: architecture.qemuUserName)
            log.info(registered ? "registered qemu-\(architecture.qemuUserName) with binfmt_misc" : "qemu-\(architecture.qemuUserName) is registered with binfmt_misc")
        }
    }

    func probeMirror() async throws(HavelError) -> [RepositoryProbe.Release] {
        let repositories = AptSources.repositories(for: project)
        guard !repositories.isEmpty else { throw HavelError(.invalidProject, "the project names no repository to install from") }
        let releases = try await RepositoryProbe.fetchReleases(repositories, workDirectory: directory.work + "/releases")
        for release in releases { log.info("repository \(release.url) (sha256 \(release.sha256.prefix(12)))") }
        return releases
    }

    /// The content key of the install stage: everything that decides which files the tree holds.
    func installKey(releases: [RepositoryProbe.Release]) async throws(HavelError) -> String {
        struct Inputs: Encodable {
            var format = 2
            var tool: String
            var architecture: String
            var suite: String
            var variant: String?
            var packages: [String]
            var exclude: [String]
            var sources: [String]
            var releases: [String]
            var preferences: String
            var keys: [String]
            var recommends: Bool
            var preseed: String
        }
        let inputs = Inputs(tool: (project.target.debootstrap.tool ?? .mmdebstrap).rawValue, architecture: architecture.debianName,
                            suite: project.suite, variant: project.target.debootstrap.variant,
                            packages: BootstrapRequest.packages(for: project), exclude: project.target.debootstrap.exclude,
                            sources: AptSources.lines(for: project), releases: releases.map { "\($0.url) \($0.sha256)" },
                            preferences: AptSources.preferences(for: project), keys: AptSources.keys(for: project).map(\.armored),
                            recommends: project.target.installRecommends, preseed: DebconfSelection.selections(project.preseed))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(inputs) else { throw HavelError(.internalError, "cannot encode the stage inputs") }
        return try await Digest.sha256([UInt8](data))
    }

    func installStage(releases: [RepositoryProbe.Release]) async throws(HavelError) -> InstallRecord {
        let key = try await installKey(releases: releases)
        let name = "install packages"
        let cache = options.cache
        try cache.prepare()
        if options.useStageCache, cache.hasStage(key) {
            state.stages.append(.init(name: name, key: key, cached: true, seconds: 0, downloads: 0))
            return try await stage(name, key: key) { () async throws(HavelError) in
                log.info("reusing the installed tree from the stage cache (\(key.prefix(16)))")
                try await TreeCopy.copy(cache.stageDirectory(key) + "/rootfs", to: directory.rootfs)
                cache.touchStage(key)
                guard let data = FileManager.default.contents(atPath: cache.stageDirectory(key) + "/record.json"),
                      let record = try? JSONDecoder().decode(InstallRecord.self, from: data) else {
                    throw HavelError(.io, "the cached stage \(key) has no readable record; run havel cache prune")
                }
                return record
            }
        }
        state.stages.append(.init(name: name, key: key, cached: false, seconds: 0))
        return try await stage(name, key: key) { () async throws(HavelError) in
            let removed = try await cache.verifyDebs()
            if removed > 0 { log.info("dropped \(removed) cached package(s) that no build had verified against its mirror (or whose sha256 changed)") }
            let before = Set(cache.debFiles())
            let inUse = try cache.usingDebs()
            defer { inUse.release() }
            let record = try await bootstrap()
            let downloaded = Set(cache.debFiles()).subtracting(before).count
            if let index = state.stages.firstIndex(where: { $0.name == name }) { state.stages[index].downloads = downloaded }
            log.info("\(record.packages.count) packages installed, \(downloaded) downloaded")
            if options.useStageCache {
                let tree = directory.work + "/stage-rootfs"
                try await TreeCopy.copy(directory.rootfs, to: tree)
                let recordPath = directory.work + "/record.json"
                let description = directory.work + "/description"
                do {
                    try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: recordPath))
                    try "\(project.name) \(project.version) \(architecture.debianName) \(project.suite), \(record.packages.count) packages"
                        .write(toFile: description, atomically: true, encoding: .utf8)
                } catch {
                    throw HavelError(.io, "cannot write the stage record: \(error.localizedDescription)")
                }
                try cache.storeStage(key, files: ["rootfs": tree, "record.json": recordPath, "description": description])
                cache.touchStage(key)
            }
            return record
        }
    }

    /// Bootstraps with every package of the project in one run and verifies each .deb against the mirror's index.
    func bootstrap() async throws(HavelError) -> InstallRecord {
        let lists = directory.work + "/lists"
        let tool = project.target.debootstrap.tool ?? .mmdebstrap
        let sources = AptSources.lines(for: project)
        var request = BootstrapRequest(
            tool: tool, architecture: architecture, suite: project.suite, variant: project.target.debootstrap.variant,
            packages: BootstrapRequest.packages(for: project), exclude: project.target.debootstrap.exclude,
            sourceLines: sources, preferences: AptSources.preferences(for: project), keys: AptSources.keys(for: project),
            installRecommends: project.target.installRecommends, packageCache: options.cache.debs, listsDirectory: lists)
        request.debconfSelections = project.preseed
        switch tool {
        case .mmdebstrap:
            let command = try Mmdebstrap.prepare(request, workDirectory: directory.work + "/bootstrap", output: directory.rootfs)
            try await runTool(Self.privateMounts(command), what: "mmdebstrap", sources: sources)
        case .debootstrap:
            try await debootstrap(request)
        case .baseImage:
            throw HavelError(.unsupported, "debootstrap type base-image is not supported yet; use mmdebstrap or debootstrap")
        }
        return try await makeRecord(lists: lists, sources: sources)
    }

    /// Runs `command` in a private mount namespace: the /proc, /sys and /dev mounts a bootstrap tool makes in
    /// the tree vanish with it, even when it is killed before it can unmount them.
    static func privateMounts(_ command: Command) -> Command {
        var wrapped = command
        wrapped.executable = "unshare"
        wrapped.arguments = ["--mount", "--propagation", "private", "--", command.executable] + command.arguments
        return wrapped
    }

    /// Runs a bootstrap tool or apt, streaming its output into the log; a failure is explained in one sentence.
    func runTool(_ command: Command, what: String, sources: [String]) async throws(HavelError) {
        log.info("$ " + command.description)
        let tail = LineTail(limit: 60)
        let log = self.log
        let status = try await ProcessRunner.stream(command) { line in
            tail.append(line)
            log.tool(line)
        }
        guard status == .exited(0) else {
            let explanation = BootstrapFailure.explain(tail.all, suite: project.suite, architecture: architecture, sources: sources)
            throw HavelError(.processFailed, "installing the packages failed (\(what) \(status)): " +
                             (explanation ?? "see the log for details:\n" + tail.all.suffix(8).joined(separator: "\n")))
        }
    }

    /// debootstrap the base system, then apt inside the tree for the pkg-list, with the same sources,
    /// preferences, keys and package cache as the mmdebstrap path; the tree ends as clean as mmdebstrap leaves it.
    func debootstrap(_ request: BootstrapRequest) async throws(HavelError) {
        guard let primary = project.mirror.primary else {
            throw HavelError(.invalidProject, "debootstrap needs a primary mirror (<primary_host>)")
        }
        let noauth = project.mirror.noauth || project.mirror.options.contains("trusted=yes")
        var keyring: String? = "/usr/share/keyrings/debian-archive-keyring.gpg"
        if noauth {
            keyring = nil
        } else if let key = project.mirror.primary?.key, !key.isEmpty {
            let armored = directory.work + "/primary-key.asc"
            keyring = directory.work + "/primary-key.gpg"
            do { try AptSources.keys(for: project)[0].armored.write(toFile: armored, atomically: true, encoding: .utf8) } catch {
                throw HavelError(.io, "cannot write \(armored)")
            }
            guard ProcessRunner.which("gpg") != nil else {
                throw HavelError(.hostNotReady, "debootstrap needs gpg to use <primary_key>; apt-get install gnupg, or use mmdebstrap")
            }
            try await ProcessRunner.check(Command("gpg", ["--batch", "--yes", "--dearmor", "-o", keyring!, armored]))
        }
        let base = BootstrapRequest(tool: .debootstrap, architecture: request.architecture, suite: request.suite, variant: request.variant,
                                    packages: project.target.debootstrap.include, exclude: request.exclude, sourceLines: request.sourceLines,
                                    preferences: request.preferences, keys: request.keys, installRecommends: request.installRecommends,
                                    packageCache: request.packageCache, listsDirectory: request.listsDirectory)
        try await runTool(Self.privateMounts(Debootstrap.command(base, mirror: primary.url, keyring: keyring, output: directory.rootfs)),
                          what: "debootstrap", sources: request.sourceLines)
        let target = try RootedFileSystem(root: directory.rootfs)
        try target.writeFile("/etc/apt/sources.list", contents: Array((request.sourceLines.joined(separator: "\n") + "\n").utf8), mode: 0o644)
        if !request.preferences.isEmpty {
            try target.writeFile("/etc/apt/preferences.d/havel", contents: Array(request.preferences.utf8), mode: 0o644)
        }
        for key in request.keys {
            try target.writeFile("/etc/apt/trusted.gpg.d/" + key.fileName, contents: Array(key.armored.utf8), mode: 0o644)
        }
        // apt inside the tree: cached packages linked in, new ones linked back out.
        let archives = try target.resolve("/var/cache/apt/archives")
        _ = try await ProcessRunner.run(Command("sh", ["-c", "cp -l -n \"$1\"/*.deb \"$2\"/ 2>/dev/null || cp -n \"$1\"/*.deb \"$2\"/ 2>/dev/null; true", "sh",
                                                   options.cache.debs, archives]))
        let excursions = try ChrootExcursions.enter(target)
        do throws(HavelError) {
            let chroot = ChrootRunner(root: directory.rootfs)
            let recommends = "APT::Install-Recommends=\(request.installRecommends ? "true" : "false")"
            try await runTool(chroot.command(["/bin/sh", "-c", InitramfsDeferral.deferScript(inChroot: true)]), what: "deferring update-initramfs",
                              sources: request.sourceLines)
            if !request.debconfSelections.isEmpty {
                // debootstrap has configured its base already; the pkg-list's packages find the answers.
                let answers = DebconfSelection.selections(request.debconfSelections)
                log.info("debconf answers from <preseed>: " + request.debconfSelections.map(\.key).joined(separator: ", "))
                let result = try await ProcessRunner.run(chroot.command(["debconf-set-selections"]), input: Array(answers.utf8))
                guard result.termination == .exited(0) else {
                    throw HavelError(.processFailed, "debconf-set-selections refused the <preseed> answers: " + result.standardError.trimmingWhitespace())
                }
            }
            try await runTool(chroot.command(["apt-get", "-o", "Acquire::Retries=3", "update"]), what: "apt-get update", sources: request.sourceLines)
            if !project.target.packages.isEmpty {
                try await runTool(chroot.command(["apt-get", "-y", "-o", recommends, "install"] + project.target.packages.map(\.name)),
                                  what: "apt-get install", sources: request.sourceLines)
            }
        } catch {
            excursions.leave(warn: log.warning)
            throw error
        }
        excursions.leave(warn: log.warning)
        let lists = try target.resolve("/var/lib/apt/lists")
        try await ProcessRunner.check(Command("sh", ["-c", """
            set -e
            cp -l -n "$1"/*.deb "$2"/ 2>/dev/null || cp -n "$1"/*.deb "$2"/ 2>/dev/null || true
            mkdir -p "$3/var/lib/apt/lists"
            cp "$4"/*_Packages "$3/var/lib/apt/lists/"
            rm -f "$1"/*.deb
            find "$4" -mindepth 1 -maxdepth 1 ! -name lock ! -name partial -exec rm -rf {} +
            """, "sh", archives, options.cache.debs, request.listsDirectory, lists]))
    }

    func makeRecord(lists: String, sources: [String]) async throws(HavelError) -> InstallRecord {
        let installed = try DpkgStatus.read(root: directory.rootfs)
        let index = PackagesIndex.index(try PackagesIndex.readLists(root: lists))
        let cache = options.cache
        var files: [String: (name: String, version: String, arch: String)] = [:]
        for package in installed {
            let version = package.version.replacingOccurrences(of: ":", with: "%3a")
            files["\(package.name)_\(version)_\(package.architecture).deb"] = (package.name, package.version, package.architecture)
        }
        let present = Set(cache.debFiles())
        let digests = try await Digest.sha256(files: files.keys.filter { present.contains($0) }.map { cache.debs + "/" + $0 })
        var verified: [String: String] = [:]
        var packages: [InstallRecord.Package] = []
        for package in installed {
            let version = package.version.replacingOccurrences(of: ":", with: "%3a")
            let file = "\(package.name)_\(version)_\(package.architecture).deb"
            let indexed = index["\(package.name) \(package.version) \(package.architecture)"]
            let digest = digests[cache.debs + "/" + file]
            if let digest, let expected = indexed?.sha256 {
                guard digest == expected else {
                    unlink(cache.debs + "/" + file)
                    throw HavelError(.processFailed, "package \(package.name) \(package.version): the downloaded .deb has sha256 \(digest) but the mirror's index says \(expected); it was removed from the cache, build again")
                }
                verified[file] = digest
            }
            packages.append(.init(name: package.name, version: package.version, architecture: package.architecture,
                                  sha256: indexed?.sha256 ?? digest, origin: indexed?.origin))
        }
        try cache.recordVerified(verified)
        let sourcesList = (try? String(contentsOfFile: directory.rootfs + "/etc/apt/sources.list", encoding: .utf8)) ?? sources.joined(separator: "\n") + "\n"
        return InstallRecord(packages: packages, sourcesList: sourcesList, preferences: AptSources.preferences(for: project))
    }
}

/// The machine Havel runs on.
public enum HostArchitecture {
    public static let current: Architecture? = {
        var info = utsname()
        uname(&info)
        let machine = withUnsafeBytes(of: &info.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        switch machine {
        case "x86_64": return .amd64
        case "aarch64": return .arm64
        case "i686", "i386": return .i386
        case "armv7l": return .armhf
        case "riscv64": return .riscv64
        case "ppc64le": return .ppc64el
        default: return nil
        }
    }()
}
