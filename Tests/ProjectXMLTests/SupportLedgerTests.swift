// The ledger of ELBE's schema: every element and attribute classified, a project's not-built items
// warned about at their lines (errors with --strict), and the README's list printed from the table.
import Foundation
import HavelCore
@testable import ProjectXML
import Testing

@Suite struct SupportLedgerTests {
    @Test func everySchemaItemIsClassifiedAndNothingElse() {
        var expected = Set<String>()
        for (typeName, type) in ElbeSchema.types {
            for child in type.children.keys { expected.insert(SupportLedger.key(type: typeName, child: child)) }
            for attribute in type.attributes.keys { expected.insert(SupportLedger.key(type: typeName, attribute: attribute)) }
        }
        let classified = Set(SupportLedger.entries.keys)
        #expect(expected.subtracting(classified).sorted() == [], "schema items the ledger does not classify")
        #expect(classified.subtracting(expected).sorted() == [], "ledger entries the schema does not have")
    }

    static let notBuilt = TestPaths.fixtures + "/not-built.xml"

    /// (line, element path, item): every not-built item of the fixture, once, at the element that uses it.
    static let expectedUses: [(Int, String, String)] = [
        (32, "/RootFileSystem/target/images/mtd/binary", "<binary>"),
        (45, "/RootFileSystem/target/pbuilder/svn", "<svn>"),
        (50, "/RootFileSystem/src-cdrom/size", "<size>"),
    ]

    @Test func aProjectsNotBuiltItemsAreWarnedAboutAtTheirLines() throws {
        let loaded = try ProjectLoader.load(path: Self.notBuilt)
        #expect(loaded.isValid)
        let uses = loaded.unsupported.map { ($0.location.line, $0.path, $0.item) }
        #expect(uses.map(\.0) == Self.expectedUses.map(\.0))
        #expect(uses.map(\.1) == Self.expectedUses.map(\.1))
        #expect(uses.map(\.2) == Self.expectedUses.map(\.2))
        for use in loaded.unsupported {
            let warning = loaded.warnings.first { $0.elementPath == use.path }
            #expect(warning?.message.contains("is not built by Havel: ") == true, "no warning for \(use.path)")
        }
        // Only the mtd's binary (which ELBE ignores too) and the source CD's size (one ISO, never split) leave the
        // output as the file asks; <tighten/>, <setsel/> and the SDK's triplet, blacklist and host packages are built.
        #expect(loaded.unsupported.filter { !$0.changesOutput }.map(\.item) == ["<binary>", "<size>"])
    }

    @Test func strictMakesEveryNotBuiltItemAnError() throws {
        let loaded = try ProjectLoader.load(path: Self.notBuilt, options: .init(strict: true))
        #expect(!loaded.isValid)
        #expect(Set(loaded.errors.compactMap(\.elementPath)) == Set(Self.expectedUses.map(\.1)))
    }

    @Test func aProjectOfBuiltItemsHasNoUnsupportedUses() throws {
        let loaded = try ProjectLoader.load(path: TestPaths.fixtures + "/valid-base.xml")
        #expect(loaded.unsupported.isEmpty)
    }

    /// The user's guide's reference is `havel ledger --reference`, and it names every element type of the schema
    /// that has children or attributes, each section reachable by its anchor.
    @Test func theGuidesReferenceIsWhatTheLedgerPrints() throws {
        let page = try String(contentsOfFile: TestPaths.repositoryRoot + "/docs/project-file-reference.md", encoding: .utf8)
        let reference = SupportLedger.reference()
        // As havel ledger prints it: one newline at the end.
        #expect(page == (reference.hasSuffix("\n") ? reference : reference + "\n"),
                "docs/project-file-reference.md differs: write it with `havel ledger --reference > docs/project-file-reference.md`")
        #expect(!reference.contains("unclassified"))
        for (typeName, type) in ElbeSchema.types where !type.children.isEmpty || !type.attributes.isEmpty {
            let reached = SupportLedger.typesInReadingOrder().contains(typeName)
            #expect(reached, "\(typeName) has no section")
        }
        for link in reference.matches(of: /\]\(#(type-[a-z0-9-]+)\)/) {
            #expect(reference.contains("<a id=\"\(link.1)\"></a>"), "no section for the link #\(link.1)")
        }
        #expect(SupportLedger.escaped("pin with <pkg version=\"1\"> or `<x>` a|b") == "pin with `<pkg version=\"1\">` or `<x>` a\\|b")
    }

    @Test func theReadmeListsWhatTheLedgerSays() throws {
        let readme = try String(contentsOfFile: TestPaths.repositoryRoot + "/README.md", encoding: .utf8)
        let begin = "<!-- ledger: printed by `havel ledger`; keep in step -->\n", end = "<!-- ledger end -->"
        let start = try #require(readme.range(of: begin), "README has no ledger section")
        let stop = try #require(readme.range(of: end, range: start.upperBound..<readme.endIndex))
        #expect(String(readme[start.upperBound..<stop.lowerBound]) == SupportLedger.markdown(),
                "README's ledger differs from `havel ledger`; paste its output between the markers")
    }
}
