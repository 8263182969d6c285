// ProcessCgroup: the cgroup2 hierarchy found from mountinfo and /proc/self/cgroup, commands joining a
// group before they exec, every process in the group killed (a setsid'd one too) and the group removed.
import Foundation
import HavelCore
@testable import SystemKit
import Testing

/// Making cgroups needs root and a writable cgroup2 hierarchy.
enum CgroupHost {
    static let missingReason: String? = {
        if geteuid() != 0 { return "needs root (makes cgroups)" }
        if case .failure(let problem) = CgroupHierarchy.writable() { return "needs a writable cgroup2 hierarchy: \(problem.message)" }
        return nil
    }()

    static var available: Bool {
        if let missingReason { print("skipped: \(missingReason)") }
        return missingReason == nil
    }

    static var skipReason: Comment { Comment(rawValue: missingReason ?? "") }
}

@Suite struct ProcessCgroupTests {
    static let hybridMountinfo = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """

    @Test func findsTheCgroup2MountAndOwnGroup() {
        let hybrid = CgroupHierarchy.parse(mountinfo: Self.hybridMountinfo, cgroup: "4:memory:/x\n0::/\n")
        #expect(hybrid == CgroupHierarchy(mount: "/sys/fs/cgroup/unified", ownGroup: "/"))
        #expect(hybrid?.ownDirectory == "/sys/fs/cgroup/unified")

        let unified = CgroupHierarchy.parse(
            mountinfo: "29 22 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n",
            cgroup: "0::/system.slice/havel-daemon.service\n")
        #expect(unified?.ownDirectory == "/sys/fs/cgroup/system.slice/havel-daemon.service")

        let escaped = CgroupHierarchy.parse(mountinfo: #"41 31 0:38 / /mnt/my\040cgroups rw - cgroup2 cgroup2 rw"#, cgroup: "0::/a\n")
        #expect(escaped?.ownDirectory == "/mnt/my cgroups/a")

        #expect(CgroupHierarchy.parse(mountinfo: "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", cgroup: "0::/\n") == nil)
        #expect(CgroupHierarchy.parse(mountinfo: Self.hybridMountinfo, cgroup: "4:memory:/x\n") == nil)
    }

    @Test func aCommandJoinsTheGroupBeforeItExecs() {
        let group = ProcessCgroup(path: "/sys/fs/cgroup/havel-build-x")
        let command = Command("mmdebstrap", ["--variant=minbase", "a b"], environment: ["X": "1"], workingDirectory: "/tmp")
        let joined = group.joining(command, executable: "/usr/bin/mmdebstrap")
        #expect(joined.executable == "/bin/sh")
        #expect(joined.arguments.dropFirst(2) == ["sh", "/sys/fs/cgroup/havel-build-x/cgroup.procs", "/usr/bin/mmdebstrap", "--variant=minbase", "a b"])
        #expect(joined.environment == command.environment)
        #expect(joined.workingDirectory == "/tmp")
        #expect(throws: HavelError.self) { _ = try ProcessCgroup.create(under: "/sys/fs/cgroup", name: "../escape") }
    }

    @Test(.enabled(if: CgroupHost.available, CgroupHost.skipReason), .timeLimit(.minutes(15)))
    func createJoinKillAndRemove() async throws {
        let hierarchy = try #require(CgroupHierarchy.current())
        let group = try ProcessCgroup.create(under: hierarchy.ownDirectory, name: "havel-test-\(UUID().uuidString.prefix(8))")
        var removed = false
        defer { if !removed { _ = group.kill(); rmdir(group.path) } }
        #expect(group.exists)
        #expect(group.processes.isEmpty && !group.isPopulated)

        let processes = CgroupProcesses(SystemProcesses(), cgroup: group)
        let own = try await processes.check(Command("cat", ["/proc/self/cgroup"])).standardOutput
        let relative = String(group.path.dropFirst(hierarchy.mount.count))
        #expect(own.split(separator: "\n").contains("0::" + Substring(relative)), "\(own)")

        // A daemon leaving its session survives a process-group kill, not the group's.
        let marker = "havel-cgroup-test-\(UUID().uuidString.prefix(8))"
        try await processes.check(Command("sh", ["-c", "setsid sh -c 'sleep 1000; : \(marker)' </dev/null >/dev/null 2>&1 &"]))
        #expect(group.isPopulated)
        let detached = group.processes
        #expect(!detached.isEmpty)
        let (method, empty) = await group.killAll(timeout: .seconds(60))
        #expect(method == .cgroupKill || method == .freezeAndSignal)
        #expect(empty)
        #expect(group.processes.isEmpty)
        for pid in detached { #expect(!Self.isAlive(pid), "pid \(pid) survived") }

        try await group.remove()
        removed = true
        #expect(!group.exists)
        // A command cannot run outside a group that is gone: it fails instead.
        let outside = try await processes.run(Command("true"))
        #expect(!outside.succeeded)
    }

    /// Without cgroup.kill (before Linux 5.14) the group is frozen and each process gets SIGKILL; it is thawed after.
    @Test(.enabled(if: CgroupHost.available, CgroupHost.skipReason), .timeLimit(.minutes(15)))
    func freezingAndSignallingEmptiesTheGroupToo() async throws {
        let hierarchy = try #require(CgroupHierarchy.current())
        let group = try ProcessCgroup.create(under: hierarchy.ownDirectory, name: "havel-test-\(UUID().uuidString.prefix(8))")
        defer { _ = group.kill(); rmdir(group.path) }
        let processes = CgroupProcesses(SystemProcesses(), cgroup: group)
        try await processes.check(Command("sh", ["-c", "for i in 1 2 3; do setsid sleep 1000 </dev/null >/dev/null 2>&1 & done"]))
        let detached = group.processes
        #expect(detached.count == 3)
        let (method, empty) = await group.killAll(timeout: .seconds(60), method: .freezeAndSignal)
        #expect(method == .freezeAndSignal)
        #expect(empty)
        for pid in detached { #expect(!Self.isAlive(pid), "pid \(pid) survived") }
        #expect(try String(contentsOfFile: group.path + "/cgroup.freeze", encoding: .utf8).hasPrefix("0"))
        try await group.remove()
        #expect(!group.exists)
    }

    /// Running or sleeping; a zombie waiting for its reaper no longer counts.
    static func isAlive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).prefix(1)
        return state != "Z" && state != "X"
    }
}
