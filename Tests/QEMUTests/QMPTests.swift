import Foundation
import HavelCore
import Synchronization
import SystemKit
import Testing
@testable import QEMU

/// The QMP client against a stand-in server on a unix socket: commands, skipped events, and a time-out
/// that holds when qemu greets and then says nothing.
@Suite struct QMPTests {
    @Test func powerdown() async throws {
        let base = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let socket = base + "/qmp.sock"
        let server = try QMPStandIn(path: socket)
        defer { server.stop() }
        // A generous deadline: the stand-in answers at once, but heavy tests running beside this one can hold
        // every thread of the concurrency pool for seconds (seen: 9 s), which QMP's own 5 s is not made for.
        try await QMP.execute("system_powerdown", socket: socket, timeout: .seconds(120))
        #expect(server.commands == ["qmp_capabilities", "system_powerdown"])
        await #expect(throws: HavelError.self) { try await QMP.execute("system_powerdown", socket: base + "/none.sock") }
    }

    @Test func aSilentQemuEndsTheCallAtItsTimeOut() async throws {
        let base = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let socket = base + "/qmp.sock"
        let server = try QMPStandIn(path: socket, answers: false)
        defer { server.stop() }
        // No clock is asserted (a loaded machine may be slow): the call ending at all is the point.
        let error = await #expect(throws: HavelError.self) {
            try await QMP.execute("system_powerdown", socket: socket, timeout: .milliseconds(300))
        }
        #expect(error?.message.contains("no answer in time") == true, "\(error?.description ?? "")")
    }

    static func directory() throws -> String {
        let path = NSTemporaryDirectory() + "havel-qmp-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// A QMP server that greets, records every command and (unless told not to) answers it with an event
/// and `{"return": {}}`. One client; its thread ends when the client goes.
final class QMPStandIn: Sendable {
    private let fd: Int32
    private let received = Mutex<[String]>([])

    var commands: [String] { received.withLock { $0 } }

    init(path: String, answers: Bool = true) throws {
        let listener = try Sockets.listenUnix(path)
        fd = listener
        Thread.detachNewThread { [self] in
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            defer { close(client) }
            try? Sockets.writeAll(client, Array(#"{"QMP": {"version": {}, "capabilities": []}}"#.utf8) + [13, 10])
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 1024)
            while true {
                let count = recv(client, &buffer, buffer.count, 0)
                if count <= 0 { return }
                pending += buffer[0..<count]
                while let newline = pending.firstIndex(of: 10) {
                    let line = Array(pending[..<newline])
                    pending.removeFirst(newline + 1)
                    guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                          let name = object["execute"] as? String else { continue }
                    received.withLock { $0.append(name) }
                    guard answers else { continue }
                    // An event first, as qemu may send: the client must skip it.
                    try? Sockets.writeAll(client, Array(#"{"event": "POWERDOWN", "timestamp": {}}"#.utf8) + [13, 10])
                    try? Sockets.writeAll(client, Array(#"{"return": {}}"#.utf8) + [13, 10])
                }
            }
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
