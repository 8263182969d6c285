import Foundation
import HavelCore
import SystemKit

/// Makes what `<archive>` holds from a directory, as ELBE's `chg_archive` packs one: a bzip2 tar of the
/// directory's contents (members `./…`), owned by root unless the owners are kept; Havel adds a sorted
/// member order so the same directory gives the same archive. `ArchiveOverlay` unpacks it at build time.
public enum ArchivePacker {
    /// The bzip2 magic every `<archive>` starts with once decoded (ELBE unpacks it as tar.bz2).
    public static let bzip2Magic: [UInt8] = Array("BZh".utf8)

    public static func pack(directory: String, keepAttributes: Bool, to output: String,
                            processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw HavelError(.notFound, "\(directory) is not a directory")
        }
        let owners = keepAttributes ? [] : ["--owner=root", "--group=root"]
        let result = try await processes.run(Command("tar", ["--create", "--bzip2", "--file", output, "--sort=name"] + owners + ["-C", directory, "."]))
        guard result.succeeded else {
            unlink(output)
            throw HavelError(.io, "cannot pack \(directory): \(result.standardError.trimmingWhitespace())")
        }
    }
}
