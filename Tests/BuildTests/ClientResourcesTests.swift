// ClientResourcesTests: `<archivedir>` packed into `<archive>` (two directories in order, a later file
// winning, a symbolic link, owners and modes with keep-attributes) and applied as a build applies it;
// `url/key` fetched into `<raw-key>` from a real key made by gpg, served by file://, with its
// fingerprint as report.txt lists it.
import Foundation
import HavelCore
import Logging
import ProjectXML
import Reports
import SystemKit
import Testing
@testable import Build

/// Runs a program and returns its standard output; a failure is a test error.
private func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw HavelError(.io, "\(executable) \(arguments.joined(separator: " ")) failed with \(process.terminationStatus)")
    }
    return String(decoding: data, as: UTF8.self)
}

private func project(root extra: String = "", url: String = "") -> String {
    """
    <?xml version="1.0" encoding="UTF-8"?>
    <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
      <project>
        <name>resources</name><version>1.0</version><buildtype>amd64</buildtype>
        <mirror>
          <primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto>
          <url-list>\(url)</url-list>
        </mirror>
        <suite>bookworm</suite>
      </project>
      <target><hostname>board</hostname></target>
      \(extra)
    </RootFileSystem>
    """
}

private func loadAndResolve(_ path: String) async throws -> LoadedProject {
    let options = ProjectLoader.Options(strict: true, preprocess: .init(hashPasswords: false))
    return try await ClientResources.resolve(try ProjectLoader.load(path: path, options: options), options: options)
}

@Suite(.enabled(if: geteuid() == 0, "needs root (owners kept by keep-attributes)"))
struct ArchivedirTests {
    /// base/project/{project.xml, first/}, base/second/ (outside: named by a file:// URL).
    func layout() throws -> (base: String, file: String) {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("havel-archivedir-\(UUID().uuidString)").path
        let first = base + "/project/first", second = base + "/second"
        for dir in [first + "/etc", second + "/etc", second + "/usr/bin"] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        try "from first\n".write(toFile: first + "/etc/motd", atomically: true, encoding: .utf8)
        try "only in first\n".write(toFile: first + "/etc/first-only", atomically: true, encoding: .utf8)
        try "from second\n".write(toFile: second + "/etc/motd", atomically: true, encoding: .utf8)
        try "#!/bin/sh\n".write(toFile: second + "/usr/bin/tool", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: second + "/etc/motd.link", withDestinationPath: "motd")
        for (path, mode) in [(first + "/etc/first-only", 0o600), (second + "/etc/motd", 0o640), (second + "/usr/bin/tool", 0o755)] {
            chmod(path, mode_t(mode))
        }
        for path in [first + "/etc/first-only", second + "/etc/motd", second + "/usr/bin/tool"] { chown(path, 1234, 2345) }
        let file = base + "/project/project.xml"
        try project(root: """
            <archivedir>first</archivedir>
              <archivedir keep-attributes="true">file://\(second)</archivedir>
              <archivedir variant="production">not-selected-and-missing</archivedir>
            """).write(toFile: file, atomically: true, encoding: .utf8)
        return (base, file)
    }

    @Test func twoArchivedirsArePackedInOrderAndAppliedAsTheArchive() async throws {
        let (base, file) = try layout()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let loaded = try await loadAndResolve(file)
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        let written = XMLWriter.write(loaded.document)
        #expect(!written.contains("archivedir") && written.contains("<archive>"))
        // What havel preprocess writes validates on its own (strictly) and holds the archive.
        let again = try ProjectLoader.load(text: written, file: "preprocessed.xml", options: .init(strict: true))
        #expect(again.errors.isEmpty, "\(again.errors)")
        let archive = try #require(again.project.archive)

        // Unpacked as a build unpacks it.
        let tree = try SyntheticTree()
        defer { tree.remove() }
        let work = tree.base + "/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let added = try await ArchiveOverlay.apply(archive, to: try RootedFileSystem(root: tree.root), work: work, log: Logger.discarding)
        #expect(Set(added).isSuperset(of: ["/etc/motd", "/etc/first-only", "/etc/motd.link", "/usr/bin/tool"]))
        #expect(tree.read("/etc/motd") == "from second\n")
        #expect(tree.read("/etc/first-only") == "only in first\n")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: tree.root + "/etc/motd.link") == "motd")
        func owner(_ path: String) -> (mode: mode_t, uid: uid_t, gid: gid_t) {
            var info = stat()
            lstat(tree.root + path, &info)
            return (info.st_mode & 0o7777, info.st_uid, info.st_gid)
        }
        // The first directory is packed owned by root, the second (keep-attributes) with its owners; modes are kept.
        #expect(owner("/etc/first-only") == (0o600, 0, 0))
        #expect(owner("/etc/motd") == (0o640, 1234, 2345))
        #expect(owner("/usr/bin/tool") == (0o755, 1234, 2345))
    }

