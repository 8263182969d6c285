// Tests for havel check-updates without a network: its refusals and failures (the real mirror is tested in DebianTests).
import Foundation
@testable import HavelCLI
import HavelCore
import ProjectXML
import Testing

@Suite struct CheckUpdatesCommandTests {
    @Test func checkUpdatesFailsClearlyWithoutFullpkgsOrAMirror() async throws {
        let (dir, project) = try EditingFixture.workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A project that was never built has nothing to compare.
        #expect(await HavelMain.run(["check-updates", project]) == 1)
        // A mirror that refuses connections fails the check (exit 1). The package is a dependency, so an
        // index read as empty would report it gone (exit 3), not fail.
        let build = dir + "/build"
        try FileManager.default.createDirectory(atPath: build, withIntermediateDirectories: true)
        let source = try EditingFixture.read(project).replacingOccurrences(
            of: "</RootFileSystem>",
            with: "  <fullpkgs>\n    <pkg version=\"1.0-1\" arch=\"arm64\" auto=\"true\">bash</pkg>\n  </fullpkgs>\n</RootFileSystem>")
        try source.write(toFile: build + "/source.xml", atomically: true, encoding: .utf8)
        #expect(await HavelMain.run(["check-updates", build, "--mirror", "http://127.0.0.1:9/debian"]) == 1)
        #expect(await HavelMain.run(["check-updates"]) == 2)
    }
}
