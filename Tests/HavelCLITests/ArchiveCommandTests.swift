// Tests for havel chg-archive and get-archive: the embedded <archive>, as elbe chg_archive / get_archive.
import Foundation
@testable import HavelCLI
import HavelCore
import ProjectXML
import Testing

@Suite struct ArchiveCommandTests {
    /// havel preprocess packs two archivedirs into <archive> (the later one's file wins, a link stays a
    /// link), and get-archive gives back a tar.bz2 holding both.
    @Test func preprocessPacksArchivedirsInOrder() async throws {
        let (dir, project) = try EditingFixture.workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (name, motd) in [("base", "base\n"), ("board", "board\n")] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(name)/etc", withIntermediateDirectories: true)
            try motd.write(toFile: "\(dir)/\(name)/etc/motd", atomically: true, encoding: .utf8)
            try name.write(toFile: "\(dir)/\(name)/etc/\(name)-only", atomically: true, encoding: .utf8)
        }
        try FileManager.default.createSymbolicLink(atPath: dir + "/board/etc/issue", withDestinationPath: "motd")
        let text = try EditingFixture.read(project)
            .replacingOccurrences(of: "</target>", with: "</target>\n  <archivedir>base</archivedir>\n  <archivedir>board</archivedir>")
        try text.write(toFile: project, atomically: true, encoding: .utf8)
        let preprocessed = dir + "/preprocessed.xml"
        #expect(await HavelMain.run(["preprocess", "-o", preprocessed, project]) == 0)
        let written = try EditingFixture.read(preprocessed)
        #expect(!written.contains("archivedir") && written.contains("<archive>"))
        #expect(await HavelMain.run(["validate", "--strict", preprocessed]) == 0)

        let out = dir + "/out.tar.bz2"
        #expect(await HavelMain.run(["get-archive", preprocessed, out]) == 0)
        let unpacked = dir + "/unpacked"
        try FileManager.default.createDirectory(atPath: unpacked, withIntermediateDirectories: true)
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        tar.arguments = ["-x", "-j", "-f", out, "-C", unpacked]
        try tar.run()
        tar.waitUntilExit()
        #expect(tar.terminationStatus == 0)
        #expect(try EditingFixture.read(unpacked + "/etc/motd") == "board\n")
        #expect(try EditingFixture.read(unpacked + "/etc/base-only") == "base")
        #expect(try EditingFixture.read(unpacked + "/etc/board-only") == "board")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: unpacked + "/etc/issue") == "motd")

        // A directory outside the project file's directory is refused unless named absolutely.
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        try text.replacingOccurrences(of: "<archivedir>board</archivedir>", with: "<archivedir>../board</archivedir>")
            .replacingOccurrences(of: "<archivedir>base</archivedir>", with: "<archivedir>\(dir)/base</archivedir>")
            .write(toFile: dir + "/sub/project.xml", atomically: true, encoding: .utf8)
        #expect(await HavelMain.run(["preprocess", "-o", preprocessed, dir + "/sub/project.xml"]) == 1)
        #expect(await HavelMain.run(["preprocess", "--include-dir", dir, "-o", preprocessed, dir + "/sub/project.xml"]) == 0)
    }

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
