import Foundation
@testable import Build
import HavelCore
import SystemKit

/// A small fake root filesystem for tests that need no Debian tree: accounts files, some content,
/// and a host directory beside it whose files must never change.
struct SyntheticTree {
    let base: String
    var root: String { base + "/rootfs" }
    var host: String { base + "/host" }
    var sentinel: String { host + "/sentinel" }
    static let sentinelText = "host data that no build may touch\n"

    init() throws {
        base = FileManager.default.temporaryDirectory.appendingPathComponent("havel-syn-\(UUID().uuidString)").path
        for dir in ["rootfs/etc", "rootfs/home", "rootfs/tmp", "rootfs/usr/share/doc", "rootfs/var/log", "rootfs/proc", "rootfs/sys", "rootfs/dev", "host"] {
            try FileManager.default.createDirectory(atPath: base + "/" + dir, withIntermediateDirectories: true)
        }
        try write("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n")
        try write("/etc/shadow", "root:*:19000:0:99999:7:::\nwww-data:*:19000:0:99999:7:::\n")
        try write("/etc/group", "root:x:0:\nwww-data:x:33:\n")
        try write("/etc/gshadow", "root:*::\nwww-data:*::\n")
        try write("/etc/hostname", "tree-hostname\n")
        try Self.sentinelText.write(toFile: sentinel, atomically: true, encoding: .utf8)
    }

    func write(_ treePath: String, _ text: String) throws {
        try text.write(toFile: root + treePath, atomically: true, encoding: .utf8)
    }

    func read(_ treePath: String) -> String? {
        try? String(contentsOfFile: root + treePath, encoding: .utf8)
    }

    /// Everything under the host directory, with contents: it must be the same after any operation.
    func hostSnapshot() -> [String: String] {
        var snapshot: [String: String] = [:]
        let items = (FileManager.default.enumerator(atPath: host)?.allObjects as? [String]) ?? []
        for item in items {
            snapshot[item] = (try? String(contentsOfFile: host + "/" + item, encoding: .utf8)) ?? "<dir>"
        }
        return snapshot
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: base)
    }
}
