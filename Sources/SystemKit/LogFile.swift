import Glibc
import HavelCore
import Logging
import Synchronization

/// Metadata keys by which Havel's log records tell front ends more than their text.
public enum HavelLogKey {
    /// A structured event (a stage started or finished, packages set up, bytes fetched); its value names
    /// the kind. Build's `BuildEvent` reads and writes these records.
    public static let event = "havel.event"
    /// A line of a tool's output, written indented into a log file.
    public static let tool = "havel.tool"
}

/// A log handler that keeps its metadata in `metadata`, as Havel's do: the subscript swift-log asks for
/// comes with it.
public protocol MetadataKeepingLogHandler: LogHandler {}

extension MetadataKeepingLogHandler {
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
}

/// A log file (a build's log.txt, check-image's check-log.txt): every line stamped with the seconds since
/// the file was opened, whole lines under one lock, written in place (never replaced, so a reader that
/// follows it by inode keeps reading the same log).
public final class LogFile: Sendable {
    private let fd: Mutex<Int32>
    private let started = ContinuousClock.now

    /// Starts the file afresh, or continues it (`appending`).
    public init(path: String, appending: Bool = false) throws(HavelError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (appending ? O_APPEND : O_TRUNC), 0o644)
        guard fd >= 0 else {
            throw HavelError(.io, "cannot create the log \(path): \(errnoText())")
        }
        self.fd = Mutex(fd)
    }

    deinit { close() }

    public func close() {
        fd.withLock { fd in
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
        }
    }

    /// "[  12.3]": the seconds since the log was opened.
    func stamp() -> String {
        let tenths = Int((ContinuousClock.now - started).inSeconds * 10)
        let text = String(tenths / 10) + "." + String(tenths % 10)
        return "[" + String(repeating: " ", count: max(0, 6 - text.count)) + text + "]"
    }

    public func write(_ line: String) {
        let bytes = Array((stamp() + " " + line + "\n").utf8)
        fd.withLock { fd in
            guard fd >= 0 else { return }
            var offset = 0
            while offset < bytes.count {
                let count = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { return }
                offset += count
            }
        }
    }
}

/// The swift-log handler that writes records into a `LogFile`: warnings and errors marked as such, tool
/// output indented.
public struct LogFileHandler: MetadataKeepingLogHandler {
    public let file: LogFile
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]

    public init(_ file: LogFile) {
        self.file = file
    }

    public func log(event: LogEvent) {
        file.write(Self.line(event.level, event.message.description, tool: event.metadata?[HavelLogKey.tool] != nil))
    }

    /// How one record reads in a log file.
    public static func line(_ level: Logger.Level, _ text: String, tool: Bool) -> String {
        switch level {
        case .warning: "WARNING: " + text
        case .error, .critical: "ERROR: " + text
        default: tool ? "  " + text : text
        }
    }
}

extension Logger {
    /// A line of a tool's output (logged indented; front ends read progress from it).
    public func tool(_ line: String) {
        info("\(line)", metadata: [HavelLogKey.tool: "1"])
    }

    /// A logger that drops everything (tests, and callers that want no log).
    public static var discarding: Logger { Logger(label: "havel.discard") { _ in SwiftLogNoOpLogHandler() } }

    /// This logger's records also written into `file`.
    public func alsoWriting(to file: LogFile) -> Logger {
        let frontEnd = handler
        return Logger(label: label) { _ in MultiplexLogHandler([LogFileHandler(file), frontEnd]) }
    }
}

/// Keeps every record as a log file would show it ("WARNING: " before a warning, tool output indented):
/// the stand-in front end of tests that check what a library logged.
public final class LogRecorder: Sendable {
    private let recorded = Mutex<[String]>([])

    public init() {}

    public var lines: [String] { recorded.withLock { $0 } }
    public var text: String { lines.joined(separator: "\n") }
    public func contains(_ text: String) -> Bool { lines.contains { $0.contains(text) } }

    public var logger: Logger { Logger(label: "havel.recorded") { _ in Handler(recorder: self) } }

    struct Handler: MetadataKeepingLogHandler {
        let recorder: LogRecorder
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]

        func log(event: LogEvent) {
            let line = LogFileHandler.line(event.level, event.message.description, tool: event.metadata?[HavelLogKey.tool] != nil)
            recorder.recorded.withLock { $0.append(line) }
        }
    }
}
