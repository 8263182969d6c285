import Foundation
import HavelCore

/// binfmt_misc: lets the kernel run foreign-architecture binaries through qemu-user. Havel mounts the
/// filesystem if needed and registers a handler from a systemd binfmt.d file, always with flag F (the
/// interpreter is opened at registration, so it works inside a chroot without copying qemu in).
/// A handler that is already registered, by anyone, is left exactly as it is.
public enum Binfmt {
    public static let mountPoint = "/proc/sys/fs/binfmt_misc"
    public static let configDirectories = ["/etc/binfmt.d", "/usr/lib/binfmt.d"]

    public static func ensureMounted() async throws(HavelError) {
        if FileManager.default.fileExists(atPath: mountPoint + "/register") { return }
        let result = try await ProcessRunner.run(Command("mount", ["-t", "binfmt_misc", "binfmt_misc", mountPoint]))
        guard result.succeeded, FileManager.default.fileExists(atPath: mountPoint + "/register") else {
            throw HavelError(.unsupported, "binfmt_misc is not available at \(mountPoint) and could not be mounted (\(result.standardError.trimmingWhitespace())); foreign-architecture builds need it")
        }
    }

    /// Whether a handler named `name` (e.g. `qemu-aarch64`) is registered and enabled.
    public static func isEnabled(_ name: String) -> Bool {
        guard let text = try? String(contentsOfFile: "\(mountPoint)/\(name)", encoding: .utf8) else { return false }
        return text.hasPrefix("enabled")
    }

    public static func isRegistered(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: "\(mountPoint)/\(name)")
    }

    /// Makes sure `qemu-<qemuName>` can run binaries; returns true when Havel registered it now.
    @discardableResult
    public static func ensureHandler(qemuName: String) async throws(HavelError) -> Bool {
        try await ensureMounted()
        let name = "qemu-" + qemuName
        if isRegistered(name) {
            guard isEnabled(name) else {
                throw HavelError(.unsupported, "the binfmt_misc handler \(name) is registered but disabled; enable it with: echo 1 > \(mountPoint)/\(name)")
            }
            return false
        }
        guard let config = configDirectories.map({ "\($0)/\(name).conf" }).first(where: { FileManager.default.fileExists(atPath: $0) }),
              let text = try? String(contentsOfFile: config, encoding: .utf8),
              let line = text.split(separator: "\n").map(String.init).first(where: { $0.hasPrefix(":") }) else {
            throw HavelError(.notFound, "no binfmt.d entry for \(name); install the Debian package qemu-user-static")
        }
        let registration = withFixFlag(line)
        do {
            try registration.write(toFile: mountPoint + "/register", atomically: false, encoding: .utf8)
        } catch {
            // Someone may have registered it between our check and now: that is fine.
            if isEnabled(name) { return false }
            throw HavelError(.io, "registering \(name) with binfmt_misc failed: \(error.localizedDescription)")
        }
        guard isEnabled(name) else { throw HavelError(.io, "registering \(name) with binfmt_misc had no effect") }
        return true
    }

    /// The registration line with `F` among its flags (the last field).
    static func withFixFlag(_ line: String) -> String {
        var fields = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard fields.count >= 7 else { return line }
        if !fields[fields.count - 1].contains("F") { fields[fields.count - 1] += "F" }
        return fields.joined(separator: ":")
    }
}
