// ProcessCgroup owns the cgroup v2 groups a build's processes run in: where the cgroup2 hierarchy and this
// process's own group are, a child group made below it, commands joining that group before they exec
// (`CgroupProcesses`), every process in it killed at once (also those that left their session with
// setsid), and the group removed. Only the process-tracking part of cgroups is used: no controllers.

import Foundation
import HavelCore

/// The cgroup2 hierarchy and the group this process runs in.
public struct CgroupHierarchy: Sendable, Equatable {
    /// Where cgroup2 is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host.
    public let mount: String
    /// This process's own group within the hierarchy ("/" or "/system.slice/havel-daemon.service").
    public let ownGroup: String

    public init(mount: String, ownGroup: String) {
        self.mount = mount
        self.ownGroup = ownGroup
    }

    /// The directory of this process's own group, under which its child groups go.
    public var ownDirectory: String {
        ownGroup == "/" ? mount : mount + ownGroup
    }

    /// This process's, from /proc/self/mountinfo and /proc/self/cgroup; nil without a cgroup2 mount.
    public static func current() -> CgroupHierarchy? {
        guard let mountinfo = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8),
              let cgroup = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        return parse(mountinfo: mountinfo, cgroup: cgroup)
    }

    /// This process's hierarchy when child groups can be made under its own group; else why not.
    public static func writable() -> Result<CgroupHierarchy, HavelError> {
        guard let hierarchy = current() else {
            return .failure(HavelError(.unsupported, "no cgroup2 hierarchy is mounted (see /proc/self/mountinfo)"))
        }
        if let problem = hierarchy.childGroupProblem() { return .failure(HavelError(.unsupported, problem)) }
        return .success(hierarchy)
    }

    /// The first cgroup2 mount of `mountinfo` and the `0::` line of `cgroup`.
    static func parse(mountinfo: String, cgroup: String) -> CgroupHierarchy? {
        var mount: (root: String, point: String)?
        for line in mountinfo.split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2, halves[1].split(separator: " ").first == "cgroup2" else { continue }
            let fields = halves[0].split(separator: " ").map(String.init)
            guard fields.count >= 5 else { continue }
            mount = (unescape(fields[3]), unescape(fields[4]))
            break
        }
        guard let mount else { return nil }
        guard let line = cgroup.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else { return nil }
        var own = String(line.dropFirst(3))
        guard own.hasPrefix("/"), !own.hasSuffix(" (deleted)") else { return nil }
        // A mount of a subtree (a container's cgroup namespace seen from outside): paths below its root.
        if mount.root != "/", own.hasPrefix(mount.root) { own = String(own.dropFirst(mount.root.count)) }
        if own.isEmpty { own = "/" }
        return CgroupHierarchy(mount: mount.point, ownGroup: own)
    }

    /// mountinfo's octal escapes (`\040` for a space).
    static func unescape(_ field: String) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(field.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "\\"), utf8.count >= 3, let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Why child groups cannot be made under this process's own group, or nil when they can (tried with
    /// a group made and removed at once).
    public func childGroupProblem() -> String? {
        let probe = ownDirectory + "/havel-probe-\(getpid())-\(UUID().uuidString.prefix(8))"
        guard mkdir(probe, 0o755) == 0 else {
            return "cannot create a cgroup under \(ownDirectory): \(errnoText())"
        }
        defer { rmdir(probe) }
        guard access(probe + "/cgroup.procs", W_OK) == 0 else {
            return "\(probe)/cgroup.procs is not writable: \(errnoText())"
        }
        return nil
    }

    /// The child groups of this process's own group whose names start with `prefix`.
    public func childGroups(prefix: String) -> [ProcessCgroup] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: ownDirectory)) ?? []
        return names.filter { $0.hasPrefix(prefix) }.sorted().map { ProcessCgroup(path: ownDirectory + "/" + $0) }
    }
}

/// One cgroup v2 group holding a build's processes.
public struct ProcessCgroup: Sendable, Equatable {
    /// The group's directory in the cgroup2 hierarchy.
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// How `kill()` ended the processes.
    public enum KillMethod: String, Sendable {
        /// cgroup.kill (Linux 5.14 and later): the kernel kills every process, also those forking meanwhile.
        case cgroupKill = "cgroup.kill"
        /// Without cgroup.kill: the group frozen, SIGKILL sent to each of its processes.
        case freezeAndSignal = "freeze and SIGKILL"
    }

