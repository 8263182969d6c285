// Malformed-project fixtures: each file in Fixtures/malformed/ is Fixtures/valid-base.xml with one thing
// broken. For each we assert the load is refused or invalid, and that the diagnostic names the problem
// (a distinctive message substring) at the right line, column and element path.

import Foundation
import HavelCore
@testable import ProjectXML
import Testing

// MARK: - Fixture files

private func malformedFixturePath(_ relative: String) throws -> String {
    let root = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil),
                            "the test bundle has no Fixtures directory")
    return root.appendingPathComponent(relative).path
}

// MARK: - The table

/// One broken fixture and the diagnostic it must produce.
struct MalformedCase: Sendable, CustomTestStringConvertible {
    enum Stage: Sendable {
        /// Not well-formed XML: `ProjectLoader.load` throws.
        case parse
        /// Well-formed but invalid: `load` returns a project with errors.
        case check
    }

    var file: String
    var stage: Stage
    var line: Int
    var column: Int?
    /// The element path of the diagnostic; nil for XML syntax errors, which have none.
    var path: String?
    var message: String
    var strict = false

    var testDescription: String { file }

    static func notWellFormed(_ file: String, line: Int, column: Int, _ message: String) -> MalformedCase {
        MalformedCase(file: file, stage: .parse, line: line, column: column, path: nil, message: message)
    }

    static func invalid(_ file: String, line: Int, column: Int, path: String, _ message: String,
                        strict: Bool = false) -> MalformedCase {
        MalformedCase(file: file, stage: .check, line: line, column: column, path: path, message: message,
                      strict: strict)
    }
}

private let root = "/RootFileSystem"
private let project = "/RootFileSystem/project"
private let target = "/RootFileSystem/target"
private let msdoshd = "/RootFileSystem/target/images/msdoshd"
private let fstab = "/RootFileSystem/target/fstab"
private let finetuning = "/RootFileSystem/target/finetuning"
private let pkg = "/RootFileSystem/target/pkg-list/pkg"

