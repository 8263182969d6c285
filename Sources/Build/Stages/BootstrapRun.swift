import Chroot
import Debian
import Foundation
import HavelCore
import Logging
import SystemKit

/// The install itself: the bootstrap tool run with every package of the project (mmdebstrap in one run,
/// or debootstrap followed by apt inside the tree), then each installed .deb verified against the
/// mirror's index and recorded.
struct BootstrapRun {
    let context: BuildContext
    /// The project's own packages, read as one more apt source while installing (not left in the target).
    var projectRepository: ProjectRepository.Written? = nil
    /// `--from-cdrom`: the binary CD is the only package source while installing; the target keeps the project's.
    var cdrom: BinaryCdromSource? = nil
    /// `<mirror><cdrom>`: one more source while installing, not left in the target.
    var cdromMirror: CdromMirror? = nil
    var project: Project { context.project.project }
    var architecture: Architecture { context.architecture }

    /// Bootstraps with every package of the project in one run and verifies each .deb against the mirror's index.
    func install() async throws(HavelError) -> InstallRecord {
        let lists = context.directory.aptLists
        let tool = project.target.debootstrap.tool ?? .mmdebstrap
        var sources = AptSources.lines(for: project)
        var keys = AptSources.keys(for: project)
        if let projectRepository {
            guard tool == .mmdebstrap else {
                throw HavelError(.unsupported, "the project's own packages (<pbuilder>) are installed with mmdebstrap only; remove <debootstrap><type>debootstrap</type>")
            }
            sources.append(projectRepository.sourceLine)
            keys.append((ProjectRepository.Written.keyFileName, projectRepository.publicKey))
        }
        if let cdromMirror {
            guard tool == .mmdebstrap else {
                throw HavelError(.unsupported, "<mirror><cdrom> is read with mmdebstrap only; remove <debootstrap><type>debootstrap</type>")
            }
            sources.append(cdromMirror.sourceLine)
        }
        var request = BootstrapRequest(
            tool: tool, architecture: context.architecture, suite: project.suite, variant: project.target.debootstrap.variant,
            packages: BootstrapRequest.packages(for: project), exclude: project.target.debootstrap.exclude,
            sourceLines: sources, preferences: AptSources.preferences(for: project), keys: keys,
            installRecommends: project.target.installRecommends, packageCache: context.options.cache.debs, listsDirectory: lists)
        request.debconfSelections = project.preseed
        request.foreignArchitectures = BootstrapRequest.foreignArchitectures(for: project)
        if projectRepository != nil { request.installPreferences = ProjectRepository.Written.installPreferences }
        if let cdrom {
            guard tool == .mmdebstrap else {
                throw HavelError(.unsupported, "--from-cdrom installs with mmdebstrap only; remove <debootstrap><type>debootstrap</type>")
            }
            request.installSourceOverride = cdrom.sourceLine
        }
        request.nativeUnpack = chooseInstallPath(tool: tool)
        switch tool {
        case .mmdebstrap:
            let command = try Mmdebstrap.prepare(request, workDirectory: context.directory.work + "/bootstrap", output: context.directory.rootfs)
            try await context.runTool(command.inPrivateMountNamespace(), what: "mmdebstrap", sources: sources)
        case .debootstrap:
            try await debootstrap(request)
        case .baseImage:
            throw HavelError(.unsupported, "debootstrap type base-image is not supported yet; use mmdebstrap or debootstrap")
        }
        try removeBuildHostSources()
        if let target = project.architecture {
            try Self.checkArchitectures(project.target.packages, installed: try DpkgStatus.read(root: context.directory.rootfs), target: target)
        }
        return try await makeRecord(lists: lists, sources: sources)
    }

    /// Whether the host's dpkg unpacks (`NativeUnpack`), with the choice and its reason in the log.
    func chooseInstallPath(tool: DebootstrapSpec.Tool) -> Bool {
        guard context.options.installMode == .fast || context.host.runsNatively(architecture) else {
            context.log.info("install path: emulated (--install-mode emulated): dpkg and every script run under qemu-user")
            return false
        }
        if let reason = NativeUnpack.obstacle(tool: tool, variant: project.target.debootstrap.variant,
                                              runsNatively: context.host.runsNatively(architecture)) {
            context.log.info("install path: the target's dpkg, as \(reason)")
            return false
        }
        context.log.info("install path: fast: the host's dpkg unpacks natively, the target's dpkg configures under qemu-user (--install-mode emulated for all under qemu-user)")
        return true
    }

    /// `<pkg arch>`: each package so marked is installed with that architecture (`all`, the target's, or the
    /// foreign one it was asked for as `name:arch`), else the build stops at the package's line.
    static func checkArchitectures(_ packages: [PackageSpec], installed: [InstalledPackage], target: Architecture) throws(HavelError) {
        for package in packages {
            guard let wanted = package.architecture else { continue }
            let found = installed.filter { $0.name == package.name }.map(\.architecture)
            guard !found.contains(wanted) else { continue }
            let what = found.isEmpty ? "is not installed" : "is installed for \(found.joined(separator: " and ")), not \(wanted)"
            throw HavelError(.invalidProject, "<pkg arch=\"\(wanted)\">\(package.name)</pkg>: \(package.name) \(what); "
                             + "give the architecture the package has in the archive (all for architecture-independent ones), or remove arch",
                             at: package.location)
        }
    }

