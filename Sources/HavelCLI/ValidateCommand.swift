import ArgumentParser
import Foundation
import HavelCore
import ProjectXML

/// `havel validate FILE...`: every problem of every file, as `file:line:column: element-path: message`.
/// Exit 0 when all files are valid, 1 when any is not, 2 for usage errors.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check ELBE project files: structure, values and meaning.",
        discussion: "Includes are resolved and sections merged first, as preprocess does. Exit status: 0 valid, 1 invalid, 2 usage error.")

    @OptionGroup var read: ProjectReadOptions

    @Flag(name: .long, help: "Print the findings as JSON.")
    var json = false

    @Argument(help: "Project files (plain or gzip-compressed XML).")
    var files: [String]

    func validate() throws {
        if files.isEmpty { throw ValidationError("name at least one project file to validate") }
    }

    struct FileReport: Codable {
        var file: String
        var valid: Bool
        var diagnostics: [Diagnostic]
    }

    func run() throws {
        var reports: [FileReport] = []
        for file in files {
            do {
                let loaded = try ProjectLoader.load(path: file, options: read.loaderOptions())
                reports.append(FileReport(file: file, valid: loaded.isValid, diagnostics: loaded.diagnostics))
            } catch {
                let diagnostics = error.diagnostics.isEmpty ? [Diagnostic(.error, at: error.location, path: nil, error.message)] : error.diagnostics
                reports.append(FileReport(file: file, valid: false, diagnostics: diagnostics))
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            Terminal.out(String(decoding: try encoder.encode(reports), as: UTF8.self))
        } else {
            for report in reports {
                for diagnostic in report.diagnostics { Terminal.out(diagnostic.description) }
                let errors = report.diagnostics.filter { $0.severity == .error }.count
                let warnings = report.diagnostics.count - errors
                let counts = [errors > 0 ? "\(errors) error\(errors == 1 ? "" : "s")" : nil,
                              warnings > 0 ? "\(warnings) warning\(warnings == 1 ? "" : "s")" : nil].compactMap { $0 }
                Terminal.out("\(report.file): \(report.valid ? "valid" : "invalid")" + (counts.isEmpty ? "" : " (\(counts.joined(separator: ", ")))"))
            }
        }
        if reports.contains(where: { !$0.valid }) { throw ExitCode(1) }
    }
}
