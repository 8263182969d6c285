import Foundation
@testable import Build
import Debian
import HavelCore
import ProjectXML
import SystemKit
import Testing

/// Builds that must fail: each ends with one sentence naming the URL or the package, the build
/// directory marked failed, no result presented, and nothing left mounted.
@Suite(.serialized, .enabled(if: Integration.available, Integration.skipReason))
struct FaultTests {
    static func project(packages: [String] = ["netbase"], mirrorOptions: String = "", arch: String = "amd64") -> String {
        """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>havel-fault</name><version>1</version><buildtype>\(arch)</buildtype>
            <mirror>
              <primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto>
              \(mirrorOptions)
            </mirror>
            <suite>bookworm</suite>
          </project>
          <target>
            <hostname>fault</hostname>
            <debootstrap><variant>minbase</variant></debootstrap>
            <pkg-list>\(packages.map { "<pkg>\($0)</pkg>" }.joined())</pkg-list>
          </target>
        </RootFileSystem>
        """
    }

    /// Builds and returns the error, after checking the directory is marked failed and holds no results.
    func failingBuild(_ loaded: LoadedProject, _ name: String) async throws -> HavelError {
        let base = try Integration.temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let dir = base + "/build"
        var caught: HavelError?
        do {
            _ = try await Integration.build(loaded, in: dir, cache: base + "/cache")
        } catch {
            caught = error
        }
        let error = try #require(caught, "the build of \(name) should have failed")
        let state = try #require(BuildState.read(dir + "/state.json"))
        #expect(state.status == .failed)
        #expect(state.reason?.isEmpty == false)
        for result in ["source.xml", "validation.txt", "report.txt", "licence-target.txt", "havel-fault-1-rootfs.tar.zst"] {
            #expect(!FileManager.default.fileExists(atPath: dir + "/" + result), "\(result) must not be presented after a failure")
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/log.txt"))
        #expect(Mounts.mountPoints(under: dir).isEmpty)
        return error
    }

    @Test func unreachableMirrorNamesTheURL() async throws {
        let loaded = try Integration.load(Self.project(), mirror: HostMirror(proto: "http", host: "127.0.0.1:9", path: "/debian"))
        let error = try await failingBuild(loaded, "unreachable")
        #expect(error.message.contains("http://127.0.0.1:9/debian"))
        #expect(error.message.contains("bookworm"))
    }

    @Test func missingSuiteOrPathIsA404WithTheURL() async throws {
        var host = try HostAptSources.primaryMirror()
        host.path = "/no-such-debian-path"
        let error = try await failingBuild(try Integration.load(Self.project(), mirror: host), "404")
        #expect(error.message.contains("/no-such-debian-path/dists/bookworm/"))
        // Mirrors answer 404 Not Found (some proxies 400 Bad Request): the HTTP status is in the message.
        #expect(error.message.contains("Failed to fetch"))
        #expect(error.message.range(of: "  4[0-9][0-9]  ", options: .regularExpression) != nil, "\(error.message)")
    }

    @Test func unknownPackageIsNamedWithSuiteAndArchitecture() async throws {
        let error = try await failingBuild(try Integration.load(Self.project(packages: ["netbase", "havel-no-such-package"])), "nopkg")
        #expect(error.message.contains("package havel-no-such-package was not found in bookworm for amd64"), "\(error.message)")
    }

    @Test func aKeyThatDoesNotSignTheMirrorIsReported() async throws {
        let wrongKeyring = "/usr/share/keyrings/debian-archive-removed-keys.gpg"
        try #require(FileManager.default.fileExists(atPath: wrongKeyring), "debian-archive-keyring provides \(wrongKeyring)")
        let loaded = try Integration.load(Self.project(mirrorOptions: "<options><option>signed-by=\(wrongKeyring)</option></options>"))
        let error = try await failingBuild(loaded, "badkey")
        #expect(error.message.contains("signature cannot be verified"), "\(error.message)")
    }

    @Test func staleMountsOfAnEarlierRunAreRemovedFirst() async throws {
        let base = try Integration.temporaryDirectory("stale")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let dir = base + "/build"
        try FileManager.default.createDirectory(atPath: dir + "/rootfs/mnt", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: base + "/elsewhere", withIntermediateDirectories: true)
        try await ProcessRunner.check(Command("mount", ["--bind", base + "/elsewhere", dir + "/rootfs/mnt"]))
        #expect(Mounts.mountPoints(under: dir) == [dir + "/rootfs/mnt"])
        let loaded = try Integration.load(Self.project(), mirror: HostMirror(proto: "http", host: "127.0.0.1:9", path: "/debian"))
        _ = try? await Integration.build(loaded, in: dir, cache: base + "/cache")
        #expect(Mounts.mountPoints(under: dir).isEmpty)
        #expect(try String(contentsOfFile: dir + "/log.txt", encoding: .utf8).contains("removed 1 mount(s) an earlier run left"))
    }

    @Test func sigintStopsTheBuildCleanlyWithin5Seconds() async throws {
        let havel = try #require(Integration.havelExecutable, "swift build makes .build/debug/havel")
        let base = try Integration.temporaryDirectory("sigint")
        defer { try? FileManager.default.removeItem(atPath: base) }
        try Self.project(packages: ["netbase", "less"]).write(toFile: base + "/p.xml", atomically: true, encoding: .utf8)
        let dir = base + "/build"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: havel)
        process.arguments = ["build", base + "/p.xml", "-o", dir, "--cache", base + "/cache", "--quiet"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until the bootstrap is under way (its tree appears), then interrupt.
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: dir + "/rootfs/var/lib/dpkg"), Date() < deadline, process.isRunning {
            try await Task.sleep(for: .milliseconds(200))
        }
        try await Task.sleep(for: .seconds(2))
        #expect(process.isRunning, "the build ended before it could be interrupted")
        let took = try await Integration.interrupt(process)
        // Idle it takes under a second; the bound only shows the build did not run on to its end.
        #expect(took < 90, "cleanup took \(took) s")
        try await Integration.expectCleanInterruption(process, build: dir, base: dir)
    }
}
