// DeviceFiles owns what must not be the same on every device or differs between two builds of one project:
// per-device secrets (SSH host keys, the snakeoil TLS key) leave the image and a unit Havel installs makes
// them at first boot; machine-id is emptied; random seeds and caches are removed; shadow's dates are clamped.

import Foundation
import HavelCore
import Logging
import SystemKit

/// Makes a finished tree the same for every build and free of per-device secrets (the "device files" stage).
struct DeviceFiles {
    let target: RootedFileSystem
    /// The build's clamp for times (SOURCE_DATE_EPOCH or the newest package).
    let epoch: Int
    /// Paths the project's `<archive>` or finetuning put into the tree: a project that ships its own keys keeps them.
    let fromProject: Set<String>
    let log: Logger

    static let unitName = "havel-device-keys.service"
    static let unitPath = "/etc/systemd/system/" + unitName
    static let wantsLink = "/etc/systemd/system/sysinit.target.wants/" + unitName
    static let snakeoilKey = "/etc/ssl/private/ssl-cert-snakeoil.key"
    static let snakeoilCertificate = "/etc/ssl/certs/ssl-cert-snakeoil.pem"

    /// Made anew by whatever needs them (ldconfig, systemd, dbus); they only differ between builds.
    static let caches = ["/var/cache/ldconfig/aux-cache", "/var/lib/systemd/random-seed", "/var/lib/urandom/random-seed",
                         "/var/lib/systemd/credential.secret"]

    /// What the stage did, for the log and the tests.
    struct Outcome: Equatable {
        var removed: [String] = []
        var keptSecrets: [String] = []
        var unitInstalled = false
    }

    func apply() throws(HavelError) -> Outcome {
        var outcome = Outcome()
        let secrets = try deviceSecrets()
        if !secrets.all.isEmpty {
            if usesSystemd {
                for path in secrets.all { try target.remove(path) }
                outcome.removed += secrets.all
                try installUnit(secrets)
                outcome.unitInstalled = true
                log.info("device files: \(secrets.all.count) host key(s) and certificate(s) removed; \(Self.unitName) makes them at first boot")
            } else {
                outcome.keptSecrets = secrets.all
                log.warning("the target does not boot with systemd, so Havel cannot make its host keys at first boot: \(secrets.all.joined(separator: ", ")) stay in the image, which is therefore not reproducible, and every device made from it shares them")
            }
        }
        try emptyMachineID(&outcome)
        for path in Self.caches where target.exists(path) {
            try target.remove(path)
            outcome.removed.append(path)
        }
        try clampShadowDates()
        if !outcome.removed.isEmpty { log.info("device files: removed \(outcome.removed.joined(separator: " "))") }
        return outcome
    }

    /// The generated secrets found in the tree, minus those the project put there itself.
    struct Secrets {
        var hostKeys: [String] = []
        var snakeoil: [String] = []
        /// `<hash>.0` links to the snakeoil certificate, which make-ssl-cert makes again with it.
        var snakeoilLinks: [String] = []
        var all: [String] { hostKeys + snakeoil + snakeoilLinks }
    }

    func deviceSecrets() throws(HavelError) -> Secrets {
        var secrets = Secrets()
        secrets.hostKeys = try target.glob("/etc/ssh/ssh_host_*").filter { !fromProject.contains($0) }
        secrets.snakeoil = [Self.snakeoilKey, Self.snakeoilCertificate].filter { isPresent($0) && !fromProject.contains($0) }
        if secrets.snakeoil.contains(Self.snakeoilCertificate) {
            secrets.snakeoilLinks = try target.glob("/etc/ssl/certs/*.0").filter { link in
                guard let host = try? target.resolve(link, followFinalSymlink: false),
                      let destination = symbolicLinkTarget(host) else { return false }
                return (destination as NSString).lastPathComponent == "ssl-cert-snakeoil.pem"
            }
        }
        return secrets
    }

    /// Present as an entry, a dangling link included.
    func isPresent(_ path: String) -> Bool {
        guard let host = try? target.resolve(path, followFinalSymlink: false) else { return false }
        var status = stat()
        return lstat(host, &status) == 0
    }

