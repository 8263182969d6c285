import Foundation
import HavelCore
import Synchronization

/// Waits for file descriptors to become readable or writable without a thread per wait: one long-lived
/// thread polls every descriptor waited on (and a socket pair that wakes it for a new wait) and resumes the
/// waiting tasks. Each wait has a deadline; cancelling the waiting task ends its wait at once.
/// The descriptors stay as they are (blocking or not): callers read and write with `MSG_DONTWAIT`.
public final class Readiness: Sendable {
    public enum Event: Sendable {
        case readable, writable
    }

    public enum Outcome: Sendable, Equatable {
        /// Ready, closed or in error: the next read or write says which, without blocking.
        case ready
        case timedOut
        case cancelled
    }

    /// The one poller of the process.
    public static let shared = Readiness()

    private struct Waiter {
        var fd: Int32
        var events: Int16
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Outcome, Never>
    }

    private struct State: ~Copyable {
        var waiters: [UInt64: Waiter] = [:]
        var lastID: UInt64 = 0
        var started = false
    }

    private let state = Mutex(State())
    /// The wake-up line: the poller reads `wake`, a new wait writes a byte to `wakeWriter`.
    private let wake: Int32
    private let wakeWriter: Int32

    private init() {
        var ends: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        precondition(socketpair(AF_UNIX, type, 0, &ends) == 0, "socketpair: \(errnoText())")
        wake = ends[0]
        wakeWriter = ends[1]
    }

    /// Waits until `fd` is ready for `event`, `deadline` passes, or the calling task is cancelled.
    public func wait(_ fd: Int32, for event: Event, until deadline: ContinuousClock.Instant) async -> Outcome {
        if Task.isCancelled { return .cancelled }
        if ContinuousClock.now >= deadline { return .timedOut }
        let id = state.withLock { s in
            s.lastID += 1
            return s.lastID
        }
        let events = Int16(event == .readable ? POLLIN : POLLOUT)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let startThread = state.withLock { s -> Bool in
                    // Checked under the lock: a cancellation after this finds the waiter and ends it.
                    if Task.isCancelled {
                        continuation.resume(returning: .cancelled)
                        return false
                    }
                    s.waiters[id] = Waiter(fd: fd, events: events, deadline: deadline, continuation: continuation)
                    defer { s.started = true }
                    return !s.started
                }
                if startThread {
                    let thread = Thread { [self] in run() }
                    thread.name = "havel-readiness"
                    thread.start()
                }
                wakeUp()
            }
        } onCancel: {
            finish(id, .cancelled)
        }
    }

    private func finish(_ id: UInt64, _ outcome: Outcome) {
        state.withLock { s in s.waiters.removeValue(forKey: id) }?.continuation.resume(returning: outcome)
    }

    /// A full line already wakes the poller: a failed write changes nothing.
    private func wakeUp() {
        var byte: UInt8 = 1
        _ = write(wakeWriter, &byte, 1)
    }

    /// The poller: every turn ends the waits whose deadline passed, then polls the rest until the
    /// earliest deadline (or a new wait) and resumes those that are ready.
    private func run() {
        while true {
            let now = ContinuousClock.now
            let (ids, fds, timeout) = state.withLock { s -> ([UInt64], [pollfd], Int32) in
                for (id, waiter) in s.waiters where waiter.deadline <= now {
                    s.waiters.removeValue(forKey: id)
                    waiter.continuation.resume(returning: .timedOut)
                }
                let ids = Array(s.waiters.keys)
                let fds = ids.map { pollfd(fd: s.waiters[$0]!.fd, events: s.waiters[$0]!.events, revents: 0) }
                let earliest = s.waiters.values.map(\.deadline).min()
                return (ids, fds, earliest.map { Self.milliseconds(until: $0, from: now) } ?? -1)
            }
            var polled = [pollfd(fd: wake, events: Int16(POLLIN), revents: 0)] + fds
            let count = poll(&polled, nfds_t(polled.count), timeout)
            guard count > 0 else { continue }     // a time-out, or EINTR: the next turn looks again
            if polled[0].revents != 0 {
                var drained = [UInt8](repeating: 0, count: 256)
                while read(wake, &drained, drained.count) > 0 {}
            }
            for (index, id) in ids.enumerated() where polled[index + 1].revents != 0 {
                finish(id, .ready)
            }
        }
    }

    /// Rounded up, so that the poller never wakes just before a deadline and turns idly.
    static func milliseconds(until deadline: ContinuousClock.Instant, from now: ContinuousClock.Instant) -> Int32 {
        let left = (deadline - now).components
        let milliseconds = left.seconds * 1000 + (left.attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: max(0, milliseconds))
    }
}

/// Long blocking work (copying gigabytes into an image) on a thread of its own: Swift's concurrency pool
/// has as many threads as cores (two here), and work that holds one for seconds stalls every other task
/// of the process (a console read, a daemon's keep-alive) for as long. One thread a job, for jobs that
/// take seconds; short waits use `Readiness`.
public enum BlockingWork {
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws(HavelError) -> T) async throws(HavelError) -> T {
        let result: Result<T, HavelError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                do throws(HavelError) {
                    continuation.resume(returning: .success(try body()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
            thread.name = "havel-blocking-work"
            thread.start()
        }
        return try result.get()
    }
}
