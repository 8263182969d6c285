import Build
import Logging
import SystemKit

/// The executable's one logging set-up, made once per process: a build's records (label `havel.build`)
/// drive the terminal's progress renderer; every other logger (the daemon, its server) writes to
/// standard error. Libraries only ever see a `Logger`.
enum CLILogging {
    /// The label of the logger a command hands a build (or a boot check).
    static let build = "havel.build"

    private static let bootstrapped: Void = {
        LoggingSystem.bootstrap { label in
            label == build ? BuildEventHandler { ProgressRenderer.shared.handle($0) } as any LogHandler
                : StreamLogHandler.standardError(label: label)
        }
    }()

    static func bootstrap() { _ = bootstrapped }

    /// A logger whose warnings are printed as "warning: …" (outside a build).
    static var terminal: Logger {
        bootstrap()
        return Logger(label: build)
    }

    /// A logger for a command made of steps (`initvm create`): each step as "• text", a tool's output only
    /// when `verbose`, warnings as "warning: …".
    static func steps(verbose: Bool) -> Logger {
        Logger(label: "havel.steps") { _ in StepPrinter(verbose: verbose) }
    }

    struct StepPrinter: MetadataKeepingLogHandler {
        let verbose: Bool
        var logLevel: Logger.Level = .info
        var metadata: Logger.Metadata = [:]

        func log(event: LogEvent) {
            let text = event.message.description
            if event.level >= .warning {
                Terminal.error("warning: " + text)
            } else if event.metadata?[HavelLogKey.tool] != nil {
                if verbose { Terminal.out("  " + text) }
            } else {
                Terminal.out("• " + text)
            }
        }
    }

    /// The logger for a build shown in `mode`.
    static func buildLogger(_ mode: ProgressRenderer.Mode) -> Logger {
        bootstrap()
        ProgressRenderer.shared.start(mode: mode)
        return Logger(label: build)
    }
}
