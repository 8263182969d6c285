import Foundation
import HavelCore
import SystemKit
import Testing
@testable import Build

/// The device files stage on synthetic trees: generated host keys leave a systemd image and a unit makes
/// them at first boot; a sysvinit image keeps them with a warning; keys from the project stay; shadow's
/// dates are clamped; seeds go and machine-id is emptied.
struct DeviceFilesTests {
    static let keyFiles = ["ecdsa", "ed25519", "rsa"].flatMap { ["/etc/ssh/ssh_host_\($0)_key", "/etc/ssh/ssh_host_\($0)_key.pub"] }
    /// 2024-01-01, day 19723.
    static let epoch = 1_704_067_200

    /// A tree with host keys and ssh-keygen; booted by systemd when `systemd` is set, else by sysvinit.
    func tree(systemd: Bool) throws -> SyntheticTree {
        let tree = try SyntheticTree()
        for directory in ["/etc/ssh", "/usr/bin", "/usr/lib/systemd", "/sbin", "/var/lib/systemd", "/var/cache/ldconfig"] {
            try FileManager.default.createDirectory(atPath: tree.root + directory, withIntermediateDirectories: true)
        }
        for key in Self.keyFiles { try tree.write(key, "key \(key)\n") }
        try tree.write("/usr/bin/ssh-keygen", "")
        try tree.write("/usr/lib/systemd/systemd", "")
        try tree.write("/sbin/init-sysv", "")
        try FileManager.default.createSymbolicLink(atPath: tree.root + "/sbin/init", withDestinationPath: systemd ? "/usr/lib/systemd/systemd" : "init-sysv")
        try tree.write("/etc/machine-id", "0123456789abcdef0123456789abcdef\n")
        try tree.write("/var/lib/systemd/random-seed", "seed")
        try tree.write("/var/cache/ldconfig/aux-cache", "cache")
        // root changed its password on the day of the build (after the epoch), sshd long before it.
        try tree.write("/etc/shadow", "root:$6$salt$hash:20792:0:99999:7:::\nsshd:!:19000::::::\nnobody:*::0:99999:7:::\n")
        return tree
    }

    func apply(_ tree: SyntheticTree, fromProject: Set<String> = [], log: LogRecorder = LogRecorder()) throws -> DeviceFiles.Outcome {
        try DeviceFiles(target: try RootedFileSystem(root: tree.root), epoch: Self.epoch, fromProject: fromProject, log: log.logger).apply()
    }