    /// Makes the group `name` under `parent` (a group directory); an existing one is an error.
    public static func create(under parent: String, name: String) throws(HavelError) -> ProcessCgroup {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw HavelError(.invalidArgument, "\(name) is not a cgroup name; use a plain file name")
        }
        let path = parent + "/" + name
        guard mkdir(path, 0o755) == 0 else {
            throw HavelError(.io, "cannot create the cgroup \(path): \(errnoText()); is cgroup2 writable here (root, or Delegate=yes)?")
        }
        return ProcessCgroup(path: path)
    }

    public var exists: Bool { FileManager.default.fileExists(atPath: path + "/cgroup.procs") }

    /// The processes in the group now (not in its child groups).
    public var processes: [pid_t] {
        guard let text = try? String(contentsOfFile: path + "/cgroup.procs", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { pid_t($0) }
    }

    /// Whether any process is in the group or below it (cgroup.events `populated`).
    public var isPopulated: Bool {
        guard let events = try? String(contentsOfFile: path + "/cgroup.events", encoding: .utf8) else { return !processes.isEmpty }
        return events.split(separator: "\n").contains("populated 1")
    }

    /// `command` run so that it joins this group before it execs: `sh` writes its own pid into cgroup.procs
    /// and execs `executable` (the command's program, resolved) with the command's arguments. A group that
    /// is gone makes the command fail instead of running outside it.
    public func joining(_ command: Command, executable: String) -> Command {
        var joined = command
        joined.executable = "/bin/sh"
        joined.arguments = ["-c", #"echo $$ > "$1" && shift && exec "$@""#, "sh", path + "/cgroup.procs", executable] + command.arguments
        return joined
    }

    /// Puts the process `pid` into the group.
    public func add(_ pid: pid_t) throws(HavelError) {
        try write("\(pid)", to: "cgroup.procs")
    }

    /// Kills every process in the group at once and returns how; it does not wait for them to be gone.
    /// `method` nil: cgroup.kill where the kernel has it, else freezing and SIGKILL.
    @discardableResult
    public func kill(_ method: KillMethod? = nil) -> KillMethod {
        if method != .freezeAndSignal, (try? write("1", to: "cgroup.kill")) != nil { return .cgroupKill }
        // Frozen, nothing in the group can fork while each process gets SIGKILL (which a frozen process still takes).
        try? write("1", to: "cgroup.freeze")
        for pid in processes { Foundation.kill(pid, SIGKILL) }
        return .freezeAndSignal
    }

    /// Kills every process in the group until it is empty (cgroup.events says `populated 0`) or `timeout`
    /// passes. Returns the method and whether the group is empty.
    @discardableResult
    public func killAll(timeout: Duration = .seconds(30), method preferred: KillMethod? = nil) async -> (method: KillMethod, empty: Bool) {
        let method = kill(preferred)
        let deadline = ContinuousClock.now + timeout
        while isPopulated, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
            if method == .freezeAndSignal { for pid in processes { Foundation.kill(pid, SIGKILL) } }
        }
        if method == .freezeAndSignal { try? write("0", to: "cgroup.freeze") }
        return (method, !isPopulated)
    }

    /// Kills what is left in the group and removes it; a group already gone is fine.
    public func remove(timeout: Duration = .seconds(30)) async throws(HavelError) {
        guard exists else { return }
        let (_, empty) = await killAll(timeout: timeout)
        guard empty else {
            throw HavelError(.io, "the cgroup \(path) still holds processes \(processes.map(String.init).joined(separator: ", ")) "
                             + "after SIGKILL; remove it with rmdir once they are gone")
        }
        let deadline = ContinuousClock.now + timeout
        // The kernel may still be tearing the last process down for a moment after `populated 0`.
        while rmdir(path) != 0 {
            guard errno == EBUSY, ContinuousClock.now < deadline else {
                if errno == ENOENT { return }
                throw HavelError(.io, "cannot remove the cgroup \(path): \(errnoText())")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    func write(_ text: String, to file: String) throws(HavelError) {
        let target = path + "/" + file
        let fd = open(target, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw HavelError(.io, "cannot open \(target): \(errnoText())") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Foundation.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw HavelError(.io, "cannot write \(text) to \(target): \(errnoText())")
        }
    }
}

/// Runs every command through `base` inside `cgroup`: each joins the group before it execs, so that
/// whatever it starts (a daemon a maintainer script detaches with setsid too) stays in the group.
public struct CgroupProcesses: ProcessRunning {
    public let base: any ProcessRunning
    public let cgroup: ProcessCgroup

    public init(_ base: any ProcessRunning, cgroup: ProcessCgroup) {
        self.base = base
        self.cgroup = cgroup
    }

    /// The command joining the group; one whose program is not found goes as it is, to fail as such.
    func joined(_ command: Command) -> Command {
        guard let executable = base.which(command.executable) else { return command }
        return cgroup.joining(command, executable: executable)
    }

    public func which(_ name: String) -> String? { base.which(name) }

    public func ensureBinfmtHandler(qemuName: String) async throws(HavelError) -> Bool {
        try await base.ensureBinfmtHandler(qemuName: qemuName)
    }

    public func run(_ command: Command, input: [UInt8], outputLimit: Int) async throws(HavelError) -> ProcessResult {
        try await base.run(joined(command), input: input, outputLimit: outputLimit)
    }

    public func stream(_ command: Command, onLine: @escaping @Sendable (String) -> Void) async throws(HavelError) -> ProcessResult.Termination {
        try await base.stream(joined(command), onLine: onLine)
    }
}
