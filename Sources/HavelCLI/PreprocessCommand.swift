import ArgumentParser
import Foundation
import HavelCore
import ProjectXML

/// `havel preprocess FILE`: the project as a plain document, ready to build or submit.
struct PreprocessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocess",
        abstract: "Resolve includes and variants, merge sections, migrate deprecated tags and hash passwords.",
        discussion: "The output is plain XML. Mirrors are left as written (a MIRROR_HOST placeholder is resolved when building).")

    @OptionGroup var read: ProjectReadOptions

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the result here instead of standard output.", valueName: "OUT"))
    var output: String?

    @Flag(name: .long, help: "gzip-compress the output (level 9).")
    var gzip = false

    @Argument(help: "The project file.")
    var file: String

    func run() throws {
        let loaded = try ProjectLoader.load(path: file, options: read.loaderOptions(hashPasswords: true))
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

/// Writes through a temporary file in the same directory and renames, so that a reader never sees
/// half a file and a failure leaves the old one.
enum AtomicFile {
    static func write(_ bytes: [UInt8], to path: String) throws(HavelError) {
        let temporary = path + ".havel-tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
            throw HavelError(.io, "cannot write \(path): the directory does not exist or is not writable")
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw HavelError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
