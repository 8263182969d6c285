// POST /projects/{id}/cancel: refused for what is not building, a queued build taken out of the queue, and
// a real hung build (one that detached a daemon with setsid) cancelled with every process it started.
import Build
import DaemonAPI
import DaemonClient
import Foundation
import HavelCore
import SystemKit
import Testing
@testable import Daemon

@Suite struct CancelTests {
    /// Unknown projects are 404; a project without a queued or running build is 409, as documented.
    @Test func cancellingNothingIsRefused() async throws {
        let data = try DaemonFixture.temporaryDirectory("cancel-idle")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let daemon = try await HavelDaemon(configuration: DaemonFixture.configuration(data: data, mirror: "http://127.0.0.1:9/debian"))
        try await DaemonFixture.withLiveDaemon(daemon) { client, _ in
            do throws(HavelError) {
                _ = try await client.cancel(41)
                Issue.record("cancelling a missing project succeeded")
            } catch {
                #expect(error.code == .notFound, "\(error)")
            }
            let project = try await client.createProject()
            _ = try await client.upload(project.id, xml: DaemonFixture.project(name: "idle"))
            do throws(HavelError) {
                _ = try await client.cancel(project.id)
                Issue.record("cancelling a project without a build succeeded")
            } catch {
                #expect(error.code == .conflict, "\(error)")
                #expect(error.message == "project \(project.id) has no build queued or running; nothing to cancel")
            }
            #expect(try await client.project(project.id).status == .needsBuild)
        }
    }

    @Test func requesterNamesAreOneBoundedLine() {
        #expect(HavelDaemon.requesterName(nil) == "an API client")
        #expect(HavelDaemon.requesterName(" \n ") == "an API client")
        #expect(HavelDaemon.requesterName("ann@host\nbuild done") == "ann@hostbuild done (over the API)")
        #expect(HavelDaemon.requesterName(String(repeating: "x", count: 5000)).count < 300)
    }