let malformedCases: [MalformedCase] = [
    // MARK: not well-formed XML
    .notWellFormed("wf-unclosed-root.xml", line: 30, column: 1,
                   "unexpected end of file: <RootFileSystem> opened at line 2 is not closed"),
    .notWellFormed("wf-unclosed-element.xml", line: 29, column: 3, "</target> does not match <hostname> opened at line 15"),
    .notWellFormed("wf-mismatched-end-tag.xml", line: 5, column: 17, "</vers> does not match <version> opened at line 5"),
    .notWellFormed("wf-unquoted-attribute.xml", line: 2, column: 74, "expected a quoted value"),
    .notWellFormed("wf-unterminated-attribute.xml", line: 3, column: 3, "'<' is not allowed in an attribute value"),
    .notWellFormed("wf-duplicate-attribute.xml", line: 2, column: 78, "attribute revision appears twice on <RootFileSystem>"),
    .notWellFormed("wf-bare-ampersand.xml", line: 4, column: 16, "'&' must start a reference like &amp;"),
    .notWellFormed("wf-undefined-entity.xml", line: 4, column: 18, "undefined entity &nbsp;"),
    .notWellFormed("wf-bad-char-reference.xml", line: 4, column: 18, "character reference &#0; is not a valid XML character"),
    .notWellFormed("wf-lt-in-attribute.xml", line: 28, column: 29, "'<' is not allowed in an attribute value"),
    .notWellFormed("wf-unbound-element-prefix.xml", line: 15, column: 5, "namespace prefix foo of <foo:hostname> is not declared"),
    .notWellFormed("wf-unbound-attribute-prefix.xml", line: 28, column: 20,
                   "namespace prefix foo of attribute foo:version is not declared"),
    .notWellFormed("wf-text-after-root.xml", line: 31, column: 1, "text after the root element"),
    .notWellFormed("wf-second-root.xml", line: 31, column: 1, "content after the root element"),
    .notWellFormed("wf-unterminated-comment.xml", line: 16, column: 5, "unterminated comment"),
    .notWellFormed("wf-xml-declaration-not-first.xml", line: 2, column: 1,
                   "the XML declaration is only allowed at the very start of the file"),
    .notWellFormed("wf-unsupported-encoding.xml", line: 1, column: 1, "encoding \"ISO-8859-1\" is not supported"),
    .notWellFormed("wf-dtd-declaration-in-content.xml", line: 16, column: 5, "DTD declarations are not allowed"),
    .notWellFormed("wf-empty-file.xml", line: 1, column: 1, "the file is empty"),
    .notWellFormed("wf-whitespace-only.xml", line: 3, column: 1, "no root element found"),
    .notWellFormed("wf-doctype-xxe.xml", line: 2, column: 1, "document type declarations (<!DOCTYPE>) are not allowed"),
    .notWellFormed("wf-billion-laughs.xml", line: 2, column: 1, "document type declarations (<!DOCTYPE>) are not allowed"),
    .notWellFormed("wf-invalid-utf8.xml", line: 4, column: 14, "invalid UTF-8 (byte 0xC3 at offset 142)"),
    .notWellFormed("wf-latin1-byte.xml", line: 15, column: 16, "invalid UTF-8 (byte 0xF6 at offset 442)"),
    .notWellFormed("wf-bom-invalid-utf8.xml", line: 1, column: 39, "invalid UTF-8 (byte 0xFF at offset 41)"),
    .notWellFormed("wf-binary-junk.xml", line: 1, column: 1,
                   "control character U+0000 is not allowed in XML (is this a binary file?)"),
    .notWellFormed("wf-nul-in-text.xml", line: 4, column: 14, "control character U+0000 is not allowed in XML"),
    .notWellFormed("wf-utf16-bom.xml", line: 1, column: 1, "UTF-16 input is not supported"),
    .notWellFormed("wf-too-deep.xml", line: 16, column: 767, "elements nest deeper than 256 levels"),

    // MARK: root element, namespace, revision
    .invalid("wrong-root-element.xml", line: 2, column: 1, path: "/Project", "the root element is <Project>"),
    .invalid("wrong-namespace.xml", line: 2, column: 1, path: root,
             "RootFileSystem is in namespace \"http://example.com/not-elbe\""),
    .invalid("no-namespace.xml", line: 2, column: 1, path: root, "RootFileSystem is in no namespace"),
    .invalid("missing-revision.xml", line: 2, column: 1, path: root, "attribute revision is missing"),
    .invalid("wrong-revision.xml", line: 2, column: 65, path: root, "revision=\"5\" is not supported"),
    .invalid("bad-revision-created.xml", line: 2, column: 78, path: root + "/@created",
             "\"yesterday\" is not a date and time"),

    // MARK: structure
    .invalid("unknown-element.xml", line: 16, column: 5, path: target + "/colour", "unknown element <colour> in <target>",
             strict: true),
    .invalid("unknown-attribute.xml", line: 28, column: 20, path: pkg + "/@colour", "unknown attribute colour on <pkg>",
             strict: true),
    .invalid("missing-mirror.xml", line: 3, column: 3, path: project, "<project> needs a <mirror> element"),
    .invalid("missing-suite.xml", line: 3, column: 3, path: project, "<project> needs a <suite> element"),
    .invalid("missing-hostname.xml", line: 14, column: 3, path: target, "<target> needs a <hostname> element"),
    .invalid("missing-partition-label.xml", line: 20, column: 9, path: msdoshd + "/partition[1]",
             "<partition> needs a <label> element"),
    .invalid("duplicate-hostname.xml", line: 16, column: 5, path: target + "/hostname[2]",
             "<hostname> may appear only once in <target> (first at line 15)"),
    .invalid("duplicate-suite.xml", line: 13, column: 5, path: project + "/suite[2]",
             "<suite> may appear only once in <project> (first at line 12)"),
    .invalid("bad-size-unit.xml", line: 20, column: 26, path: msdoshd + "/partition[1]/size", "\"100XB\" is not a size"),
    .invalid("bad-fs-type.xml", line: 26, column: 75, path: fstab + "/bylabel[2]/fs/type", "\"ntfs\" is not allowed here"),
    .invalid("text-in-element-only.xml", line: 17, column: 7, path: target + "/images",
             "<images> holds only elements, found text \"stray text\""),
    .invalid("bad-boolean-attribute.xml", line: 30, column: 32, path: finetuning + "/adduser/@system",
             "attribute system=\"yes\": \"yes\" is not a boolean"),
    .invalid("missing-required-attribute.xml", line: 30, column: 7, path: finetuning + "/adduser",
             "<adduser> needs attribute shell"),

    // MARK: project
    .invalid("unknown-buildtype.xml", line: 6, column: 16, path: project + "/buildtype", "unknown buildtype \"m68k\""),
    .invalid("unknown-suite.xml", line: 12, column: 12, path: project + "/suite", "unknown suite \"potato\""),
    .invalid("empty-suite.xml", line: 12, column: 5, path: project + "/suite", "<suite> is empty"),
    .invalid("missing-name.xml", line: 3, column: 3, path: project, "<project> needs <name>"),
    .invalid("empty-name.xml", line: 4, column: 5, path: project + "/name", "<name> is empty"),
    .invalid("missing-version.xml", line: 3, column: 3, path: project, "<project> needs <version>"),
    .invalid("missing-buildtype.xml", line: 3, column: 3, path: project, "<project> needs <buildtype>"),
    .invalid("missing-project.xml", line: 2, column: 1, path: root, "a project file needs a <project> section"),
    .invalid("missing-target.xml", line: 2, column: 1, path: root, "a project file needs a <target> section"),
    .invalid("empty-mirror.xml", line: 7, column: 5, path: project + "/mirror", "the mirror names no repository"),
    .invalid("unknown-mirror-proto.xml", line: 10, column: 22, path: project + "/mirror/primary_proto",
             "unknown protocol \"gopher\""),

    // MARK: target, images, fstab
    .invalid("bad-hostname.xml", line: 15, column: 15, path: target + "/hostname", "\"my_board\" is not a valid host name"),
    .invalid("partition-too-big.xml", line: 20, column: 9, path: msdoshd, "partition boot (2 GiB) does not fit"),
    .invalid("partitions-sum-too-big.xml", line: 21, column: 9, path: msdoshd, "partition rfs (1000 MiB) does not fit"),
    .invalid("two-remain.xml", line: 21, column: 9, path: msdoshd, "more than one partition has size remain (boot, rfs)"),
    .invalid("remain-not-last.xml", line: 20, column: 9, path: msdoshd,
             "partition boot has size remain but is not the last partition"),
    .invalid("image-size-remain.xml", line: 19, column: 15, path: msdoshd + "/size", "the image size must be a size, not remain"),
    .invalid("five-primary-partitions.xml", line: 24, column: 9, path: msdoshd, "at most 4 primary partitions; 5 given"),
    .invalid("fstab-label-without-partition.xml", line: 26, column: 7, path: fstab + "/bylabel[2]",
             "fstab label \"firmware\" names no partition or ubi volume"),
    .invalid("duplicate-partition-label.xml", line: 21, column: 9, path: msdoshd,
             "partition label \"boot\" is used twice (first at line 20)"),
    .invalid("duplicate-fstab-label.xml", line: 26, column: 7, path: fstab + "/bylabel[2]",
             "fstab label \"rfs\" is used twice (first at line 25)"),
    .invalid("duplicate-mountpoint.xml", line: 26, column: 7, path: fstab + "/bylabel[2]",
             "mountpoint / is used twice (first at line 25)"),
    .invalid("relative-mountpoint.xml", line: 26, column: 47, path: fstab + "/bylabel[2]/mountpoint",
             "mountpoint \"boot\" must be an absolute path"),
    .invalid("relative-mountpoint-multiline.xml", line: 28, column: 21, path: fstab + "/bylabel[2]/mountpoint",
             "mountpoint \"boot\" must be an absolute path"),

    // MARK: packages
    .invalid("pkg-pin-conflict.xml", line: 28, column: 15, path: pkg, "conflicting pins on package bash: version and origin"),
    .invalid("empty-pkg.xml", line: 28, column: 15, path: pkg, "<pkg> is empty"),
    .invalid("bad-pkg-name.xml", line: 28, column: 20, path: pkg, "\"Bash Shell\" is not a Debian package name"),

    // MARK: checks
    .invalid("check-interpreter-not-qemu.xml", line: 33, column: 20, path: root + "/check-image-list/check/interpreter",
             "\"/bin/sh\" is not a qemu-system program"),

    // MARK: finetuning
    .invalid("finetuning-empty-rm.xml", line: 30, column: 7, path: finetuning + "/rm", "<rm> is empty; it needs a path"),
    .invalid("finetuning-empty-cp-path.xml", line: 30, column: 11, path: finetuning + "/cp/@path", "<cp path=\"\"> is empty"),
    .invalid("finetuning-bad-file-mode.xml", line: 30, column: 29, path: finetuning + "/file/@mode",
             "mode \"rw-r--r--\" is not an octal file mode"),
    .invalid("finetuning-bad-file-encoding.xml", line: 30, column: 29, path: finetuning + "/file/@encoding",
             "encoding \"rot13\" is unknown"),
    .invalid("finetuning-empty-file-dst.xml", line: 30, column: 13, path: finetuning + "/file/@dst",
             "<file dst=\"\"> is empty"),
    .invalid("finetuning-bad-uid.xml", line: 30, column: 32, path: finetuning + "/adduser/@uid", "uid \"one\" is not a number"),

    // MARK: includes
    .invalid("xinclude-missing-file.xml", line: 16, column: 5, path: target + "/include",
             "xi:include href=\"does-not-exist.xml\": cannot read"),
]

