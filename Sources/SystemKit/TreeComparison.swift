// TreeComparison owns comparing two directory trees file by file (what a reproducibility check and a build
// diff report): walked without following symbolic links, each entry compared by kind, content (sha256),
// mode, owner, link target and device number. Times are left out: a tree's times are clamped only when
// it is packed.

import Foundation
import HavelCore

/// What differs between two trees, by path inside them ("/etc/shadow").
public struct TreeComparison: Sendable, Equatable {
    /// One aspect in which an entry present in both trees differs.
    public enum Aspect: String, Sendable, Equatable, CaseIterable {
        case kind, content, mode, owner, linkTarget = "link target", device
    }

    public struct Change: Sendable, Equatable {
        public var path: String
        public var aspects: [Aspect]

        public init(path: String, aspects: [Aspect]) {
            self.path = path
            self.aspects = aspects
        }
    }

    /// In the second tree only, in the first only, in both but different; each sorted by path.
    public var added: [String] = []
    public var removed: [String] = []
    public var changed: [Change] = []

    public init() {}

    public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }

    /// One line per difference: `+ path`, `- path`, `~ path (content, mode)`, sorted by path.
    public var lines: [String] {
        let entries = added.map { ($0, "+ \($0)") } + removed.map { ($0, "- \($0)") }
            + changed.map { ($0.path, "~ \($0.path) (\($0.aspects.map(\.rawValue).joined(separator: ", ")))") }
        return entries.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// Compares the trees under `first` and `second`; contents of regular files of equal size are
    /// compared by their sha256 (sha256sum, through `processes`).
    public static func compare(_ first: String, _ second: String,
                               processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> TreeComparison {
        let a = try TreeEntry.walk(first)
        let b = try TreeEntry.walk(second)
        var result = TreeComparison()
        var sameSize: [String] = []
        for (path, left) in a {
            guard let right = b[path] else { result.removed.append(path); continue }
            let aspects = left.differences(from: right)
            if !aspects.isEmpty {
                result.changed.append(Change(path: path, aspects: aspects))
            } else if left.kind == .regular {
                sameSize.append(path)
            }
        }
        result.added = b.keys.filter { a[$0] == nil }
        let firstDigests = try await Digest.sha256(files: sameSize.map { first + $0 }, processes: processes)
        let secondDigests = try await Digest.sha256(files: sameSize.map { second + $0 }, processes: processes)
        for path in sameSize {
            let left = firstDigests[first + path], right = secondDigests[second + path]
            // sha256sum escapes names with a newline or backslash; those are compared byte by byte.
            let same = left != nil && right != nil ? left == right
                : FileManager.default.contentsEqual(atPath: first + path, andPath: second + path)
            if !same { result.changed.append(Change(path: path, aspects: [.content])) }
        }
        result.added.sort()
        result.removed.sort()
        result.changed.sort { $0.path < $1.path }
        return result
    }
}

/// One entry of a tree as lstat sees it.
struct TreeEntry: Equatable {
    enum Kind: String { case regular, directory, symlink, characterDevice, blockDevice, fifo, socket }

    var kind: Kind
    var mode: mode_t
    var owner: uid_t
    var group: gid_t
    var size: Int64
    var linkTarget: String?
    var device: UInt64

    /// Aspects in which `other` differs; an entry of another kind differs only in kind. A regular file's
    /// size is a content difference (its bytes are compared only when the sizes agree).
    func differences(from other: TreeEntry) -> [TreeComparison.Aspect] {
        if kind != other.kind { return [.kind] }
        var aspects: [TreeComparison.Aspect] = []
        if kind == .regular && size != other.size { aspects.append(.content) }
        if mode != other.mode { aspects.append(.mode) }
        if owner != other.owner || group != other.group { aspects.append(.owner) }
        if linkTarget != other.linkTarget { aspects.append(.linkTarget) }
        if (kind == .characterDevice || kind == .blockDevice) && device != other.device { aspects.append(.device) }
        return aspects
    }

    /// Every entry below `root` (not `root` itself), keyed by its path inside the tree ("/etc/x").
    static func walk(_ root: String) throws(HavelError) -> [String: TreeEntry] {
        var status = stat()
        guard lstat(root, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else {
            throw HavelError(.notFound, "cannot compare \(root): not a directory")
        }
        var entries: [String: TreeEntry] = [:]
        var pending = [""]
        while let directory = pending.popLast() {
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: root + directory)
            } catch {
                throw HavelError(.io, "cannot list \(root + directory): \(error.localizedDescription)")
            }
            for name in names {
                let path = directory + "/" + name
                guard lstat(root + path, &status) == 0 else {
                    throw HavelError(.io, "cannot compare \(root + path): \(errnoText())")
                }
                let entry = try TreeEntry(status, at: root + path)
                entries[path] = entry
                if entry.kind == .directory { pending.append(path) }
            }
        }
        return entries
    }

    init(_ status: stat, at hostPath: String) throws(HavelError) {
        switch status.st_mode & S_IFMT {
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        case S_IFCHR: kind = .characterDevice
        case S_IFBLK: kind = .blockDevice
        case S_IFIFO: kind = .fifo
        case S_IFSOCK: kind = .socket
        default: kind = .regular
        }
        mode = status.st_mode & 0o7777
        owner = status.st_uid
        group = status.st_gid
        size = Int64(status.st_size)
        device = UInt64(status.st_rdev)
        linkTarget = nil
        if kind == .symlink {
            guard let target = symbolicLinkTarget(hostPath) else {
                throw HavelError(.io, "cannot read the link \(hostPath): \(errnoText())")
            }
            linkTarget = target
        }
    }
}
