import ArgumentParser
import Build
import Debian
import Foundation
import SystemKit
import HavelCore
import Logging
import ProjectXML

/// `havel build PROJECT.xml`: a root filesystem and its reports, on this host, as root.
struct BuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build the project's root filesystem and reports on this host (as root).",
        discussion: """
        The build directory holds rootfs/, the packed rootfs, source.xml (with every installed package pinned), \
        validation.txt, report.txt, licence-target.txt/.xml, the SBOM (sbom.cdx.json, sbom.spdx.json), log.txt and state.json. An unchanged rebuild reuses the \
        installed tree from the stage cache. With --check-reproducible the project is built twice without the stage cache, the second time \
        into BUILDDIR.again, and every file that differs between the two is listed. Exit status: 0 done, 1 failed, \
        2 usage, 3 the two builds differ (--check-reproducible), 130 interrupted.
        """)

    @OptionGroup var read: ProjectReadOptions
    @OptionGroup var mirrorOptions: MirrorOptions

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("The build directory (default: build/<project name>).", valueName: "BUILDDIR"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("Havel's cache of packages and stages.", valueName: "DIR"))
    var cache: String = HavelCache.defaultPath

    @Flag(name: .long, help: "Neither reuse nor store stages (packages still come from the verified package cache).")
    var noCache = false

    @Flag(name: .long, help: "Do not boot the images for the project's check-image-list (run havel check-image later).")
    var skipChecks = false

    @Flag(name: .long, help: "Build twice from scratch (the second time into BUILDDIR.again) and list every file that differs.")
    var checkReproducible = false

    @Flag(name: .long, help: "Also write bin-cdrom.iso: every installed package at its version as a signed apt repository (ELBE's --build-bin).")
    var cdroms = false

    @Flag(name: .long, help: "Cross-build the <pbuilder> packages of a foreign target in a host chroot with crossbuild-essential (default: build them under qemu-user in a target chroot, as ELBE does).")
    var cross = false

    @Flag(name: .long, help: "Also write the SDK installer setup-havel-sdk-<triplet>-<name>-<version>.sh: the target's sysroot with its -dev packages and the cross tools (ELBE's build_sdk).")
    var sdk = false

    @Option(name: .long, help: ArgumentHelp("How a foreign target's packages are installed: fast (the host's dpkg unpacks them natively, their scripts and configuration run under qemu-user; falls back, saying why, where it cannot apply) or emulated (dpkg and everything under qemu-user).", valueName: "MODE"))
    var installMode: InstallMode = .fast

    @Option(name: .long, help: ArgumentHelp("Install from this binary CD (bin-cdrom.iso of an earlier build with --cdroms) instead of the mirror: exactly its packages, no network, no stage cache; the target keeps the project's apt sources.", valueName: "ISO"))
    var fromCdrom: String?

    @OptionGroup var output_: OutputOptions

    @Argument(help: "The project file.")
    var file: String

    func run() async throws {
        let project = try await Self.loadOnClient(file, options: read.loaderOptions(hashPasswords: true), mirror: mirrorOptions.mirror)
        Self.printWarnings(project, all: output_.verbose)
        let directory = BuildDirectory(output ?? "build/\(project.project.name)")
        let epoch = ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"].flatMap { Int($0) }
        var options = BuildOptions(directory: directory, cache: HavelCache(path: cache), useStageCache: !noCache,
                                   sourceDateEpoch: epoch, havelVersion: HavelVersion.current, skipChecks: skipChecks,
                                   binaryCdrom: cdroms)
        options.crossBuild = cross
        options.sdk = sdk
        options.installMode = installMode
        options.fromCdrom = fromCdrom.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 }
        let logger = CLILogging.buildLogger(output_.mode)
        if checkReproducible { return try await checkReproducibility(project, options: options, logger: logger) }
        let renderer = ProgressRenderer.shared
        let outcome = await BuildCommandCgroup.interruptible { [options] cgroup throws(HavelError) -> BuildState in
            try await Builder(project: project, options: options, cgroup: cgroup, logger: logger).run()
        }
        renderer.finish()
        switch outcome {
        case .success(let state):
            renderer.summary(state, directory: directory)
        case .failure(let error, let signal):
            Terminal.error("havel: build failed: \(error)")
            if let state = BuildState.read(directory.state) { renderer.timings(state) }
            Terminal.error("see \(directory.log)")
            throw ExitCode(signal.map { 128 + $0 } ?? 1)
        }
    }
}

extension BuildCommand {
    /// `--check-reproducible`: both builds, then the differences on stdout; exit 3 when there are any.
    func checkReproducibility(_ project: ValidatedProject, options: BuildOptions, logger: Logger) async throws {
        let renderer = ProgressRenderer.shared
        let outcome = await BuildCommandCgroup.interruptible { cgroup throws(HavelError) -> ReproducibilityCheck.Outcome in
            try await ReproducibilityCheck.run(project: project, options: options, logger: logger, cgroup: cgroup)
        }
        renderer.finish()
        let second = ReproducibilityCheck.secondDirectory(of: options.directory)
        switch outcome {
        case .success(let check):
            renderer.summary(check.first, directory: options.directory)
            if check.isReproducible {
                print("reproducible: \(options.directory.path) and \(second.path) are identical")
                return
            }
            print("not reproducible: \(check.differences.count) difference\(check.differences.count == 1 ? "" : "s") between \(options.directory.path) and \(second.path):")
            for line in check.differences { print("  " + line) }
            throw ExitCode(3)
        case .failure(let error, let signal):
            Terminal.error("havel: build failed: \(error)")
            Terminal.error("see \(options.directory.log) and \(second.log)")
            throw ExitCode(signal.map { 128 + $0 } ?? 1)
        }
    }

