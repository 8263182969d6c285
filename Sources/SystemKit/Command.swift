// SystemKit owns Havel's contact with the operating system: running processes (with an explicit
// environment, output limits, streaming and a SIGTERM → SIGKILL ladder on cancellation) behind the
// `ProcessRunning` seam, the host's facts, mounts, binfmt_misc, path-safe file operations, and the small
// helpers every module shares (atomic files, shell words, output tails, errno text). It knows nothing
// about Debian.

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

extension Command {
    /// Words joined into one shell line, each quoted as needed.
    public static func shellLine(_ words: [String]) -> String { words.map(shellQuote).joined(separator: " ") }

    /// This command in a private mount namespace (`unshare --mount --propagation private`): the /proc, /sys
    /// and /dev mounts a bootstrap tool makes in a tree vanish with it, even when it is killed before it
    /// can unmount them.
    public func inPrivateMountNamespace() -> Command {
        var wrapped = self
        wrapped.executable = "unshare"
        wrapped.arguments = ["--mount", "--propagation", "private", "--", executable] + arguments
        return wrapped
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
