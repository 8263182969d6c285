import Foundation
import HavelCore
import Subprocess
import SystemPackage

/// The one place Havel spawns and reaps children. Each child runs in its own session; cancelling the
/// calling task sends SIGTERM, waits `gracePeriod`, then SIGKILL.
public enum ProcessRunner {
    public static let gracePeriod: Duration = .seconds(3)

    static func configuration(_ command: Command) throws(HavelError) -> Configuration {
        guard let path = which(command.executable) else {
            throw HavelError(.notFound, "\(command.executable): command not found (PATH \(command.environment["PATH"] ?? ""))")
        }
        var options = PlatformOptions()
        options.createSession = true
        // The whole session: mmdebstrap's apt and dpkg, a chroot's script and whatever it started.
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: gracePeriod)]
        var environment: [Environment.Key: String] = [:]
        for (key, value) in command.environment { environment[Environment.Key(stringLiteral: key)] = value }
        return Configuration(executable: .path(FilePath(path)), arguments: Arguments(command.arguments),
                             environment: .custom(environment),
                             workingDirectory: command.workingDirectory.map { FilePath($0) },
                             platformOptions: options)
    }

    static func termination(_ status: TerminationStatus) -> ProcessResult.Termination {
        switch status {
        case .exited(let code): .exited(code)
        case .signaled(let signal): .signaled(signal)
        }
    }

    /// Runs to completion and collects output (each stream up to `outputLimit` bytes).
    public static func run(_ command: Command, input: [UInt8] = [], outputLimit: Int = 16 << 20) async throws(HavelError) -> ProcessResult {
        let config = try configuration(command)
        do {
            let result = try await Subprocess.run(config, input: .array(input),
                                                  output: .string(limit: outputLimit), error: .string(limit: outputLimit))
            return ProcessResult(termination: termination(result.terminationStatus),
                                 standardOutput: result.standardOutput, standardError: result.standardError)
        } catch {
            throw failure(command, error)
        }
    }

    /// Cancellation of the calling task ends the child (SIGTERM, then SIGKILL) and is reported as such.
    static func failure(_ command: Command, _ error: any Error) -> HavelError {
        if error is CancellationError || Task.isCancelled {
            return HavelError(.cancelled, "\(command.executable) was stopped: the build was interrupted")
        }
        return HavelError(.processFailed, "\(command.executable) could not be run", cause: error)
    }

    /// Runs with the terminal: standard input, output and error inherited, in Havel's own process
    /// group so that a person's Ctrl-C reaches it (Havel ignores SIGINT meanwhile).
    public static func interactive(_ command: Command) async throws(HavelError) -> ProcessResult.Termination {
        var config = try configuration(command)
        config.platformOptions.createSession = false
        let previous = signal(SIGINT, SIG_IGN)
        defer { signal(SIGINT, previous) }
        do {
            let result = try await Subprocess.run(config, input: .fileDescriptor(.standardInput, closeAfterSpawningProcess: false),
                                                  output: .fileDescriptor(.standardOutput, closeAfterSpawningProcess: false),
                                                  error: .fileDescriptor(.standardError, closeAfterSpawningProcess: false))
            return termination(result.terminationStatus)
        } catch {
            throw failure(command, error)
        }
    }

    /// Runs and throws unless the process exits 0; the message carries the tail of its error output.
    @discardableResult
    public static func check(_ command: Command, input: [UInt8] = []) async throws(HavelError) -> ProcessResult {
        let result = try await run(command, input: input)
        guard result.succeeded else {
            let tail = result.standardError.split(separator: "\n").suffix(5).joined(separator: "\n")
            throw HavelError(.processFailed, "\(command) failed with \(result.termination)" + (tail.isEmpty ? "" : ":\n" + tail))
        }
        return result
    }

    /// Runs and hands every line of standard output and error (merged, in order) to `onLine`.
    public static func stream(_ command: Command, onLine: @escaping @Sendable (String) -> Void) async throws(HavelError) -> ProcessResult.Termination {
        let config = try configuration(command)
        do {
            let result = try await Subprocess.run(config, input: .none, output: .sequence, error: .combinedWithOutput) { execution in
                for try await line in execution.standardOutput.strings() {
                    onLine(line.hasSuffix("\n") ? String(line.dropLast()) : line)
                }
            }
            return termination(result.terminationStatus)
        } catch {
            throw failure(command, error)
        }
    }

    /// The absolute path of an executable: itself if it contains a slash, else the first match on PATH.
    public static func which(_ name: String, path: String = Command.baseEnvironment["PATH"]!) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