    /// /sbin/init is systemd (systemd-sysv): only then does the unit run at boot.
    var usesSystemd: Bool {
        guard let initProgram = try? target.resolve("/sbin/init") else { return false }
        return initProgram.hasSuffix("/systemd") && target.exists("/sbin/init")
    }

    /// The oneshot unit that makes the removed secrets when they are missing (Isar's sshd-regen-keys does
    /// the same), ordered before sshd and enabled for sysinit.target.
    func installUnit(_ secrets: Secrets) throws(HavelError) {
        var conditions: [String] = []
        var commands: [String] = []
        var made: [String] = []
        if !secrets.hostKeys.isEmpty && target.exists("/usr/bin/ssh-keygen") {
            conditions.append("ConditionPathExists=|!/etc/ssh/ssh_host_ed25519_key")
            commands.append("ExecStart=/usr/bin/ssh-keygen -A")
            made.append("SSH host keys")
        }
        if !secrets.snakeoil.isEmpty && target.exists("/usr/sbin/make-ssl-cert") {
            made.append("TLS snakeoil certificate")
            conditions.append("ConditionPathExists=|!\(Self.snakeoilKey)")
            // make-ssl-cert also makes the certificate's hash link again.
            commands.append("ExecStart=/usr/sbin/make-ssl-cert generate-default-snakeoil --force-overwrite")
        }
        guard !commands.isEmpty else {
            log.warning("device files: the removed keys cannot be made at first boot (neither ssh-keygen nor make-ssl-cert is in the target)")
            return
        }
        let unit = """
            # Installed by Havel: the image ships no host keys, so that it is reproducible and every device gets its own.
            [Unit]
            Description=Make this device's own \(made.joined(separator: " and "))
            DefaultDependencies=no
            Conflicts=shutdown.target
            After=systemd-remount-fs.service local-fs.target
            Before=shutdown.target ssh.service sshd.service ssh.socket
            ConditionPathIsReadWrite=/etc
            \(conditions.joined(separator: "\n"))

            [Service]
            Type=oneshot
            RemainAfterExit=yes
            \(commands.joined(separator: "\n"))

            [Install]
            WantedBy=sysinit.target

            """
        try target.writeFile(Self.unitPath, contents: Array(unit.utf8), mode: 0o644)
        try target.createDirectory("/etc/systemd/system/sysinit.target.wants")
        try target.symlink(target: Self.unitPath, at: Self.wantsLink)
    }

    /// systemd makes /etc/machine-id at first boot when it is empty (a missing file would make it think the
    /// root is read-only); dbus's copy goes unless it is the usual link to it.
    func emptyMachineID(_ outcome: inout Outcome) throws(HavelError) {
        if target.exists("/etc/machine-id"), !(try target.readFile("/etc/machine-id")).isEmpty {
            try target.writeFile("/etc/machine-id", contents: [])
            outcome.removed.append("/etc/machine-id (emptied)")
        }
        let dbus = "/var/lib/dbus/machine-id"
        if isPresent(dbus), let host = try? target.resolve(dbus, followFinalSymlink: false),
           symbolicLinkTarget(host) == nil {
            try target.remove(dbus)
            outcome.removed.append(dbus)
        }
    }

    /// The day of the last password change (shadow's third field), written by chpasswd and pwconv as the day of
    /// the build, is clamped to the day of the build's epoch, in /etc/shadow and its backup.
    func clampShadowDates() throws(HavelError) {
        let day = epoch / 86_400
        for path in ["/etc/shadow", "/etc/shadow-"] where target.exists(path) {
            let text = String(decoding: try target.readFile(path), as: UTF8.self)
            let clamped = Self.clampShadow(text, toDay: day)
            if clamped != text { try target.writeFile(path, contents: Array(clamped.utf8)) }
        }
    }

    static func clampShadow(_ text: String, toDay day: Int) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            var fields = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard fields.count > 2, let changed = Int(fields[2]), changed > day else { return String(line) }
            fields[2] = String(day)
            return fields.joined(separator: ":")
        }.joined(separator: "\n")
    }
}
