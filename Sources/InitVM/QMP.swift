import Foundation
import HavelCore

/// A minimal QMP client: greeting, `qmp_capabilities`, then one command and its `return`.
public enum QMP {
    /// Runs `command` (e.g. `system_powerdown`, `quit`) on the QMP socket; throws when qemu
    /// answers with an error or not at all.
    public static func execute(_ command: String, socket path: String, timeout: Duration = .seconds(5)) async throws(HavelError) {
        let seconds = InitVMTime.seconds(timeout)
        let outcome: String? = await Sockets.offload { executeNow(command, socket: path, timeout: seconds) }
        if let outcome { throw HavelError(.processFailed, "QMP \(command) on \(path): \(outcome)") }
    }

    /// nil when qemu returned; otherwise why not.
    static func executeNow(_ command: String, socket path: String, timeout: Double) -> String? {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        let fd: Int32
        do {
            fd = try Sockets.connectUnix(path, timeout: timeout)
        } catch {
            return error.description
        }
        defer { close(fd) }
        var reader = LineReader(fd: fd)
        do {
            guard let greeting = try reader.nextObject(deadline: deadline), greeting["QMP"] != nil else { return "no QMP greeting" }
            for name in ["qmp_capabilities", command] {
                try Sockets.writeAll(fd, Array("{\"execute\": \"\(name)\"}\r\n".utf8))
                while true {
                    guard let object = try reader.nextObject(deadline: deadline) else { return "the connection closed" }
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

    struct LineReader {
        let fd: Int32
        var pending: [UInt8] = []

        init(fd: Int32) { self.fd = fd }

        mutating func nextObject(deadline: ContinuousClock.Instant) throws(Sockets.Failure) -> [String: Any]? {
            while true {
                if let newline = pending.firstIndex(of: 10) {
                    let line = Array(pending[..<newline])
                    pending.removeFirst(newline + 1)
                    guard !line.allSatisfy({ $0 == 13 || $0 == 32 }) else { continue }
                    return (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] ?? [:]
                }
                guard ContinuousClock.now < deadline else { throw Sockets.Failure("no answer in time") }
                var buffer = [UInt8](repeating: 0, count: 4096)
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count == 0 { return nil }
                if count < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { throw Sockets.Failure("no answer in time") }
                    throw Sockets.Failure("read", errno: errno)
                }
                pending += buffer[0..<count]
            }
        }
    }
}

/// The initvm's qemu process as the host sees it. The VM is found by its command line (the QMP
/// socket path names the directory), not only by the pid file, so a stale or missing pid file can
/// never lead to a second qemu for the same initvm.
public enum QemuProcesses {
    /// Live (not zombie) processes whose command line names this directory's QMP socket.
    public static func find(_ directory: InitVMDirectory) -> [Int32] {
        let marker = "unix:" + directory.qmpSocket + ","
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let words = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return words.contains { $0 == marker.dropLast() || $0.hasPrefix(marker) } && isAlive(pid)
        }.sorted()
    }

    /// Alive and not a zombie waiting to be reaped.
    public static func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].trimmingWhitespace().first
        return state != "Z" && state != "X"
    }

    /// Waits until none of `pids` is alive; false when `timeout` passed first.
    public static func waitForExit(_ pids: [Int32], timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while pids.contains(where: isAlive) {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return true
    }

    public static func readPidFile(_ path: String) -> Int32? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int32($0.trimmingWhitespace()) }
    }
}
