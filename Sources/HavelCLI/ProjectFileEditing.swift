import Foundation
import Glibc
import HavelCore
import ProjectXML
import SystemKit

/// Reading and writing back a project file that an ELBE-style editing command changes in place
/// (`add`, `pin-versions`, `chg-archive`): a symlink is followed to the file it names, a gzip file
/// stays gzip, the file keeps its mode, and the new text replaces the old atomically (a reader never
/// sees half a file; a failure leaves the old one).
struct ProjectFileEditing {
    /// The file the edit replaces (the symlink's target when `path` is a link).
    let path: String
    let gzipped: Bool
    let mode: mode_t
    var editor: ProjectFileEditor

    init(_ given: String) throws(HavelError) {
        let read = try ProjectFile.read(given)
        path = URL(fileURLWithPath: given).resolvingSymlinksInPath().path
        gzipped = read.gzipped
        var info = stat()
        mode = stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0o644
        editor = try ProjectFileEditor(bytes: read.bytes, file: given)
    }

    func save() throws(HavelError) {
        var bytes = editor.bytes
        guard bytes.count <= ProjectFile.maximumSize else {
            throw HavelError(.invalidArgument, "\(path) would grow to \(ByteCount.format(UInt64(bytes.count))), larger than the \(ByteCount.format(UInt64(ProjectFile.maximumSize))) Havel reads; nothing changed")
        }
        if gzipped { bytes = try Gzip.compress(bytes) }
        try AtomicFile.write(bytes, to: path, mode: mode)
    }
}
