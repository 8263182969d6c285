// A real build with --cdroms, and the binary CD used as apt would use it: extracted, its signature
// checked by apt with the project's public key, a package found at the tree's exact version; then the
// project built again from the CD alone (--from-cdrom) in a network namespace without a route, which gives
// the same rootfs archive and disk image, byte for byte.

import Foundation
@testable import Build
import Debian
import HavelCore
import SystemKit
import Testing

@Suite(.serialized, .enabled(if: Integration.available && ProcessRunner.which("xorriso") != nil && ProcessRunner.which("apt-ftparchive") != nil,
                             Comment(rawValue: Integration.missingReason ?? "needs xorriso and apt-ftparchive (scripts/setup-host.sh installs them)")))
struct BinaryCdromIntegrationTests {
    static let project = """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>havel-it-bincd</name><version>0.1</version><buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
            <buildimage><pkg-list><pkg>bzip2</pkg></pkg-list></buildimage>
          </project>
          <target>
            <hostname>it-bincd</hostname>
            <debootstrap><variant>minbase</variant></debootstrap>
            <images>
              <msdoshd>
                <name>bincd.img</name>
                <size>400MiB</size>
                <partition><size>remain</size><label>rfs</label></partition>
              </msdoshd>
            </images>
            <fstab><bylabel><label>rfs</label><mountpoint>/</mountpoint><fs><type>ext4</type></fs></bylabel></fstab>
            <project-finetuning><set_packer packer="none"/></project-finetuning>
            <pkg-list><pkg>netbase</pkg></pkg-list>
          </target>
        </RootFileSystem>
        """

    func run(_ executable: String, _ arguments: [String]) async throws -> ProcessResult {
        let result = try await SystemProcesses().run(Command(executable, arguments))
        #expect(result.succeeded, "\(executable) \(arguments.joined(separator: " ")): \(result.standardError)")
        return result
    }

