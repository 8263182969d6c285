import ArgumentParser
import DaemonAPI
import DaemonClient
import Foundation
import HavelCore
import Logging

/// How `initvm submit` and `control log -f` follow a build's log: quiet builds are normal (a maintainer
/// script or an initramfs under emulation prints nothing for minutes), so only a connection that stays
/// silent past the idle timeout, keep-alives included, is dropped and followed again.
struct LogFollowOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Seconds without a byte from the daemon (it sends a keep-alive every \(LogEvents.defaultKeepAlive.components.seconds) s) before the log is followed again.",
        valueName: "SECONDS"))
    var logIdleTimeout: Double = Double(LogEvents.defaultIdleTimeout.components.seconds)

    func validate() throws {
        guard logIdleTimeout >= 0.1 else { throw ValidationError("--log-idle-timeout must be at least 0.1 seconds") }
    }

    var idleTimeout: Duration { .milliseconds(Int(logIdleTimeout * 1000)) }

    /// Prints the log until the build has ended.
    func printLog(_ client: DaemonClient, _ id: ProjectID) async throws {
        for try await line in client.followLog(id, idleTimeout: idleTimeout, logger: CLILogging.terminal) { Terminal.out(line) }
    }

    /// Prints the log while the build runs, then waits for the project's final state through the API: a
    /// log stream that broke for good is reported, and the build's outcome still decides.
    func followUntilDone(_ client: DaemonClient, _ id: ProjectID) async throws -> ProjectInfo {
        do {
            try await printLog(client, id)
        } catch let error as HavelError where error.code == .io {
            Terminal.error("havel: stopped following the log (\(error.message)); waiting for the build to end")
        }
        return try await client.waitForBuild(id)
    }
}
