import Foundation
import HavelCore

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