    @Test func relativeArchivedirsStayBelowTheProjectFilesDirectory() async throws {
        let (base, file) = try layout()
        defer { try? FileManager.default.removeItem(atPath: base) }
        try project(root: "<archivedir>../second</archivedir>").write(toFile: file, atomically: true, encoding: .utf8)
        let loaded = try await loadAndResolve(file)
        #expect(loaded.errors.contains { $0.message.contains("outside the project file's directory") && $0.location?.line == 12 },
                "\(loaded.errors)")
        #expect(loaded.project.archive == nil)
        try project(root: "<archivedir>file://host/second</archivedir>").write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try await loadAndResolve(file).errors.contains { $0.message.contains("names a host") })
        let uploaded = try ProjectLoader.load(text: project(root: "<archivedir>first</archivedir>"), file: "source.xml",
                                              options: .init(preprocess: .init(hashPasswords: false, includes: .refused)))
        #expect(uploaded.errors.contains { $0.message.contains("preprocess it on the client") })
    }
}

@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/gpg"), "needs gpg"))
struct RepositoryKeyTests {
    /// A fresh armored public key and its fingerprint, made by gpg in a temporary home.
    func makeKey(in base: String) throws -> (armored: String, fingerprint: String) {
        let home = base + "/gnupg"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        chmod(home, 0o700)
        let gpg = ["--homedir", home, "--batch"]
        defer { _ = try? run("/usr/bin/gpgconf", ["--homedir", home, "--kill", "all"]) }
        _ = try run("/usr/bin/gpg", gpg + ["--pinentry-mode", "loopback", "--passphrase", "", "--quick-generate-key", "Havel Test <test@example.org>", "ed25519", "sign", "never"])
        let armored = try run("/usr/bin/gpg", gpg + ["--armor", "--export", "test@example.org"])
        let colons = try run("/usr/bin/gpg", gpg + ["--with-colons", "--list-keys", "test@example.org"])
        let fingerprint = try #require(colons.split(separator: "\n").first { $0.hasPrefix("fpr:") }?.split(separator: ":", omittingEmptySubsequences: false)[9])
        return (armored, String(fingerprint))
    }

    func resolvedKey(url: String, base: String) async throws -> LoadedProject {
        let file = base + "/project.xml"
        try project(url: "<url><binary>http://MIRROR_HOST/extra bookworm main</binary><key>\(url)</key></url>")
            .write(toFile: file, atomically: true, encoding: .utf8)
        return try await loadAndResolve(file)
    }

    @Test func aKeyURLBecomesTheRawKeyWithItsFingerprintInTheReport() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("havel-key-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let key = try makeKey(in: base)
        try key.armored.write(toFile: base + "/key.asc", atomically: true, encoding: .utf8)

        let loaded = try await resolvedKey(url: "file://" + base + "/key.asc", base: base)
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        let rawKey = try #require(loaded.project.mirror.urls.first?.rawKey)
        #expect(rawKey.trimmingWhitespace() == key.armored.trimmingWhitespace())
        let written = XMLWriter.write(loaded.document)
        #expect(written.contains("<raw-key>\n-----BEGIN PGP PUBLIC KEY BLOCK-----") && !written.contains("<key>"))

        let fingerprints = try await KeyFingerprints.of(armored: rawKey)
        #expect(fingerprints == [key.fingerprint])
        let report = BuildReport(title: "t", havelVersion: "1", sourcesList: "", preferences: "", installed: [], origins: [:],
                                 archiveFiles: [], finetunedFiles: [], stages: [],
                                 repositoryKeys: [("http://MIRROR_HOST/extra bookworm main", fingerprints)]).text
        #expect(report.contains("== repository keys\n\n  http://MIRROR_HOST/extra bookworm main: \(key.fingerprint)\n"))
    }

    @Test func uploadsMayNotNameKeysAndOnlyKeyURLsAreAccepted() throws {
        let text = project(url: "<url><binary>http://MIRROR_HOST/extra bookworm main</binary><key>http://LOCALMACHINE/key.asc</key></url>")
        let uploaded = try ProjectLoader.load(text: text, file: "source.xml", options: .init(preprocess: .init(hashPasswords: false, includes: .refused)))
        #expect(uploaded.errors.contains { $0.message.contains("the daemon fetches no keys") })
        let ftp = try ProjectLoader.load(text: text.replacingOccurrences(of: "http://LOCALMACHINE", with: "ftp://example.org"), file: "p.xml")
        #expect(ftp.errors.contains { $0.message.contains("must start with http://, https:// or file:///") })
    }
}
