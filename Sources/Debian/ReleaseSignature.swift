// A repository's (In)Release checked as apt checks it, for the downloads Havel makes itself (the source CD's
// indices): gpgv against the host's trusted apt keys, Debian's archive keyring and the project's own keys,
// and only the signed text is used (anything outside the signature of an InRelease is dropped).

import Foundation
import HavelCore
import SystemKit

public enum ReleaseSignature {
    /// Binary keyrings gpgv can read, made in `work`: the host's `/etc/apt/trusted.gpg.d` keys, Debian's archive
    /// keyring and each armored project key (dearmored).
    public static func keyrings(projectKeys: [(fileName: String, armored: String)], work: String,
                                processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> [String] {
        do { try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true) } catch {
            throw HavelError(.io, "cannot create \(work): \(error.localizedDescription)")
        }
        var armored: [String] = []
        var binary: [String] = []
        let trusted = "/etc/apt/trusted.gpg.d"
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: trusted)) ?? []).sorted() {
            if name.hasSuffix(".gpg") { binary.append(trusted + "/" + name) } else if name.hasSuffix(".asc") { armored.append(trusted + "/" + name) }
        }
        let debian = "/usr/share/keyrings/debian-archive-keyring.gpg"
        if FileManager.default.fileExists(atPath: debian) { binary.append(debian) }
        for (index, key) in projectKeys.enumerated() {
            let file = work + "/project-key-\(index).asc"
            try AtomicFile.write(key.armored + "\n", to: file)
            armored.append(file)
        }
        for (index, file) in armored.enumerated() {
            let output = work + "/armored-\(index).gpg"
            unlink(output)
            let result = try await processes.run(Command("gpg", ["--batch", "--dearmor", "-o", output, file]))
            if result.succeeded { binary.append(output) }
        }
        return binary
    }

    /// The signed text of a cleartext-signed InRelease, or a failure naming `what` and gpgv's reason.
    public static func verifiedInRelease(_ file: String, keyrings: [String], work: String, what: String,
                                         processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> String {
        let output = work + "/verified-\(UUID().uuidString.prefix(8))"
        defer { unlink(output) }
        let result = try await processes.run(Command("gpgv", keyrings.flatMap { ["--keyring", $0] } + ["--output", output, file]))
        guard result.succeeded, let data = FileManager.default.contents(atPath: output) else {
            throw HavelError(.invalidArgument, "\(what) does not verify with the host's apt keys, Debian's archive keyring or the project's keys: "
                             + result.standardError.trimmingWhitespace().suffix(300))
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// A Release checked against its detached signature (Release.gpg).
    public static func verifyDetached(_ release: String, signature: String, keyrings: [String], what: String,
                                      processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) {
        let result = try await processes.run(Command("gpgv", keyrings.flatMap { ["--keyring", $0] } + [signature, release]))
        guard result.succeeded else {
            throw HavelError(.invalidArgument, "\(what) does not verify with the host's apt keys, Debian's archive keyring or the project's keys: "
                             + result.standardError.trimmingWhitespace().suffix(300))
        }
    }
}
