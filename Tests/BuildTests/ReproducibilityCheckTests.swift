import Foundation
import HavelCore
import SystemKit
import Testing
@testable import Build

/// Comparing two finished build directories: tree entries and result files are listed, the records of
/// times (log, state, report) are not.
struct ReproducibilityCheckTests {
    /// A finished build directory with a small tree, the reports and a packed rootfs.
    func directory(_ base: String, _ name: String, shadow: String, image: String) throws -> (BuildDirectory, BuildState) {
        let directory = BuildDirectory(base + "/" + name)
        try FileManager.default.createDirectory(atPath: directory.rootfs + "/etc", withIntermediateDirectories: true)
        try shadow.write(toFile: directory.rootfs + "/etc/shadow", atomically: true, encoding: .utf8)
        try "same\n".write(toFile: directory.rootfs + "/etc/hostname", atomically: true, encoding: .utf8)
        for file in [directory.sourceXML, directory.validation, directory.licenceText, directory.licenceXML, directory.sbomCycloneDX, directory.sbomSPDX] {
            try "report\n".write(toFile: file, atomically: true, encoding: .utf8)
        }
        // Times differ in every build's log, state and report: never a difference.
        for file in [directory.log, directory.report, directory.state] {
            try "\(name) \(UUID())\n".write(toFile: file, atomically: true, encoding: .utf8)
        }
        try image.write(toFile: directory.path + "/disk.img", atomically: true, encoding: .utf8)
        try "rootfs\n".write(toFile: directory.path + "/p-rootfs.tar.zst", atomically: true, encoding: .utf8)
        var state = BuildState(project: "p", version: "1", architecture: "amd64", havelVersion: "test", started: Date())
        state.packedRootfs = "p-rootfs.tar.zst"
        state.outputs = ["disk.img"]
        return (directory, state)
    }

    @Test func identicalBuildsHaveNoDifferences() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("havel-repro-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (a, aState) = try directory(base, "a", shadow: "root:x:1:\n", image: "image\n")
        let (b, bState) = try directory(base, "b", shadow: "root:x:1:\n", image: "image\n")
        #expect(try await ReproducibilityCheck.compare(a, aState, b, bState).isEmpty)
    }

    @Test func everyDifferingTreeEntryAndResultFileIsListed() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("havel-repro-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (a, aState) = try directory(base, "a", shadow: "root:x:1:\n", image: "image one\n")
        let (b, built) = try directory(base, "b", shadow: "root:y:1:\n", image: "image two\n")
        var bState = built
        try "key\n".write(toFile: b.rootfs + "/etc/ssh_host_key", atomically: true, encoding: .utf8)
        try "artifact\n".write(toFile: b.path + "/extra.bin", atomically: true, encoding: .utf8)
        bState.artifacts = ["extra.bin"]
        let differences = try await ReproducibilityCheck.compare(a, aState, b, bState)
        #expect(differences == ["~ disk.img (content)", "+ extra.bin", "~ rootfs/etc/shadow (content)", "+ rootfs/etc/ssh_host_key"])
        #expect(ReproducibilityCheck.secondDirectory(of: a).path == a.path + ".again")
    }
}
