import ArgumentParser
import Build
import Foundation
import HavelCore
import SystemKit
import ProjectXML

/// `havel preprocess FILE`: the project as a plain document, ready to build or submit.
struct PreprocessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocess",
        abstract: "Resolve includes and variants, merge sections, migrate deprecated tags and hash passwords.",
        discussion: """
            The output is plain XML: <archivedir>s are packed into <archive> and url-list <key> URLs are fetched \
            into <raw-key> here, on this machine. Mirrors are left as written (a MIRROR_HOST placeholder is \
            resolved when building).
            """)

    @OptionGroup var read: ProjectReadOptions

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the result here instead of standard output.", valueName: "OUT"))
    var output: String?

    @Flag(name: .long, help: "gzip-compress the output (level 9).")
    var gzip = false

    @Argument(help: "The project file.")
    var file: String

    func run() async throws {
        let options = read.loaderOptions(hashPasswords: true)
        let loaded = try await ClientResources.resolve(try ProjectLoader.load(path: file, options: options), options: options)
        for diagnostic in loaded.diagnostics { Terminal.error(diagnostic.description) }
        guard loaded.isValid else {
            Terminal.error("\(file): invalid, nothing written (\(loaded.errors.count) error\(loaded.errors.count == 1 ? "" : "s"))")
            throw ExitCode(1)
        }
        var bytes = Array(XMLWriter.write(loaded.document).utf8)
        if gzip { bytes = try Gzip.compress(bytes) }
        if let output {
            try AtomicFile.write(bytes, to: output)
        } else {
            try FileHandle.standardOutput.write(contentsOf: Data(bytes))
        }
    }
}
