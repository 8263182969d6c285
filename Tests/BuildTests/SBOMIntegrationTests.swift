// Integration tests of the SBOM and `havel diff` on real builds: two cheap minbase amd64 builds that differ by
// one package and one finetuning file. The first build's SBOM files are validated against the CycloneDX 1.6
// and SPDX 2.3 schemas (by the validators scripts/setup-host.sh installs) and cover every package of source.xml;
// the diff of the two builds names exactly the package and the file, and nothing outside them.

@testable import Build
import Debian
import Foundation
import HavelCore
import ProjectXML
import Reports
import SystemKit
import Testing

/// The Python with cyclonedx-python-lib and spdx-tools (scripts/setup-host.sh), or why there is none.
enum SBOMValidators {
    static let python = ProcessInfo.processInfo.environment["HAVEL_SBOM_PYTHON"] ?? BuildCheck.defaultValidatorPython

    static let missingReason: String? = {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            return "needs the SBOM validators in \(python) (scripts/setup-host.sh installs them)"
        }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: python)
        probe.arguments = ["-c", "import cyclonedx.validation.json, spdx_tools.spdx.parser.parse_anything"]
        guard (try? probe.run()) != nil else { return "cannot run \(python)" }
        probe.waitUntilExit()
        return probe.terminationStatus == 0 ? nil : "\(python) lacks cyclonedx-python-lib or spdx-tools (scripts/setup-host.sh installs them)"
    }()

    /// Validates both files; prints nothing and returns "" when both are valid, else what the validators said.
    static let script = BuildCheck.sbomValidatorScript

    static func validate(cycloneDX: String, spdx: String) async throws -> String {
        let result = try await SystemProcesses().run(Command(python, ["-c", script, cycloneDX, spdx]))
        return result.termination == .exited(0) ? "" : result.standardOutput + result.standardError
    }
}

@Suite(.serialized, .enabled(if: Integration.available, Integration.skipReason))
struct SBOMIntegrationTests {
    static func project(packages: [String], motd: String) -> String {
        """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>havel-it-diff</name><version>0.1</version><buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
          </project>
          <target>
            <hostname>diff</hostname>
            <debootstrap><variant>minbase</variant></debootstrap>
            <finetuning><file dst="/etc/havel-diff.conf">\(motd)</file></finetuning>
            <pkg-list>\(packages.map { "<pkg>\($0)</pkg>" }.joined())</pkg-list>
          </target>
        </RootFileSystem>
        """
    }

    @Test func sbomsValidateAndTheDiffOfTwoBuildsNamesExactlyWhatChanged() async throws {
        let base = try Integration.temporaryDirectory("sbom-diff")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let cache = base + "/cache"
        let first = BuildDirectory(base + "/a"), second = BuildDirectory(base + "/b")
        _ = try await Integration.build(try Integration.load(Self.project(packages: ["less"], motd: "one")), in: first.path, cache: cache)
        _ = try await Integration.build(try Integration.load(Self.project(packages: ["less", "netbase"], motd: "two")), in: second.path, cache: cache)

        // Every package of source.xml is a component of both SBOMs, with its .deb's sha256.
        let pinned = try ProjectLoader.load(path: first.sourceXML).project.fullPackages
        #expect(pinned.count > 50)
        let cdx = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: first.sbomCycloneDX))) as? [String: Any])
        let components = try #require(cdx["components"] as? [[String: Any]])
        let purls = Set(components.compactMap { $0["purl"] as? String })
        let expected = Set(pinned.map { PackageURL.deb(name: $0.name, version: $0.version, architecture: $0.arch ?? "") })
        #expect(expected.subtracting(purls).isEmpty, "missing from the CycloneDX SBOM: \(expected.subtracting(purls).sorted())")
        let hashed = components.filter { ($0["hashes"] as? [[String: String]])?.first?["content"]?.count == 64 }.count
        #expect(hashed == pinned.filter { $0.sha256 != nil }.count)
        let spdx = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: first.sbomSPDX))) as? [String: Any])
        let spdxPurls = Set(((spdx["packages"] as? [[String: Any]]) ?? []).flatMap { ($0["externalRefs"] as? [[String: String]] ?? []).compactMap { $0["referenceLocator"] } })
        #expect(expected.subtracting(spdxPurls).isEmpty)
        let dependencies = try #require(cdx["dependencies"] as? [[String: Any]])
        #expect(dependencies.contains { ($0["dependsOn"] as? [String])?.isEmpty == false && $0["ref"] as? String != "havel-project" })

        // `havel sbom` rewrites the same bytes from the directory.
        let rewritten = base + "/rewritten"
        try FileManager.default.createDirectory(atPath: rewritten, withIntermediateDirectories: true)
        try SBOMWriter.write(first, to: rewritten, havelVersion: "test", epoch: try #require(SBOMWriter.epoch(of: first)))
        #expect(FileManager.default.contents(atPath: rewritten + "/" + SBOMWriter.cycloneDXName) == FileManager.default.contents(atPath: first.sbomCycloneDX))
        #expect(FileManager.default.contents(atPath: rewritten + "/" + SBOMWriter.spdxName) == FileManager.default.contents(atPath: first.sbomSPDX))

        if let reason = SBOMValidators.missingReason {
            print("SBOM schema validation skipped: \(reason)")
        } else {
            let problems = try await SBOMValidators.validate(cycloneDX: first.sbomCycloneDX, spdx: first.sbomSPDX)
            #expect(problems.isEmpty, "validators: \(problems)")
        }

        // The diff: one package added, the finetuning file changed, and every other file netbase's or dpkg's record.
        let diff = try await BuildDiff.compare(first, second)
        #expect(diff.packagesAdded.map(\.name) == ["netbase"])
        #expect(diff.packagesRemoved.isEmpty && diff.packagesChanged.isEmpty)
        #expect(diff.filesChanged.contains(.init(path: "/etc/havel-diff.conf", aspects: ["content"])))
        let netbaseFiles = Set(try String(contentsOfFile: second.rootfs + "/var/lib/dpkg/info/netbase.list", encoding: .utf8)
            .split(separator: "\n").map(String.init))
        // dpkg's and apt's records, the project file on the device (its <fullpkgs>), and /etc/networks, which
        // netbase's postinst writes (it is in no package's file list).
        let bookkeeping = ["/var/lib/dpkg/", "/var/lib/apt/", "/var/cache/", "/var/log/", "/etc/elbe_base.xml", "/etc/networks"]
        let unexplained = (diff.filesAdded + diff.filesRemoved + diff.filesChanged.map(\.path)).filter { path in
            path != "/etc/havel-diff.conf" && !netbaseFiles.contains(path) && !bookkeeping.contains { path.hasPrefix($0) }
        }
        #expect(unexplained.isEmpty, "differences that are not the package or the file: \(unexplained)")
        #expect(diff.filesAdded.contains("/etc/protocols"))

        if let havel = Integration.havelExecutable {
            let run = { (arguments: [String]) async throws -> ProcessResult in try await SystemProcesses().run(Command(havel, arguments)) }
            #expect(try await run(["diff", first.path, second.path]).termination == .exited(1))
            let json = try await run(["diff", "--json", first.path, second.path]).standardOutput
            #expect(json.contains("\"packagesAdded\""))
            #expect(try await run(["diff", first.path, first.path]).termination == .exited(0))
            #expect(try await run(["diff", first.path, base + "/missing"]).termination == .exited(2))
        }
    }
}
