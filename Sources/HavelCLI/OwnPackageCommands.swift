// The commands of a project's own packages: `havel pbuilder build` (only the `<pbuilder>` builds and the
// project repository), `havel pbuilder create|update` (only their build chroot, in the stage cache) and
// `havel prjrepo list|upload|download` on a build directory's repo/.

import ArgumentParser
import Build
import Debian
import Foundation
import HavelCore

/// `havel pbuilder build FILE -o DIR`.
struct PbuilderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pbuilder", abstract: "Build the project's own packages (<pbuilder>).", subcommands: [Build.self, Create.self, Update.self])

    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build only the <pbuilder> packages into the build directory's signed project repository repo/ (as root).")

        @OptionGroup var common: OwnPackageCommandOptions

        func run() async throws {
            let directory = try await common.run(what: "package builds") { options in options.onlyOwnPackages = true }.directory
            let packages = try await ProjectRepository.packages(in: directory.projectRepository)
            print(ProjectRepository.listing(packages), terminator: "")
        }
    }

    /// `havel pbuilder create FILE`: the build chroot, taken from the stage cache when it holds one.
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the build chroot of the project's <pbuilder> packages in the stage cache, unless it holds it already (as root).",
            discussion: """
                The chroot (mmdebstrap, buildd variant) is keyed by what decides its content, the mirror's \
                Release digests included, so a changed mirror gives a new one; havel pbuilder build and \
                havel build use it from the cache.
                """)
        @OptionGroup var common: OwnPackageCommandOptions
        func run() async throws { try await common.makeChroot(.create) }
    }

    /// `havel pbuilder update FILE`: the build chroot made afresh, in place of the cached one.
    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the build chroot of the project's <pbuilder> packages afresh from the mirror, replacing the cached one (as root).")
        @OptionGroup var common: OwnPackageCommandOptions
        func run() async throws { try await common.makeChroot(.update) }
    }
}

/// What `havel pbuilder build|create|update` read, and how they run the build's own-package part.
struct OwnPackageCommandOptions: ParsableArguments {
    @OptionGroup var read: ProjectReadOptions
    @OptionGroup var mirrorOptions: MirrorOptions

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("The build directory (default: build/<project name>).", valueName: "BUILDDIR"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("Havel's cache of packages and stages.", valueName: "DIR"))
    var cache: String = HavelCache.defaultPath

    @Flag(name: .long, help: "Cross-build for a foreign target in a host chroot (default: qemu-user in a target chroot).")
    var cross = false

    @OptionGroup var output_: OutputOptions

    @Argument(help: "The project file.")
    var file: String

    /// Loads the project (which must have `<pbuilder>` sources) and runs the build as `adjust` sets it up.
    func run(what: String, _ adjust: (inout BuildOptions) -> Void) async throws -> (directory: BuildDirectory, state: BuildState) {
        let project = try await BuildCommand.loadOnClient(file, options: read.loaderOptions(hashPasswords: true), mirror: mirrorOptions.mirror)
        BuildCommand.printWarnings(project, all: output_.verbose)
        guard !project.project.target.ownPackages.isEmpty else {
            throw HavelError(.invalidProject, "\(file) has no <pbuilder> sources; add <target><pbuilder><git>…</git></pbuilder>")
        }
        let directory = BuildDirectory(output ?? "build/\(project.project.name)")
        var options = BuildOptions(directory: directory, cache: HavelCache(path: cache),
                                   sourceDateEpoch: ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"].flatMap { Int($0) },
                                   havelVersion: HavelVersion.current)
        options.crossBuild = cross
        adjust(&options)
        let logger = CLILogging.buildLogger(output_.mode)
        // As havel build: Ctrl-C stops every process the package builds started, and the build directory says so.
        let outcome = await BuildCommandCgroup.interruptible { [options] cgroup throws(HavelError) -> BuildState in
            try await Builder(project: project, options: options, cgroup: cgroup, logger: logger).run()
        }
        ProgressRenderer.shared.finish()
        switch outcome {
        case .success(let state):
            return (directory, state)
        case .failure(let error, let signal):
            Terminal.error("havel: \(what) failed: \(error)")
            Terminal.error("see \(directory.log)")
            throw ExitCode(signal.map { 128 + $0 } ?? 1)
        }
    }

