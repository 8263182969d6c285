// Tests of TreeComparison on small trees made in a temporary directory.

import Foundation
import HavelCore
import SystemKit
import Testing

@Suite struct TreeComparisonTests {
    /// Two trees under a fresh /tmp/havel-tree-XXXXXX, removed by the caller.
    func makeTrees() throws -> (base: String, a: String, b: String) {
        let base = "/tmp/havel-tree-\(UUID().uuidString.prefix(8))"
        for tree in ["a", "b"] { try FileManager.default.createDirectory(atPath: "\(base)/\(tree)/etc", withIntermediateDirectories: true) }
        return (base, base + "/a", base + "/b")
    }

    func write(_ text: String, _ path: String, mode: Int = 0o644) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    @Test func identicalTreesCompareEmpty() async throws {
        let (base, a, b) = try makeTrees()
        defer { try? FileManager.default.removeItem(atPath: base) }
        for tree in [a, b] {
            try write("same\n", tree + "/etc/hostname")
            try FileManager.default.createSymbolicLink(atPath: tree + "/etc/mtab", withDestinationPath: "../proc/self/mounts")
        }
        let comparison = try await TreeComparison.compare(a, b)
        #expect(comparison.isEmpty, "\(comparison.lines)")
    }

    @Test func everyKindOfDifferenceIsReported() async throws {
        let (base, a, b) = try makeTrees()
        defer { try? FileManager.default.removeItem(atPath: base) }
        try write("salt-one\n", a + "/etc/shadow")           // same size, other bytes
        try write("salt-two\n", b + "/etc/shadow")
        try write("short\n", a + "/etc/grown")               // other size
        try write("longer text\n", b + "/etc/grown")
        try write("x\n", a + "/etc/tool", mode: 0o644)       // mode
        try write("x\n", b + "/etc/tool", mode: 0o755)
        try FileManager.default.createSymbolicLink(atPath: a + "/etc/link", withDestinationPath: "one")
        try FileManager.default.createSymbolicLink(atPath: b + "/etc/link", withDestinationPath: "two")
        try write("file\n", a + "/etc/became-dir")           // kind
        try FileManager.default.createDirectory(atPath: b + "/etc/became-dir", withIntermediateDirectories: false)
        try write("gone\n", a + "/etc/ssh_host_key")         // removed
        try FileManager.default.createDirectory(atPath: b + "/etc/new/deeper", withIntermediateDirectories: true)
        try write("new\n", b + "/etc/new/deeper/file")       // added, with its directories

        let comparison = try await TreeComparison.compare(a, b)
        #expect(comparison.removed == ["/etc/ssh_host_key"])
        #expect(comparison.added == ["/etc/new", "/etc/new/deeper", "/etc/new/deeper/file"])
        #expect(comparison.changed == [
            .init(path: "/etc/became-dir", aspects: [.kind]),
            .init(path: "/etc/grown", aspects: [.content]),
            .init(path: "/etc/link", aspects: [.linkTarget]),
            .init(path: "/etc/shadow", aspects: [.content]),
            .init(path: "/etc/tool", aspects: [.mode]),
        ])
        #expect(comparison.lines.first == "~ /etc/became-dir (kind)")
        #expect(comparison.lines.contains("- /etc/ssh_host_key"))
        #expect(comparison.lines.contains("+ /etc/new/deeper/file"))
    }

    /// A link to a directory is compared as a link: the walk never enters it (nor the host behind it).
    @Test func symbolicLinksAreNotFollowed() async throws {
        let (base, a, b) = try makeTrees()
        defer { try? FileManager.default.removeItem(atPath: base) }
        try FileManager.default.createDirectory(atPath: base + "/outside-a", withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: base + "/outside-b", withIntermediateDirectories: false)
        try write("a\n", base + "/outside-a/file")
        try write("b\n", base + "/outside-b/file")
        try FileManager.default.createSymbolicLink(atPath: a + "/etc/out", withDestinationPath: base + "/outside-a")
        try FileManager.default.createSymbolicLink(atPath: b + "/etc/out", withDestinationPath: base + "/outside-a")
        #expect(try await TreeComparison.compare(a, b).isEmpty)
    }

    @Test(.enabled(if: geteuid() == 0, "needs root (changes a file's owner)"))
    func ownersAreCompared() async throws {
        let (base, a, b) = try makeTrees()
        defer { try? FileManager.default.removeItem(atPath: base) }
        try write("x\n", a + "/etc/owned")
        try write("x\n", b + "/etc/owned")
        #expect(chown(b + "/etc/owned", 1000, 1000) == 0)
        #expect(try await TreeComparison.compare(a, b).changed == [.init(path: "/etc/owned", aspects: [.owner])])
    }

    @Test func aMissingTreeIsAnError() async throws {
        await #expect(throws: HavelError.self) { try await TreeComparison.compare("/nonexistent-havel-tree", "/tmp") }
    }
}