/// Fixtures checked by the focused tests below instead of the table (they have no line to assert).
private let fixturesOutsideTheTable: Set<String> = ["wf-corrupt-gzip.xml", "wf-gzip-bomb.xml"]

// MARK: - Tests

@Suite("Malformed fixtures")
struct MalformedFixtureTests {
    @Test("each malformed fixture is refused with its diagnostic at its place", arguments: malformedCases)
    func malformedFixture(_ fixture: MalformedCase) throws {
        let file = try malformedFixturePath("malformed/" + fixture.file)
        let options = ProjectLoader.Options(strict: fixture.strict)
        let errors: [Diagnostic]
        switch fixture.stage {
        case .parse:
            let error = try #require(throws: HavelError.self) { try ProjectLoader.load(path: file, options: options) }
            #expect(error.code == .malformedXML)
            #expect(error.message.contains(fixture.message), "message: \(error.message)")
            #expect(error.location?.file == file)
            #expect(error.diagnostics.count == 1)
            errors = error.diagnostics
        case .check:
            let loaded = try ProjectLoader.load(path: file, options: options)
            #expect(!loaded.isValid)
            errors = loaded.errors
        }
        #expect(!errors.isEmpty)
        let diagnostic = try #require(errors.first { $0.message.contains(fixture.message) },
                                      "no error contains \"\(fixture.message)\"; errors: \(errors.map(\.description))")
        #expect(diagnostic.severity == .error)
        #expect(diagnostic.location?.file == file)

