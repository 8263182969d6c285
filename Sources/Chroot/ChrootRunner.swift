// Chroot owns entering a target rootfs: commands run in a private mount and PID namespace with
// /proc, /sys and /dev mounted only for them (the kernel drops those mounts when the namespace ends,
// whatever happens to Havel), target binaries run through qemu-user via binfmt_misc, and the
// excursions a session needs (policy-rc.d, resolv.conf) are undone on every exit path.

import Foundation
import HavelCore
import SystemKit

/// Runs commands inside a root filesystem.
public struct ChrootRunner: Sendable {
    public let root: String
    /// Who runs the session's command (a recording runner in unit tests).
    public let processes: any ProcessRunning

    public static let environment: [String: String] = [
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_ALL": "C", "LANG": "C", "HOME": "/root", "DEBIAN_FRONTEND": "noninteractive",
        "DEBCONF_NONINTERACTIVE_SEEN": "true",
    ]

    public init(root: String, processes: any ProcessRunning = SystemProcesses()) {
        self.root = root
        self.processes = processes
    }

    /// The mounts a chroot session sees, set up inside the new namespace before `chroot`.
    static let wrapper = """
    set -e
    root="$1"; shift
    mount --make-rprivate / 2>/dev/null || true
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --rbind /dev "$root/dev"
    exec chroot "$root" "$@"
    """

    /// The host command that runs `arguments` inside the tree.
    public func command(_ arguments: [String], environment extra: [String: String] = [:]) -> Command {
        Command("unshare", ["--mount", "--pid", "--fork", "--kill-child", "--", "sh", "-c", Self.wrapper, "havel-chroot", root] + arguments,
                environment: Self.environment.merging(extra) { _, new in new })
    }

    /// Runs and collects output.
    public func run(_ arguments: [String], input: [UInt8] = [], environment: [String: String] = [:]) async throws(HavelError) -> ProcessResult {
        try await processes.run(command(arguments, environment: environment), input: input)
    }

    /// Runs, streaming every output line to `onLine`; throws unless it exits 0.
    public func check(_ arguments: [String], what: String, environment: [String: String] = [:],
                      onLine: @escaping @Sendable (String) -> Void) async throws(HavelError) {
        let lines = LineTail(limit: 8)
        let status = try await processes.stream(command(arguments, environment: environment)) { line in
            lines.append(line)
            onLine(line)
        }
        guard status == .exited(0) else {
            throw HavelError(.processFailed, "\(what) failed in the target (\(status))" + (lines.text.isEmpty ? "" : ":\n" + lines.text))
        }
    }

    /// Checks that the tree can be entered at all: it has the directories to mount on and a shell.
    public func checkEnterable() throws(HavelError) {
        for dir in ["proc", "sys", "dev"] where !FileManager.default.fileExists(atPath: "\(root)/\(dir)") {
            throw HavelError(.notFound, "\(root) has no /\(dir); it is not a root filesystem Havel built")
        }
    }
}
