import Foundation
import HavelCore
@testable import ProjectXML
import Testing

/// Every ELBE example validates and preprocesses, and the preprocessed output validates again.
@Suite(.enabled(if: TestPaths.elbeExamplesPresent, "needs ELBE's examples at ../shared/elbe-examples beside the repository (or HAVEL_ELBE_EXAMPLES)"))
struct ElbeExamplesTests {
    /// Files ELBE itself would not build as they are, and why. Havel accepts them with a warning.
    static let elbeWouldReject: [String: (reason: String, warning: String?)] = [
        "configuration-package.xml": ("its pbuilder/archivedir names packages/example-configuration, a directory that is not shipped with the example, so ELBE's preprocess cannot pack it",
                                      "packages/example-configuration is not a directory"),
        "elbe-init-big-machine.xml": ("it only describes an initvm (no <project>, no <target>), so `elbe initvm submit` refuses it; it is for `elbe initvm create`",
                                      nil),
    ]

    @Test func theExamplesAreThere() {
        #expect(TestPaths.exampleFiles().count >= 20)
    }

    @Test(arguments: TestPaths.exampleFiles())
    func validatesAndPreprocesses(name: String) throws {
        let path = TestPaths.elbeExamples + "/" + name
        let loaded = try ProjectLoader.load(path: path, options: .init(strict: true, preprocess: .init(hashPasswords: true)))
        // Strict: the only errors are the ledger's not-built items (warnings without --strict).
        // An example ELBE would reject may fail with the reason given, and with nothing else.
        let expected = { (error: Diagnostic) in Self.elbeWouldReject[name]?.warning.map { error.message.contains($0) } ?? false }
        let schemaErrors = { (errors: [Diagnostic]) in errors.filter { !$0.message.contains("is not built by Havel") && !expected($0) } }
        #expect(schemaErrors(loaded.errors).isEmpty, "\(loaded.errors.map(\.description).joined(separator: "\n"))")
        #expect(loaded.errors.filter { !expected($0) }.count == loaded.unsupported.count)
        if let expected = Self.elbeWouldReject[name], let warning = expected.warning {
            #expect((loaded.warnings + loaded.errors).contains { $0.message.contains(warning) }, "\(expected.reason)")
        }
        // Preprocessed output is plain XML: no includes, no plain passwords, and valid on its own.
        let text = XMLWriter.write(loaded.document)
        #expect(!text.contains(":include href"))
        #expect(!text.contains("<passwd>"))
        let again = try ProjectLoader.load(text: text, file: name + " (preprocessed)", options: .init(strict: true))
        #expect(schemaErrors(again.errors).isEmpty, "\(again.errors.map(\.description).joined(separator: "\n"))")
        let packages = { (p: Project) in p.target.packages.map { "\($0.name) \(String(describing: $0.pin))" } }
        #expect(packages(again.project) == packages(loaded.project))
        #expect(again.project.target.passwdHashed == loaded.project.target.passwdHashed)
        #expect(again.project.target.images.map(\.name) == loaded.project.target.images.map(\.name))
    }

    @Test func modelOfAKnownExample() throws {
        let loaded = try ProjectLoader.load(path: TestPaths.elbeExamples + "/x86_32-pc-hdimg-with-include-development.xml")
        let project = loaded.project
        #expect(project.architecture == .i386)
        #expect(project.target.hostname == "i386-include-devel")
        #expect(project.target.images.first?.grubInstall == "")
        #expect(project.target.images.first?.partitions.first?.label == "rfs")
        #expect(project.target.packages.count == 8)
        #expect(project.target.finetuning.count == 5)
        // The hostname came from an included file: its location says so.
        let hostname = try #require(loaded.document.root.firstElement(named: "target")?.firstElement(named: "hostname"))
        #expect(hostname.location.file.hasSuffix("includes/devel/hostname.xml"))
    }
}