        #expect(diagnostic.location?.line == fixture.line, "\(diagnostic)")
        if let column = fixture.column {
            #expect(diagnostic.location?.column == column, "\(diagnostic)")
        }
        #expect(diagnostic.elementPath == fixture.path, "\(diagnostic)")
    }

    @Test("the valid base loads without any finding, strict or not")
    func validBase() throws {
        let file = try malformedFixturePath("valid-base.xml")
        for strict in [false, true] {
            let loaded = try ProjectLoader.load(path: file, options: .init(strict: strict))
            #expect(loaded.isValid)
            #expect(loaded.diagnostics.isEmpty, "\(loaded.diagnostics.map(\.description))")
            #expect(loaded.project.name == "fixture")
            #expect(loaded.project.architecture == .arm64)
            #expect(loaded.project.target.hostname == "board")
            #expect(loaded.project.target.images.first?.partitions.map(\.label) == ["boot", "rfs"])
            #expect(loaded.project.target.fstab.count == 2)
        }
    }

    @Test("every fixture in malformed/ is tested, and every tested fixture exists")
    func tableCoversTheDirectory() throws {
        let directory = try malformedFixturePath("malformed")
        let present = Set(try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".xml") })
        let tabled = malformedCases.map(\.file)
        #expect(Set(tabled).count == tabled.count, "a fixture is listed twice")
        #expect(present == Set(tabled).union(fixturesOutsideTheTable))
        #expect(malformedCases.count >= 30)
    }

    @Test("an external entity (XXE) is refused without reading the file it names")
    func externalEntityIsRefused() throws {
        let file = try malformedFixturePath("malformed/wf-doctype-xxe.xml")
        let error = try #require(throws: HavelError.self) { try ProjectLoader.load(path: file) }
        #expect(error.message.contains("<!DOCTYPE>"))
        // Refused at the DOCTYPE (line 2), long before &x; is used in <name>.
        #expect(error.location?.line == 2)
        let everything = ([error.message, error.description] + error.diagnostics.map(\.description)).joined(separator: "\n")
        #expect(!everything.contains("root:"))
        if let passwd = try? String(contentsOfFile: "/etc/passwd", encoding: .utf8) {
            for line in passwd.split(separator: "\n") where line.count > 8 {
                #expect(!everything.contains(line), "the message leaks /etc/passwd")
            }
        }
    }

    @Test("a billion-laughs entity bomb is refused quickly")
    func billionLaughsIsRefusedQuickly() throws {
        let file = try malformedFixturePath("malformed/wf-billion-laughs.xml")
        var thrown: HavelError?
        let elapsed = ContinuousClock().measure {
            do throws(HavelError) {
                _ = try ProjectLoader.load(path: file)
            } catch {
                thrown = error
            }
        }
        let error = try #require(thrown)
        #expect(error.message.contains("<!DOCTYPE>"))
        #expect(error.message.count < 300)
        // Refused at the declaration, before any expansion: a generous bound that a real expansion would blow.
        #expect(elapsed < .seconds(30))
    }

    @Test("an unknown element or attribute is only a warning without --strict")
    func unknownIsAWarningWithoutStrict() throws {
        let element = try ProjectLoader.load(path: try malformedFixturePath("malformed/unknown-element.xml"))
        #expect(element.isValid)
        #expect(element.errors.isEmpty)
        let elementWarning = try #require(element.warnings.first)
        #expect(element.warnings.count == 1)
        #expect(elementWarning.message.contains("unknown element <colour> in <target>"))
        #expect(elementWarning.message.contains("(ignored)"))
        #expect(elementWarning.location?.line == 16)
        #expect(elementWarning.elementPath == target + "/colour")

        let attribute = try ProjectLoader.load(path: try malformedFixturePath("malformed/unknown-attribute.xml"))
        #expect(attribute.isValid)
        let attributeWarning = try #require(attribute.warnings.first)
        #expect(attribute.warnings.count == 1)
        #expect(attributeWarning.message.contains("unknown attribute colour on <pkg>"))
        #expect(attributeWarning.location?.line == 28)
        #expect(attributeWarning.elementPath == pkg + "/@colour")
    }

    @Test("the offset named for invalid UTF-8 is the offset of the bad byte")
    func invalidUTF8Offset() throws {
        let file = try malformedFixturePath("malformed/wf-invalid-utf8.xml")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        let offset = try #require(bytes.firstIndex(of: 0xC3))
        let error = try #require(throws: HavelError.self) { try ProjectLoader.load(path: file) }
        #expect(error.message.contains("byte 0xC3 at offset \(offset)"))
    }

    @Test("a corrupt gzip file is refused")
    func corruptGzip() throws {
        let file = try malformedFixturePath("malformed/wf-corrupt-gzip.xml")
        let error = try #require(throws: HavelError.self) { try ProjectLoader.load(path: file) }
        #expect(error.code == .invalidProject)
        #expect(error.message.contains("the gzip data is corrupt or truncated"))
        let diagnostic = try #require(error.diagnostics.first)
        #expect(error.diagnostics.count == 1)
        #expect(diagnostic.severity == .error)
        #expect(diagnostic.message.contains("gzip data is corrupt"))
    }

    @Test("a gzip bomb is refused at the size limit, quickly")
    func gzipBomb() throws {
        let file = try malformedFixturePath("malformed/wf-gzip-bomb.xml")
        var thrown: HavelError?
        let elapsed = ContinuousClock().measure {
            do throws(HavelError) {
                _ = try ProjectLoader.load(path: file)
            } catch {
                thrown = error
            }
        }
        let error = try #require(thrown)
        #expect(error.code == .invalidProject)
        #expect(error.message.contains("decompresses to more than 64 MiB; refused"))
        #expect(error.diagnostics.count == 1)
        #expect(elapsed < .seconds(30))
    }
}
