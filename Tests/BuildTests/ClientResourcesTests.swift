// ClientResourcesTests: `<archivedir>` packed into `<archive>` (two directories in order, a later file
// winning, a symbolic link, owners and modes with keep-attributes) and applied as a build applies it;
// `url/key` fetched into `<raw-key>` from a real key made by gpg, served by file:// and by a loopback HTTP
// server (an endless chunked body is cut off at the size limit), with its
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

    /// A loopback HTTP server (python3's, threaded): `/key.asc` with its length, `/endless` chunked and never
    /// ending. It stops itself after two minutes whatever happens.
    static let serverScript = """
        import http.server, sys
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *args): pass
            def do_GET(self):
                if self.path == "/key.asc":
                    body = open(sys.argv[2], "rb").read()
                    self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
                    self.wfile.write(body)
                elif self.path == "/endless":
                    self.send_response(200); self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
                    chunk = b"A" * 65536
                    try:
                        while True:
                            self.wfile.write(b"%x\\r\\n" % len(chunk) + chunk + b"\\r\\n")
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                else:
                    self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers()
        http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
        """

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") && FileManager.default.isExecutableFile(atPath: "/usr/bin/curl"),
                   "needs python3 and curl"), .timeLimit(.minutes(15)))
    func aKeyIsFetchedOverHTTPAndAnEndlessBodyIsCutOffAtTheLimit() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("havel-key-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let key = try makeKey(in: base)
        try key.armored.write(toFile: base + "/key.asc", atomically: true, encoding: .utf8)
        try Self.serverScript.write(toFile: base + "/server.py", atomically: true, encoding: .utf8)
        // A free port: bind to 0, read it, close; the server takes it right after.
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: 0, sin_addr: in_addr(s_addr: inet_addr("127.0.0.1")), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(probe, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        close(probe)
        // Through ProcessRunner, not Foundation's Process: its children start with a clean signal mask, and
        // cancelling the task stops the server (SIGTERM, then SIGKILL). A Process child inherits the test
        // runner's blocked signals and ignores SIGTERM, so waiting for it would hang.
        let server = Task {
            try await ProcessRunner.run(Command("/usr/bin/python3", [base + "/server.py", String(port), base + "/key.asc"]))
        }
        defer { server.cancel() }
        // Wait until it answers (a 404 for an unknown path).
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let probe = try await ProcessRunner.run(Command("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/none"]))
            if probe.standardOutput == "404" { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let fetched = try await ClientResources.fetchKey("http://127.0.0.1:\(port)/key.asc")
        #expect(fetched == key.armored.trimmingWhitespace())
        do {
            _ = try await ClientResources.fetchKey("http://127.0.0.1:\(port)/endless")
            Issue.record("an endless body was accepted")
        } catch {
            #expect(error.message.contains("is larger than"), "\(error.message)")
        }
        server.cancel()
        _ = try? await server.value
        let running = try await ProcessRunner.run(Command("pgrep", ["-f", base + "/server.py"]))
        #expect(running.standardOutput.isEmpty, "the server is stopped")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path)) ?? []
        #expect(!left.contains { $0.hasPrefix("havel-key-") && !$0.hasPrefix("havel-key-test-") }, "the download's temporary file is removed")
    }

    @Test func uploadsMayNotNameKeysAndOnlyKeyURLsAreAccepted() throws {
        let text = project(url: "<url><binary>http://MIRROR_HOST/extra bookworm main</binary><key>http://LOCALMACHINE/key.asc</key></url>")
        let uploaded = try ProjectLoader.load(text: text, file: "source.xml", options: .init(preprocess: .init(hashPasswords: false, includes: .refused)))
        #expect(uploaded.errors.contains { $0.message.contains("the daemon fetches no keys") })
        let ftp = try ProjectLoader.load(text: text.replacingOccurrences(of: "http://LOCALMACHINE", with: "ftp://example.org"), file: "p.xml")
        #expect(ftp.errors.contains { $0.message.contains("must start with http://, https:// or file:///") })
    }
}
