import Foundation
import HavelCore
import Logging
import SystemKit

/// A partition's files, gathered without touching the rootfs: the subtree at its mountpoint, with the
/// subtrees of deeper mountpoints (other partitions of the same image) emptied.
///
/// Two ways to stage:
/// * **links** (`cp -al`): directories are new, every other entry is a hard link to the rootfs inode. Nothing
///   in the staging tree may then be written to; removing entries only unlinks them. Cheap.
/// * **copy** (`cp -a --reflink=auto`): a real copy, used when fs-finetuning path-commands must run in the tree,
///   and when the work directory is on another filesystem than the rootfs (hard links cannot cross).
///
/// Modification times later than SOURCE_DATE_EPOCH are clamped in the staging tree. In a linked tree the late
/// entries are first replaced by private copies (and the directories, which are the stage's own, are reset to
/// their clamped times), so clamping never reaches the rootfs. A file hard-linked elsewhere in the tree and
/// replaced so loses that link in the image (its copies are separate files).
struct StagedTree: Sendable {
    var path: String
    var copied: Bool
    var entries: Int
    var hasTimesAfterEpoch: Bool
    var sizeBytes: UInt64
}

enum Staging {
    /// The host directory of `mountpoint` in the rootfs, or nil when the tree has nothing there. A mountpoint
    /// must be a real directory: a symlink on the way is an error (its files would end up elsewhere).
    static func source(_ mountpoint: String, in rootfs: RootedFileSystem, context: String) throws(HavelError) -> String? {
        let expected = mountpoint == "/" ? rootfs.root : rootfs.root + mountpoint
        // Find the first component that is missing or not a plain directory.
        var current = rootfs.root
        for component in mountpoint.split(separator: "/") {
            current += "/" + component
            var status = stat()
            if lstat(current, &status) != 0 {
                if errno == ENOENT { return nil }
                throw HavelError(.io, "\(context): cannot stat \(current): \(FileIO.errorText())")
            }
            switch status.st_mode & S_IFMT {
            case S_IFDIR: continue
            case S_IFLNK:
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: current)) ?? "?"
                throw HavelError(.invalidProject, "\(context): the mountpoint \(mountpoint) goes through the symbolic link \(String(current.dropFirst(rootfs.root.count))) -> \(target) in the tree; a partition needs a real directory")
            default:
                throw HavelError(.invalidProject, "\(context): the mountpoint \(mountpoint) is not a directory in the tree (\(String(current.dropFirst(rootfs.root.count))) is a file)")
            }
        }
        return expected
    }

    static func stage(source: String?, nested: [String], into destination: String, copy: Bool, epoch: Int,
                      context: String, processes: any ProcessRunning, log: Logger) async throws(HavelError) -> StagedTree {
        var copied = copy
        if let source {
            var arguments = ["-a", "-T"]
            arguments += copy ? ["--reflink=auto"] : ["-l"]
            let result = try await processes.run(Command("cp", arguments + ["--", source, destination]))
            if !result.succeeded {
                let reason = result.standardError.trimmingWhitespace()
                guard !copy else { throw HavelError(.processFailed, "\(context): copying \(source) failed: \(reason)") }
                log.info("\(context): hard-linking the tree failed (\(reason)); copying it instead")
                try remove(destination)
                let again = try await processes.run(Command("cp", ["-a", "-T", "--reflink=auto", "--", source, destination]))
                guard again.succeeded else {
                    throw HavelError(.processFailed, "\(context): copying \(source) failed: \(again.standardError.trimmingWhitespace())")
                }
                copied = true
            }
        } else {
            guard mkdir(destination, 0o755) == 0 else { throw HavelError(.io, "\(context): cannot create \(destination): \(FileIO.errorText())") }
            let t = timespec(tv_sec: epoch, tv_nsec: 0)
            _ = FileIO.setTimes(path: destination, atime: t, mtime: t)
        }
        for path in nested { try await empty(path, in: destination, epoch: epoch, context: context, processes: processes, log: log) }

        var entries = 0
        var rootStatus = stat()
        var late = lstat(destination, &rootStatus) == 0 && rootStatus.st_mtim.tv_sec > epoch
        var bytes: UInt64 = 0
        try TreeWalk.walk(destination) { entry throws(HavelError) in
            entries += 1
            if entry.status.st_mtim.tv_sec > epoch { late = true }
            if entry.isRegular { bytes += UInt64(entry.status.st_blocks) * 512 }
        }
        return StagedTree(path: destination, copied: copied, entries: entries, hasTimesAfterEpoch: late, sizeBytes: bytes)
    }

    /// Leaves `relative` (a deeper mountpoint) as an empty directory with its times kept; creates it (and
    /// missing parents, owned by root, mode 0755, times at the epoch) if the tree lacks it.
    private static func empty(_ relative: String, in root: String, epoch: Int, context: String, processes: any ProcessRunning, log: Logger) async throws(HavelError) {
        let tree = try RootedFileSystem(root: root)
        var current = tree.root
        var parts = relative.split(separator: "/").map(String.init)
        while let first = parts.first {
            let next = current + "/" + first
            var status = stat()
            if lstat(next, &status) != 0 { break }
            guard (status.st_mode & S_IFMT) == S_IFDIR else {
                throw HavelError(.invalidProject, "\(context): the mountpoint of a deeper partition, \(relative), is not a directory in the tree")
            }
            current = next
            parts.removeFirst()
        }
        if parts.isEmpty {
            // It exists: remove its contents, keep the directory and its times.
            // find -delete never follows symbolic links and takes any name; in a hard-linked staging tree it only
            // unlinks, which leaves the rootfs's files as they are.
            var status = stat()
            _ = lstat(current, &status)
            let result = try await processes.run(Command("find", [current, "-xdev", "-mindepth", "1", "-delete"]))
            var left = 0
            try TreeWalk.walk(current) { _ in left += 1 }
            guard result.succeeded, left == 0 else {
                throw HavelError(.io, "\(context): cannot empty /\(relative) in the staging tree: \(result.standardError.trimmingWhitespace())")
            }
            _ = FileIO.setTimes(path: current, atime: status.st_atim, mtime: status.st_mtim)
        } else {
            var parentStatus = stat()
            _ = lstat(current, &parentStatus)
            log.info("\(context): /\(relative) does not exist in the tree; creating it empty as a mountpoint")
            try tree.createDirectory(relative, mode: 0o755)
            let t = timespec(tv_sec: epoch, tv_nsec: 0)
            var path = current
            for part in parts {
                path += "/" + part
                _ = FileIO.setTimes(path: path, atime: t, mtime: t)
            }
            _ = FileIO.setTimes(path: current, atime: parentStatus.st_atim, mtime: parentStatus.st_mtim)
        }
    }

    /// Clamps the late modification times of a hard-linked staging tree of `source`: each late non-directory
    /// entry is unlinked and copied again (`cp -a --parents`, a few hundred per run), checked
    /// to be a different inode from the rootfs's, then given the epoch; every directory (the stage's own) gets
    /// its recorded times, clamped. Returns false (and changes nothing) when a late entry's name is not UTF-8:
    /// the caller then copies the whole tree.
    static func clampLinked(_ staging: String, source: String, epoch: Int, context: String, processes: any ProcessRunning,
                            log: Logger) async throws(HavelError) -> Bool {
        var directories: [(path: String, atime: timespec, mtime: timespec)] = []
        var late: [String] = []
        var nonUTF8 = false
        var rootStatus = stat()
        guard lstat(staging, &rootStatus) == 0 else { throw HavelError(.io, "\(context): cannot stat \(staging): \(FileIO.errorText())") }
        directories.append(("", rootStatus.st_atim, rootStatus.st_mtim))
        try TreeWalk.walk(staging) { entry throws(HavelError) in
            if entry.isDirectory {
                directories.append((entry.path, entry.status.st_atim, entry.status.st_mtim))
            } else if entry.status.st_mtim.tv_sec > epoch {
                if String(validating: entry.name.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self) == nil || entry.path.contains("\n") {
                    nonUTF8 = true
                }
                late.append(entry.path)
            }
        }
        if nonUTF8 { return false }
        if !late.isEmpty {
            log.info("\(context): \(late.count) entries are newer than SOURCE_DATE_EPOCH (\(epoch)); copying them to clamp their times")
        }
        for chunk in late.chunked(500) {
            // Unlinked first: cp leaves a destination alone that is the same inode as its source (a hard-linked
            // symlink, even with --remove-destination).
            for path in chunk where unlink(staging + "/" + path) != 0 {
                throw HavelError(.io, "\(context): cannot unlink /\(path) in the staging tree: \(FileIO.errorText())")
            }
            let result = try await processes.run(Command("cp", ["-a", "--reflink=auto", "--parents", "-t", staging, "--"] + chunk,
                                                        workingDirectory: source))
            guard result.succeeded else {
                throw HavelError(.processFailed, "\(context): copying late entries into the staging tree failed: \(result.standardError.trimmingWhitespace())")
            }
        }
        let t = timespec(tv_sec: epoch, tv_nsec: 0)
        for path in late {
            var staged = stat(), original = stat()
            guard lstat(staging + "/" + path, &staged) == 0, lstat(source + "/" + path, &original) == 0 else {
                throw HavelError(.io, "\(context): cannot stat /\(path) after copying it: \(FileIO.errorText())")
            }
            guard staged.st_ino != original.st_ino || staged.st_dev != original.st_dev else {
                throw HavelError(.internalError, "\(context): /\(path) is still the rootfs's file after copying; its time is not changed")
            }
            guard FileIO.setTimes(path: staging + "/" + path, atime: t, mtime: t) else {
                throw HavelError(.io, "\(context): cannot set the times of /\(path) in the staging tree: \(FileIO.errorText())")
            }
        }
        func clamp(_ time: timespec) -> timespec { time.tv_sec > epoch ? t : time }
        for directory in directories {
            let path = directory.path.isEmpty ? staging : staging + "/" + directory.path
            _ = FileIO.setTimes(path: path, atime: clamp(directory.atime), mtime: clamp(directory.mtime))
        }
        return true
    }

    /// Clamps modification (and access) times later than the epoch, in a copied staging tree only.
    static func clampTimes(_ root: String, epoch: Int) throws(HavelError) {
        let t = timespec(tv_sec: epoch, tv_nsec: 0)
        var failures: [String] = []
        try TreeWalk.walk(root) { entry throws(HavelError) in
            guard entry.status.st_mtim.tv_sec > epoch || entry.status.st_atim.tv_sec > epoch else { return }
            let mtime = entry.status.st_mtim.tv_sec > epoch ? t : entry.status.st_mtim
            if !FileIO.setTimes(parent: entry.parent, name: entry.name, atime: t, mtime: mtime) { failures.append(entry.path) }
        }
        if let first = failures.first {
            throw HavelError(.io, "cannot clamp the times of \(failures.count) entries in \(root), e.g. \(first): \(FileIO.errorText())")
        }
        // utimensat does not change the parent directory, so the root is done last and only if it is late itself.
        var status = stat()
        if lstat(root, &status) == 0, status.st_mtim.tv_sec > epoch || status.st_atim.tv_sec > epoch {
            _ = FileIO.setTimes(path: root, atime: t, mtime: status.st_mtim.tv_sec > epoch ? t : status.st_mtim)
        }
    }

    /// rm -rf of an Images scratch path (never follows symlinks, never leaves the tree).
    static func remove(_ path: String) throws(HavelError) {
        let parent = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let tree = try RootedFileSystem(root: parent)
        try tree.remove(name)
    }
}
