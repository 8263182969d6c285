import Foundation
import HavelCore
import SystemKit

/// A minimal client of QMP, qemu's machine protocol on a unix socket: greeting, `qmp_capabilities`,
/// then one command and its `return`. Every read and write awaits the socket through `Readiness`,
/// within the one time-out of the call.
public enum QMP {
    /// Runs `command` (e.g. `system_powerdown`, `quit`) on the QMP socket; throws when qemu
    /// answers with an error or not at all.
    public static func execute(_ command: String, socket path: String, timeout: Duration = .seconds(5)) async throws(HavelError) {
        if let outcome = await exchange(command, socket: path, deadline: .now + timeout) {
            throw HavelError(.processFailed, "QMP \(command) on \(path): \(outcome)")
        }
    }

    /// nil when qemu returned; otherwise why not.
    static func exchange(_ command: String, socket path: String, deadline: ContinuousClock.Instant) async -> String? {
        let fd: Int32
        do {
            fd = try Sockets.connectUnix(path, timeout: max(0.001, (deadline - .now).inSeconds))
        } catch {
            return error.description
        }
        defer { close(fd) }
        var reader = LineReader(fd: fd)
        do {
            guard let greeting = try await reader.nextObject(deadline: deadline), greeting["QMP"] != nil else { return "no QMP greeting" }
            for name in ["qmp_capabilities", command] {
                try await Sockets.sendAll(fd, Array("{\"execute\": \"\(name)\"}\r\n".utf8), until: deadline)
                while true {
                    guard let object = try await reader.nextObject(deadline: deadline) else { return "the connection closed" }
                    if object["return"] != nil { break }
                    if let error = object["error"] as? [String: Any] { return "\(error["desc"] ?? error)" }
                    // Anything else is an asynchronous event: skip it.
                }
            }
        } catch {
            // `quit` may close the socket before its answer arrives: that is success too.
            return command == "quit" ? nil : error.description
        }
        return nil
    }

    /// QMP's messages: one JSON object a line.
    struct LineReader {
        let fd: Int32
        var pending: [UInt8] = []
        /// A read returned after the deadline: what it brought is looked at, then the call ends (a qemu
        /// that floods events cannot keep it).
        var overdue = false

        init(fd: Int32) { self.fd = fd }

        mutating func nextObject(deadline: ContinuousClock.Instant) async throws(Sockets.Failure) -> [String: Any]? {
            while true {
                if let newline = pending.firstIndex(of: 10) {
                    let line = Array(pending[..<newline])
                    pending.removeFirst(newline + 1)
                    guard !line.allSatisfy({ $0 == 13 || $0 == 32 }) else { continue }
                    return (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] ?? [:]
                }
                if overdue { throw Sockets.Failure("no answer in time") }
                switch try await Sockets.receive(fd, limit: 4096, until: deadline) {
                case .bytes(let chunk):
                    pending += chunk
                    overdue = ContinuousClock.now >= deadline
                case .closed: return nil
                case .timedOut: throw Sockets.Failure("no answer in time")
                case .cancelled: throw Sockets.Failure("cancelled")
                }
            }
        }
    }
}
