// `<url><binary pin="…" package="…">`: a url-list repository's apt priority, written into the target's
// apt preferences as ELBE writes it (its host as the origin), and honoured by the real apt.
import Debian
import Foundation
import HavelCore
import ProjectXML
import SystemKit
import Testing

@Suite struct RepositoryPinTests {
    static func project(pin: String, package: String?, host: String = "MIRROR_HOST") -> String {
        """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>pinned</name><version>1.0</version><buildtype>amd64</buildtype>
            <mirror>
              <primary_host>\(host)</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto>
              <url-list>
                <url><binary pin="\(pin)"\(package.map { " package=\"\($0)\"" } ?? "")>http://\(host)/debian-security bookworm-security main</binary></url>
              </url-list>
            </mirror>
            <suite>bookworm</suite>
          </project>
          <target><hostname>pinned</hostname><pkg-list><pkg>bash</pkg></pkg-list></target>
        </RootFileSystem>
        """
    }

    @Test func aPinnedRepositoryBecomesAnOriginPin() throws {
        let loaded = try ProjectLoader.load(text: Self.project(pin: "990", package: "openssl libssl*", host: "mirror.test"), file: "pinned.xml")
        #expect(loaded.isValid, "\(loaded.errors)")
        #expect(loaded.unsupported.isEmpty)
        #expect(AptSources.preferences(for: loaded.project) == "Package: openssl libssl*\nPin: origin mirror.test\nPin-Priority: 990\n")
        let everything = try ProjectLoader.load(text: Self.project(pin: "100", package: nil, host: "mirror.test"), file: "pinned.xml")
        #expect(AptSources.preferences(for: everything.project) == "Package: *\nPin: origin mirror.test\nPin-Priority: 100\n")
    }

    @Test func aPinThatIsNotANumberIsAnError() throws {
        let text = Self.project(pin: "high", package: nil)
        let line = try #require(text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("pin=\"high\"") }) + 1
        let loaded = try ProjectLoader.load(text: text, file: "pinned.xml")
        #expect(!loaded.isValid)
        #expect(loaded.errors.contains { $0.message.contains("\"high\" is not a number") && $0.location?.line == line }, "\(loaded.errors)")
    }

    /// The preferences Havel writes, read by the host's apt against the host's mirror: the pinned package
    /// gets the priority from the repository's origin, an unnamed one keeps apt's default.
    @Test(.enabled(if: Integration.available, Integration.skipReason))
    func aptHonoursThePin() async throws {
        var loaded = try ProjectLoader.load(text: Self.project(pin: "990", package: "openssl"), file: "pinned.xml")
        try MirrorResolution.apply(nil, to: &loaded.project)
        let root = try Integration.temporaryDirectory("pin")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for dir in ["etc/apt/preferences.d", "etc/apt/sources.list.d", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"] {
            try FileManager.default.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
        }
        let keyring = "[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        let sources = AptSources.lines(for: loaded.project, includeSource: false).map { $0.replacingOccurrences(of: "deb ", with: "deb " + keyring) }
        try (sources.joined(separator: "\n") + "\n").write(toFile: root + "/etc/apt/sources.list", atomically: true, encoding: .utf8)
        try AptSources.preferences(for: loaded.project).write(toFile: root + "/etc/apt/preferences", atomically: true, encoding: .utf8)
        try "".write(toFile: root + "/var/lib/dpkg/status", atomically: true, encoding: .utf8)
        let options = ["-o", "Dir=" + root, "-o", "Dir::State::status=" + root + "/var/lib/dpkg/status", "-o", "APT::Architecture=amd64",
                       "-o", "Dir::Etc::TrustedParts=/etc/apt/trusted.gpg.d", "-o", "Debug::NoLocking=1"]
        let update = try await ProcessRunner.run(Command("apt-get", options + ["-q", "update"]))
        #expect(update.succeeded, "\(update.standardError)")
        let policy = try await ProcessRunner.check(Command("apt-cache", options + ["policy", "openssl", "bash"])).standardOutput
        // apt prints each version with the priority its pins give it ("3.0.22-1~deb12u2 990").
        let blocks = policy.components(separatedBy: "bash:")
        #expect(blocks.count == 2, "\(policy)")
        let pinned = { (block: String) in block.split(separator: "\n").contains { $0.hasSuffix(" 990") } }
        #expect(pinned(blocks[0]), "openssl is not pinned: \(policy)")
        #expect(!pinned(blocks[1]), "bash is pinned although package= names only openssl: \(policy)")
    }
}
