import ArgumentParser
import Debian
import Foundation
import HavelCore
import ProjectXML
import SystemKit

/// `havel check-updates BUILD_DIR|SOURCE_XML`: ELBE's `elbe check_updates`, the packages a build
/// installed against the newest versions in the project's repositories.
struct CheckUpdatesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-updates",
        abstract: "List installed packages that have newer versions on the mirror (as elbe check_updates).",
        discussion: """
            Reads <fullpkgs> from a build's source.xml and the Packages indices of the project's repositories \
            (apt-get update in a private directory). Exit status: 0 nothing newer, 3 updates available, \
            1 the check failed or packages of the pkg-list are gone from the repositories, 2 usage.
            """)

    static let updatesExitCode: Int32 = 3

    @Argument(help: ArgumentHelp("A build directory or a source.xml with <fullpkgs>.", valueName: "BUILD_DIR|SOURCE_XML"))
    var source: String

    @OptionGroup var mirrorOptions: MirrorOptions

    @Option(name: [.short, .long], help: ArgumentHelp("Run this program with UPDATE or ERRORS and the source.xml when there is something to do (as elbe check_updates --script).", valueName: "PROGRAM"))
    var script: String?

    func run() async throws {
        let sourcePath = PinVersionsCommand.sourceXML(source)
        var loaded = try ProjectLoader.load(path: sourcePath)
        for diagnostic in loaded.errors { Terminal.error(diagnostic.description) }
        guard loaded.isValid else { throw HavelError(.invalidProject, "\(sourcePath) is not a valid project; nothing checked") }
        guard !loaded.project.fullPackages.isEmpty else {
            throw HavelError(.invalidProject, "\(sourcePath) has no <fullpkgs>: give a build directory or the source.xml havel build wrote there",
                             at: loaded.document.root.location)
        }
        guard let architecture = loaded.project.architecture?.rawValue else {
            throw HavelError(.invalidProject, "\(sourcePath): buildtype \(loaded.project.buildtype) names no Debian architecture")
        }
        try mirrorOptions.apply(to: &loaded.project)
        Terminal.out("checking \(sourcePath)")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("havel-check-updates-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        let foreign = Set(loaded.project.fullPackages.compactMap(\.arch)).sorted()
        let available = try await UpdateCheck.fetchIndexes(sourcesList: AptSources.lines(for: loaded.project), architecture: architecture,
                                                           foreignArchitectures: foreign,
                                                           keys: AptSources.keys(for: loaded.project), workDirectory: work)
        let findings = UpdateCheck.compare(installed: loaded.project.fullPackages, available: available, architecture: architecture)
        for finding in findings { Terminal.out(finding.description) }
        let errors = findings.filter { $0.kind == .missing }.count
        let updates = findings.count - errors
        if errors > 0 {
            Terminal.out("\(errors) package\(errors == 1 ? "" : "s") of the pkg-list missing from the repositories: the project needs fixing")
            try await runScript("ERRORS", sourcePath)
            throw ExitCode(1)
        }
        if updates > 0 {
            Terminal.out("\(updates) update\(updates == 1 ? "" : "s") available")
            try await runScript("UPDATE", sourcePath)
            throw ExitCode(Self.updatesExitCode)
        }
        Terminal.out("no updates available")
    }

    func runScript(_ event: String, _ sourcePath: String) async throws {
        guard let script else { return }
        let result = try await SystemProcesses().run(Command(script, [event, sourcePath]))
        if !result.standardOutput.isEmpty { Terminal.out(result.standardOutput.trimmingWhitespace()) }
        if !result.succeeded {
            Terminal.error("havel: \(script) \(event) failed (\(result.termination)): \(result.standardError.trimmingWhitespace())")
        }
    }
}
