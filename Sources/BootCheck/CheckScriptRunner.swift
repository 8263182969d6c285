// Owns running a project's `check-image-list/check-script` on the build host: the script written to a
// private file, run with the build directory as its argument and working directory, its output logged
// and kept for check.xml, its exit status the verdict, and a time-out that stops it and its children.

import Foundation
import HavelCore
import Logging
import QEMU
import SystemKit

public enum CheckScriptRunner {
    /// ELBE sets no limit; a script that hangs must not hang the build for ever.
    public static let defaultTimeout: Duration = .seconds(30 * 60)
    /// The check's name in check.xml and state.json.
    public static let checkName = "check-script"

    /// Runs `script` as ELBE's check-build does: `SCRIPT BUILD_DIRECTORY`, exit status 0 passes. The environment
    /// is Havel's usual allow-list plus `ELBE_IMG`/`HAVEL_IMG` (the image of the last boot check, when there is
    /// one, as ELBE leaves it set); the working directory is the build directory. Every output line goes to the
    /// log and to `outputPath`.
    public static func run(_ script: CheckScript, buildDirectory: String, imagePath: String?, timeout: Duration = defaultTimeout,
                           outputPath: String?, processes: any ProcessRunning = SystemProcesses(), log: Logger) async -> CheckResult {
        let started = ContinuousClock.now
        let tail = LineTail(limit: BootChecker.tailLines)
        func result(_ passed: Bool, _ message: String) -> CheckResult {
            let seconds = (ContinuousClock.now - started).inSeconds
            var result = CheckResult(name: checkName, passed: passed, seconds: (seconds * 1000).rounded() / 1000,
                                     message: message, transcriptTail: tail.text)
            result.tailSource = "script output"
            log.info("\(checkName): \(passed ? "passed" : "FAILED"): \(message)")
            return result
        }
        let program = runnable(script.text)
        guard program.hasPrefix("#!") else {
            return result(false, "the script does not start with a #! line (e.g. #!/bin/sh), so it cannot be run"
                          + (script.location.map { " (\($0))" } ?? ""))
        }
        var template = Array((buildDirectory + "/.check-script-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            return result(false, "cannot make a private directory for the script in \(buildDirectory): \(errnoText())")
        }
        let privateDirectory = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: privateDirectory) }
        let file = privateDirectory + "/check-script"
        do {
            try AtomicFile.write(program, to: file, mode: 0o500)
        } catch {
            return result(false, "cannot write the script: \(error.message)")
        }

        var environment: [String: String] = [:]
        if let imagePath {
            for name in QemuInvocation.imageVariables { environment[name] = imagePath }
        }
        let command = Command(file, [buildDirectory], environment: environment, workingDirectory: buildDirectory)
        let shebang = program.prefix(while: { $0 != "\n" })
        let image = imagePath.map { ", ELBE_IMG=\($0)" } ?? ""
        log.info("\(checkName): running \(shebang) with \(buildDirectory)\(image), time-out \(Int(timeout.inSeconds)) s")
        let output = outputPath.flatMap { path -> FileHandle? in
            guard FileManager.default.createFile(atPath: path, contents: nil) else { return nil }
            return FileHandle(forWritingAtPath: path)
        }
        defer { try? output?.close() }
        if let outputPath { log.info("\(checkName): output in \(outputPath)") }
        let outcome: Outcome
        do {
            outcome = try await withThrowingTaskGroup(of: Outcome.self) { group in
                group.addTask {
                    .ended(try await processes.stream(command) { line in
                        tail.append(line)
                        output?.write(Data((line + "\n").utf8))
                        log.tool(line)
                    })
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return .timedOut
                }
                let first = try await group.next() ?? .timedOut
                group.cancelAll()
                return first
            }
        } catch {
            if Task.isCancelled { return result(false, "stopped: the check was cancelled") }
            return result(false, "the script could not be run: \((error as? HavelError)?.message ?? "\(error)")")
        }
        switch outcome {
        case .timedOut:
            return result(false, "the script was still running after \(Int(timeout.inSeconds)) s and was stopped" + lastLines(tail))
        case .ended(.exited(0)):
            return result(true, "the script exited 0")
        case .ended(let termination):
            return result(false, "the script ended with \(termination)" + lastLines(tail))
        }
    }

    private enum Outcome: Sendable {
        case ended(ProcessResult.Termination)
        case timedOut
    }

    /// The script as it runs: blank lines before the `#!` line are dropped (they come from the XML's layout;
    /// ELBE would fail to run such a script).
    public static func runnable(_ text: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        while let first = lines.first, first.allSatisfy(\.isWhitespace), lines.count > 1 { lines.removeFirst() }
        return lines.joined(separator: "\n")
    }

    private static func lastLines(_ tail: LineTail) -> String {
        let last = tail.all.suffix(8)
        return last.isEmpty ? " (it printed nothing)" : "; its last output:\n" + last.joined(separator: "\n")
    }
}
