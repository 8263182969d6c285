import ArgumentParser
import Build
import Chroot
import Foundation
import HavelCore
import SystemKit

/// `havel chroot BUILDDIR [-- CMD...]`: a person's way into a built target tree.
struct ChrootCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chroot",
        abstract: "Enter a build's target root filesystem (a shell without a command).",
        discussion: """
            Target binaries run through qemu-user. /proc, /sys and /dev are mounted for the session only and vanish with it. \
            Without a command, on a terminal: root's login shell of the target, in a terminal of its own (job control works), \
            with the target's host name and a prompt naming the project and architecture.
            """)

    @Argument(help: "A build directory made by havel build.")
    var buildDirectory: String

    @Argument(parsing: .postTerminator, help: "The command to run inside (default: an interactive shell).")
    var command: [String] = []

    func run() async throws {
        let directory = BuildDirectory(buildDirectory)
        guard FileManager.default.fileExists(atPath: directory.rootfs) else {
            throw HavelError(.notFound, "\(directory.path) has no rootfs/; give a directory made by havel build")
        }
        guard geteuid() == 0 else { throw HavelError(.hostNotReady, "havel chroot needs root") }
        let runner = ChrootRunner(root: directory.rootfs)
        try runner.checkEnterable()
        if let arch = BuildState.read(directory.state).flatMap({ Architecture(rawValue: $0.architecture) }),
           !(HostArchitecture.current.map { arch.runsNatively(on: $0) } ?? false) {
            try await Binfmt.ensureHandler(qemuName: arch.qemuUserName)
        }
        let target = try RootedFileSystem(root: directory.rootfs)
        var environment: [String: String] = [:]
        if let term = ProcessInfo.processInfo.environment["TERM"] { environment["TERM"] = term }
        let session: Command
        if command.isEmpty && isatty(STDIN_FILENO) == 1 {
            // A person at a terminal: the target's login shell, leading its own session, with a prompt that says where it is.
            let state = BuildState.read(directory.state)
            let hostname = (try? target.readFile("/etc/hostname", limit: 256)).map { String(decoding: $0, as: UTF8.self).trimmingWhitespace() }
                .flatMap { $0.isEmpty ? nil : $0 }
            let shell = runner.loginShell()
            environment.merge(ChrootRunner.sessionPromptEnvironment(project: state?.project, architecture: state?.architecture,
                                                                    hostname: hostname, shell: shell)) { _, new in new }
            session = runner.sessionCommand(shell: shell, hostname: hostname, environment: environment)
        } else {
            session = runner.command(command.isEmpty ? ["/bin/sh", "-l"] : command, environment: environment)
        }
        let excursions = try ChrootExcursions.enter(target)
        let status: ProcessResult.Termination
        do {
            status = try await ProcessRunner.interactive(session)
        } catch {
            excursions.leave(log: CLILogging.terminal)
            throw error
        }
        excursions.leave(log: CLILogging.terminal)
        switch status {
        case .exited(0): return
        case .exited(let code): throw ExitCode(code)
        case .signaled(let signal): throw ExitCode(128 + signal)
        }
    }
}

/// `havel cache list|prune`.
struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "Show or clean Havel's package and stage cache.",
        subcommands: [List.self, Prune.self])

    struct CacheLocation: ParsableArguments {
        @Option(name: .long, help: ArgumentHelp("The cache directory.", valueName: "DIR"))
        var cache: String = HavelCache.defaultPath
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List cached stages and packages.")
        @OptionGroup var location: CacheLocation
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() throws {
            let cache = HavelCache(path: location.cache)
            let stages = cache.listStages()
            let debs = cache.debFiles()
            if json {
                struct Listing: Encodable { var stages: [HavelCache.StageEntry]; var packages: Int }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                encoder.dateEncodingStrategy = .iso8601
                Terminal.out(String(decoding: try encoder.encode(Listing(stages: stages, packages: debs.count)), as: UTF8.self))
                return
            }
            Terminal.out("\(cache.path): \(stages.count) stage\(stages.count == 1 ? "" : "s"), \(debs.count) cached packages")
            for stage in stages {
                Terminal.out("  \(stage.key.prefix(16))  \(ByteCount.format(stage.bytes).padding(toLength: 10, withPad: " ", startingAt: 0))  last used \(stage.lastUsed)  \(stage.description ?? "")\(stage.otherFormat ? "  (older format: never reused; prune removes it)" : "")")
            }
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove stages not used for a while (or everything).")
        @OptionGroup var location: CacheLocation
        @Option(name: .long, help: "Remove stages not used for this many days.") var olderThan: Double = 30
        @Flag(name: .long, help: "Remove every stage and every cached package.") var all = false

        func run() throws {
            let cache = HavelCache(path: location.cache)
            let freed = cache.prune(olderThan: all ? 0 : olderThan * 86400, debs: all)
            Terminal.out("freed \(ByteCount.format(freed)) in \(cache.path)")
        }
    }
}
