import Foundation
@testable import Build
import SystemKit
import Testing

/// `make run` builds with `havel build FILE -o build/default`: a build directory relative to the
/// current one, through every stage that runs tools elsewhere (a disk image clamps late files with cp
/// inside the tree).
@Suite(.enabled(if: Integration.available, Integration.skipReason))
struct RelativeOutputTests {
    static let project = """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>havel-relative</name><version>1</version><buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
          </project>
          <target>
            <hostname>relative</hostname>
            <debootstrap><variant>minbase</variant></debootstrap>
            <images>
              <msdoshd><name>disk.img</name><size>512MiB</size><partition><size>remain</size><label>root</label></partition></msdoshd>
            </images>
            <fstab><bylabel><label>root</label><mountpoint>/</mountpoint><fs><type>ext4</type></fs></bylabel></fstab>
            <finetuning><command>echo late > /etc/made-after-the-packages</command></finetuning>
            <project-finetuning><set_packer packer="none"/></project-finetuning>
            <pkg-list><pkg>netbase</pkg></pkg-list>
          </target>
        </RootFileSystem>
        """

    @Test func aBuildDirectoryGivenRelativeToTheCurrentOne() async throws {
        let havel = try #require(Integration.havelExecutable, "swift build makes .build/debug/havel")
        let base = try Integration.temporaryDirectory("relative")
        defer { try? FileManager.default.removeItem(atPath: base) }
        try Self.project.write(toFile: base + "/p.xml", atomically: true, encoding: .utf8)
        let result = try await ProcessRunner.run(Command(havel, ["build", "p.xml", "-o", "build/relative", "--cache", "cache", "--quiet"],
                                                         workingDirectory: base))
        #expect(result.succeeded, "\(result.standardError)")
        let dir = base + "/build/relative"
        #expect(BuildState.read(dir + "/state.json")?.status == .done)
        let listing = try await ProcessRunner.check(Command("debugfs", ["-R", "cat /etc/made-after-the-packages", "\(dir)/disk.img?offset=\(2048 * 512)"]))
        #expect(listing.standardOutput == "late\n")
        #expect(Mounts.mountPoints(under: dir).isEmpty)
    }
}
