import ArgumentParser
import ProjectXML

/// `havel ledger`: the items of ELBE's schema that Havel does not build or builds differently, as the
/// README lists them (both come from `SupportLedger`).
struct LedgerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "List the ELBE elements and attributes Havel does not build, or builds differently.",
        discussion: "havel validate warns where a project uses one of the items not built; havel build refuses those that change its output unless --allow-unsupported.")

    func run() {
        Terminal.out(SupportLedger.markdown())
    }
}
