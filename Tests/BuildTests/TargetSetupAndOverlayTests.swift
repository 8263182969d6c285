import Foundation
import HavelCore
import Logging
import SystemKit
import Testing
@testable import Build

@Suite(.enabled(if: geteuid() == 0, "needs root (chpasswd --root, owners)"))
struct TargetSetupTests {
    func project(console: String?, passwd: String?) -> Project {
        var project = Project(name: "p", version: "1.2", buildtype: "aarch64", architecture: .arm64, suite: "bookworm")
        project.target.hostname = "board"
        project.target.domain = "example.org"
        project.target.console = console
        project.target.passwdHashed = passwd
        project.target.fstab = [
            FstabEntry(source: .label("rfs"), mountpoint: "/", filesystem: Filesystem(type: "ext4")),
            FstabEntry(source: .label("boot"), mountpoint: "/boot", filesystem: Filesystem(type: "vfat"), noFstab: true),
            FstabEntry(source: .device("tmpfs"), mountpoint: "/tmp", filesystem: Filesystem(type: "tmpfs", passno: 0)),
        ]
        return project
    }

    @Test func writesHostIdentityFstabPasswordAndSystemdGetty() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        try FileManager.default.createDirectory(atPath: tree.root + "/lib/systemd/system", withIntermediateDirectories: true)
        try tree.write("/lib/systemd/system/serial-getty@.service", "[Unit]\n")
        let target = try RootedFileSystem(root: tree.root)
        try await TargetSetup.apply(project(console: "ttyAMA0,115200", passwd: "$6$s$h"), to: target, havelVersion: "9.9",
                                    date: Date(timeIntervalSince1970: 0), log: Logger.discarding)
        #expect(tree.read("/etc/hostname") == "board\n")
        #expect(tree.read("/etc/hosts")?.contains("127.0.1.1\tboard.example.org board") == true)
        #expect(tree.read("/etc/fstab") == "# /etc/fstab written by Havel from the project's <fstab>\nLABEL=rfs / ext4 defaults 0 1\ntmpfs /tmp tmpfs defaults 0 0\n")
        #expect(tree.read("/etc/shadow")?.hasPrefix("root:$6$s$h:") == true)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: tree.root + "/etc/systemd/system/getty.target.wants/serial-getty@ttyAMA0.service")
                == "/lib/systemd/system/serial-getty@.service")
        #expect(tree.read("/etc/havel_version") == "project: p\nversion: 1.2\nbuilt by: Havel 9.9\ndate: 1970-01-01T00:00:00Z\n")
    }

    @Test func withoutPasswordRootIsLockedAndInittabGetsAGetty() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        try tree.write("/etc/inittab", "id:2:initdefault:\n")
        let target = try RootedFileSystem(root: tree.root)
        try await TargetSetup.apply(project(console: "ttyS1,9600", passwd: nil), to: target, havelVersion: "1",
                                    date: Date(), log: Logger.discarding)
        #expect(tree.read("/etc/shadow")?.hasPrefix("root:!:") == true)
        #expect(tree.read("/etc/inittab") == "id:2:initdefault:\nT0:23:respawn:/sbin/getty -L ttyS1 9600 vt100\n")
    }
}

@Suite(.enabled(if: geteuid() == 0, "needs root (archive owners)"))
struct ArchiveOverlayTests {
    /// Makes a tar.bz2 with the given shell commands run in a staging directory, as base64.
    func archive(_ script: String, extraTarArguments: [String] = []) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("havel-arc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/in", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/bin/sh")
        make.arguments = ["-c", "set -e; cd \(dir)/in; \(script); tar -cjf ../a.tar.bz2 \(extraTarArguments.joined(separator: " ")) ."]
        try make.run()
        make.waitUntilExit()
        return try Data(contentsOf: URL(fileURLWithPath: dir + "/a.tar.bz2")).base64EncodedString()
    }

    @Test func overlayMergesIntoTheTreeKeepingModes() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        let base64 = try archive("mkdir -p etc/app usr/local/bin; echo conf > etc/app/conf; chmod 600 etc/app/conf; printf '#!/bin/sh\\n' > usr/local/bin/tool; chmod 755 usr/local/bin/tool; ln -s tool usr/local/bin/alias")
        let added = try await ArchiveOverlay.apply(base64, to: try RootedFileSystem(root: tree.root), work: tree.base + "/work",
                                                   log: Logger.discarding)
        #expect(Set(added) == ["/etc/app/conf", "/usr/local/bin/tool", "/usr/local/bin/alias"])
        #expect(tree.read("/etc/app/conf") == "conf\n")
        #expect((try FileManager.default.attributesOfItem(atPath: tree.root + "/etc/app/conf")[.posixPermissions] as? Int) == 0o600)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: tree.root + "/usr/local/bin/alias") == "tool")
        #expect(tree.read("/etc/hostname") == "tree-hostname\n")
    }

    @Test func membersCannotEscapeThroughTreeLinksOrDotDot() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        // The tree holds a link to the host; the archive writes "through" it and climbs with ..
        try FileManager.default.createSymbolicLink(atPath: tree.root + "/etc/evil", withDestinationPath: tree.host)
        let before = tree.hostSnapshot()
        let base64 = try archive("mkdir -p etc/evil; echo owned > etc/evil/sentinel; echo x > plain",
                                 extraTarArguments: ["--transform='s,^./plain$,../../host/sentinel,'"])
        _ = try? await ArchiveOverlay.apply(base64, to: try RootedFileSystem(root: tree.root), work: tree.base + "/work",
                                            log: Logger.discarding)
        #expect(tree.hostSnapshot() == before)
        #expect((try? String(contentsOfFile: tree.sentinel, encoding: .utf8)) == SyntheticTree.sentinelText)
    }

    @Test func notBase64IsAClearError() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        await #expect {
            try await ArchiveOverlay.apply("%%%not base64", to: try RootedFileSystem(root: tree.root), work: tree.base + "/work",
                                           log: Logger.discarding)
        } throws: { "\($0)".contains("not valid base64") }
    }
}
