// DebVerification: each installed .deb checked against the index entry it matches, so a package the project
// rebuilt at the mirror's version is recorded from the project repository instead of failing the build.

import Debian
import Foundation
import HavelCore
import SystemKit
import Testing

@Suite(.enabled(if: ProcessRunner.which("sha256sum") != nil, "needs sha256sum"))
struct DebVerificationTests {
    @Test func aDebIsMatchedToTheIndexEntryWithItsDigestAndAnUnknownOneRefused() async throws {
        let base = NSTemporaryDirectory() + "havel-debverify-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let lists = base + "/lists/var/lib/apt/lists", debs = base + "/debs"
        for directory in [lists, debs] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let own = Data("rebuilt by the project".utf8)
        try own.write(to: URL(fileURLWithPath: debs + "/hello_2.10-3_amd64.deb"))
        let ownDigest = try #require(try await Digest.sha256(files: [debs + "/hello_2.10-3_amd64.deb"]).values.first)
        func stanza(_ sha256: String, _ file: String) -> String {
            "Package: hello\nVersion: 2.10-3\nArchitecture: amd64\nFilename: \(file)\nSHA256: \(sha256)\n\n"
        }
        try stanza(String(repeating: "a", count: 64), "pool/main/h/hello/hello_2.10-3_amd64.deb")
            .write(toFile: lists + "/mirror.example_debian_dists_bookworm_main_binary-amd64_Packages", atomically: true, encoding: .utf8)
        try stanza(ownDigest, "pool/main/h/hello/hello_2.10-3_amd64.deb")
            .write(toFile: lists + "/_srv_build_repo_dists_bookworm_main_binary-amd64_Packages", atomically: true, encoding: .utf8)
        let hello = InstalledPackage(name: "hello", version: "2.10-3", architecture: "amd64")
        let outcome = try await DebVerification.verify([hello], lists: base + "/lists", debs: debs, present: ["hello_2.10-3_amd64.deb"])
        #expect(outcome.packages.first?.origin == "/srv/build/repo bookworm main")
        #expect(outcome.packages.first?.sha256 == ownDigest)
        #expect(outcome.verified["hello_2.10-3_amd64.deb"] == ownDigest)

        try Data("neither".utf8).write(to: URL(fileURLWithPath: debs + "/hello_2.10-3_amd64.deb"))
        await #expect(throws: HavelError.self) {
            try await DebVerification.verify([hello], lists: base + "/lists", debs: debs, present: ["hello_2.10-3_amd64.deb"])
        }
        #expect(!FileManager.default.fileExists(atPath: debs + "/hello_2.10-3_amd64.deb"), "a .deb matching no index is removed")
    }
}
