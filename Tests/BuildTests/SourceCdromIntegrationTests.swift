// A real arm64 build with --cdroms, and its source CD read back as a user would: extracted with xorriso,
// every source of the tree's dpkg status on it at its version (or listed as missing with a reason), every
// file matching its .dsc, the Release signed with the project's key, apt-get source reading it, and the
// project's <src-cdrom><archive> on it.

import Foundation
@testable import Build
import Debian
import HavelCore
import SystemKit
import Testing

enum SourceCdromIntegration {
    static let missingReason: String? = {
        if let reason = Integration.missingReason { return reason }
        for tool in ["xorriso", "apt-ftparchive", "gpg", "gpgv", "curl"] where ProcessRunner.which(tool) == nil {
            return "needs \(tool) (scripts/setup-host.sh installs it)"
        }
        return nil
    }()
}

@Suite(.serialized, .enabled(if: SourceCdromIntegration.missingReason == nil, Comment(rawValue: SourceCdromIntegration.missingReason ?? "")))
struct SourceCdromIntegrationTests {
    /// The project, with `<src-cdrom>` holding `archives` (element text included).
    static func project(archives: String) -> String { """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>havel-it-srccd</name><version>0.1</version><buildtype>aarch64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
          </project>
          <target>
            <hostname>it-srccd</hostname>
            <debootstrap><variant>minbase</variant></debootstrap>
            <pkg-list><pkg>netbase</pkg></pkg-list>
          </target>
          <src-cdrom>\(archives)</src-cdrom>
        </RootFileSystem>
        """
    }

    func run(_ executable: String, _ arguments: [String], in directory: String? = nil) async throws -> ProcessResult {
        let result = try await SystemProcesses().run(Command(executable, arguments, workingDirectory: directory))
        #expect(result.succeeded, "\(executable) \(arguments.joined(separator: " ")): \(result.standardError)")
        return result
    }

