import Debian
import Foundation
import HavelCore
import Images
import SystemKit

/// Root, the tools this project's build runs, and qemu-user registered with binfmt_misc for a foreign target.
struct CheckHostStage: BuildStage {
    let name = "check host"

    func describe(_ plan: BuildPlan) -> StageDescription {
        let foreign = !plan.host.runsNatively(plan.project.architecture)
        return StageDescription(
            reason: "a build needs root and its tools" + (foreign ? "; \(plan.project.architecture.debianName) binaries run through qemu-\(plan.project.architecture.qemuUserName) registered with binfmt_misc" : ""),
            inputs: ["the host's PATH", "/proc/sys/fs/binfmt_misc"], outputs: foreign ? ["a binfmt_misc registration"] : [])
    }

    /// A CD as the mirror or the source of a rebuild: read with xorriso, its signature checked with gpg.
    static let cdromTools: [(tool: String, package: String)] = [("xorriso", "xorriso"), ("gpg", "gnupg"), ("gpg-agent", "gpg-agent"), ("gpgv", "gpgv")]

    func tools(_ context: BuildContext) throws(HavelError) -> [(tool: String, package: String)] {
        var tools: [(String, String)] = [("tar", "tar"), ("zstd", "zstd"), ("unshare", "util-linux"), ("chpasswd", "passwd"),
                                        ("sha256sum", "coreutils"), ("/usr/lib/apt/apt-helper", "apt")]
        switch context.project.project.target.debootstrap.tool ?? .mmdebstrap {
        case .mmdebstrap: tools.append(("mmdebstrap", "mmdebstrap"))
        case .debootstrap: tools.append(("debootstrap", "debootstrap"))
        case .baseImage: throw HavelError(.unsupported, "debootstrap type base-image is not supported yet; use mmdebstrap or debootstrap")
        }
        if Self.writesGzip(context.project.project) { tools.append((Tar.gzip[0], "pigz")) }
        if !context.project.project.target.mtdImages.isEmpty {
            tools += [("mkfs.ubifs", "mtd-utils"), ("ubinize", "mtd-utils")]
        }
        if !context.host.runsNatively(context.architecture) {
            tools.append(("/usr/libexec/qemu-binfmt/\(context.architecture.qemuUserName)-binfmt-P", "qemu-user-static"))
        }
        if !context.project.project.target.ownPackages.isEmpty && context.options.fromCdrom == nil {
            tools += OwnPackageBuilds.hostTools
        }
        if context.options.fromCdrom != nil || context.project.project.mirror.cdrom != nil {
            tools += Self.cdromTools
        }
        return tools
    }

    /// Whether an output is gzip-compressed (by pigz): the packed tree or the base image by its name (a base image
    /// without a known suffix is gzipped), or an image whose `set_packer` is gzip or targz.
    static func writesGzip(_ project: Project) -> Bool {
        let baseImage = RootfsArchivesStage.files(project).baseImage
        return Tar.compressesWithGzip(BuildContext.packedName(project))
            || baseImage.map { Tar.compressesWithGzip($0) || Tar.compressor(for: $0) == nil } == true
            || project.target.projectFinetuning.contains {
                if case .setPacker(let packer) = $0.action { return Packers.gzipPackers.contains(packer) }
                return false
            }
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        guard context.host.isRoot else {
            throw HavelError(.hostNotReady, "havel build needs root (it installs packages into a tree and runs them in a chroot); run it with sudo")
        }
        let missing = try tools(context).filter { context.processes.which($0.tool) == nil }
        if !missing.isEmpty {
            let packages = Set(missing.map(\.package)).sorted()
            throw HavelError(.hostNotReady, "missing tools: \(missing.map(\.tool).joined(separator: ", ")); install them with: apt-get install \(packages.joined(separator: " "))")
        }
        if !context.host.runsNatively(context.architecture) {
            let name = context.architecture.qemuUserName
            let registered = try await context.processes.ensureBinfmtHandler(qemuName: name)
            context.log.info(registered ? "registered qemu-\(name) with binfmt_misc" : "qemu-\(name) is registered with binfmt_misc")
        }
    }
}

/// The Release file of every repository the project installs from: their digests key the install stage,
/// so a changed mirror means a fresh install.
struct ProbeMirrorStage: BuildStage {
    let name = "probe mirror"

    func describe(_ plan: BuildPlan) -> StageDescription {
        StageDescription(reason: "the install stage's cache key holds the mirror's Release digests",
                         inputs: AptSources.repositories(for: plan.project.project).map { "\($0.uri) \($0.suite)" },
                         outputs: ["the Release files' sha256 (in the log)"])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let project = context.project.project
        let repositories = AptSources.repositories(for: project)
        guard !repositories.isEmpty || project.mirror.cdrom != nil else { throw HavelError(.invalidProject, "the project names no repository to install from") }
        var releases = repositories.isEmpty ? [] : try await RepositoryProbe.fetchReleases(repositories, workDirectory: context.directory.work + "/releases",
                                                                                             processes: context.processes)
        if let cdrom = project.mirror.cdrom {
            let mirror = try await CdromMirror.prepare(cdrom, suite: project.suite, work: context.directory.work, processes: context.processes)
            releases.append(RepositoryProbe.Release(url: "cdrom \(cdrom)", sha256: mirror.inReleaseSHA256))
            products.cdromMirror = mirror
        }
        for release in releases { context.log.info("repository \(release.url) (sha256 \(release.sha256.prefix(12)))") }
        products.releases = releases
    }
}
