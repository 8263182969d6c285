// Tests for havel add: packages appended to the pkg-list in place, as elbe add.
import Foundation
@testable import HavelCLI
import HavelCore
import ProjectXML
import Testing

@Suite struct AddCommandTests {
    @Test func addChangesOnlyThePkgListAndKeepsTheFileValid() async throws {
        let (dir, project) = try EditingFixture.workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let before = try EditingFixture.read(project)
        #expect(await HavelMain.run(["add", project, "openssh-server", "less", "vim-tiny"]) == 0)
        let after = try EditingFixture.read(project)
        #expect(after == before.replacingOccurrences(of: "      <pkg>less</pkg>\n",
                                                     with: "      <pkg>less</pkg>\n      <pkg>openssh-server</pkg>\n      <pkg>vim-tiny</pkg>\n"))
        #expect(await HavelMain.run(["validate", project]) == 0)
        // Nothing new: the file is not rewritten.
        #expect(await HavelMain.run(["add", project, "less"]) == 0)
        #expect(try EditingFixture.read(project) == after)
        #expect(await HavelMain.run(["add", project, "No_Such"]) == 1)
        #expect(await HavelMain.run(["add", project]) == 2)
        #expect(try EditingFixture.read(project) == after)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["project.xml"])
    }

    @Test func addWritesThroughASymlinkAndKeepsGzipAndMode() async throws {
        let (dir, project) = try EditingFixture.workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let gzipped = dir + "/project.xml.gz"
        try Data(try Gzip.compress(Array(try EditingFixture.read(project).utf8))).write(to: URL(fileURLWithPath: gzipped))
        chmod(gzipped, 0o640)
        let link = dir + "/link.xml"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: gzipped)
        #expect(await HavelMain.run(["add", link, "htop"]) == 0)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: gzipped)))
        #expect(bytes.starts(with: [0x1F, 0x8B]))
        #expect(try EditingFixture.packages(gzipped).last == "htop")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == gzipped)
        let mode = try FileManager.default.attributesOfItem(atPath: gzipped)[.posixPermissions] as? Int
        #expect(mode == 0o640)
    }
}
