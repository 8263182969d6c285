import Build
import Logging

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

    /// The logger for a build shown in `mode`.
    static func buildLogger(_ mode: ProgressRenderer.Mode) -> Logger {
        bootstrap()
        ProgressRenderer.shared.start(mode: mode)
        return Logger(label: build)
    }
}
