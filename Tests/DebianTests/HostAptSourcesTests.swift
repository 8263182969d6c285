import Debian
import Foundation
import Testing

@Suite struct HostAptSourcesTests {
    @Test func deb822TakesDebStanzasOnly() {
        let text = """
        Types: deb
        URIs: http://mirror.example/debian
        Suites: bookworm bookworm-updates
        Components: main

        Types: deb-src
        URIs: http://source.example/debian
        Suites: bookworm

        Types: deb
        Enabled: no
        URIs: http://disabled.example/debian
        """
        #expect(HostAptSources.deb822URIs(text) == ["http://mirror.example/debian"])
    }

    @Test func oneLineFormatWithOptions() {
        let text = """
        # comment
        deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main
        deb-src http://src.example/debian bookworm main
        deb http://two.example/debian-security bookworm-security main
        """
        #expect(HostAptSources.oneLineURIs(text) == ["http://one.example/debian", "http://two.example/debian-security"])
    }

    @Test func primaryMirrorPrefersTheMainArchiveOverSecurity() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("havel-apt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n"
            .write(to: dir.appendingPathComponent("a-security.sources"), atomically: true, encoding: .utf8)
        try "Types: deb\nURIs: http://main.example:8080/debian/\nSuites: bookworm\n"
            .write(to: dir.appendingPathComponent("b-debian.sources"), atomically: true, encoding: .utf8)
        let mirror = try HostAptSources.primaryMirror(searching: [dir.path])
        #expect(mirror.host == "main.example:8080")
        #expect(mirror.path == "/debian")
        #expect(mirror.proto == "http")
        #expect(mirror.url == "http://main.example:8080/debian")
    }

    @Test func noSourcesIsAClearError() {
        #expect {
            try HostAptSources.primaryMirror(searching: ["/nonexistent/apt"])
        } throws: { error in
            "\(error)".contains("--mirror")
        }
    }

    @Test func thisHostHasAMirror() throws {
        // Every Havel host reaches a Debian mirror through its apt sources; this reads the real ones.
        let mirror = try HostAptSources.primaryMirror()
        #expect(!mirror.host.isEmpty)
        #expect(mirror.proto.hasPrefix("http"))
    }

    @Test func urlParsing() {
        #expect(HostMirror(url: "ftp://h/x")?.path == "/x")
        #expect(HostMirror(url: "file:///srv/mirror") == nil)
        #expect(HostMirror(url: "not a url") == nil)
    }
}

/// House rule: no committed file names this machine's Debian mirror; examples and fixtures use the
/// MIRROR_HOST placeholder. This catches a slip before it is pushed.
@Suite struct MirrorHostIsNeverCommittedTests {
    @Test func noSourceFileNamesTheHostMirror() throws {
        let host = try HostAptSources.primaryMirror().host
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        var offenders: [String] = []
        for top in ["Sources", "Tests", "examples", "scripts", "bench", "README.md", "Makefile", ".ci"] {
            let path = root.path + "/" + top
            let files = (FileManager.default.enumerator(atPath: path)?.allObjects as? [String]).map { $0.map { path + "/" + $0 } } ?? [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file), data.count < 8 << 20 else { continue }
                if String(decoding: data, as: UTF8.self).contains(host) { offenders.append(file) }
            }
        }
        #expect(offenders.isEmpty, "these files name the host's mirror \(host); use MIRROR_HOST: \(offenders)")
    }
}