    /// A daemon starting removes the build cgroups an earlier daemon of its data directory left, with what
    /// still ran in them, and leaves other daemons' groups alone.
    @Test(.enabled(if: CgroupSupport.missingReason == nil, Comment(rawValue: CgroupSupport.missingReason ?? "")), .timeLimit(.minutes(15)))
    func staleBuildCgroupsAreRemovedAtStart() async throws {
        let data = try DaemonFixture.temporaryDirectory("cancel-stale")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let hierarchy = try #require(CgroupHierarchy.current())
        let stale = try ProcessCgroup.create(under: hierarchy.ownDirectory, name: BuildCgroups(dataDirectory: data).prefix + "7-0badf00d")
        let others = try ProcessCgroup.create(under: hierarchy.ownDirectory,
                                              name: BuildCgroups.namePrefix + BuildCgroups.tag(data + "-other") + "-7-0badf00d")
        defer { rmdir(stale.path); rmdir(others.path) }
        try await CgroupProcesses(SystemProcesses(), cgroup: stale).check(Command("sh", ["-c", "setsid sleep 1000 </dev/null >/dev/null 2>&1 &"]))
        let left = stale.processes
        #expect(!left.isEmpty)

        let daemon = try await HavelDaemon(configuration: DaemonFixture.configuration(data: data))
        #expect(!stale.exists)
        #expect(others.exists)
        for pid in left { #expect(kill(pid, 0) != 0 || Self.isZombie(pid), "pid \(pid) of the stale group survived") }
        await daemon.stop()
    }

    /// Without a writable cgroup2 the cancel answer and the log say that only the process group was stopped.
    @Test func withoutCgroupsCancellationSaysItReachesTheProcessGroupOnly() throws {
        let none = BuildCgroups(dataDirectory: "/var/lib/havel", probe: .failure(HavelError(.unsupported, "cannot create a cgroup under /sys/fs/cgroup: Permission denied")))
        #expect(none.hierarchy == nil)
        #expect(try none.make(for: 1) == nil)
        #expect(none.cancellationReach == "the running command's process group only (no cgroup: cannot create a cgroup under /sys/fs/cgroup: Permission denied)")
        let some = BuildCgroups(dataDirectory: "/var/lib/havel", probe: .success(CgroupHierarchy(mount: "/sys/fs/cgroup", ownGroup: "/system.slice/havel-daemon.service")))
        #expect(some.cancellationReach == "every process of the build, through its cgroup under /sys/fs/cgroup/system.slice/havel-daemon.service")
        #expect(some.prefix == "havel-build-\(BuildCgroups.tag("/var/lib/havel"))-" && some.prefix.count == "havel-build-".count + 9)
    }

    static func isZombie(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    static var skipReason: Comment {
        Comment(rawValue: BuildHost.missingReason ?? CgroupSupport.missingReason ?? "")
    }

    /// A real build hangs in project-finetuning after detaching a daemon (setsid: out of reach of a
    /// process-group kill); two more builds wait behind it (one job). The waiting one cancelled leaves the queue; the
    /// running one cancelled over HTTP ends with every process of it, its mounts, its cgroup; the next
    /// build starts and ends, and the cancelled project builds again.
    @Test(.enabled(if: BuildHost.available && CgroupSupport.missingReason == nil, skipReason), .timeLimit(.minutes(30)))
    func aHungBuildIsCancelledWithEveryProcessItStarted() async throws {
        let data = try DaemonFixture.temporaryDirectory("cancel")
        let marker = "havel-cancel-marker-\(UUID().uuidString.prefix(8))"
        let daemon = try await HavelDaemon(configuration: DaemonFixture.configuration(data: data, jobs: 1))
        do {
            try await DaemonFixture.withLiveDaemon(daemon) { client, _ in
                try await cancelHungBuild(daemon, client, data: data, marker: marker)
            }
        } catch {
            _ = try? await ProcessRunner.run(Command("pkill", ["-KILL", "-f", marker]))
            await DaemonFixture.remove(data)
            throw error
        }
        _ = try? await ProcessRunner.run(Command("pkill", ["-KILL", "-f", marker]))
        await DaemonFixture.remove(data)
    }

    func cancelHungBuild(_ daemon: HavelDaemon, _ client: DaemonClient, data: String, marker: String) async throws {
        let hung = try await client.createProject()
        _ = try await client.upload(hung.id, xml: Self.hangingProject(marker: marker))
        let next = try await client.createProject()
        _ = try await client.upload(next.id, xml: DaemonFixture.project(name: "next").replacingOccurrences(
            of: "<primary_host>MIRROR_HOST</primary_host>", with: "<primary_host>127.0.0.1:9</primary_host>"))
        let dropped = try await client.createProject()
        _ = try await client.upload(dropped.id, xml: DaemonFixture.project(name: "dropped"))

        _ = try await client.build(hung.id)
        try await Self.waitUntilHung(client, hung.id, marker: marker)
        _ = try await client.build(next.id)
        _ = try await client.build(dropped.id)
        #expect(try await client.project(next.id).queuePosition == 1)
        #expect(try await client.project(dropped.id).queuePosition == 2)

        let removed = try await client.cancel(dropped.id, requester: "tester")
        #expect(removed.outcome == .removedFromQueue)
        #expect(removed.project.status == .cancelled)
        #expect(try await client.log(dropped.id).contains("build CANCELLED by tester (over the API) while queued"))
        #expect(try await client.project(next.id).queuePosition == 1)

        // Asked not to wait, the answer is 202 `cancelling` while the build ends on its own.
        let cancelled = try await client.cancel(hung.id, requester: "tester@test", waitSeconds: 0)
        #expect(cancelled.outcome == .cancelling, "\(cancelled)")
        #expect(cancelled.project.status == .busy, "\(cancelled)")
        #expect(cancelled.message.contains("cgroup"), "\(cancelled.message)")
        // A build a detached child still holds would never end.
        let ended = try await Self.ended(client, hung.id, within: .seconds(10 * 60))
        #expect(ended.status == .cancelled)
        #expect(ended.reason == "cancelled by tester@test (over the API)")
        #expect(try await Self.processes(matching: marker).isEmpty, "the detached daemon survived the cancellation")
        let build = data + "/projects/\(hung.id)/build"
        #expect(Mounts.mountPoints(under: build).isEmpty)
        #expect(BuildState.read(build + "/state.json")?.status == .cancelled)
        let log = try await client.log(hung.id)
        #expect(log.contains("cancel requested by tester@test (over the API)"), "\(log.suffix(2000))")
        #expect(log.contains("killed every process of the build"), "\(log.suffix(2000))")
        #expect(log.contains("build CANCELLED: the build was interrupted"), "\(log.suffix(2000))")
        #expect(log.contains("build cancelled by tester@test (over the API)"), "\(log.suffix(2000))")
        let hierarchy = try #require(daemon.cgroups.hierarchy)
        // The cancelled build's group is gone (the next build's may exist already).
        #expect(hierarchy.childGroups(prefix: daemon.cgroups.prefix + "\(hung.id)-").isEmpty)

        // The slot is free: the build waiting behind starts and ends (its mirror refuses at once).
        let nextEnded = try await client.waitForBuild(next.id)
        #expect(nextEnded.status == .buildFailed && nextEnded.buildStarted != nil, "\(nextEnded)")
        do throws(HavelError) {
            _ = try await client.cancel(next.id)
            Issue.record("cancelling an ended build succeeded")
        } catch {
            #expect(error.code == .conflict, "\(error)")
        }

        // The cancelled project builds again; its cgroup goes with the build's end.
        _ = try await client.upload(hung.id, xml: DaemonFixture.project(name: "hung"))
        _ = try await client.build(hung.id)
        let again = try await client.waitForBuild(hung.id)
        #expect(again.status == .buildDone, "\(again.reason ?? "")")
        #expect(hierarchy.childGroups(prefix: daemon.cgroups.prefix).isEmpty)

        // Hung once more (its earlier stages come from the cache): cancelled with the default wait, the
        // answer (200) comes once the build has ended.
        let secondMarker = marker + "-again"
        _ = try await client.upload(hung.id, xml: Self.hangingProject(marker: secondMarker))
        _ = try await client.build(hung.id)
        try await Self.waitUntilHung(client, hung.id, marker: secondMarker)
        let waited = try await client.cancel(hung.id, requester: "tester@test")
        #expect(waited.outcome == .cancelledRunning, "\(waited)")
        #expect(waited.project.status == .cancelled, "\(waited)")
        #expect(try await Self.processes(matching: secondMarker).isEmpty, "the detached daemon survived the cancellation")
        #expect(hierarchy.childGroups(prefix: daemon.cgroups.prefix).isEmpty)
    }

    /// A project whose build hangs in its last stage after detaching a daemon: a project-finetuning command
    /// on the image's partition runs on the build host in a session of its own, outside the PID namespace
    /// that ends whatever a `<finetuning>` command starts in the target.
    static func hangingProject(marker: String) -> String {
        DaemonFixture.project(name: "hung").replacingOccurrences(of: "</target>", with: """
              <images>
                <msdoshd><name>disk.img</name><size>400MiB</size><partition><size>remain</size><label>rootfs</label></partition></msdoshd>
              </images>
              <fstab><bylabel><label>rootfs</label><mountpoint>/</mountpoint><fs><type>ext4</type></fs></bylabel></fstab>
              <project-finetuning>
                <losetup img="disk.img">
                  <command part="1" nomount="true">setsid sh -c 'while :; do sleep 1; done; : \(marker)' &amp; sleep 1000</command>
                </losetup>
              </project-finetuning>
            </target>
            """)
    }

    /// Waits until the build's detached daemon runs (the bootstrap takes minutes: its appearance is the event).
    static func waitUntilHung(_ client: DaemonClient, _ id: ProjectID, marker: String) async throws {
        let deadline = ContinuousClock.now + .seconds(20 * 60)
        while try await processes(matching: marker).isEmpty {
            let state = try await client.project(id)
            if state.status != .busy {
                let log = try await client.log(id)
                try #require(Bool(false), "the build ended before it hung: \(state.reason ?? "")\n\(log.suffix(3000))")
            }
            try #require(ContinuousClock.now < deadline, "the build did not reach its hanging finetuning")
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// The project once it is no longer busy; an issue if it still is after `limit`.
    static func ended(_ client: DaemonClient, _ id: ProjectID, within limit: Duration) async throws -> ProjectInfo {
        let deadline = ContinuousClock.now + limit
        while true {
            let project = try await client.project(id)
            if project.status != .busy { return project }
            try #require(ContinuousClock.now < deadline, "project \(id) is still busy \(limit) after its cancellation")
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// What `pgrep -f` finds: processes whose command line contains `text`.
    static func processes(matching text: String) async throws -> [String] {
        let result = try await ProcessRunner.run(Command("pgrep", ["-f", text]))
        return result.standardOutput.split(separator: "\n").map(String.init)
    }
}

/// The daemon's builds get cgroups only as root with a writable cgroup2 hierarchy.
enum CgroupSupport {
    static let missingReason: String? = {
        if geteuid() != 0 { return "needs root (makes cgroups)" }
        if case .failure(let problem) = CgroupHierarchy.writable() { return "needs a writable cgroup2 hierarchy: \(problem.message)" }
        return nil
    }()
}
