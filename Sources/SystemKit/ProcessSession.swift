import Foundation
import HavelCore
import Subprocess
import SystemPackage

/// A piece of what a conversing child printed, in the order it was read from each pipe.
public enum ProcessOutput: Sendable {
    case standardOutput([UInt8])
    case standardError([UInt8])
    /// The pipe reached end-of-file: the child (and whatever it started) closed it, mostly by exiting.
    case standardOutputEnded
    case standardErrorEnded
}

/// A child one talks to while it runs (a guest's serial console on qemu's stdio): its standard input
/// is a pipe one writes to, and whether it has ended can be asked without reaping it.
public struct ProcessSession: Sendable {
    public let processIdentifier: Int32
    let writer: StandardInputWriter

    /// Writes bytes to the child's standard input.
    public func write(_ bytes: [UInt8]) async throws(HavelError) {
        do {
            _ = try await writer.write(bytes)
        } catch {
            throw HavelError(.processFailed, "cannot write to process \(processIdentifier)", cause: error)
        }
    }

    public func write(_ text: String) async throws(HavelError) {
        try await write(Array(text.utf8))
    }

    /// Closes the child's standard input: it reads end-of-file.
    public func closeInput() async {
        try? await writer.finish()
    }

    /// How the child ended, or nil while it runs. Looks without reaping (`waitid` with `WNOWAIT`):
    /// swift-subprocess stays the only reaper.
    public func exitStatus() -> ProcessResult.Termination? {
        var info = siginfo_t()
        guard waitid(P_PID, id_t(processIdentifier), &info, WEXITED | WNOHANG | WNOWAIT) == 0 else {
            return nil
        }
        guard info._sifields._sigchld.si_pid == processIdentifier else { return nil }     // still running
        let status = info._sifields._sigchld.si_status
        return info.si_code == CLD_EXITED ? .exited(status) : .signaled(status)
    }
}

extension ProcessRunner {
    /// Runs `command` with pipes on all three standard streams and lets `body` talk to it.
    ///
    /// Output is read as it comes and handed to `onOutput` (from reader tasks, in order per pipe)
    /// while `body` runs. When `body` returns, or the calling task is cancelled, the child's whole
    /// session gets SIGTERM and, after `gracePeriod`, SIGKILL; this returns only once the child is
    /// reaped and both pipes are drained, with `body`'s value and how the child ended.
    public static func converse<Value: Sendable>(
        _ command: Command,
        gracePeriod: Duration = ProcessRunner.gracePeriod,
        onOutput: @escaping @Sendable (ProcessOutput) -> Void,
        body: (ProcessSession) async -> Value
    ) async throws(HavelError) -> (value: Value, termination: ProcessResult.Termination) {
        var config = try configuration(command)
        let teardown: [TeardownStep] = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: gracePeriod)]
        config.platformOptions.teardownSequence = teardown
        do {
            let result = try await Subprocess.run(config, input: .inputWriter, output: .sequence, error: .sequence) { execution in
                let session = ProcessSession(processIdentifier: execution.processIdentifier.value,
                                             writer: execution.standardInputWriter)
                return await withTaskGroup(of: Void.self) { readers in
                    readers.addTask {
                        do {
                            for try await chunk in execution.standardOutput {
                                onOutput(.standardOutput(chunk.withUnsafeBytes { Array($0) }))
                            }
                        } catch {}
                        onOutput(.standardOutputEnded)
                    }
                    readers.addTask {
                        do {
                            for try await chunk in execution.standardError {
                                onOutput(.standardError(chunk.withUnsafeBytes { Array($0) }))
                            }
                        } catch {}
                        onOutput(.standardErrorEnded)
                    }
                    let value = await body(session)
                    // Stop the child whatever happened in `body`; a no-op when it has exited already.
                    await execution.teardown(using: teardown)
                    await readers.waitForAll()
                    return value
                }
            }
            return (result.closureResult, termination(result.terminationStatus))
        } catch {
            throw failure(command, error)
        }
    }
}
