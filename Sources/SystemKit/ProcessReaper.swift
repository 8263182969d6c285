import Foundation

/// Finds and ends the processes that work on a directory: those whose command line names it, or whose
/// root or working directory lies inside it. What a killed parent left behind (mmdebstrap, apt, dpkg,
/// a chroot'd maintainer script) is found this way, since Havel's children get no parent-death signal.
public enum ProcessReaper {
    /// The processes (other than this one) working on `path`.
    public static func processes(using path: String) -> [Int32] {
        let directory = path.hasSuffix("/") ? String(path.dropLast()) : path
        let own = getpid()
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard pid != own else { return false }
            for link in ["root", "cwd"] {
                if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/\(link)"),
                   target == directory || target.hasPrefix(directory + "/") {
                    return true
                }
            }
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return data.split(separator: 0).contains { argument in
                let word = String(decoding: argument, as: UTF8.self)
                return word == directory || word.hasPrefix(directory + "/") || word.contains("=" + directory)
            }
        }.sorted()
    }

    /// Sends SIGKILL to every process using `path` until none is left (a dying parent may start one
    /// more child) or `timeout` passes; returns the pids it killed.
    @discardableResult
    public static func killAll(using path: String, timeout: Duration = .seconds(10)) async -> [Int32] {
        var killed: [Int32] = []
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let found = processes(using: path)
            if found.isEmpty { break }
            for pid in found {
                kill(pid, SIGKILL)
                if !killed.contains(pid) { killed.append(pid) }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return killed
    }
}
