import Foundation

/// Plain output to stdout and stderr.
enum Terminal {
    static func out(_ text: String) {
        // A closed terminal or pipe must not end Havel in the middle of a cleanup.
        try? FileHandle.standardOutput.write(contentsOf: Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }

    static func error(_ text: String) {
        try? FileHandle.standardError.write(contentsOf: Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }

    static var stdoutIsTerminal: Bool { isatty(1) == 1 }
}
