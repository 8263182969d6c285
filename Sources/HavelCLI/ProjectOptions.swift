import ArgumentParser
import HavelCore
import ProjectXML

/// Options every command that reads a project file shares.
struct ProjectReadOptions: ParsableArguments {
    @Flag(name: .long, help: "Treat unknown elements and attributes as errors instead of warnings.")
    var strict = false

    @Flag(name: .long, help: "Build although the project uses items Havel does not build that change the output (each is still warned about).")
    var allowUnsupported = false

    @Option(name: .long, help: ArgumentHelp("Comma-separated variants: elements with variant=\"...\" are kept only if they name one of these.", valueName: "a,b"))
    var variant: String?

    @Option(name: .customLong("include-dir"), help: ArgumentHelp("xi:include may also read files below DIR (repeatable); by default only files below the project file's own directory.", valueName: "DIR"))
    var includeDirectories: [String] = []

    var variants: Set<String> {
        Set((variant ?? "").split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty })
    }

    func loaderOptions(hashPasswords: Bool = false) -> ProjectLoader.Options {
        ProjectLoader.Options(strict: strict, preprocess: .init(variants: variants, hashPasswords: hashPasswords,
                                                             includes: .confined(to: includeDirectories)),
                              allowUnsupported: allowUnsupported)
    }
}
