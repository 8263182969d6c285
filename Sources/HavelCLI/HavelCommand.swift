// HavelCLI owns Havel's command line: ArgumentParser commands as a library (testable in-process)
// and rendering for the terminal. It contains no build logic.
import ArgumentParser
import HavelCore

public struct HavelCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "havel",
        abstract: "Build Debian-based root filesystems and disk images from ELBE project files.",
        version: HavelVersion.current,
        subcommands: [ValidateCommand.self, PreprocessCommand.self, ShowCommand.self, LedgerCommand.self, BuildCommand.self,
                      ChrootCommand.self, CheckImageCommand.self, CacheCommand.self,
                      AddCommand.self, PinVersionsCommand.self, ChangeArchiveCommand.self, GetArchiveCommand.self, CheckUpdatesCommand.self,
                      PbuilderCommand.self, ProjectRepositoryCommand.self,
                      SBOMCommand.self, DiffCommand.self, CheckBuildCommand.self,
                      DaemonCommand.self, ControlCommand.self, InitVMCommand.self])

    public init() {}
}

public enum HavelVersion {
    public static let current = "0.1.0"
}

/// The process entry: parses, runs, prints errors, and maps them to exit codes
/// (0 success, 1 the command's own failure such as an invalid project, 2 usage errors).
public enum HavelMain {
    public static let usageExitCode: Int32 = 2

    public static func run(_ arguments: [String]) async -> Int32 {
        do {
            var command = try HavelCommand.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch {
            return report(error)
        }
    }

    static func report(_ error: any Error) -> Int32 {
        if let exit = error as? ExitCode { return exit.rawValue }
        if let failure = error as? HavelError {
            Terminal.error("havel: \(failure)")
            for diagnostic in failure.diagnostics { Terminal.error(diagnostic.description) }
            return 1
        }
        let code = HavelCommand.exitCode(for: error)
        let message = HavelCommand.fullMessage(for: error)
        if code == .success {
            if !message.isEmpty { Terminal.out(message) }
            return 0
        }
        if !message.isEmpty { Terminal.error(message) }
        return code == .validationFailure ? usageExitCode : code.rawValue
    }
}