    /// The project as `BuildEntry` makes it buildable; an invalid one prints its errors and exits 1.
    static func load(_ file: String, options: ProjectLoader.Options, mirror: String?) throws -> ValidatedProject {
        let failure: HavelError
        do throws(HavelError) {
            return try BuildEntry.load(path: file, options: options, mirror: mirror)
        } catch {
            failure = error
        }
        try refuse(failure)
    }

    /// As `load`, with the project's archivedirs packed and its keys fetched here.
    static func loadOnClient(_ file: String, options: ProjectLoader.Options, mirror: String?) async throws -> ValidatedProject {
        let failure: HavelError
        do throws(HavelError) {
            return try await BuildEntry.loadOnClient(path: file, options: options, mirror: mirror)
        } catch {
            failure = error
        }
        try refuse(failure)
    }

    /// An invalid or refused project's diagnostics and message, then exit 1; other errors are thrown as they are.
    static func refuse(_ failure: HavelError) throws -> Never {
        guard failure.code == .invalidProject || failure.code == .unsupported else { throw failure }
        for diagnostic in failure.diagnostics { Terminal.error(diagnostic.description) }
        Terminal.error(failure.message)
        throw ExitCode(1)
    }

    /// What Havel does not build is always said; other warnings only when `all`.
    static func printWarnings(_ project: ValidatedProject, all: Bool) {
        let notBuilt = Set(project.loaded.unsupported.map(\.path))
        for warning in project.warnings where all || notBuilt.contains(warning.elementPath ?? "") {
            Terminal.error(warning.description)
        }
    }
}

/// `--quiet` / `--verbose`, shared by commands that run builds.
struct OutputOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print only errors and the result.")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Print every line of the build log.")
    var verbose = false

    var mode: ProgressRenderer.Mode {
        if quiet { return .quiet }
        if verbose { return .verbose }
        return Terminal.stdoutIsTerminal ? .live : .plain
    }
}

/// The cgroup of one `havel build` on this host: `havel-build-cli-<pid>-<uuid>` under havel's own group, where
/// cgroup2 lets root make one (as the daemon makes one per build). Every command of the build joins it, so an
/// interrupted build kills every process it started, those a tool detached into a session of its own too;
/// without one, an interruption reaches the running command's process group only.
enum BuildCommandCgroup {
    static func make() -> ProcessCgroup? {
        guard geteuid() == 0, case .success(let hierarchy) = CgroupHierarchy.writable() else { return nil }
        return try? ProcessCgroup.create(under: hierarchy.ownDirectory,
                                         name: "havel-build-cli-\(getpid())-" + UUID().uuidString.prefix(8).lowercased())
    }

    /// Runs a build (`havel build`, its reproducibility check, `havel pbuilder`) in a cgroup of its own where one
    /// can be made, cancelled by SIGINT, SIGTERM or SIGHUP, and removes the cgroup after the build's cleanup.
    static func interruptible<T: Sendable>(_ body: @escaping @Sendable (ProcessCgroup?) async throws(HavelError) -> T) async -> Interruptible.Outcome<T> {
        let cgroup = make()
        let outcome = await Interruptible.run { () async throws(HavelError) -> T in try await body(cgroup) }
        if let cgroup {
            do throws(HavelError) { try await cgroup.remove() } catch { Terminal.error("havel: warning: \(error.message)") }
        }
        return outcome
    }
}

/// Runs async work that SIGINT or SIGTERM cancels; the work's own cleanup runs before it returns.
enum Interruptible {
    enum Outcome<T> {
        case success(T)
        case failure(HavelError, signal: Int32?)
    }

    static func run<T: Sendable>(_ body: @escaping @Sendable () async throws(HavelError) -> T) async -> Outcome<T> {
        let task = Task { () async throws(HavelError) -> T in try await body() }
        let received = SignalBox()
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                received.set(sig)
                Terminal.error("\nhavel: \(sig == SIGINT ? "interrupted" : sig == SIGHUP ? "the terminal went away" : "terminated"), cleaning up…")
                task.cancel()
            }
            source.resume()
            sources.append(source)
        }
        defer {
            for source in sources { source.cancel() }
            signal(SIGINT, SIG_DFL)
            signal(SIGTERM, SIG_DFL)
            signal(SIGHUP, SIG_DFL)
        }
        do {
            return .success(try await task.value)
        } catch {
            let sig = received.value
            let failure = sig != nil ? HavelError(.cancelled, "the build was interrupted; the build directory is marked cancelled") :
                (error as? HavelError ?? HavelError(.internalError, "\(error)"))
            return .failure(failure, signal: sig)
        }
    }
}

final class SignalBox: @unchecked Sendable {
    private let lock = NSLock()
    private var received: Int32?

    func set(_ value: Int32) {
        lock.lock()
        if received == nil { received = value }
        lock.unlock()
    }

    var value: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return received
    }
}

extension InstallMode: ExpressibleByArgument {}
