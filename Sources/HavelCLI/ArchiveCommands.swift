import ArgumentParser
import Build
import Foundation
import Glibc
import HavelCore
import ProjectXML
import SystemKit

/// `havel chg-archive FILE ARCHIVE|DIR`: ELBE's `elbe chg_archive`, the project's `<archive>` replaced by
/// a tar.bz2 or by a directory packed as one.
struct ChangeArchiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chg-archive",
        abstract: "Replace the project's <archive> with a tar.bz2 or a directory (as elbe chg_archive).",
        discussion: """
            A directory is packed as tar.bz2 (files owned by root unless --keep-attributes); a file must be a \
            tar.bz2 and is embedded as it is. The archive is laid over the target when it is built. The rest \
            of FILE is kept as written; a file without <archive> gets one after <target>.
            """)

    @Flag(name: .long, help: "Keep the owners and groups of a directory's files (otherwise everything belongs to root).")
    var keepAttributes = false

    @Argument(help: "The project file.")
    var file: String

    @Argument(help: ArgumentHelp("A tar.bz2 file or a directory.", valueName: "ARCHIVE|DIR"))
    var archive: String

    func run() async throws {
        var edit = try ProjectFileEditing(file)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: archive, isDirectory: &isDirectory) else {
            throw HavelError(.notFound, "\(archive): no such file or directory; nothing changed")
        }
        let bytes: [UInt8]
        if isDirectory.boolValue {
            bytes = try await ArchivePacker.packedBytes([.init(directory: archive, keepAttributes: keepAttributes)])
        } else {
            if keepAttributes { Terminal.error("havel: --keep-attributes applies to a directory only; \(archive) is embedded as it is") }
            bytes = try ArchivePacker.readArchive(archive, named: archive)
        }
        try edit.editor.setArchive(base64: Data(bytes).base64EncodedString())
        try edit.save()
        Terminal.out("\(file): <archive> holds \(ByteCount.format(UInt64(bytes.count))) from \(archive)")
    }
}

/// `havel get-archive FILE OUT`: ELBE's `elbe get_archive`, the project's `<archive>` written out as the
/// tar.bz2 it holds. An existing OUT is never overwritten.
struct GetArchiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get-archive",
        abstract: "Write the project's <archive> out as a tar.bz2 (as elbe get_archive).")

    @Argument(help: "The project file.")
    var file: String

    @Argument(help: ArgumentHelp("Where to write the archive; must not exist.", valueName: "OUT"))
    var output: String

    func run() throws {
        guard !FileManager.default.fileExists(atPath: output) else {
            throw HavelError(.invalidArgument, "\(output) already exists; give a new file name")
        }
        let editor = try ProjectFileEditing(file).editor
        guard let text = editor.archiveText else {
            let root = editor.document.root
            throw HavelError(.notFound, "\(file) has no <archive> (or an empty one)", at: root.firstElement(named: "archive")?.location ?? root.location)
        }
        guard let data = Data(base64Encoded: text.filter { !$0.isWhitespace }) else {
            throw HavelError(.invalidProject, "<archive> is not valid base64", at: editor.document.root.firstElement(named: "archive")?.location)
        }
        // Written beside OUT, then linked into place: link fails instead of replacing a file made meanwhile.
        let temporary = output + ".havel-tmp-\(getpid())"
        try AtomicFile.write([UInt8](data), to: temporary)
        defer { unlink(temporary) }
        guard link(temporary, output) == 0 else {
            throw HavelError(.io, "cannot write \(output): \(errnoText())")
        }
        Terminal.out("\(output): \(ByteCount.format(UInt64(data.count))) from the <archive> of \(file)")
    }
}
