// Tests for havel chg-archive and get-archive: the embedded <archive>, as elbe chg_archive / get_archive.
import Foundation
@testable import HavelCLI
import HavelCore
import ProjectXML
import Testing

@Suite struct ArchiveCommandTests {
    @Test func chgArchivePacksADirectoryAndGetArchiveGivesItBack() async throws {
        let (dir, project) = try EditingFixture.workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let overlay = dir + "/overlay"
        try FileManager.default.createDirectory(atPath: overlay + "/etc/default", withIntermediateDirectories: true)
        try "MODULES=dep\n".write(toFile: overlay + "/etc/default/board", atomically: true, encoding: .utf8)
        let before = try EditingFixture.read(project)
        #expect(await HavelMain.run(["chg-archive", project, overlay]) == 0)
        let after = try EditingFixture.read(project)
        // Only an <archive> after </target> is new.
        let archiveStart = try #require(after.range(of: "\n  <archive>"))
        let archiveEnd = try #require(after.range(of: "</archive>"))
        #expect(String(after[..<archiveStart.lowerBound]) + String(after[archiveEnd.upperBound...]) == before)
        #expect(after[..<archiveStart.lowerBound].hasSuffix("</target>"))
        #expect(await HavelMain.run(["validate", project]) == 0)

        let out = dir + "/out.tar.bz2"
        #expect(await HavelMain.run(["get-archive", project, out]) == 0)
        let unpacked = dir + "/unpacked"
        try FileManager.default.createDirectory(atPath: unpacked, withIntermediateDirectories: true)
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        tar.arguments = ["-x", "-j", "-f", out, "-C", unpacked]
        try tar.run()
        tar.waitUntilExit()
        #expect(tar.terminationStatus == 0)
        #expect(try EditingFixture.read(unpacked + "/etc/default/board") == "MODULES=dep\n")
        // get-archive never overwrites.
        #expect(await HavelMain.run(["get-archive", project, out]) == 1)

        // A tar.bz2 file replaces the archive as it is; anything else is refused.
        #expect(await HavelMain.run(["chg-archive", project, out]) == 0)
        let again = dir + "/again.tar.bz2"
        #expect(await HavelMain.run(["get-archive", project, again]) == 0)
        #expect(FileManager.default.contents(atPath: again) == FileManager.default.contents(atPath: out))
        let replaced = try EditingFixture.read(project)
        #expect(await HavelMain.run(["chg-archive", project, EditingFixture.example]) == 1)
        #expect(await HavelMain.run(["chg-archive", project, dir + "/missing"]) == 1)
        #expect(try EditingFixture.read(project) == replaced)
        #expect(await HavelMain.run(["get-archive", EditingFixture.example, dir + "/none.tar.bz2"]) == 1)
        #expect(!FileManager.default.fileExists(atPath: dir + "/none.tar.bz2"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["again.tar.bz2", "out.tar.bz2", "overlay", "project.xml", "unpacked"])
    }
}
