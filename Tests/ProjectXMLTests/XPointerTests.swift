// XPointerTests: `xi:include xpointer="…"` as ELBE's own preprocess tests use it (the fixtures in
// Fixtures/xpointer have the shape of ELBE's tests/preproc-01.xml and preproc-02.xml), the id shorthand,
// and the errors for forms Havel does not evaluate.
import Foundation
import HavelCore
@testable import ProjectXML
import Testing

@Suite struct XPointerTests {
    static let directory = TestPaths.fixtures + "/xpointer"

    func load(_ path: String, strict: Bool = false) throws -> LoadedProject {
        try ProjectLoader.load(path: path, options: .init(strict: strict, preprocess: .init(hashPasswords: false)))
    }

    /// The included project read directly: what the xpointer includes must give the same project.
    func expectSameProjectAsTheIncludedFile(_ loaded: LoadedProject) throws {
        let direct = try load(Self.directory + "/xinclude/board.xml").project
        let project = loaded.project
        #expect(project.name == "xpointer-board" && project.name == direct.name)
        #expect(project.mirror.primary == direct.mirror.primary)
        #expect(project.target.hostname == direct.target.hostname)
        #expect(project.target.packages.map(\.name) == ["bash", "busybox"])
        #expect(project.target.images.map(\.name) == direct.target.images.map(\.name))
        #expect(project.checks.count == 1 && project.checks.count == direct.checks.count)
    }

    /// The written result has no include left and validates again, strictly, on its own.
    func expectResultValidates(_ loaded: LoadedProject) throws {
        let written = XMLWriter.write(loaded.document)
        #expect(!written.contains("<xi:include"))
        let again = try ProjectLoader.load(text: written, file: "preprocessed.xml", options: .init(strict: true))
        #expect(again.errors.isEmpty, "\(again.errors)")
        #expect(again.project.target.packages.map(\.name) == ["bash", "busybox"])
    }

    @Test func allChildrenOfTheIncludedRootReplaceTheInclude() throws {
        let loaded = try load(Self.directory + "/whole.xml", strict: true)
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        #expect(loaded.document.root.elements.map(\.name.local) == ["project", "target", "check-image-list"])
        try expectSameProjectAsTheIncludedFile(loaded)
        try expectResultValidates(loaded)
    }

    @Test func eachSectionIncludesTheChildrenOfTheSameSection() throws {
        let loaded = try load(Self.directory + "/sections.xml", strict: true)
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        let target = try #require(loaded.document.root.firstElement(named: "target"))
        #expect(target.elements.map(\.name.local) == ["hostname", "domain", "images", "fstab", "pkg-list"])
        try expectSameProjectAsTheIncludedFile(loaded)
        try expectResultValidates(loaded)
    }

    func project(including include: String, in dir: String) throws -> LoadedProject {
        try """
        <ns0:RootFileSystem xmlns:ns0="https://www.linutronix.de/projects/Elbe" xmlns:p="urn:parts">
          <p:parts><pkg-list xml:id="pkgs"><pkg>nano</pkg></pkg-list><pkg-list id="other"><pkg>vim</pkg></pkg-list></p:parts>
        </ns0:RootFileSystem>
        """.write(toFile: dir + "/parts.xml", atomically: true, encoding: .utf8)
        let base = try String(contentsOfFile: Self.directory + "/xinclude/board.xml", encoding: .utf8)
            .replacingOccurrences(of: "<pkg-list>", with: include + "\n    <pkg-list>")
            .replacingOccurrences(of: "<ns0:RootFileSystem ", with: "<ns0:RootFileSystem xmlns:xi=\"http://www.w3.org/2001/XInclude\" ")
        try base.write(toFile: dir + "/main.xml", atomically: true, encoding: .utf8)
        return try load(dir + "/main.xml")
    }

    @Test func aBareNameSelectsTheElementWithThatId() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let byXMLId = try project(including: #"<xi:include href="parts.xml" xpointer="pkgs"/>"#, in: dir)
        #expect(byXMLId.errors.isEmpty, "\(byXMLId.errors)")
        #expect(byXMLId.project.target.packages.map(\.name) == ["nano", "bash", "busybox"])
        let byId = try project(including: #"<xi:include href="parts.xml" xpointer="other"/>"#, in: dir)
        #expect(byId.project.target.packages.map(\.name) == ["vim", "bash", "busybox"])
    }

    @Test func aPrefixedElementKeepsItsNamespaceDeclaration() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let loaded = try project(including: #"<xi:include href="parts.xml" xpointer="xmlns(x=urn:parts) xpointer(/*/x:parts/pkg-list)"/>"#, in: dir)
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        #expect(loaded.project.target.packages.map(\.name) == ["nano", "vim", "bash", "busybox"])
        let selected = try #require(XPointer.parse("xmlns(x=urn:parts) xpointer(*/x:parts)").select(from: XMLReader.parse(
            try String(contentsOfFile: dir + "/parts.xml", encoding: .utf8), file: "parts.xml").root).first)
        #expect(XMLWriter.write(selected).hasPrefix(#"<p:parts xmlns:p="urn:parts">"#))
    }

    @Test(arguments: [
        ("xmlns(ns0=https://www.linutronix.de/projects/Elbe) xpointer(//pkg)", "is not supported"),
        ("xmlns(ns0=https://www.linutronix.de/projects/Elbe) xpointer(ns0:RootFileSystem/target/pkg-list/pkg[1])", "is not supported"),
        ("xpointer(ns0:RootFileSystem/target/pkg-list)", "prefix ns0"),
        ("element(/1/2)", "is not supported"),
        ("range-to(foo)", "scheme range-to() is not supported"),
        ("xmlns(ns0=https://www.linutronix.de/projects/Elbe) xpointer(ns0:RootFileSystem/nothing)", "selects no element"),
        ("xpointer(ns0:RootFileSystem", "is not closed"),
    ])
    func unsupportedPointersAreErrorsNamingFileLineAndPointer(pointer: String, reason: String) throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/xinclude", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.directory + "/xinclude/board.xml", toPath: dir + "/xinclude/board.xml")
        try """
        <ns0:RootFileSystem xmlns:ns0="https://www.linutronix.de/projects/Elbe"
                            xmlns:xi="http://www.w3.org/2003/XInclude">
          <xi:include href="xinclude/board.xml" xpointer="\(pointer)"/>
        </ns0:RootFileSystem>
        """.write(toFile: dir + "/main.xml", atomically: true, encoding: .utf8)
        let loaded = try load(dir + "/main.xml")
        let error = try #require(loaded.errors.first { $0.message.contains("xpointer=") })
        #expect(error.location?.file.hasSuffix("main.xml") == true)
        #expect(error.location?.line == 3)
        #expect(error.message.contains(pointer))
        #expect(error.message.contains(reason), "\(error.message)")
        #expect(error.description.contains("main.xml:3:"))
    }

    @Test func schemePartsHonourEscapes() throws {
        let parts = try XPointer.schemeParts("xmlns(a=urn:x^(1^)) xpointer(a:b/*)")
        #expect(parts.map(\.0) == ["xmlns", "xpointer"])
        #expect(parts.map(\.1) == ["a=urn:x(1)", "a:b/*"])
        #expect(try XPointer.parse("xmlns(a=urn:x) xpointer(a:b/c/*)").selection
                == .childPath([.named(local: "b", namespace: "urn:x"), .named(local: "c", namespace: nil), .any]))
        #expect(try XPointer.parse("  board ").selection == .id("board"))
    }
}
