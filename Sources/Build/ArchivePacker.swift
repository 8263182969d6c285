import Foundation
import HavelCore
import ProjectXML
import SystemKit

/// Makes what `<archive>` holds from directories, as ELBE's `chg_archive` and `<archivedir>` pack them: a
/// bzip2 tar of each directory's contents (members `./…`) appended in order, so that a later directory's
/// file replaces an earlier one's when unpacked; owned by root unless that directory's owners are kept.
/// Havel adds a sorted member order so the same directories give the same archive. `ArchiveOverlay`
/// unpacks it at build time; `havel chg-archive` and `ClientResources` (archivedir) both pack here.
public enum ArchivePacker {
    /// The bzip2 magic every `<archive>` starts with once decoded (ELBE unpacks it as tar.bz2).
    public static let bzip2Magic: [UInt8] = Array("BZh".utf8)

    /// Base64 grows by a third; the project file must stay under ProjectFile.maximumSize.
    public static let maximumArchiveSize = ProjectFile.maximumSize / 4 * 3

    /// One directory to pack.
    public struct Source: Sendable, Equatable {
        public var directory: String
        /// Keep the owners and groups of its files (ELBE's keep-attributes); otherwise all belong to root.
        public var keepAttributes: Bool

        public init(directory: String, keepAttributes: Bool) {
            self.directory = directory
            self.keepAttributes = keepAttributes
        }
    }

    public static func pack(directory: String, keepAttributes: Bool, to output: String,
                            processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) {
        try await pack([Source(directory: directory, keepAttributes: keepAttributes)], to: output, processes: processes)
    }

    /// Packs the directories in order into the tar.bz2 `output` (which must end in `.bz2`).
    public static func pack(_ sources: [Source], to output: String,
                            processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) {
        precondition(output.hasSuffix(".bz2"), "the packed archive's name ends in .bz2")
        let tarFile = String(output.dropLast(".bz2".count))
        unlink(tarFile)
        for (index, source) in sources.enumerated() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: source.directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                unlink(tarFile)
                throw HavelError(.notFound, "\(source.directory) is not a directory")
            }
            let owners = source.keepAttributes ? [] : ["--owner=root", "--group=root"]
            let mode = index == 0 ? "--create" : "--append"
            let result = try await processes.run(Command("tar", [mode, "--file", tarFile, "--sort=name"] + owners + ["-C", source.directory, "."]))
            guard result.succeeded else {
                unlink(tarFile)
                throw HavelError(.io, "cannot pack \(source.directory): \(result.standardError.trimmingWhitespace())")
            }
        }
        unlink(output)
        let compressed = try await processes.run(Command("bzip2", ["--compress", "--force", tarFile]))
        guard compressed.succeeded else {
            unlink(tarFile)
            unlink(output)
            throw HavelError(.io, "cannot compress the archive of \(sources.map(\.directory).joined(separator: ", ")): \(compressed.standardError.trimmingWhitespace())")
        }
    }

    /// The packed tar.bz2 of the directories, at most `maximumArchiveSize` bytes, made in a temporary file.
    public static func packedBytes(_ sources: [Source], processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> [UInt8] {
        let packed = FileManager.default.temporaryDirectory.appendingPathComponent("havel-archive-\(UUID().uuidString).tar.bz2").path
        defer { unlink(packed) }
        try await pack(sources, to: packed, processes: processes)
        return try readArchive(packed, named: sources.map(\.directory).joined(separator: ", ") + " packed")
    }

    /// A regular file of bounded size that is bzip2 data.
    public static func readArchive(_ path: String, named name: String) throws(HavelError) -> [UInt8] {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw HavelError(.invalidArgument, "\(name) is not a regular file; give a tar.bz2 or a directory; nothing changed")
        }
        guard Int(info.st_size) <= maximumArchiveSize else {
            throw HavelError(.invalidArgument, "\(name) is \(ByteCount.format(UInt64(info.st_size))); an <archive> may hold at most \(ByteCount.format(UInt64(maximumArchiveSize))) (the project file must stay under \(ByteCount.format(UInt64(ProjectFile.maximumSize)))); nothing changed")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HavelError(.io, "cannot read \(name)")
        }
        let bytes = [UInt8](data)
        guard bytes.starts(with: bzip2Magic) else {
            throw HavelError(.invalidArgument, "\(name) is not bzip2-compressed; <archive> holds a tar.bz2 (tar -cjf archive.tar.bz2 -C DIR .), or give the directory; nothing changed")
        }
        return bytes
    }
}
