import HavelCore

/// A project file read, preprocessed, checked and decoded.
public struct LoadedProject: Sendable {
    /// The document after preprocessing (includes resolved, variants selected, sections merged).
    public var document: XMLDocument
    public var project: Project
    /// Every finding, errors and warnings, in file order.
    public var diagnostics: [Diagnostic]
    /// Items of the file that Havel does not build (each also a warning, or an error with --strict).
    public var unsupported: [UnsupportedUse] = []

    public var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }
    public var warnings: [Diagnostic] { diagnostics.filter { $0.severity == .warning } }
    public var isValid: Bool { errors.isEmpty }
}

/// The one way into a project file for every command: parse, preprocess, check structure, decode, check meaning.
public enum ProjectLoader {
    public struct Options: Sendable {
        /// Unknown elements and attributes are errors instead of warnings.
        public var strict: Bool
        public var preprocess: Preprocessor.Options
        /// A build goes on although the project uses items Havel does not build that change the output.
        public var allowUnsupported: Bool

        public init(strict: Bool = false, preprocess: Preprocessor.Options = .init(hashPasswords: false), allowUnsupported: Bool = false) {
            self.strict = strict
            self.preprocess = preprocess
            self.allowUnsupported = allowUnsupported
        }
    }

    /// Loads a file; a file that cannot be read or is not well-formed XML throws with a diagnostic.
    public static func load(path: String, options: Options = Options()) throws(HavelError) -> LoadedProject {
        let document: XMLDocument
        do {
            document = try ProjectFile.parse(path, limit: options.preprocess.maximumSize)
        } catch {
            var failure = error
            if failure.diagnostics.isEmpty {
                failure.diagnostics = [Diagnostic(.error, at: error.location, path: nil, error.message)]
            }
            throw failure
        }
        return check(document, options: options)
    }

    /// Loads text already in memory (tests, the daemon's uploads).
    /// Such text has no directory, so a check-script `location` in it is an error, never a read of this host's files.
    public static func load(text: String, file: String, options: Options = Options()) throws(HavelError) -> LoadedProject {
        var options = options
        options.preprocess.readsCheckScripts = false
        return check(try XMLReader.parse(text, file: file), options: options)
    }

    /// Loads bytes already read (the daemon's uploads): invalid UTF-8 is refused, not decoded lossily.
    /// Such bytes have no directory either: a check-script `location` in them is an error.
    public static func load(bytes: [UInt8], file: String, options: Options = Options()) throws(HavelError) -> LoadedProject {
        var options = options
        options.preprocess.readsCheckScripts = false
        return check(try XMLReader.parse(bytes, file: file), options: options)
    }

    public static func check(_ document: XMLDocument, options: Options) -> LoadedProject {
        var preprocessor = Preprocessor(options: options.preprocess)
        let processed = preprocessor.run(document)
        var schema = SchemaChecker(strict: options.strict)
        schema.check(processed)
        let project = ProjectDecoder.decode(processed.root)
        var semantic = SemanticChecker()
        semantic.check(processed.root, project)
        let diagnostics = Self.ordered(preprocessor.diagnostics + schema.diagnostics + semantic.diagnostics)
        return LoadedProject(document: processed, project: project, diagnostics: diagnostics, unsupported: schema.unsupported)
    }

    /// Checks again a document changed after loading (`<archivedir>` packed, keys fetched), keeping the
    /// first load's findings: its preprocessing already ran, so its warnings would not come again.
    public static func recheck(_ document: XMLDocument, after first: LoadedProject, options: Options) -> LoadedProject {
        var loaded = check(document, options: options)
        loaded.diagnostics = ordered(first.diagnostics + loaded.diagnostics)
        return loaded
    }

    /// Sorted by place, duplicates (the same message at the same place) dropped.
    static func ordered(_ diagnostics: [Diagnostic]) -> [Diagnostic] {
        var seen = Set<Diagnostic>()
        let unique = diagnostics.filter { seen.insert($0).inserted }
        return unique.enumerated().sorted { a, b in
            switch (a.element.location, b.element.location) {
            case let (x?, y?) where x != y: return x < y
            case (nil, _?): return false
            case (_?, nil): return true
            default: return a.offset < b.offset
            }
        }.map(\.element)
    }
}
