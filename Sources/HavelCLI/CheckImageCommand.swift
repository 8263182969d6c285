import ArgumentParser
import BootCheck
import Build
import Foundation
import Logging
import HavelCore
import ProjectXML
import SystemKit

/// `havel check-image BUILDDIR`: boots the images of a finished build as its check-image-list says, then runs its check-script.
struct CheckImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-image",
        abstract: "Boot a build's images in QEMU and run the project's check-image-list and check-script (results in check.xml).",
        discussion: "Exit status: 0 every check passed, 1 a check failed or could not run.")

    @Argument(help: "A build directory made by havel build.")
    var buildDirectory: String

    @OptionGroup var output_: OutputOptions

    func run() async throws {
        let directory = BuildDirectory(buildDirectory)
        guard FileManager.default.fileExists(atPath: directory.sourceXML) else {
            throw HavelError(.notFound, "\(directory.path) has no source.xml; give a directory made by havel build")
        }
        let project = try ProjectLoader.load(path: directory.sourceXML).project
        guard !project.checks.isEmpty || project.checkScript != nil else {
            Terminal.out("\(directory.sourceXML) has no check-image-list: nothing to check")
            return
        }
        let file = try LogFile(path: directory.path + "/check-log.txt")
        defer { file.close() }
        let logger = CLILogging.buildLogger(output_.mode == .live ? .plain : output_.mode).alsoWriting(to: file)
        let outcome = await Interruptible.run { () async throws(HavelError) -> [CheckResult] in
            try await CheckRunner.run(project.checks, script: project.checkScript, buildDirectory: directory.path, report: directory.checkReport, logger: logger)
        }
        switch outcome {
        case .success(let results):
            for result in results {
                Terminal.out("\(result.passed ? "passed" : "FAILED") \(result.name) (\(String(format: "%.1f", result.seconds)) s)\(result.passed ? "" : ": " + result.message)")
            }
            Terminal.out("results in \(directory.checkReport)")
            if results.contains(where: { !$0.passed }) { throw ExitCode(1) }
        case .failure(let error, let signal):
            Terminal.error("havel: check-image failed: \(error)")
            throw ExitCode(signal.map { 128 + $0 } ?? 1)
        }
    }
}
