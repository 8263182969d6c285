import Foundation
import HavelCore
import Logging
import Synchronization
import SystemKit

/// What a running build tells its front end. A build logs through swift-log; these are what its records
/// mean to a front end (a progress line, the daemon's project status), read by `BuildEventReader`.
public enum BuildEvent: Sendable, Equatable {
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

extension Logger {
    /// A stage begins: "== NAME" in the log, a stage event for front ends.
    func stageStarted(_ name: String) {
        info("== \(name)", metadata: [HavelLogKey.event: "stage-started", "havel.stage": "\(name)"])
    }

    /// A stage ended after `seconds` (taken from the stage cache, or made).
    func stageFinished(_ name: String, seconds: Double, cached: Bool) {
        info("== \(name) done in \(String(format: "%.1f", seconds)) s\(cached ? " (from the stage cache)" : "")",
             metadata: [HavelLogKey.event: "stage-finished", "havel.stage": "\(name)",
                        "havel.seconds": "\(seconds)", "havel.cached": "\(cached)"])
    }
}

/// Reads a build's log records as front-end events: stages from their metadata, warnings from their
/// level, and from the tools' output the packages set up (dpkg's "Setting up"), the bytes fetched (apt's
/// "Get:") and the running tool's phase (mmdebstrap's "I: ").
public struct BuildEventReader: Sendable {
    var packagesTotal = 0
    var packagesDone = 0
    var fetched: UInt64 = 0

    public init() {}

    public mutating func events(_ record: LogEvent) -> [BuildEvent] {
        let metadata = record.metadata ?? [:]
        let text = record.message.description
        switch metadata[HavelLogKey.event]?.description {
        case "stage-started":
            return [.stageStarted(metadata["havel.stage"]?.description ?? text)]
        case "stage-finished":
            return [.stageFinished(metadata["havel.stage"]?.description ?? text,
                                   seconds: metadata["havel.seconds"].flatMap { Double($0.description) } ?? 0,
                                   cached: metadata["havel.cached"]?.description == "true")]
        default: break
        }
        if record.level >= .warning { return [.warning(text)] }
        guard metadata[HavelLogKey.tool] != nil else { return [.log(text)] }
        return [.log(text)] + (tool(text).map { [$0] } ?? [])
    }

    /// The progress a line of tool output shows, if any.
    mutating func tool(_ line: String) -> BuildEvent? {
        if line.hasPrefix("Get:"), let bracket = line.range(of: "[", options: .backwards),
           let size = Self.parseSize(String(line[bracket.upperBound...].dropLast())) {
            fetched += size
            return .fetched(bytes: fetched)
        } else if line.hasPrefix("I: ") {
            return .detail(String(line.dropFirst(3)))
        } else if line.hasPrefix("Setting up ") {
            packagesDone += 1
            return .packages(done: packagesDone, total: max(packagesTotal, packagesDone))
        } else if let range = line.range(of: " newly installed, ") {
            packagesTotal += line[..<range.lowerBound].split(separator: " ").last.flatMap { Int($0) } ?? 0
        }
        return nil
    }

    /// apt's sizes: "1,234 kB", "12.3 MB", "999 B".
    static func parseSize(_ text: String) -> UInt64? {
        let parts = text.trimmingWhitespace().split(separator: " ")
        guard parts.count == 2, let value = Double(parts[0].replacingOccurrences(of: ",", with: "")) else { return nil }
        let factor: Double = switch parts[1] { case "B": 1; case "kB": 1e3; case "MB": 1e6; case "GB": 1e9; default: 0 }
        return factor == 0 ? nil : UInt64(value * factor)
    }
}

/// A swift-log handler that turns a build's records into `BuildEvent`s for a front end (the terminal's
/// progress line, the daemon's project status). Copies of it share one reader, as copies of a Logger do.
public struct BuildEventHandler: MetadataKeepingLogHandler {
    private final class SharedReader: Sendable {
        let reader = Mutex(BuildEventReader())
    }

    private let shared = SharedReader()
    private let sink: @Sendable (BuildEvent) -> Void
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]

    public init(sink: @escaping @Sendable (BuildEvent) -> Void) {
        self.sink = sink
    }

    public func log(event: LogEvent) {
        for buildEvent in shared.reader.withLock({ $0.events(event) }) { sink(buildEvent) }
    }
}
