// Tests of BuildDiff (`havel diff`) on two small build directories made by hand: packages added, removed
// and changed from each dpkg status (or source.xml), and the trees' files through TreeComparison.

@testable import Build
import Foundation
import HavelCore
import Testing

struct BuildDiffTests {
    static func stanza(_ name: String, _ version: String) -> String {
        "Package: \(name)\nStatus: install ok installed\nArchitecture: amd64\nVersion: \(version)\n\n"
    }

    func makeBuild(_ base: String, _ name: String, packages: [(String, String)], files: [String: String]) throws -> BuildDirectory {
        let directory = BuildDirectory(base + "/" + name)
        try FileManager.default.createDirectory(atPath: directory.rootfs + "/var/lib/dpkg", withIntermediateDirectories: true)
        try packages.map { Self.stanza($0.0, $0.1) }.joined().write(toFile: directory.rootfs + "/var/lib/dpkg/status", atomically: false, encoding: .utf8)
        for (path, text) in files {
            try FileManager.default.createDirectory(atPath: directory.rootfs + ((path as NSString).deletingLastPathComponent), withIntermediateDirectories: true)
            try text.write(toFile: directory.rootfs + path, atomically: false, encoding: .utf8)
        }
        return directory
    }

    @Test func packagesAndFilesThatDifferAreReported() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("havel-diff-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let a = try makeBuild(base, "a", packages: [("bash", "5.2-1"), ("gone", "1"), ("same", "1")], files: ["/etc/motd": "one\n", "/etc/keep": "k\n"])
        let b = try makeBuild(base, "b", packages: [("bash", "5.2-2"), ("new", "2"), ("same", "1")], files: ["/etc/motd": "two\n", "/etc/keep": "k\n", "/etc/added": "+\n"])
        let diff = try await BuildDiff.compare(a, b)
        #expect(diff.packagesAdded == [.init(name: "new", version: "2", architecture: "amd64")])
        #expect(diff.packagesRemoved == [.init(name: "gone", version: "1", architecture: "amd64")])
        #expect(diff.packagesChanged == [.init(name: "bash", architecture: "amd64", from: "5.2-1", to: "5.2-2")])
        #expect(diff.filesAdded == ["/etc/added"])
        #expect(diff.filesRemoved.isEmpty)
        #expect(diff.filesChanged == [.init(path: "/etc/motd", aspects: ["content"]), .init(path: "/var/lib/dpkg/status", aspects: ["content"])])
        #expect(diff.text == """
            packages:
            ~ bash 5.2-1 -> 5.2-2 (amd64)
            - gone 1 (amd64)
            + new 2 (amd64)
            files:
            + /etc/added
            ~ /etc/motd (content)
            ~ /var/lib/dpkg/status (content)

            """)
        #expect(try await BuildDiff.compare(a, a).isEmpty)
    }

    @Test func aDirectoryThatIsNoBuildIsAnError() async throws {
        await #expect(throws: HavelError.self) {
            try await BuildDiff.compare(BuildDirectory("/nonexistent-havel-build-a"), BuildDirectory("/nonexistent-havel-build-b"))
        }
    }
}