    /// The project repository's and the CD's lines (and the repository's key) out of the target: paths on the
    /// build host mean nothing there.
    func removeBuildHostSources() throws(HavelError) {
        let lines = Set([projectRepository?.sourceLine, cdromMirror?.sourceLine].compactMap { $0 })
        guard !lines.isEmpty else { return }
        let list = context.directory.rootfs + "/etc/apt/sources.list"
        if let text = try? String(contentsOfFile: list, encoding: .utf8) {
            let kept = text.split(separator: "\n", omittingEmptySubsequences: false).filter { !lines.contains($0.trimmingWhitespace()) }
            try AtomicFile.write(kept.joined(separator: "\n"), to: list)
        }
        if projectRepository != nil {
            unlink(context.directory.rootfs + "/etc/apt/trusted.gpg.d/" + ProjectRepository.Written.keyFileName)
            unlink(context.directory.rootfs + BootstrapRequest.installPreferencesFile)
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
            let armored = context.directory.work + "/primary-key.asc"
            keyring = context.directory.work + "/primary-key.gpg"
            do { try AptSources.keys(for: project)[0].armored.write(toFile: armored, atomically: true, encoding: .utf8) } catch {
                throw HavelError(.io, "cannot write \(armored)")
            }
            guard context.processes.which("gpg") != nil else {
                throw HavelError(.hostNotReady, "debootstrap needs gpg to use <primary_key>; apt-get install gnupg, or use mmdebstrap")
            }
            try await context.processes.check(Command("gpg", ["--batch", "--yes", "--dearmor", "-o", keyring!, armored]))
        }
        let base = BootstrapRequest(tool: .debootstrap, architecture: request.architecture, suite: request.suite, variant: request.variant,
                                    packages: project.target.debootstrap.include, exclude: request.exclude, sourceLines: request.sourceLines,
                                    preferences: request.preferences, keys: request.keys, installRecommends: request.installRecommends,
                                    packageCache: request.packageCache, listsDirectory: request.listsDirectory)
        try await context.runTool(Debootstrap.command(base, mirror: primary.url, keyring: keyring, output: context.directory.rootfs).inPrivateMountNamespace(),
                          what: "debootstrap", sources: request.sourceLines)
        try await DebootstrapSecondStage(request: request, rootfs: context.directory.rootfs, packages: BootstrapRequest.pkgListNames(for: project),
                                         processes: context.processes, log: context.log)
            .run { command, what throws(HavelError) in try await context.runTool(command, what: what, sources: request.sourceLines) }
    }

    /// The installed packages, each verified against the mirror's index (`DebVerification`), as the install record.
    func makeRecord(lists: String, sources: [String]) async throws(HavelError) -> InstallRecord {
        let installed = try DpkgStatus.read(root: context.directory.rootfs)
        let cache = context.options.cache
        let outcome = try await DebVerification.verify(installed, lists: lists, debs: cache.debs, present: Set(cache.debFiles()),
                                                       processes: context.processes)
        let ownOrigin = projectRepository.map { String($0.directory.drop(while: { $0 == "/" })) }
        // No URI names the CD: its path is the build host's.
        let baseURLs = ReportWriter.repositoryURLs(sources.filter { $0 != cdromMirror?.sourceLine })
        let packages = outcome.packages.map { package in
            let own = ownOrigin.map { package.origin?.contains($0) == true } ?? false
            var uri: String?
            if own, let filename = package.filename {
                // The project repository by its place in the build directory: the build host's path means nothing elsewhere.
                uri = "repo/" + filename
            } else if let origin = package.origin, let base = baseURLs[origin], let filename = package.filename {
                uri = base + "/" + filename
            }
            var recorded = InstallRecord.Package(name: package.name, version: package.version, architecture: package.architecture, sha256: package.sha256,
                                                 origin: own ? ProjectRepository.originName : package.origin, md5: package.md5,
                                                 releaseOrigin: package.releaseOrigin, releaseName: package.releaseName, uri: uri,
                                                 priority: package.priority, section: package.section)
            if let cdrom, let pinned = cdrom.pinned(name: package.name, version: package.version, architecture: package.architecture) {
                // From the binary CD: what the original build recorded of the package, whose .deb the CD holds.
                recorded.origin = BinaryCdromSource.originName
                recorded.md5 = pinned.md5
                recorded.releaseOrigin = pinned.releaseOrigin
                recorded.releaseName = pinned.releaseName
                recorded.uri = pinned.uri
            }
            return recorded
        }
        let verified = outcome.verified
        try cache.recordVerified(verified)
        let sourcesList = (try? String(contentsOfFile: context.directory.rootfs + "/etc/apt/sources.list", encoding: .utf8)) ?? sources.joined(separator: "\n") + "\n"
        return InstallRecord(packages: packages, sourcesList: sourcesList, preferences: AptSources.preferences(for: project))
    }
}
