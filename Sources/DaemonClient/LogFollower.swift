import AsyncHTTPClient
import DaemonAPI
import Foundation
import HavelCore
import Logging
import NIOCore

/// Follows a project's build log until the build has ended, whatever the silence in between. It reads
/// `LogEvents` over its own HTTP client whose read timeout is an idle timeout (the daemon sends
/// keep-alives well within it), never a deadline for the whole build. When the stream drops or idles
/// out anyway, it asks the daemon whether the build still runs and reconnects from the last byte
/// offset it printed, so no line comes twice; once the build has ended it reads the rest of the log
/// and finishes. The end of the build is the project's status, never merely the stream's end.
struct LogFollower: Sendable {
    let client: DaemonClient
    let id: ProjectID
    let idleTimeout: Duration
    /// Where a reconnection is told (as a warning).
    let logger: Logger
    /// How long the daemon may be out of reach (no event, no answer) before following gives up.
    var patience: Duration = .seconds(300)

    func lines() -> AsyncThrowingStream<String, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: String.self)
        let task = Task {
            do throws(HavelError) {
                try await follow { continuation.yield($0) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    func follow(_ emit: (String) -> Void) async throws(HavelError) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(30), read: .milliseconds(max(1, idleTimeout.inMilliseconds)))
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do throws(HavelError) {
            try await follow(using: http, emit)
        } catch {
            try? await http.shutdown()
            throw error
        }
        try? await http.shutdown()
    }

    private func follow(using http: HTTPClient, _ emit: (String) -> Void) async throws(HavelError) {
        let clock = ContinuousClock()
        var offset: UInt64 = 0
        var lastContact = clock.now
        var pause: Duration = .milliseconds(500)
        while true {
            var reader = LogEvents.Reader()
            var ended = false
            var failure: HavelError?
            do throws(HavelError) {
                try await client.stream(.GET, DaemonRoute.log(id, follow: true, offset: offset),
                                        headers: [("Accept", LogEvents.contentType)], using: http) { chunk throws(HavelError) in
                    lastContact = clock.now
                    pause = .milliseconds(500)
                    let events: [LogEvents.Event]
                    do {
                        events = try reader.feed(chunk.readableBytesView)
                    } catch {
                        throw HavelError(.io, "the daemon's log stream for project \(id) is malformed: \(error)")
                    }
                    for event in events {
                        switch event {
                        case let .line(text, endOffset):
                            // A restarted log (a new build) begins again at a lower offset.
                            emit(text)
                            offset = endOffset
                        case .end: ended = true
                        case .keepAlive: break
                        }
                    }
                }
            } catch where error.code == .io {
                failure = error
            }
            if ended { return }
            try Task.checkCancellation(or: "stopped following the log of project \(id)")

            // The stream ended or went quiet without the end event: is the build still running?
            let status: ProjectStatus
            do throws(HavelError) {
                status = try await client.project(id).status
                lastContact = clock.now
            } catch where error.code == .io {
                guard clock.now - lastContact < patience else {
                    throw HavelError(.io, "lost the daemon for \(patience) while following project \(id)'s log: \(error.message)")
                }
                status = .busy
            }
            if status != .busy {
                // Ended while we were away: what the log gained since our offset, then done.
                let rest = try await client.log(id, from: offset)
                var text = String(decoding: rest, as: UTF8.self)
                if text.hasSuffix("\n") { text.removeLast() }
                if !rest.isEmpty { text.split(separator: "\n", omittingEmptySubsequences: false).forEach { emit(String($0)) } }
                return
            }
            let why = failure.map { "broke off (\($0.message))" } ?? "ended early"
            logger.warning("the log of project \(id) \(why); the build still runs, following again from byte \(offset)")
            do {
                try await Task.sleep(for: pause)
            } catch {
                throw HavelError(.cancelled, "stopped following the log of project \(id)")
            }
            pause = min(pause * 2, .seconds(10))
        }
    }
}

extension Task where Success == Never, Failure == Never {
    static func checkCancellation(or message: String) throws(HavelError) {
        if Task.isCancelled { throw HavelError(.cancelled, message) }
    }
}