    @Test func aBuildWithCdromsWritesTheSourcesOfEveryInstalledPackage() async throws {
        let base = try Integration.temporaryDirectory("srccd")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let dir = base + "/build", cache = base + "/cache"
        // Two archives: one for the CD's only volume, one for a third volume it does not have (left out).
        let notes = try Integration.archive("mkdir -p notes && echo 'written offer' > notes/OFFER.txt")
        let third = try Integration.archive("echo nope > THIRD.txt")
        let project = Self.project(archives: "<archive>\(notes)</archive><archive volume=\"2\">\(third)</archive>")
        let state = try await Integration.build(try Integration.load(project), in: dir, cache: cache, binaryCdrom: true)
        #expect(state.status == .done)
        #expect(state.outputs.contains("src-cdrom.iso") && state.outputs.contains("src-cdrom-missing.txt"))
        #expect(state.stages.map(\.name).contains("source CD"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/src-cdrom.iso.partial"))

        // source.xml's fullpkgs carry ELBE's fields from this build's apt lists (item 6).
        let sourceXML = try String(contentsOfFile: dir + "/source.xml", encoding: .utf8)
        let netbaseEntry = try #require(sourceXML.split(separator: "\n").first { $0.contains(">netbase</pkg>") && $0.contains("version=") })
        for field in ["md5=\"", "sha256=\"", "release-origin=\"Debian\"", "release-name=\"bookworm\"", "uri=\"http"] {
            #expect(netbaseEntry.contains(field), "\(netbaseEntry) lacks \(field)")
        }
        #expect(netbaseEntry.contains("/pool/main/n/netbase/netbase_"), "\(netbaseEntry)")

        let cd = base + "/cd"
        _ = try await run("xorriso", ["-osirrox", "on", "-indev", dir + "/src-cdrom.iso", "-extract", "/", cd])
        #expect(try String(contentsOfFile: cd + "/notes/OFFER.txt", encoding: .utf8) == "written offer\n")
        #expect(!FileManager.default.fileExists(atPath: cd + "/THIRD.txt"))
        let status = try String(contentsOfFile: dir + "/rootfs/var/lib/dpkg/status", encoding: .utf8)
        let required = SourcesIndex.requiredSources(statusText: status)
        #expect(required.count > 20)
        #expect(required.keys.contains { $0.name == "glibc" })

        // The index on the CD parses; each of its sources is there with every file its .dsc lists, unchanged.
        let index = SourcesIndex.parse(try String(contentsOfFile: cd + "/dists/bookworm/main/source/Sources", encoding: .utf8))
        let onCD = Set(index.map { SourceReference(name: $0.name, version: $0.version) })
        for source in index {
            let directory = cd + "/" + source.directory
            let dsc = try #require(source.dsc, "\(source.name) has no .dsc")
            let listed = SourcesIndex.dscFiles(try String(contentsOfFile: directory + "/" + dsc.name, encoding: .utf8))
            #expect(!listed.isEmpty, "\(dsc.name) lists no files")
            let paths = ([dsc] + listed).map { directory + "/" + $0.name }
            let digests = try await Digest.sha256(files: paths)
            for file in listed { #expect(digests[directory + "/" + file.name] == file.sha256, "\(file.name) differs from its .dsc") }
            #expect(digests[directory + "/" + dsc.name] == dsc.sha256, "\(dsc.name) differs from the index")
        }

        // Every required source is on the CD at its version, or listed as missing with a reason (in both places).
        let missingText = try String(contentsOfFile: dir + "/src-cdrom-missing.txt", encoding: .utf8)
        #expect(try String(contentsOfFile: cd + "/src-cdrom-missing.txt", encoding: .utf8) == missingText)
        var missing: [SourceReference: String] = [:]
        for line in missingText.split(separator: "\n") where !line.hasPrefix("#") {
            let words = line.split(separator: " ", maxSplits: 2)
            guard words.count == 3, words[1].hasSuffix(":") else { Issue.record("malformed line \(line)"); continue }
            missing[SourceReference(name: String(words[0]), version: String(words[1].dropLast()))] = String(words[2])
        }
        for reference in required.keys {
            #expect(onCD.contains(reference) || !(missing[reference] ?? "").isEmpty, "\(reference.description) is neither on the CD nor listed as missing")
        }
        #expect(onCD.count > required.count / 2, "most sources are on the mirror")

        // Signed with the project's key: gpgv accepts the InRelease with the public key on the CD.
        _ = try await run("sh", ["-c", "gpg --batch --dearmor < \(cd)/archive-key.asc > \(base)/key.gpg"])
        _ = try await run("gpgv", ["--keyring", base + "/key.gpg", "InRelease"], in: cd + "/dists/bookworm")

        // apt-get source reads the CD: base-files at the tree's version, checked by apt against the index.
        let apt = base + "/apt"
        let options = try Integration.isolatedApt(apt, sources: "deb-src [signed-by=\(cd)/archive-key.asc] file:\(cd) bookworm main\n")
        let update = try await run("apt-get", options + ["update"])
        #expect(!update.standardOutput.contains("W:") && !update.standardError.contains("W:"), "\(update.standardError)")
        let baseFiles = try #require(DpkgStatus.parse(status).first { $0.name == "base-files" })
        if onCD.contains(SourceReference(name: baseFiles.sourceName, version: baseFiles.sourceVersion)) {
            _ = try await run("apt-get", options + ["source", "--download-only", "base-files=\(baseFiles.sourceVersion)"], in: apt + "/download")
            let downloaded = try FileManager.default.contentsOfDirectory(atPath: apt + "/download")
            #expect(downloaded.contains { $0.hasPrefix("base-files_") && $0.hasSuffix(".dsc") }, "\(downloaded)")
        }
    }
}

/// What the source CD stage reads from a project without a build: its deb-src repositories and ELBE's on_src_cd.
@Suite struct SourceCdromProjectTests {
    @Test func debSrcRepositoriesAndOnSrcCd() throws {
        var project = Project(suite: "bookworm")
        project.mirror = Mirror(primary: PrimaryMirror(host: "mirror.example", path: "/debian", proto: "http"),
                                urls: [MirrorURL(binary: "http://extra.example/repo bookworm main", source: "http://extra.example/repo/ bookworm main contrib"),
                                       MirrorURL(source: "http://flat.example/repo ./")])
        #expect(SourceCdromStage.sourceRepositories(project) == [
            .init(uri: "http://mirror.example/debian", suite: "bookworm", components: ["main"]),
            .init(uri: "http://extra.example/repo", suite: "bookworm", components: ["main", "contrib"]),
        ])
        var hidden = PackageSpec(name: "libfoo1")
        hidden.onSourceCdrom = false
        project.target.packages = [PackageSpec(name: "bash"), hidden]
        let installed = [InstalledPackage(name: "libfoo1", version: "1.0-1+b1", architecture: "arm64", sourceName: "foo", sourceVersion: "1.0-1"),
                         InstalledPackage(name: "bash", version: "5.2", architecture: "arm64")]
        #expect(SourceCdromStage.excludedSources(project, installed: installed) == ["foo": "libfoo1"])
    }
}
