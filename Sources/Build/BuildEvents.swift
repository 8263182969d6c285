import Foundation
import Synchronization
import HavelCore
import SystemKit

/// What a running build tells its front end.
public enum BuildEvent: Sendable {
    case stageStarted(String)
    case stageFinished(String, seconds: Double, cached: Bool)
    /// A line of the build log (tool output or Havel's own messages).
    case log(String)
    /// Packages set up so far and in all (from dpkg's output).
    case packages(done: Int, total: Int)
    /// Bytes downloaded so far.
    case fetched(bytes: UInt64)
    case warning(String)
    /// What the running tool is doing now (mmdebstrap's "I: …" phases).
    case detail(String)
}

/// The build log: every line, timestamped, into log.txt, and on to the front end.
public final class BuildLog: Sendable {
    /// What the log writes to and counts, behind one lock: lines from several tools' threads stay whole.
    private struct State {
        var fd: Int32 = -1
        var packagesTotal = 0
        var packagesDone = 0
        var fetched: UInt64 = 0
    }

    private let state = Mutex(State())
    private let sink: @Sendable (BuildEvent) -> Void
    private let started = ContinuousClock.now

    /// Starts log.txt afresh, or continues it (`appending`). The file is opened in place, never replaced,
    /// so a reader following it by inode keeps reading the same log.
    public init(path: String?, appending: Bool = false, sink: @escaping @Sendable (BuildEvent) -> Void) throws(HavelError) {
        self.sink = sink
        if let path {
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (appending ? O_APPEND : O_TRUNC), 0o644)
            guard fd >= 0 else {
                throw HavelError(.io, "cannot create the build log \(path): \(errnoText())")
            }
            state.withLock { $0.fd = fd }
        }
    }

    deinit { close() }

    public func close() {
        state.withLock { state in
            if state.fd >= 0 { Glibc.close(state.fd) }
            state.fd = -1
        }
    }

    func stamp() -> String {
        let seconds = (ContinuousClock.now - started).inSeconds
        let text = String(Int(seconds * 10) / 10) + "." + String(Int(seconds * 10) % 10)
        return "[" + String(repeating: " ", count: max(0, 6 - text.count)) + text + "]"
    }

    func write(_ line: String) {
        let bytes = Array((stamp() + " " + line + "\n").utf8)
        state.withLock { state in
            guard state.fd >= 0 else { return }
            var offset = 0
            while offset < bytes.count {
                let count = bytes.withUnsafeBytes { Glibc.write(state.fd, $0.baseAddress! + offset, bytes.count - offset) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { return }
                offset += count
            }
        }
    }

    /// A line of Havel's own.
    public func info(_ line: String) {
        write(line)
        sink(.log(line))
    }

    public func warning(_ line: String) {
        write("WARNING: " + line)
        sink(.warning(line))
    }

    public func event(_ event: BuildEvent) {
        switch event {
        case .stageStarted(let name): write("== \(name)")
        case .stageFinished(let name, let seconds, let cached):
            write("== \(name) done in \(String(format: "%.1f", seconds)) s\(cached ? " (from the stage cache)" : "")")
        default: break
        }
        sink(event)
    }

    /// A line of a tool's output: logged, and read for progress (apt's Get:, dpkg's Setting up).
    public func tool(_ line: String) {
        write("  " + line)
        let progress = state.withLock { state -> BuildEvent? in
            if line.hasPrefix("Get:"), let bracket = line.range(of: "[", options: .backwards),
               let size = Self.parseSize(String(line[bracket.upperBound...].dropLast())) {
                state.fetched += size
                return .fetched(bytes: state.fetched)
            } else if line.hasPrefix("I: ") {
                return .detail(String(line.dropFirst(3)))
            } else if line.hasPrefix("Setting up ") {
                state.packagesDone += 1
                return .packages(done: state.packagesDone, total: max(state.packagesTotal, state.packagesDone))
            } else if let range = line.range(of: " newly installed, ") {
                let number = line[..<range.lowerBound].split(separator: " ").last.flatMap { Int($0) } ?? 0
                state.packagesTotal += number
            }
            return nil
        }
        sink(.log(line))
        if let progress { sink(progress) }
    }

    /// apt's sizes: "1,234 kB", "12.3 MB", "999 B".
    static func parseSize(_ text: String) -> UInt64? {
        let parts = text.trimmingWhitespace().split(separator: " ")
        guard parts.count == 2, let value = Double(parts[0].replacingOccurrences(of: ",", with: "")) else { return nil }
        let factor: Double = switch parts[1] { case "B": 1; case "kB": 1e3; case "MB": 1e6; case "GB": 1e9; default: 0 }
        return factor == 0 ? nil : UInt64(value * factor)
    }
}
