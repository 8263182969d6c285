import Logging
import Foundation
import Debian
import HavelCore
import SystemKit

/// What every target gets from its project besides packages: host name, /etc/hosts, the root
/// password (locked without one), a serial getty for `console`, /etc/fstab, and a provenance file.
enum TargetSetup {
    static func apply(_ project: Project, to target: RootedFileSystem, havelVersion: String, date: Date, log: Logger,
                      processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) {
        let t = project.target
        let fqdn = t.domain.map { "\(t.hostname).\($0)" } ?? t.hostname
        try target.writeFile("/etc/hostname", contents: Array("\(t.hostname)\n".utf8), mode: 0o644)
        try target.writeFile("/etc/mailname", contents: Array("\(fqdn)\n".utf8), mode: 0o644)
        let hosts = """
        127.0.0.1\tlocalhost
        127.0.1.1\t\(fqdn == t.hostname ? t.hostname : "\(fqdn) \(t.hostname)")

        ::1\tlocalhost ip6-localhost ip6-loopback
        ff02::1\tip6-allnodes
        ff02::2\tip6-allrouters

        """
        try target.writeFile("/etc/hosts", contents: Array(hosts.utf8), mode: 0o644)

        // Root password: the hash as given, or a locked account.
        let hash = t.passwdHashed ?? "!"
        try await processes.check(Command("chpasswd", ["--root", target.root, "--encrypted"]), input: Array("root:\(hash)\n".utf8))
        log.info(t.passwdHashed == nil ? "root account locked (no passwd in the project)" : "root password set")

        if let console = t.console { try setUpConsole(console, target: target, log: log) }

        let entries = t.fstab.filter { !$0.noFstab }
        if !entries.isEmpty {
            let text = "# /etc/fstab written by Havel from the project's <fstab>\n" + entries.map(t.fstabLine).joined(separator: "\n") + "\n"
            try target.writeFile("/etc/fstab", contents: Array(text.utf8), mode: 0o644)
        }

        // The target's apt sources as ELBE writes them: url-list source lines become deb-src.
        let sources = AptSources.lines(for: project, includeSource: true)
        // A target that <tighten/>, <diet/> or <setsel/> left without apt gets no apt sources.
        if !sources.isEmpty && ((t.minimisation == nil && !t.setSelections) || target.exists("/etc/apt")) {
            try target.writeFile("/etc/apt/sources.list", contents: Array((sources.joined(separator: "\n") + "\n").utf8), mode: 0o644)
        }

        let formatter = ISO8601DateFormatter()
        let provenance = """
        project: \(project.name)
        version: \(project.version)
        built by: Havel \(havelVersion)
        date: \(formatter.string(from: date))

        """
        try target.writeFile("/etc/havel_version", contents: Array(provenance.utf8), mode: 0o644)
    }

    /// `ttyS0,115200`: a systemd serial-getty instance, or an inittab line for sysvinit/busybox init.
    static func setUpConsole(_ console: String, target: RootedFileSystem, log: Logger) throws(HavelError) {
        let parts = console.split(separator: ",").map(String.init)
        guard let tty = parts.first, !tty.isEmpty, !tty.contains("/") else {
            throw HavelError(.invalidProject, "console \"\(console)\" should look like ttyS0,115200")
        }
        let speed = parts.count > 1 ? parts[1] : "115200"
        let unit = ["/lib/systemd/system/serial-getty@.service", "/usr/lib/systemd/system/serial-getty@.service"].first { target.exists($0) }
        if let unit {
            try target.createDirectory("/etc/systemd/system/getty.target.wants")
            try target.symlink(target: unit, at: "/etc/systemd/system/getty.target.wants/serial-getty@\(tty).service")
            log.info("serial getty on \(tty) (systemd)")
        } else if target.exists("/etc/inittab") {
            let line = "T0:23:respawn:/sbin/getty -L \(tty) \(speed) vt100\n"
            try target.writeFile("/etc/inittab", contents: Array(line.utf8), append: true)
            log.info("serial getty on \(tty) (inittab)")
        } else {
            log.warning("console \(console): the target has neither systemd nor /etc/inittab, so no getty was set up")
        }
    }
}
