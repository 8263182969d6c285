import Foundation
import HavelCore
@testable import ProjectXML
import Testing

@Suite struct PreprocessTests {
    static let main = TestPaths.fixtures + "/preprocess/main.xml"

    func preprocess(variants: Set<String>, salt: String? = "fixturesalt") throws -> LoadedProject {
        try ProjectLoader.load(path: Self.main, options: .init(preprocess: .init(variants: variants, hashPasswords: true, salt: salt)))
    }

    @Test func mergedDocumentMatchesTheExpectedOne() throws {
        let loaded = try preprocess(variants: ["devel"])
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        let written = XMLWriter.write(loaded.document)
        let expectedPath = TestPaths.repositoryRoot + "/Tests/ProjectXMLTests/Fixtures/preprocess/expected-devel.xml"
        if ProcessInfo.processInfo.environment["HAVEL_UPDATE_GOLDEN"] == "1" {
            try written.write(toFile: expectedPath, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOfFile: expectedPath, encoding: .utf8)
        #expect(written == expected)
    }

    @Test func includesResolveRelativeToTheIncludingFile() throws {
        let project = try preprocess(variants: []).project
        #expect(project.target.hostname == "fixture-board")
        // parts/image.xml includes deeper/partition.xml relative to parts/.
        #expect(project.target.images.first?.partitions.map(\.label) == ["rfs"])
        #expect(project.target.packages.map(\.name) == ["bash", "busybox", "nano"])
    }

    @Test func variantsSelectElements() throws {
        let devel = try preprocess(variants: ["devel"]).project
        #expect(devel.target.packages.map(\.name) == ["bash", "busybox", "gdbserver", "nano"])
        #expect(devel.target.finetuning.map(\.action.elementName) == ["rm", "adduser"])
        #expect(devel.mirror.urls.count == 1)

        let production = try preprocess(variants: ["secure", "extras"]).project
        #expect(production.target.finetuning.map(\.action.elementName) == ["rm", "rm"])
        #expect(production.mirror.urls.count == 2)
        #expect(!XMLWriter.write(try preprocess(variants: ["secure"]).document).contains("variant="))
    }

    @Test func deprecatedTagsAreMigrated() throws {
        let loaded = try preprocess(variants: ["devel"])
        let project = loaded.project
        #expect(project.target.debootstrap.variant == "minbase")
        #expect(project.target.debootstrap.include == ["apt", "less"])
        #expect(project.target.fstab.first?.filesystem.deviceCommands == ["tune2fs -i 0 {device}"])
        #expect(project.target.packages[1].pin == .release(["name": "bookworm"]))
        let text = XMLWriter.write(loaded.document)
        #expect(!text.contains("<passwd>") && !text.contains("debootstrapvariant") && !text.contains("tune2fs>"))
    }

    @Test func noauthAndBracketOptionsBecomeMirrorOptions() throws {
        let mirror = try preprocess(variants: []).project.mirror
        #expect(mirror.noauth)
        #expect(mirror.options == ["trusted=yes"])
        #expect(mirror.urls[0].binary == "http://MIRROR_HOST/debian-security bookworm-security main")
        #expect(mirror.urls[0].options == ["arch=armhf", "trusted=yes"])
    }

    @Test func passwordsAreHashedAsOpensslWouldAndVerifiable() async throws {
        let project = try preprocess(variants: ["devel"]).project
        let root = try #require(project.target.passwdHashed)
        let expectedRoot = try opensslPasswd("secret", salt: "fixturesalt")
        #expect(root == expectedRoot)
        #expect(root.hasPrefix("$6$fixturesalt$"))
        guard case .addUser(let user)? = project.target.finetuning.last?.action else {
            Issue.record("adduser missing")
            return
        }
        let expectedUser = try opensslPasswd("dev", salt: "fixturesalt")
        #expect(user.passwdHashed == expectedUser)
    }

    /// Without a fixed salt each password's salt comes from the project and the user: two reads give the
    /// same /etc/shadow, root and another user get different salts, and openssl agrees with the hash.
    @Test func passwordSaltsAreDerivedFromTheProjectAndTheUser() throws {
        let first = try preprocess(variants: ["devel"], salt: nil).project
        let second = try preprocess(variants: ["devel"], salt: nil).project
        let root = try #require(first.target.passwdHashed)
        #expect(second.target.passwdHashed == root)
        guard case .addUser(let user)? = first.target.finetuning.last?.action, let userHash = user.passwdHashed else {
            Issue.record("adduser with a password missing")
            return
        }
        let rootSalt = PasswordHash.projectSalt(project: first.name, version: first.version, user: "root")
        let userSalt = PasswordHash.projectSalt(project: first.name, version: first.version, user: user.name)
        #expect(rootSalt.count == 16 && rootSalt != userSalt)
        #expect(root == (try opensslPasswd("secret", salt: rootSalt)))
        #expect(userHash == (try opensslPasswd("dev", salt: userSalt)))
        // Another version of the project, another salt.
        #expect(PasswordHash.projectSalt(project: first.name, version: first.version + ".1", user: "root") != rootSalt)
        // Fields are separated: ("ab", "c") and ("a", "bc") do not collide.
        #expect(PasswordHash.projectSalt(project: "ab", version: "c", user: "root") != PasswordHash.projectSalt(project: "a", version: "bc", user: "root"))
    }

    func opensslPasswd(_ password: String, salt: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["passwd", "-6", "-salt", salt, password]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingWhitespace()
    }

    @Test func missingAndRecursiveIncludesAreErrorsAtTheInclude() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" xmlns:xi="http://www.w3.org/2001/XInclude" revision="6">
          <xi:include href="self.xml"/>
          <xi:include href="gone.xml"/>
          <xi:include href="http://example.org/x.xml"/>
        </RootFileSystem>
        """.write(toFile: dir + "/self.xml", atomically: true, encoding: .utf8)
        let loaded = try ProjectLoader.load(path: dir + "/self.xml")
        let messages = loaded.errors.map { "\($0.location?.line ?? 0): \($0.message)" }
        #expect(messages.contains { $0.hasPrefix("2: ") && $0.contains("includes itself") })
        #expect(messages.contains { $0.hasPrefix("3: ") && $0.contains("cannot read") && $0.contains("gone.xml") })
        #expect(messages.contains { $0.hasPrefix("4: ") && $0.contains("only local files") })
    }

    @Test func errorsInIncludedFilesNameThatFile() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "<?xml version=\"1.0\"?>\n<pkg-list>\n  <pkg version=\"1\" origin=\"x\">bash</pkg>\n</pkg-list>\n"
            .write(toFile: dir + "/pkgs.xml", atomically: true, encoding: .utf8)
        let base = try String(contentsOfFile: TestPaths.fixtures + "/preprocess/main.xml", encoding: .utf8)
            .replacingOccurrences(of: "parts/pkglist.xml", with: dir + "/pkgs.xml")
            .replacingOccurrences(of: "href=\"parts/", with: "href=\"" + TestPaths.fixtures + "/preprocess/parts/")
        try base.write(toFile: dir + "/main.xml", atomically: true, encoding: .utf8)
        let includes = Preprocessor.IncludePolicy.confined(to: [TestPaths.fixtures + "/preprocess/parts"])
        let loaded = try ProjectLoader.load(path: dir + "/main.xml", options: .init(preprocess: .init(hashPasswords: false, includes: includes)))
        let pin = try #require(loaded.errors.first { $0.message.contains("conflicting pins") })
        #expect(pin.location?.file == dir + "/pkgs.xml")
        #expect(pin.location?.line == 3)
    }

    @Test func gzipCompressedFilesLoadTheSame() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let plain = try [UInt8](Data(contentsOf: URL(fileURLWithPath: TestPaths.fixtures + "/valid-base.xml")))
        let packed = try Gzip.compress(plain)
        #expect(packed.starts(with: [0x1F, 0x8B]))
        try Data(packed).write(to: URL(fileURLWithPath: dir + "/p.xml.gz"))
        let a = try ProjectLoader.load(path: TestPaths.fixtures + "/valid-base.xml")
        let b = try ProjectLoader.load(path: dir + "/p.xml.gz")
        #expect(b.isValid)
        #expect(XMLWriter.write(a.document) == XMLWriter.write(b.document))
    }

    @Test func oversizedAndBombFilesAreRefused() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let big = [UInt8](repeating: 0x20, count: ProjectFile.maximumSize + 1)
        try Data(big).write(to: URL(fileURLWithPath: dir + "/big.xml"))
        #expect { try ProjectLoader.load(path: dir + "/big.xml") } throws: { "\($0)".contains("larger than the 64 MiB limit") }
        // 100 MiB of spaces compress to about 100 KiB: decompression stops at the limit.
        try Data(try Gzip.compress(big + big)).write(to: URL(fileURLWithPath: dir + "/bomb.xml.gz"))
        #expect { try ProjectLoader.load(path: dir + "/bomb.xml.gz") } throws: { "\($0)".contains("decompresses to more than") }
    }
}

/// `check-script location="…"`: read into the element by preprocessing, as ELBE does, from inside the
/// project file's directory only.
@Suite struct CheckScriptInliningTests {
    final class ProjectDirectory {
        let path: String
        init() throws {
            path = NSTemporaryDirectory() + "havel-checkscript-xml-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: path + "/checks", withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }

        func write(_ name: String, _ text: String) throws {
            try text.write(toFile: path + "/" + name, atomically: true, encoding: .utf8)
        }

        func load(script element: String) throws -> LoadedProject {
            try write("project.xml", """
                <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
                  <project><name>p</name><version>1</version><buildtype>amd64</buildtype>
                    <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
                    <suite>bookworm</suite></project>
                  <check-image-list>
                    \(element)
                  </check-image-list>
                  <target><hostname>h</hostname></target>
                </RootFileSystem>
                """)
            return try ProjectLoader.load(path: path + "/project.xml")
        }
    }

    static let script = "#!/bin/sh\n# <checks> & more\ntest -d \"$1\"\n"

    @Test func aLocationIsReadIntoTheDocumentAndTheAttributeDropped() throws {
        let directory = try ProjectDirectory()
        try directory.write("checks/verify.sh", Self.script)
        let loaded = try directory.load(script: #"<check-script location="checks/verify.sh"/>"#)
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        #expect(loaded.project.checkScript?.text == Self.script)
        let written = XMLWriter.write(loaded.document)
        #expect(!written.contains("location="))
        #expect(written.contains("# &lt;checks&gt; &amp; more"))
        // What preprocess wrote loads again (as the daemon and havel check-image read it) with the same script.
        let again = try ProjectLoader.load(text: written, file: "source.xml")
        #expect(again.errors.isEmpty, "\(again.errors)")
        #expect(again.project.checkScript?.text == Self.script)
        #expect(again.unsupported.isEmpty, "check-script is built: \(again.unsupported)")
    }

    @Test func anInlineScriptIsKeptAsWritten() throws {
        let directory = try ProjectDirectory()
        let loaded = try directory.load(script: "<check-script>#!/bin/sh\nexit 0\n</check-script>")
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        #expect(loaded.project.checkScript?.text == "#!/bin/sh\nexit 0\n")
    }

    @Test(arguments: [
        ("/etc/passwd", "give a plain relative file name"),
        ("../outside.sh", "give a plain relative file name"),
        ("checks/../../outside.sh", "give a plain relative file name"),
        ("file:///etc/passwd", "give a plain relative file name"),
        ("checks//verify.sh", "give a plain relative file name"),
        ("missing.sh", "does not exist; put the script beside the project file"),
        ("escape.sh", "leads out of the project's directory"),
        ("checks", "is not a regular file"),
        ("binary.sh", "is not UTF-8 text"),
    ])
    func aLocationOutsideOrUnreadableIsAnErrorAtItsLine(location: String, expected: String) throws {
        let directory = try ProjectDirectory()
        try FileManager.default.createSymbolicLink(atPath: directory.path + "/escape.sh", withDestinationPath: "/etc/hostname")
        try Data([0x23, 0x21, 0xFF, 0xFE, 0x00]).write(to: URL(fileURLWithPath: directory.path + "/binary.sh"))
        let loaded = try directory.load(script: #"<check-script location="\#(location)"/>"#)
        let error = try #require(loaded.errors.first, "no error for \(location)")
        #expect(error.message.hasPrefix("check-script location=\"\(location)\": "), "\(error.message)")
        #expect(error.message.contains(expected), "\(error.message)")
        #expect(error.elementPath == "/RootFileSystem/check-image-list/check-script/@location")
        #expect(error.location?.line == 6, "\(String(describing: error.location))")
        #expect(error.location?.file.hasSuffix("project.xml") == true)
    }

    @Test func aScriptTooLargeIsRefused() throws {
        let directory = try ProjectDirectory()
        try directory.write("big.sh", "#!/bin/sh\n" + String(repeating: "#", count: Preprocessor.maximumCheckScriptSize))
        let loaded = try directory.load(script: #"<check-script location="big.sh"/>"#)
        #expect(loaded.errors.first?.message.contains("more than the \(Preprocessor.maximumCheckScriptSize) allowed") == true, "\(loaded.errors)")
    }

    @Test func bothALocationAndTextIsAnError() throws {
        let directory = try ProjectDirectory()
        try directory.write("verify.sh", Self.script)
        let loaded = try directory.load(script: #"<check-script location="verify.sh">#!/bin/sh</check-script>"#)
        #expect(loaded.errors.first?.message.contains("has both a location and a script") == true, "\(loaded.errors)")
    }

    /// Text that came from no file (an upload to the daemon) never makes Havel read this host's files.
    @Test func textWithoutAFileCannotNameALocation() throws {
        let directory = try ProjectDirectory()
        try directory.write("verify.sh", Self.script)
        _ = try directory.load(script: "")
        let text = try String(contentsOfFile: directory.path + "/project.xml", encoding: .utf8)
            .replacingOccurrences(of: "<check-image-list>", with: #"<check-image-list><check-script location="etc/hostname"/>"#)
        let loaded = try ProjectLoader.load(text: text, file: "/source.xml")
        #expect(loaded.errors.first?.message.contains("was not read from a file") == true, "\(loaded.errors)")
        #expect(loaded.project.checkScript?.text.isEmpty != false)
    }
}
