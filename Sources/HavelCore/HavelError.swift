// HavelCore owns Havel's value types (the project model, architectures, sizes, source locations)
// and its one error type. It does no I/O.

/// A place in a project file: 1-based line and column (columns count Unicode scalars).
public struct SourceLocation: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }

    public static func < (a: SourceLocation, b: SourceLocation) -> Bool {
        (a.file, a.line, a.column) < (b.file, b.line, b.column)
    }
}

/// One finding about a project file, printed as `file:line:column: element-path: message`.
public struct Diagnostic: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Severity: String, Sendable, Codable { case error, warning }

    public var severity: Severity
    public var location: SourceLocation?
    /// Element path such as `/RootFileSystem/target/images/msdoshd[1]/partition[2]/size`.
    public var elementPath: String?
    public var message: String

    public init(_ severity: Severity, at location: SourceLocation?, path: String?, _ message: String) {
        self.severity = severity
        self.location = location
        self.elementPath = path
        self.message = message
    }

    public var description: String {
        var parts: [String] = []
        if let location { parts.append(location.description) }
        if let elementPath { parts.append(elementPath) }
        if severity == .warning { parts.append("warning") }
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}

/// Havel's one error type: a code, a lowercase message that names the object, where it happened, why.
public struct HavelError: Error, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let invalidArgument = Code(rawValue: "invalid-argument")
        public static let invalidProject = Code(rawValue: "invalid-project")
        public static let malformedXML = Code(rawValue: "malformed-xml")
        public static let io = Code(rawValue: "io")
        public static let notFound = Code(rawValue: "not-found")
        public static let unsupported = Code(rawValue: "unsupported")
        public static let processFailed = Code(rawValue: "process-failed")
        public static let internalError = Code(rawValue: "internal")
        public static let cancelled = Code(rawValue: "cancelled")
        public static let hostNotReady = Code(rawValue: "host-not-ready")
    }

    public var code: Code
    public var message: String
    public var location: SourceLocation?
    public var diagnostics: [Diagnostic]
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, at location: SourceLocation? = nil,
                diagnostics: [Diagnostic] = [], cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.location = location
        self.diagnostics = diagnostics
        self.cause = cause
    }

    public var description: String {
        var text = location.map { "\($0): \(message)" } ?? message
        if let cause { text += " (\(cause))" }
        return text
    }
}
