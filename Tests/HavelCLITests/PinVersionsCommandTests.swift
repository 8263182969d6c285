// Tests for havel pin-versions: a build's fullpkgs pinned into the pkg-list, as elbe pin_versions.
import Foundation
@testable import HavelCLI
import HavelCore
import ProjectXML
import Testing

@Suite struct PinVersionsCommandTests {
    static let sourceXML = """
        <?xml version="1.0" encoding="UTF-8"?>
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <target><hostname>x</hostname></target>
          <fullpkgs>
            <pkg version="5.2.15-2+b7" arch="arm64" auto="false">bash</pkg>
            <pkg version="2.36-9+deb12u4" arch="arm64" auto="true">libc6</pkg>
          </fullpkgs>
        </RootFileSystem>
        """

    @Test func pinVersionsReadsABuildDirectoryOrASourceXML() async throws {
        let (dir, project) = try EditingFixture.workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let build = dir + "/build"
        try FileManager.default.createDirectory(atPath: build, withIntermediateDirectories: true)
        try Self.sourceXML.write(toFile: build + "/source.xml", atomically: true, encoding: .utf8)
        let before = try EditingFixture.read(project)
        #expect(await HavelMain.run(["pin-versions", project, build]) == 0)
        #expect(try EditingFixture.packages(project) == ["=5.2.15-2+b7 bash", "=2.36-9+deb12u4 libc6"])
        let pinned = try EditingFixture.read(project)
        #expect(pinned.hasPrefix(String(before[..<before.range(of: "<pkg-list>")!.upperBound])))
        #expect(pinned.hasSuffix(String(before[before.range(of: "</pkg-list>")!.lowerBound...])))
        #expect(await HavelMain.run(["validate", project]) == 0)
        // As elbe pin_versions: one argument pins a source.xml from its own fullpkgs.
        let source = build + "/source.xml"
        #expect(await HavelMain.run(["pin-versions", source]) == 0)
        #expect(try EditingFixture.packages(source) == ["=5.2.15-2+b7 bash", "=2.36-9+deb12u4 libc6"])
        // A file without fullpkgs is refused and left alone.
        #expect(await HavelMain.run(["pin-versions", project, EditingFixture.example]) == 1)
        #expect(try EditingFixture.read(project) == pinned)
        let badVersion = dir + "/bad.xml"
        try Self.sourceXML.replacingOccurrences(of: "version=\"5.2.15-2+b7\"", with: "version=\"not a version\"")
            .write(toFile: badVersion, atomically: true, encoding: .utf8)
        #expect(await HavelMain.run(["pin-versions", project, badVersion]) == 1)
        #expect(try EditingFixture.read(project) == pinned)
    }
}