    @Test func aBuildWithCdromsWritesASignedRepositoryAptInstallsFrom() async throws {
        let base = try Integration.temporaryDirectory("bincd")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let dir = base + "/build", cache = base + "/cache"
        // Both builds run the havel command, so that both record the same Havel version in source.xml.
        let havel = try #require(Integration.havelExecutable, "swift build makes .build/debug/havel")
        let file = base + "/bincd.xml"
        try Self.project.write(toFile: file, atomically: true, encoding: .utf8)
        _ = try await run(havel, ["build", "--cdroms", "--cache", cache, "-o", dir, file])
        let state = try #require(BuildState.read(dir + "/state.json"))
        #expect(state.status == .done)
        #expect(state.outputs.contains("bin-cdrom.iso"))
        #expect(state.stages.map(\.name).contains("binary CD"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/bin-cdrom.iso.partial"))
        // The key stays in the cache's keys/ directory; only its public half is on the CD.
        #expect(FileManager.default.fileExists(atPath: cache + "/keys/havel-it-bincd.secret.asc"))

        let cd = base + "/cd"
        _ = try await run("xorriso", ["-osirrox", "on", "-indev", dir + "/bin-cdrom.iso", "-extract", "/", cd])
        let installed = try DpkgStatus.read(root: dir + "/rootfs")
        #expect(FileManager.default.contents(atPath: cd + "/source.xml") == FileManager.default.contents(atPath: dir + "/source.xml"))
        #expect(try String(contentsOfFile: cd + "/README.txt", encoding: .utf8).contains("file:/media/cdrom bookworm main"))
        let packages = try String(contentsOfFile: cd + "/dists/bookworm/main/binary-amd64/Packages", encoding: .utf8)
        let onCD = Set(PackagesIndex.parse(packages, origin: "cd").map { "\($0.name) \($0.version) \($0.architecture)" })
        // The target's packages and those the build environment added (buildimage/pkg-list: bzip2), as ELBE's CD.
        let buildenv = try DpkgStatus.read(root: dir + "/buildenv")
        #expect(onCD == Set((installed + buildenv).map { "\($0.name) \($0.version) \($0.architecture)" }))
        #expect(buildenv.contains { $0.name == "bzip2" } && !installed.contains { $0.name == "bzip2" })

        // apt reads the CD with the project's public key and offers netbase at the tree's version.
        let apt = base + "/apt"
        let options = try Integration.isolatedApt(apt, sources: "deb [signed-by=\(cd)/archive-key.asc] file:\(cd) bookworm main\n")
            + ["-o", "APT::Architecture=amd64", "-o", "APT::Architectures=amd64"]
        // Another project's key does not open it: apt checks the signature.
        let stranger = try await RepositorySigningKey.forProject("someone-else", directory: base + "/other-keys")
        try stranger.publicKey.write(toFile: apt + "/stranger.asc", atomically: true, encoding: .utf8)
        try "deb [signed-by=\(apt)/stranger.asc] file:\(cd) bookworm main\n".write(toFile: apt + "/stranger.list", atomically: true, encoding: .utf8)
        let refused = try await SystemProcesses().run(Command("apt-get", options + ["-o", "Dir::Etc::sourcelist=\(apt)/stranger.list", "update"]))
        #expect(!refused.succeeded || (refused.standardOutput + refused.standardError).contains("NO_PUBKEY"), "\(refused.standardOutput)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: apt + "/lists").filter { $0.hasSuffix("_Packages") }.isEmpty)

        let update = try await run("apt-get", options + ["update"])
        #expect(!update.standardOutput.contains("W:") && !update.standardError.contains("W:"), "\(update.standardError)")
        let netbase = try #require(installed.first { $0.name == "netbase" })
        let policy = try await run("apt-cache", options + ["policy", "netbase"])
        #expect(policy.standardOutput.contains("Candidate: \(netbase.version)\n"), "\(policy.standardOutput)")
        let download = try await SystemProcesses().run(Command("apt-get", options + ["download", "netbase"], workingDirectory: apt + "/download"))
        #expect(download.succeeded, "\(download.standardError)")
        #expect(FileManager.default.fileExists(atPath: apt + "/download/" + DebVerification.debFileName(netbase)))

        // havel check-build: both CDs and the SBOM hold up, and the same project built again from the CD alone,
        // with no network at all and an empty cache, gives the same rootfs archive and image.
        let again = base + "/rebuild"
        let checked = try await SystemProcesses().run(Command("unshare", ["--net", "--", havel, "check-build", "--cache", base + "/cache2",
                                                                          "--rebuild-directory", again, dir, file]))
        let log = (try? String(contentsOfFile: again + "/log.txt", encoding: .utf8)) ?? ""
        #expect(checked.succeeded, "\(checked.standardOutput)\n\(checked.standardError.suffix(3000))\n\(log.suffix(3000))")
        let lines = checked.standardOutput.split(separator: "\n").map(String.init)
        for check in ["binary CD", "source CD", "rebuild"] {
            #expect(lines.contains { $0.hasPrefix("ok    \(check):") }, "\(check): \(checked.standardOutput)")
        }
        #expect(lines.contains { $0.hasPrefix("ok    SBOM:") || $0.hasPrefix("skip  SBOM:") }, "\(checked.standardOutput)")
        let rebuiltState = try #require(BuildState.read(again + "/state.json"))
        #expect(rebuiltState.stages.map(\.name).contains("read binary CD") && !rebuiltState.stages.map(\.name).contains("probe mirror"))
        #expect(log.contains("the install reads no mirror"))
        #expect(log.contains("installing the build environment's 1 packages from the binary CD"), "\(log.suffix(2000))")
        for output in ["havel-it-bincd-0.1-rootfs.tar.zst", "bincd.img", "source.xml"] {
            let first = FileManager.default.contents(atPath: dir + "/" + output)
            #expect(first != nil && first == FileManager.default.contents(atPath: again + "/" + output), "\(output) differs after the rebuild from the CD")
        }

        // The target keeps the project's apt sources, not the CD's.
        let sources = try String(contentsOfFile: again + "/rootfs/etc/apt/sources.list", encoding: .utf8)
        let originalSources = try String(contentsOfFile: dir + "/rootfs/etc/apt/sources.list", encoding: .utf8)
        #expect(sources == originalSources && !sources.contains("copy:"))

        // <mirror><cdrom> with no other mirror: the CD is the only package source, again without any network.
        let offlineFile = base + "/offline.xml"
        let mirrorElement = try #require(Self.project.range(of: "<mirror>.*</mirror>", options: .regularExpression))
        // (Without the build environment: its apt reads the target's sources, which keep no CD line.)
        try Self.project.replacingCharacters(in: mirrorElement, with: "<mirror><cdrom>\(dir)/bin-cdrom.iso</cdrom></mirror>")
            .replacingOccurrences(of: "<buildimage><pkg-list><pkg>bzip2</pkg></pkg-list></buildimage>", with: "")
            .write(toFile: offlineFile, atomically: true, encoding: .utf8)
        let offline = try await SystemProcesses().run(Command("unshare", ["--net", "--", havel, "build", "--cache", base + "/cache4",
                                                                          "-o", base + "/offline", offlineFile]))
        #expect(offline.succeeded, "\(offline.standardError.suffix(3000))")
        let offlineInstalled = try DpkgStatus.read(root: base + "/offline/rootfs")
        #expect(Set(offlineInstalled.map { "\($0.name) \($0.version)" }) == Set(installed.map { "\($0.name) \($0.version)" }))
        let offlineSources = (try? String(contentsOfFile: base + "/offline/rootfs/etc/apt/sources.list", encoding: .utf8)) ?? ""
        #expect(!offlineSources.contains("copy:") && !offlineSources.contains(base), "\(offlineSources)")

        // A CD whose .deb differs from what its source.xml pins is refused, naming the package.
        let tampered = base + "/tampered"
        try FileManager.default.copyItem(atPath: cd, toPath: tampered)
        let deb = try #require(FileManager.default.enumerator(atPath: tampered + "/pool")?.compactMap { $0 as? String }.first { $0.hasSuffix("netbase_\(netbase.version)_all.deb") })
        _ = chmod(tampered + "/pool/" + deb, 0o644)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: tampered + "/pool/" + deb))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("tampered".utf8))
        try handle.close()
        _ = try await run("xorriso", ["-as", "mkisofs", "-quiet", "-r", "-o", base + "/tampered.iso", tampered])
        let refused2 = try await SystemProcesses().run(Command("unshare", ["--net", "--", havel, "build", "--from-cdrom", base + "/tampered.iso",
                                                                           "--cache", base + "/cache3", "-o", base + "/rebuild2", file]))
        #expect(!refused2.succeeded)
        #expect(refused2.standardError.contains("differ from the sha256 its source.xml pins") && refused2.standardError.contains("netbase"), "\(refused2.standardError.suffix(2000))")

        // check-build of a build directory with that CD fails the binary CD check, naming the package.
        let broken = base + "/broken"
        try FileManager.default.createDirectory(atPath: broken, withIntermediateDirectories: true)
        for name in ["state.json", "source.xml", "sbom.cdx.json", "sbom.spdx.json"] {
            try FileManager.default.copyItem(atPath: dir + "/" + name, toPath: broken + "/" + name)
        }
        try FileManager.default.copyItem(atPath: base + "/tampered.iso", toPath: broken + "/bin-cdrom.iso")
        let failed = try await SystemProcesses().run(Command(havel, ["check-build", broken]))
        #expect(failed.termination == .exited(1))
        #expect(failed.standardOutput.contains("FAIL  binary CD:") && failed.standardOutput.contains("netbase"), "\(failed.standardOutput)")
        #expect(failed.standardOutput.contains("skip  source CD:") && failed.standardOutput.contains("skip  rebuild:"), "\(failed.standardOutput)")
    }
}
