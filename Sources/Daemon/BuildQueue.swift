import DaemonAPI
import Foundation
import HavelCore

/// Builds waiting and running: at most `limit` run at once, each in its own task; the rest wait in order.
actor BuildQueue {
    typealias Job = @Sendable (ProjectID, BuildRequest) async -> Void

    let limit: Int
    private let job: Job
    private var waiting: [ProjectID] = []
    /// How each waiting build was asked for.
    private var requests: [ProjectID: BuildRequest] = [:]
    private var running: [ProjectID: Task<Void, Never>] = [:]
    private var stopped = false
    /// Continuations of those waiting for a project's build to end (log followers).
    private var watchers: [ProjectID: [CheckedContinuation<Void, Never>]] = [:]

    init(limit: Int, job: @escaping Job) {
        self.limit = max(1, limit)
        self.job = job
    }

    /// Queues a build; false once the queue is shut down. A project whose last build is still
    /// recording its end waits until it has.
    func enqueue(_ id: ProjectID, _ request: BuildRequest = BuildRequest()) -> Bool {
        guard !stopped else { return false }
        guard !waiting.contains(id) else { return true }
        waiting.append(id)
        requests[id] = request
        pump()
        return true
    }

    /// 0 while running, n ≥ 1 for the n-th waiting, nil if neither.
    func position(of id: ProjectID) -> Int? {
        if let index = waiting.firstIndex(of: id) { return index + 1 }
        return running[id] != nil ? 0 : nil
    }

    func isActive(_ id: ProjectID) -> Bool { position(of: id) != nil }

    var runningCount: Int { running.count }

    /// Returns when the project's build (queued or running) has ended, at once if it has none.
    func waitUntilIdle(_ id: ProjectID) async {
        guard isActive(id) else { return }
        await withCheckedContinuation { continuation in watchers[id, default: []].append(continuation) }
    }

    /// What `cancel` did.
    enum Cancellation: Sendable, Equatable {
        /// The build was waiting: it left the queue and will not run.
        case removedFromQueue
        /// The build was running: its task is cancelled (it ends once the stage runner has cleaned up).
        case cancelledRunning
    }

    /// Takes a waiting build out of the queue or cancels a running one; nil when there is neither.
    func cancel(_ id: ProjectID) -> Cancellation? {
        if let index = waiting.firstIndex(of: id) {
            waiting.remove(at: index)
            requests[id] = nil
            notify(id)
            return .removedFromQueue
        }
        if let task = running[id] {
            task.cancel()
            return .cancelledRunning
        }
        return nil
    }

    /// Stops taking builds, cancels the running ones and waits for them to record how they ended.
    /// Returns the ids that were still waiting (never started).
    func shutdown() async -> [ProjectID] {
        stopped = true
        let notStarted = waiting
        waiting.removeAll()
        requests.removeAll()
        for id in notStarted { notify(id) }
        let tasks = Array(running.values)
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        return notStarted
    }

    private func pump() {
        while !stopped, running.count < limit, let index = waiting.firstIndex(where: { running[$0] == nil }) {
            let id = waiting.remove(at: index)
            let request = requests.removeValue(forKey: id) ?? BuildRequest()
            let job = self.job
            running[id] = Task {
                await job(id, request)
                self.finished(id)
            }
        }
    }

    private func finished(_ id: ProjectID) {
        running[id] = nil
        if !waiting.contains(id) { notify(id) }
        pump()
    }

    private func notify(_ id: ProjectID) {
        for continuation in watchers.removeValue(forKey: id) ?? [] { continuation.resume() }
    }
}
