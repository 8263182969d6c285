import ArgumentParser
import ProjectXML

/// `havel ledger`: the items of ELBE's schema that Havel does not build or builds differently, as the
/// README lists them (both come from `SupportLedger`); with --reference the user's guide's project-file reference.
struct LedgerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "List the ELBE elements and attributes Havel does not build, or builds differently.",
        discussion: "havel validate warns where a project uses one of the items not built; havel build refuses those that change its output unless --allow-unsupported.")

    @Flag(help: "Print the whole project-file reference instead (every element and attribute, what it holds, what Havel does with it), as docs/project-file-reference.md has it.")
    var reference = false

    func run() {
        Terminal.out(reference ? SupportLedger.reference() : SupportLedger.markdown())
    }
}