    @Test func systemdImageLosesItsHostKeysAndGetsTheUnitThatMakesThem() throws {
        let tree = try tree(systemd: true)
        defer { tree.remove() }
        let outcome = try apply(tree)
        #expect(outcome.unitInstalled)
        #expect(outcome.keptSecrets.isEmpty)
        for key in Self.keyFiles {
            #expect(outcome.removed.contains(key))
            #expect(!FileManager.default.fileExists(atPath: tree.root + key), "\(key) is still in the image")
        }
        let unit = try #require(tree.read(DeviceFiles.unitPath))
        #expect(unit.contains("ExecStart=/usr/bin/ssh-keygen -A"))
        #expect(unit.contains("Description=Make this device's own SSH host keys\n"))
        #expect(unit.contains("Before=") && unit.contains("ssh.service"))
        #expect(unit.contains("ConditionPathExists=|!/etc/ssh/ssh_host_ed25519_key"))
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: tree.root + DeviceFiles.wantsLink)
        #expect(link == DeviceFiles.unitPath)
    }

    @Test func sysvinitImageKeepsItsKeysAndSaysWhy() throws {
        let tree = try tree(systemd: false)
        defer { tree.remove() }
        let log = LogRecorder()
        let outcome = try apply(tree, log: log)
        #expect(!outcome.unitInstalled)
        #expect(Set(outcome.keptSecrets) == Set(Self.keyFiles))
        #expect(FileManager.default.fileExists(atPath: tree.root + "/etc/ssh/ssh_host_rsa_key"))
        #expect(!FileManager.default.fileExists(atPath: tree.root + DeviceFiles.unitPath))
        #expect(log.lines.contains { $0.hasPrefix("WARNING: ") && $0.contains("not reproducible") && $0.contains("ssh_host_rsa_key") })
    }

    @Test func keysThatTheProjectShipsStay() throws {
        let tree = try tree(systemd: true)
        defer { tree.remove() }
        let shipped: Set<String> = ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pub"]
        let outcome = try apply(tree, fromProject: shipped)
        for key in shipped { #expect(FileManager.default.fileExists(atPath: tree.root + key)) }
        #expect(!FileManager.default.fileExists(atPath: tree.root + "/etc/ssh/ssh_host_rsa_key"))
        #expect(outcome.unitInstalled)
    }

    @Test func shadowDatesAfterTheEpochAreClampedAndSeedsGo() throws {
        let tree = try tree(systemd: true)
        defer { tree.remove() }
        let outcome = try apply(tree)
        #expect(tree.read("/etc/shadow") == "root:$6$salt$hash:19723:0:99999:7:::\nsshd:!:19000::::::\nnobody:*::0:99999:7:::\n")
        #expect(tree.read("/etc/machine-id") == "")
        #expect(!FileManager.default.fileExists(atPath: tree.root + "/var/lib/systemd/random-seed"))
        #expect(!FileManager.default.fileExists(atPath: tree.root + "/var/cache/ldconfig/aux-cache"))
        #expect(outcome.removed.contains("/var/lib/systemd/random-seed"))
    }

    @Test func theSnakeoilCertificateAndItsHashLinkGoAndAreMadeAtFirstBoot() throws {
        let tree = try tree(systemd: true)
        defer { tree.remove() }
        for directory in ["/etc/ssl/private", "/etc/ssl/certs", "/usr/sbin"] {
            try FileManager.default.createDirectory(atPath: tree.root + directory, withIntermediateDirectories: true)
        }
        try tree.write(DeviceFiles.snakeoilKey, "key")
        try tree.write(DeviceFiles.snakeoilCertificate, "certificate")
        try tree.write("/etc/ssl/certs/other.pem", "another certificate")
        try FileManager.default.createSymbolicLink(atPath: tree.root + "/etc/ssl/certs/62742064.0", withDestinationPath: "ssl-cert-snakeoil.pem")
        try FileManager.default.createSymbolicLink(atPath: tree.root + "/etc/ssl/certs/11111111.0", withDestinationPath: "other.pem")
        try tree.write("/usr/sbin/make-ssl-cert", "")
        let outcome = try apply(tree)
        for path in [DeviceFiles.snakeoilKey, DeviceFiles.snakeoilCertificate, "/etc/ssl/certs/62742064.0"] {
            #expect(outcome.removed.contains(path))
        }
        #expect(FileManager.default.fileExists(atPath: tree.root + "/etc/ssl/certs/11111111.0"))
        let unit = try #require(tree.read(DeviceFiles.unitPath))
        #expect(unit.contains("Description=Make this device's own SSH host keys and TLS snakeoil certificate\n"))
        #expect(unit.contains("ExecStart=/usr/sbin/make-ssl-cert generate-default-snakeoil --force-overwrite"))
        #expect(unit.contains("ConditionPathExists=|!\(DeviceFiles.snakeoilKey)"))
    }

    @Test func aTreeWithoutKeysGetsNoUnit() throws {
        let tree = try tree(systemd: true)
        defer { tree.remove() }
        for key in Self.keyFiles { try FileManager.default.removeItem(atPath: tree.root + key) }
        let outcome = try apply(tree)
        #expect(!outcome.unitInstalled)
        #expect(!FileManager.default.fileExists(atPath: tree.root + DeviceFiles.unitPath))
    }
}
