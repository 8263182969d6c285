import ArgumentParser
import HavelCore
import ProjectXML

/// `havel add FILE PKG...`: ELBE's `elbe add`, packages appended to the project's pkg-list.
struct AddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add packages to the project's pkg-list (as elbe add).",
        discussion: """
            Packages already listed are left alone. The file is edited in place and keeps its comments and \
            layout; a target without a pkg-list gets one at its end.
            """)

    @Argument(help: "The project file.")
    var file: String

    @Argument(help: "Debian package names.")
    var packages: [String]

    func validate() throws {
        if packages.isEmpty { throw ValidationError("give at least one package name") }
    }

    func run() throws {
        var edit = try ProjectFileEditing(file)
        let added = try edit.editor.addPackages(packages)
        guard !added.isEmpty else {
            Terminal.out("\(file): already lists \(packages.joined(separator: ", ")); unchanged")
            return
        }
        try edit.save()
        Terminal.out("\(file): added \(added.joined(separator: ", "))")
    }
}