    /// `create`/`update`: prints where the chroot is in the stage cache and whether it was there already.
    func makeChroot(_ action: BuildChrootAction) async throws {
        let state = try await run(what: "pbuilder \(action.rawValue)") { options in options.buildChrootOnly = action }.state
        guard let stage = state.stages.last, let key = stage.key else { throw HavelError(.internalError, "the build chroot's stage left no key") }
        print("\(HavelCache(path: cache).stageDirectory(key))/base.tgz (\(stage.cached ? "from the stage cache" : "made now"))")
    }
}

/// `havel prjrepo list|upload|download DIR`.
struct ProjectRepositoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prjrepo", abstract: "The project repository (repo/) of a build directory.",
        subcommands: [List.self, Upload.self, Download.self])

    static func repository(_ directory: String) throws(HavelError) -> String {
        let repository = BuildDirectory(directory).projectRepository
        guard FileManager.default.fileExists(atPath: repository + "/" + ProjectRepository.publicKeyFile) else {
            throw HavelError(.notFound, "\(directory) has no project repository (repo/); build one with havel pbuilder build or havel build")
        }
        return repository
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the packages of a build directory's project repository.")
        @Argument(help: "The build directory.") var directory: String

        func run() async throws {
            let packages = try await ProjectRepository.packages(in: try ProjectRepositoryCommand.repository(directory))
            print(ProjectRepository.listing(packages), terminator: "")
        }
    }

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add .deb files to a build directory's project repository and sign it again.")
        @Option(name: .long, help: ArgumentHelp("Havel's cache, whose keys/ holds the project's signing key.", valueName: "DIR"))
        var cache: String = HavelCache.defaultPath
        @Argument(help: "The build directory.") var directory: String
        @Argument(help: "The .deb files.") var debs: [String]

        func run() async throws {
            let repository = try ProjectRepositoryCommand.repository(directory)
            let release = try Self.release(repository)
            for deb in debs where !deb.hasSuffix(".deb") || !FileManager.default.isReadableFile(atPath: deb) {
                throw HavelError(.invalidArgument, "\(deb) is not a readable .deb file")
            }
            let project = Project(name: release.project, version: release.version, suite: release.suite)
            let written = try await ProjectRepository.add(debs, to: repository, project: project, architecture: release.architecture,
                                                          keys: HavelCache(path: cache).keys, epoch: Int(Date().timeIntervalSince1970))
            print(ProjectRepository.listing(written.packages), terminator: "")
        }

        /// What the repository's Release says of it: the project (from its label), version, suite and architecture.
        static func release(_ repository: String) throws(HavelError) -> (project: String, version: String, suite: String, architecture: String) {
            let dists = repository + "/dists"
            let suites = (try? FileManager.default.contentsOfDirectory(atPath: dists)) ?? []
            guard suites.count == 1, let data = FileManager.default.contents(atPath: dists + "/" + suites[0] + "/Release"), data.count < 1 << 20,
                  let stanza = Deb822.parse(String(decoding: data, as: UTF8.self)).first,
                  let label = stanza["label"], let architecture = stanza["architectures"], let description = stanza["description"] else {
                throw HavelError(.invalidArgument, "\(repository) is not a project repository Havel wrote (one suite with a Release); build it again")
            }
            let project = label.hasSuffix(" project repository") ? String(label.dropLast(" project repository".count)) : label
            let version = description.split(separator: ":").first.map { String($0.dropFirst(project.count).trimmingWhitespace()) } ?? ""
            return (project, version, suites[0], architecture)
        }
    }

    struct Download: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Copy a build directory's project repository to another directory.")
        @Argument(help: "The build directory.") var directory: String
        @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Where the copy goes (must not exist).", valueName: "OUT"))
        var output: String

        func run() async throws {
            let repository = try ProjectRepositoryCommand.repository(directory)
            guard !FileManager.default.fileExists(atPath: output) else {
                throw HavelError(.invalidArgument, "\(output) exists; name a new directory")
            }
            do { try FileManager.default.copyItem(atPath: repository, toPath: output) } catch {
                throw HavelError(.io, "cannot copy \(repository) to \(output): \(error.localizedDescription)")
            }
            print(output)
        }
    }
}
