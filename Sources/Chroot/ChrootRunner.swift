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

    /// The mounts a chroot session sees, set up inside the new namespace before `chroot` (the tree is `$root`).
    static let mounts = """
    mount --make-rprivate / 2>/dev/null || true
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --rbind /dev "$root/dev"
    """

    /// The session's script: the tree is `$1`, the mounts, then `last`.
    static func wrapper(then last: String) -> String {
        """
        set -e
        root="$1"; shift
        \(mounts)
        \(last)
        """
    }

    static let wrapper = wrapper(then: "exec chroot \"$root\" \"$@\"")
    /// The wrapper that hands the tree and the command to `enter` (words before them) instead of chroot.
    static let wrapperThrough = wrapper(then: "exec \"$@\"")

    /// The host command that runs `arguments` inside the tree; `enter`, when given, stands for `chroot` (it is
    /// handed the tree and the command, inside the session's mount namespace).
    public func command(_ arguments: [String], environment extra: [String: String] = [:], enter: [String]? = nil) -> Command {
        let session = enter.map { ["sh", "-c", Self.wrapperThrough, "havel-chroot", root] + $0 + [root] }
            ?? ["sh", "-c", Self.wrapper, "havel-chroot", root]
        return Command("unshare", ["--mount", "--pid", "--fork", "--kill-child", "--"] + session + arguments,
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

    /// A person's session in the tree: `shell` as a login shell in a terminal of its own (a pseudo-terminal that
    /// util-linux's `script` opens inside the namespaces and relays to the caller's), so that the shell leads its
    /// own session there: job control works and nothing is left to restore on the caller's terminal at exit. With
    /// its own host name (a UTS namespace) set to `hostname`, as the prompt shows it. Only for a caller on a terminal.
    public func sessionCommand(shell: String, hostname: String?, environment extra: [String: String] = [:]) -> Command {
        var environment = Self.environment.merging(extra) { _, new in new }
        environment["HAVEL_SESSION_SHELL"] = shell
        environment["SHELL"] = "/bin/sh"
        return Command("unshare", ["--mount", "--pid", "--uts", "--fork", "--kill-child", "--", "sh", "-c", Self.sessionWrapper, "havel-chroot",
                                   root, hostname ?? ""],
                       environment: environment)
    }

    /// As `wrapper`, then the host name, then the shell under `script` (not exec'd: the wrapper stays the
    /// namespace's first process, and `script` gets the terminal's window-size changes as any other process).
    static let sessionWrapper = """
    set -e
    root="$1"; name="$2"
    \(mounts)
    [ -z "$name" ] || hostname "$name"
    export HAVEL_SESSION_ROOT="$root"
    script --quiet --return --command 'r=$HAVEL_SESSION_ROOT; s=$HAVEL_SESSION_SHELL; unset HAVEL_SESSION_ROOT HAVEL_SESSION_SHELL; exec chroot "$r" "$s" -l' /dev/null
    """

    /// The tree's login shell for root (`/etc/passwd`), when the tree has it as an executable; else /bin/sh.
    public func loginShell() -> String {
        guard let tree = try? RootedFileSystem(root: root),
              let passwd = try? tree.readFile("/etc/passwd", limit: 1 << 20) else { return "/bin/sh" }
        for line in String(decoding: passwd, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 7, fields[0] == "root" else { continue }
            let shell = String(fields[6])
            if shell.hasPrefix("/"), !shell.hasSuffix("nologin"), !shell.hasSuffix("/false"), tree.exists(shell) { return shell }
        }
        return "/bin/sh"
    }

    /// The prompt of a session: `(havel PROJECT ARCH)` before what the shell shows. Debian's bash reads
    /// `debian_chroot` for it (in /etc/bash.bashrc); other shells get a PS1 of their own.
    public static func sessionPromptEnvironment(project: String?, architecture: String?, hostname: String?, shell: String) -> [String: String] {
        let label = (["havel"] + [project, architecture].compactMap { $0 }.filter { !$0.isEmpty }).joined(separator: " ")
        let isBash = (shell as NSString).lastPathComponent == "bash"
        let ps1 = isBash ? "(\(label)) \\u@\\h:\\w\\$ " : "(\(label)) root@\(hostname ?? "target")# "
        return ["debian_chroot": label, "PS1": ps1]
    }

    /// Checks that the tree can be entered at all: it has the directories to mount on and a shell.
    public func checkEnterable() throws(HavelError) {
        for dir in ["proc", "sys", "dev"] where !FileManager.default.fileExists(atPath: "\(root)/\(dir)") {
            throw HavelError(.notFound, "\(root) has no /\(dir); it is not a root filesystem Havel built")
        }
    }
}
