// The source CD takes the sources of the project's own packages from pbuilder/sources/, where their build keeps
// each .dsc with its files: found by name and version, every file checked against the .dsc.

import Foundation
@testable import Build
import Debian
import HavelCore
import SystemKit
import Testing

@Suite(.enabled(if: ProcessRunner.which("sha256sum") != nil, "needs sha256sum"))
struct OwnSourceCdromTests {
    @Test func anOwnSourceIsFoundCheckedAndATamperedOneRefused() async throws {
        let directory = NSTemporaryDirectory() + "havel-own-sources-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let tarball = directory + "/libhello_1.0.tar.xz"
        try Data("source tree".utf8).write(to: URL(fileURLWithPath: tarball))
        let digest = try #require(try await Digest.sha256(files: [tarball]).values.first)
        try "Format: 3.0 (native)\nSource: libhello\nVersion: 1:1.0\nChecksums-Sha256:\n \(digest) 11 libhello_1.0.tar.xz\n"
            .write(toFile: directory + "/libhello_1.0.dsc", atomically: true, encoding: .utf8)
        let reference = SourceReference(name: "libhello", version: "1:1.0")
        let found = try #require(try await SourceCdromStage.ownSource(reference, in: directory, processes: SystemProcesses()))
        #expect(found.files.map(\.name) == ["libhello_1.0.dsc", "libhello_1.0.tar.xz"])
        #expect(try await SourceCdromStage.ownSource(SourceReference(name: "other", version: "1"), in: directory, processes: SystemProcesses()) == nil)
        try Data("changed".utf8).write(to: URL(fileURLWithPath: tarball))
        await #expect(throws: HavelError.self) { try await SourceCdromStage.ownSource(reference, in: directory, processes: SystemProcesses()) }
    }
}
