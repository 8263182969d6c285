// Tests of the apt repository writer and its signing key on two small .debs made with dpkg-deb.

import Debian
import Foundation
import HavelCore
import SystemKit
import Testing

/// The first tool the writer or these tests need that this host lacks.
let aptRepositoryMissingTool = ["dpkg-deb", "apt-ftparchive", "gpg", "gpgv", "gpgconf", "gzip", "xz"].first { ProcessRunner.which($0) == nil }

@Suite(.enabled(if: aptRepositoryMissingTool == nil, Comment(rawValue: "needs \(aptRepositoryMissingTool ?? "") (scripts/setup-host.sh installs it)")))
struct AptRepositoryTests {

    let processes = SystemProcesses()

    func shell(_ script: String, in directory: String) async throws -> String {
        let result = try await processes.run(Command("sh", ["-ec", script], workingDirectory: directory))
        #expect(result.succeeded, "\(script): \(result.standardError)")
        return result.standardOutput
    }

    /// A scratch directory with two .debs: `hello-tool` (arch all) and `libexample1` from source `libexample`.
    func makeDebs() async throws -> (base: String, debs: [String]) {
        let base = "/tmp/havel-apt-repo-test-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        _ = try await shell("""
            mk() { mkdir -p "$1/DEBIAN" "$1/usr/share/doc/$2"; echo "$2" > "$1/usr/share/doc/$2/note"
                   printf 'Package: %s\\nVersion: %s\\nArchitecture: %s\\nMaintainer: Test <t@example.org>\\n%sDescription: test package\\n' \\
                       "$2" "$3" "$4" "$5" > "$1/DEBIAN/control"
                   find "$1" -exec touch -h -d @1700000000 {} +
                   SOURCE_DATE_EPOCH=1700000000 dpkg-deb --root-owner-group -Zgzip -b "$1" "$6" >/dev/null; }
            mk t1 hello-tool 1.0-1 all '' hello-tool.deb
            mk t2 libexample1 2:3.4-5 amd64 'Source: libexample (3.4-5)\\n' libexample1.deb
            """, in: base)
        return (base, [base + "/hello-tool.deb", base + "/libexample1.deb"])
    }

    func writeRepository(_ debs: [String], to root: String, keys: String) async throws -> RepositorySigningKey {
        var packages: [AptRepository.Package] = []
        for deb in debs { packages.append(try await AptRepository.Package.reading(deb)) }
        let key = try await RepositorySigningKey.forProject("my project/../x", directory: keys)
        let description = AptRepository.Description(suite: "bookworm", architectures: ["amd64"], origin: "Havel", label: "test",
                                                    text: "test repository", epoch: 1_700_000_000)
        try await AptRepository.write(packages, to: root, description: description, key: key)
        return key
    }

    @Test func poolPackagesReleaseAndASignatureGpgvAccepts() async throws {
        let (base, debs) = try await makeDebs()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let root = base + "/repo"
        let key = try await writeRepository(debs, to: root, keys: base + "/keys")

        let lib = root + "/pool/main/libe/libexample/libexample1_3.4-5_amd64.deb"
        #expect(FileManager.default.fileExists(atPath: root + "/pool/main/h/hello-tool/hello-tool_1.0-1_all.deb"))
        #expect(FileManager.default.fileExists(atPath: lib))
        let binary = root + "/dists/bookworm/main/binary-amd64"
        let packages = try String(contentsOfFile: binary + "/Packages", encoding: .utf8)
        let index = PackagesIndex.index(PackagesIndex.parse(packages, origin: "test"))
        let library = try #require(index["libexample1 2:3.4-5 amd64"])
        #expect(library.filename == "pool/main/libe/libexample/libexample1_3.4-5_amd64.deb")
        #expect(library.sourceName == "libexample")
        #expect(library.sha256 == (try await Digest.sha256(files: [lib]))[lib])
        #expect(index["hello-tool 1.0-1 all"]?.filename == "pool/main/h/hello-tool/hello-tool_1.0-1_all.deb")
        #expect(try await shell("gzip -dc Packages.gz | cmp - Packages && xz -dc Packages.xz | cmp - Packages && echo same", in: binary) == "same\n")

        // Release names each index with its sha256 and is dated by the epoch.
        let release = try String(contentsOfFile: root + "/dists/bookworm/Release", encoding: .utf8)
        #expect(release.contains("Date: Tue, 14 Nov 2023 22:13:20 UTC"))
        #expect(release.contains("Suite: bookworm") && release.contains("Architectures: amd64") && release.contains("Components: main"))
        for file in ["Packages", "Packages.gz", "Packages.xz"] {
            let path = binary + "/" + file
            let digest = try #require(try await Digest.sha256(files: [path])[path])
            #expect(release.contains(" \(digest) "), "\(file) in Release")
        }

        // Signatures: gpgv accepts them with the public key, and refuses a changed InRelease.
        #expect(try String(contentsOfFile: root + "/archive-key.asc", encoding: .utf8) == key.publicKey)
        _ = try await shell("gpg --batch --dearmor < ../archive-key.asc > \(base)/key.gpg", in: root + "/dists")
        let verify = try await processes.run(Command("gpgv", ["--keyring", base + "/key.gpg", "InRelease"], workingDirectory: root + "/dists/bookworm"))
        #expect(verify.succeeded, "\(verify.standardError)")
        let detached = try await processes.run(Command("gpgv", ["--keyring", base + "/key.gpg", "Release.gpg", "Release"], workingDirectory: root + "/dists/bookworm"))
        #expect(detached.succeeded, "\(detached.standardError)")
        _ = try await shell("sed 's/Suite: bookworm/Suite: trixie/' InRelease > ../forged", in: root + "/dists/bookworm")
        let forged = try await processes.run(Command("gpgv", ["--keyring", base + "/key.gpg", root + "/dists/forged"]))
        #expect(!forged.succeeded)

        // The key stays on the host, private, under the project's name made a plain file name.
        #expect(key.secretKeyFile == base + "/keys/my_project_.._x.secret.asc")
        let mode = try FileManager.default.attributesOfItem(atPath: base + "/keys")[.posixPermissions] as? Int
        #expect(mode == 0o700)
        #expect(try await shell("grep -rl 'PRIVATE KEY' . || true", in: root).isEmpty)
    }

    @Test func theArchivesPriorityAndSectionOverrideTheDebsOwn() async throws {
        let (base, debs) = try await makeDebs()
        defer { try? FileManager.default.removeItem(atPath: base) }
        var packages: [AptRepository.Package] = []
        for deb in debs { packages.append(try await AptRepository.Package.reading(deb)) }
        packages[0].priority = "required"
        packages[0].section = "admin"
        packages[1].priority = "optional; rm -rf"   // not a plain word: left to the .deb's own fields
        packages[1].section = "libs"
        let key = try await RepositorySigningKey.forProject("p", directory: base + "/keys")
        let description = AptRepository.Description(suite: "bookworm", architectures: ["amd64"], origin: "Havel", label: "test",
                                                    text: "test repository", epoch: 1_700_000_000)
        let root = base + "/repo"
        try await AptRepository.write(packages, to: root, description: description, key: key)
        let index = try String(contentsOfFile: root + "/dists/bookworm/main/binary-amd64/Packages", encoding: .utf8)
        let stanzas = Deb822.parse(index, keeping: ["package", "priority", "section"])
        let tool = try #require(stanzas.first { $0["package"] == "hello-tool" })
        #expect(tool["priority"] == "required" && tool["section"] == "admin")
        let library = try #require(stanzas.first { $0["package"] == "libexample1" })
        #expect(library["priority"] == nil && library["section"] == nil)
        #expect(!FileManager.default.fileExists(atPath: root + ".override"), "the override file is not left beside the repository")
        #expect(PackagesIndex.parse(index, origin: "t").first { $0.name == "hello-tool" }?.priority == "required")
    }

    @Test func theSameDebsAndKeyGiveTheSameBytes() async throws {
        let (base, debs) = try await makeDebs()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let first = try await writeRepository(debs, to: base + "/one", keys: base + "/keys")
        let second = try await writeRepository(debs.reversed(), to: base + "/two", keys: base + "/keys")
        #expect(first.publicKey == second.publicKey)
        let listing = "find . -printf '%p %y %s %T@\\n' | sort; find . -type f | sort | xargs sha256sum"
        let one = try await shell(listing, in: base + "/one")
        #expect(one.contains("./dists/bookworm/InRelease f"))
        #expect(one.contains("1700000000"))
        #expect(one == (try await shell(listing, in: base + "/two")))
        // The caller's .debs are linked into the pool, not changed.
        let time = try FileManager.default.attributesOfItem(atPath: debs[0])[.modificationDate] as? Date
        #expect(time != Date(timeIntervalSince1970: 1_700_000_000))
    }

    @Test func aSourceRepositoryListsTheDscAndItsFilesAndIsSigned() async throws {
        let base = "/tmp/havel-apt-repo-test-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        // Files named as a cache names them (by content), the .dsc listing them by their pool names.
        _ = try await shell("""
            echo upstream > orig; echo debian > deb
            sum() { sha256sum "$1" | cut -d' ' -f1; }; md() { md5sum "$1" | cut -d' ' -f1; }; size() { stat -c %s "$1"; }
            printf 'Format: 3.0 (quilt)\\nSource: libexample\\nBinary: libexample1\\nArchitecture: any\\nVersion: 2:3.4-5\\nMaintainer: T <t@example.org>\\n' > dsc
            printf 'Checksums-Sha256:\\n %s %s libexample_3.4.orig.tar.gz\\n %s %s libexample_3.4-5.debian.tar.xz\\n' $(sum orig) $(size orig) $(sum deb) $(size deb) >> dsc
            printf 'Files:\\n %s %s libexample_3.4.orig.tar.gz\\n %s %s libexample_3.4-5.debian.tar.xz\\n' $(md orig) $(size orig) $(md deb) $(size deb) >> dsc
            """, in: base)
        let source = AptRepository.SourcePackage(name: "libexample", version: "2:3.4-5", files: [
            .init(path: base + "/dsc", name: "libexample_3.4-5.dsc"), .init(path: base + "/orig", name: "libexample_3.4.orig.tar.gz"),
            .init(path: base + "/deb", name: "libexample_3.4-5.debian.tar.xz")])
        let key = try await RepositorySigningKey.forProject("sources", directory: base + "/keys")
        let description = AptRepository.Description(suite: "bookworm", architectures: ["source"], origin: "Havel", label: "test",
                                                    text: "test sources", epoch: 1_700_000_000)
        let root = base + "/repo"
        try await AptRepository.writeSources([source], to: root, description: description, key: key)
        let pool = root + "/pool/main/libe/libexample"
        #expect(try FileManager.default.contentsOfDirectory(atPath: pool).sorted()
                == ["libexample_3.4-5.debian.tar.xz", "libexample_3.4-5.dsc", "libexample_3.4.orig.tar.gz"])
        let text = try String(contentsOfFile: root + "/dists/bookworm/main/source/Sources", encoding: .utf8)
        let indexed = try #require(SourcesIndex.parse(text).first)
        #expect(indexed.name == "libexample" && indexed.directory == "pool/main/libe/libexample")
        #expect(Set(indexed.files.map(\.name)) == ["libexample_3.4-5.dsc", "libexample_3.4.orig.tar.gz", "libexample_3.4-5.debian.tar.xz"])
        let release = try String(contentsOfFile: root + "/dists/bookworm/Release", encoding: .utf8)
        #expect(SourcesIndex.releaseSHA256(release)["main/source/Sources.xz"] != nil)
        _ = try await shell("gpg --batch --dearmor < archive-key.asc > \(base)/key.gpg", in: root)
        let verify = try await processes.run(Command("gpgv", ["--keyring", base + "/key.gpg", "InRelease"], workingDirectory: root + "/dists/bookworm"))
        #expect(verify.succeeded, "\(verify.standardError)")
    }

    @Test func namesThatWouldLeaveThePoolAreRefused() async throws {
        let key = RepositorySigningKey(secretKeyFile: "/nonexistent", publicKey: "")
        let description = AptRepository.Description(suite: "bookworm", architectures: ["amd64"], origin: "o", label: "l", text: "t", epoch: 1_700_000_000)
        for package in [AptRepository.Package(path: "/x.deb", name: "a", version: "1/../../x", architecture: "amd64", source: "a"),
                        AptRepository.Package(path: "/x.deb", name: "a", version: "1", architecture: "amd64", source: "../a"),
                        AptRepository.Package(path: "/x.deb", name: "../a", version: "1", architecture: "amd64", source: "a")] {
            let error = await #expect(throws: HavelError.self, "\(package)") {
                try await AptRepository.write([package], to: "/nonexistent/repo", description: description, key: key)
            }
            // Refused for its name, before any file is touched.
            #expect(error?.code == .invalidArgument, "\(String(describing: error))")
        }
    }

    @Test func fileNamesOfKeysAndPoolDirectories() {
        #expect(RepositorySigningKey.fileName(forProject: "../etc/passwd") == "_etc_passwd")
        #expect(RepositorySigningKey.fileName(forProject: "") == "project")
        #expect(AptRepository.poolDirectory(source: "libc6", component: "main") == "pool/main/libc/libc6")
        #expect(AptRepository.poolDirectory(source: "bash", component: "main") == "pool/main/b/bash")
    }
}

/// `ReleaseSignature`: an InRelease verifies with the key that signed it and gives only its signed text; a changed
/// one, or one checked without that key, is refused.
@Suite(.enabled(if: aptRepositoryMissingTool == nil, Comment(rawValue: "needs \(aptRepositoryMissingTool ?? "") (scripts/setup-host.sh installs it)")))
struct ReleaseSignatureTests {
    @Test func theSignedTextIsReturnedAndATamperedOrForeignReleaseRefused() async throws {
        let base = "/tmp/havel-release-signature-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        try FileManager.default.createDirectory(atPath: base + "/repo/pool/main", withIntermediateDirectories: true)
        let key = try await RepositorySigningKey.forProject("signature-test", directory: base + "/keys")
        let description = AptRepository.Description(suite: "bookworm", architectures: ["amd64"], origin: "Havel", label: "t", text: "t", epoch: 1_700_000_000)
        try await AptRepository.write([], to: base + "/repo", description: description, key: key)
        let inRelease = base + "/repo/dists/bookworm/InRelease"
        let keyrings = try await ReleaseSignature.keyrings(projectKeys: [("project.asc", key.publicKey)], work: base + "/work")
        let text = try await ReleaseSignature.verifiedInRelease(inRelease, keyrings: keyrings, work: base, what: "InRelease")
        #expect(text.contains("Suite: bookworm") && !text.contains("BEGIN PGP"))

        // Lines put before the signed block never reach the caller.
        let original = try String(contentsOfFile: inRelease, encoding: .utf8)
        try ("SHA256:\n 0000 1 main/source/Sources.xz\n" + original).write(toFile: inRelease, atomically: true, encoding: .utf8)
        if let prefixed = try? await ReleaseSignature.verifiedInRelease(inRelease, keyrings: keyrings, work: base, what: "InRelease") {
            #expect(!prefixed.contains("main/source/Sources.xz"))
        }
        try original.replacingOccurrences(of: "Suite: bookworm", with: "Suite: trixie").write(toFile: inRelease, atomically: true, encoding: .utf8)
        await #expect(throws: HavelError.self) { try await ReleaseSignature.verifiedInRelease(inRelease, keyrings: keyrings, work: base, what: "InRelease") }
        try original.write(toFile: inRelease, atomically: true, encoding: .utf8)
        let withoutProjectKey = try await ReleaseSignature.keyrings(projectKeys: [], work: base + "/work2")
        await #expect(throws: HavelError.self) {
            try await ReleaseSignature.verifiedInRelease(inRelease, keyrings: withoutProjectKey, work: base, what: "InRelease")
        }
    }
}
