import Synchronization

/// The last lines of a process's output, for error messages: bounded, safe to append from the thread
/// that reads the process while another waits for it.
public final class LineTail: Sendable {
    private let lines = Mutex<[String]>([])
    public let limit: Int

    public init(limit: Int) {
        self.limit = limit
    }

    public func append(_ line: String) {
        lines.withLock { lines in
            lines.append(line)
            if lines.count > limit { lines.removeFirst(lines.count - limit) }
        }
    }

    /// The lines kept, oldest first.
    public var all: [String] { lines.withLock { $0 } }

    public var text: String { all.joined(separator: "\n") }
}
