// SystemKit owns Havel's contact with the operating system: running processes (with an explicit
// environment, output limits, streaming and a SIGTERM → SIGKILL ladder on cancellation), and later
// mounts, binfmt_misc and path-safe file operations. It knows nothing about Debian.

import HavelCore

/// A process to run: what, with which arguments, in which environment and directory.
/// The environment is an allow-list: nothing of Havel's own environment leaks in unless named.
public struct Command: Sendable, Hashable, CustomStringConvertible {
    public var executable: String
    public var arguments: [String]
    public var environment: [String: String]
    public var workingDirectory: String?

    /// What every child gets unless overridden: C locale, a sane PATH, a HOME that is not `/`.
    public static let baseEnvironment: [String: String] = [
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_ALL": "C",
        "LANG": "C",
        "HOME": "/root",
    ]

    public init(_ executable: String, _ arguments: [String] = [], environment: [String: String] = [:],
                workingDirectory: String? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.environment = Self.baseEnvironment.merging(environment) { _, new in new }
        self.workingDirectory = workingDirectory
    }

    /// The command as a shell would show it (for logs), quoting what needs quoting.
    public var description: String {
        ([executable] + arguments).map(Self.shellQuote).joined(separator: " ")
    }

    public static func shellQuote(_ word: String) -> String {
        let safe = word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,@+%".contains($0) }
        if safe && !word.isEmpty { return word }
        return "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }
}

/// How a process ended and what it printed.
public struct ProcessResult: Sendable, Hashable {
    public enum Termination: Sendable, Hashable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        public var description: String {
            switch self {
            case .exited(let code): "exit status \(code)"
            case .signaled(let signal): "signal \(signal)"
            }
        }
    }

    public var termination: Termination
    public var standardOutput: String
    public var standardError: String

    public var succeeded: Bool { termination == .exited(0) }
}
