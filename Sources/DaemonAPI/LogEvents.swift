// The framing of a followed build log, shared by the daemon (which writes it) and its clients (which read it).

import Foundation

/// A followed log as server-sent events (text/event-stream). Each complete log line is one event whose id
/// is the log's byte offset just after that line, so a client that lost its connection asks again from
/// that offset and sees no line twice. A comment (`: keep-alive`) goes out whenever the log has been quiet
/// for the daemon's keep-alive interval, so a client can use an idle timeout instead of a deadline. The
/// `end` event, whose data is the project's status, says that the build has ended and nothing follows.
public enum LogEvents {
    public static let contentType = "text/event-stream"
    /// The request header a resuming client (or a browser's EventSource) sends with the last id it saw.
    public static let lastEventIDHeader = "Last-Event-ID"
    public static let endEvent = "end"
    /// How often the daemon sends a keep-alive while the log is quiet, unless configured otherwise.
    public static let defaultKeepAlive: Duration = .seconds(15)
    /// How long a client waits for any byte (a line or a keep-alive) before it reconnects: well above the keep-alive.
    public static let defaultIdleTimeout: Duration = .seconds(60)

    /// One log line as an event. Carriage returns inside the line end a `data:` field each (the format
    /// knows no other way to carry them); the reader joins those parts with newlines.
    public static func line(_ text: Substring, endOffset: UInt64) -> String {
        var event = "id: \(endOffset)\n"
        for part in text.split(separator: "\r", omittingEmptySubsequences: false) { event += "data: \(part)\n" }
        return event + "\n"
    }

    public static let keepAlive = ": keep-alive\n\n"

    public static func end(status: String) -> String { "event: \(endEvent)\ndata: \(status)\n\n" }

    /// What a reader takes out of the stream.
    public enum Event: Equatable, Sendable {
        /// A log line and the offset to resume from after it.
        case line(String, endOffset: UInt64)
        /// The build ended with this project status.
        case end(status: String)
        /// A comment: the connection is alive.
        case keepAlive
    }

    /// Parses events out of the bytes as they arrive; a partial event waits for the next chunk. An event
    /// line longer than `maximumLine` is an error: the daemon never sends one, and the reader must stay bounded.
    public struct Reader: Sendable {
        public static let maximumLine = 4 << 20
        private var pending: [UInt8] = []
        private var id: UInt64?
        private var name: String?
        private var data: [String] = []
        private var hasData = false

        public init() {}

        public struct Malformed: Error, CustomStringConvertible {
            public let description: String
        }

        public mutating func feed(_ bytes: some Sequence<UInt8>) throws(Malformed) -> [Event] {
            pending.append(contentsOf: bytes)
            var events: [Event] = []
            var start = 0
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                var end = newline
                if end > start, pending[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                let line = String(decoding: pending[start..<end], as: UTF8.self)
                start = newline + 1
                if let event = try take(line) { events.append(event) }
            }
            pending.removeFirst(start)
            guard pending.count <= Self.maximumLine else {
                throw Malformed(description: "an event line of more than \(Self.maximumLine) bytes")
            }
            return events
        }

        private mutating func take(_ line: String) throws(Malformed) -> Event? {
            if line.isEmpty {
                defer { id = nil; name = nil; data = []; hasData = false }
                if name == LogEvents.endEvent { return .end(status: data.joined(separator: "\n")) }
                guard hasData else { return nil }
                guard let id else { throw Malformed(description: "a log event without an id") }
                return .line(data.joined(separator: "\n"), endOffset: id)
            }
            if line.hasPrefix(":") { return .keepAlive }
            let field: Substring
            var value: Substring
            if let colon = line.firstIndex(of: ":") {
                field = line[..<colon]
                value = line[line.index(after: colon)...]
                if value.hasPrefix(" ") { value = value.dropFirst() }
            } else {
                field = line[...]
                value = ""
            }
            switch field {
            case "id":
                guard let offset = UInt64(value) else { throw Malformed(description: "event id \(value) is not a byte offset") }
                id = offset
            case "event": name = String(value)
            case "data":
                data.append(String(value))
                hasData = true
            default: break
            }
            return nil
        }
    }
}
