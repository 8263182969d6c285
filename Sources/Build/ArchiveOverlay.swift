import Logging
import Foundation
import HavelCore
import SystemKit

/// The project's `<archive>`: a base64 tar.bz2 laid over the target before finetuning. It is unpacked
/// into an empty staging directory first (tar refuses `..` and absolute members there, and no symlink
/// of the target can redirect it), then merged into the tree through `RootedFileSystem`, so a member
/// can never land outside the target whatever links the tree holds.
enum ArchiveOverlay {
    /// Returns the tree paths the archive added or replaced.
    static func apply(_ base64: String, to target: RootedFileSystem, work: String, log: Logger,
                      processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> [String] {
        guard let data = Data(base64Encoded: base64.filter { !$0.isWhitespace }) else {
            throw HavelError(.invalidProject, "<archive> is not valid base64")
        }
        let archive = work + "/archive.tar.bz2"
        let staging = work + "/archive"
        do {
            try? FileManager.default.removeItem(atPath: staging)
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
            try data.write(to: URL(fileURLWithPath: archive))
        } catch {
            throw HavelError(.io, "cannot stage the archive in \(work): \(error.localizedDescription)")
        }
        let result = try await processes.run(Command("tar", ["-x", "-f", archive, "-C", staging, "--numeric-owner", "--same-owner",
                                                                 "-p", "--no-overwrite-dir"]))
        guard result.succeeded else {
            throw HavelError(.invalidProject, "<archive> cannot be unpacked (it must be a tar.bz2): \(result.standardError.trimmingWhitespace())")
        }
        var added: [String] = []
        try merge(staging, "", into: target, added: &added)
        log.info("archive: \(added.count) entries laid over the target")
        try? FileManager.default.removeItem(atPath: staging)
        unlink(archive)
        return added
    }

    static func merge(_ staging: String, _ relative: String, into target: RootedFileSystem, added: inout [String]) throws(HavelError) {
        let hostDir = staging + relative
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: hostDir).sorted()
        } catch {
            throw HavelError(.io, "cannot read \(hostDir)")
        }
        for name in names {
            let treePath = relative + "/" + name
            let hostPath = staging + treePath
            var info = stat()
            guard lstat(hostPath, &info) == 0 else { continue }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                // A directory merges with one already in the tree (which may be a symlink there: it is followed inside the tree).
                if !target.exists(treePath) { try target.createDirectory(treePath, mode: info.st_mode & 0o7777) }
                try target.setAttributes(treePath, mode: info.st_mode & 0o7777, owner: info.st_uid, group: info.st_gid)
                try merge(staging, treePath, into: target, added: &added)
            } else {
                try target.remove(treePath)
                try target.importItem(fromHost: hostPath, to: treePath)
                added.append(treePath)
            }
        }
    }
}
