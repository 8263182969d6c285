import Build
import DaemonAPI
import Logging
import Synchronization

/// The daemon's record of its builds' progress: each build's log records (through `BuildEventHandler`)
/// folded into a `BuildProgress` per project, which the API shows with the project. Kept in memory only:
/// a restarted daemon knows the stages of earlier builds from their state.json.
final class BuildProgressBook: Sendable {
    private let entries = Mutex<[ProjectID: BuildProgress]>([:])

    func progress(_ id: ProjectID) -> BuildProgress? {
        entries.withLock { $0[id] }
    }

    func forget(_ id: ProjectID) {
        _ = entries.withLock { $0.removeValue(forKey: id) }
    }

    /// A logger for a new build of `id` (its earlier progress dropped): its records reach `daemon` too.
    func logger(for id: ProjectID, daemon: Logger) -> Logger {
        entries.withLock { $0[id] = BuildProgress() }
        let recorder = BuildEventHandler { [weak self] event in self?.record(event, for: id) }
        var daemonHandler = daemon.handler
        daemonHandler[metadataKey: "project"] = "\(id)"
        return Logger(label: daemon.label) { _ in MultiplexLogHandler([recorder, daemonHandler]) }
    }

    func record(_ event: BuildEvent, for id: ProjectID) {
        entries.withLock { entries in
            guard var progress = entries[id] else { return }
            Self.apply(event, to: &progress)
            entries[id] = progress
        }
    }

    static func apply(_ event: BuildEvent, to progress: inout BuildProgress) {
        switch event {
        case .stageStarted(let name):
            progress.stages.append(.init(name: name))
            progress.detail = nil
        case .stageFinished(let name, let seconds, let cached):
            if let index = progress.stages.lastIndex(where: { $0.name == name && $0.seconds == nil }) {
                progress.stages[index].seconds = seconds
                progress.stages[index].cached = cached
            } else {
                progress.stages.append(.init(name: name, seconds: seconds, cached: cached))
            }
        case .packages(let done, let total):
            progress.packagesDone = done
            progress.packagesTotal = total
        case .fetched(let bytes):
            progress.fetchedBytes = bytes
        case .detail(let text):
            progress.detail = text
        case .warning(let text):
            progress.warnings = Array((progress.warnings + [text]).suffix(BuildProgress.warningsKept))
        case .log:
            break
        }
    }
}
