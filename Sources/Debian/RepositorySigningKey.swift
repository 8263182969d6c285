// The per-project key that signs Havel's apt repositories: made once (ed25519, no passphrase) and kept
// in a host directory (0700) outside every build directory; gpg only ever runs in a temporary GNUPGHOME
// with the key imported, so signing touches no one's keyring and leaves no agent behind.

import Foundation
import HavelCore
import SystemKit

public struct RepositorySigningKey: Sendable {
    /// The armored secret key on this host (0600, in the keys directory).
    public let secretKeyFile: String
    /// The armored public key, as written into repositories.
    public let publicKey: String

    public init(secretKeyFile: String, publicKey: String) {
        self.secretKeyFile = secretKeyFile
        self.publicKey = publicKey
    }

    /// Every key is created at this time (2000-01-01), so that signatures dated by any build's
    /// SOURCE_DATE_EPOCH after it are valid, and a key made again would differ only by its key material.
    static let creationTime = 946_684_800

    /// The project name as a plain file name: letters, digits, `.`, `_` and `-`; nothing else, no leading dot.
    public static func fileName(forProject project: String) -> String {
        var name = String(project.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
        while name.hasPrefix(".") { name.removeFirst() }
        return name.isEmpty ? "project" : String(name.prefix(100))
    }

    /// The project's key from `directory`, made there first when it has none.
    public static func forProject(_ project: String, directory: String,
                                  processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> RepositorySigningKey {
        guard processes.which("gpg") != nil else {
            throw HavelError(.hostNotReady, "signing an apt repository needs gpg; apt-get install gnupg")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw HavelError(.io, "cannot create the key directory \(directory): \(error.localizedDescription)")
        }
        guard chmod(directory, 0o700) == 0 else { throw HavelError(.io, "cannot make \(directory) private: \(errnoText())") }
        let lock = try FileLock(directory + "/.lock")
        defer { lock.release() }
        let base = directory + "/" + fileName(forProject: project)
        let secret = base + ".secret.asc", published = base + ".public.asc"
        if !FileManager.default.fileExists(atPath: secret) || !FileManager.default.fileExists(atPath: published) {
            try await generate(project, secret: secret, published: published, processes: processes)
        }
        guard let data = FileManager.default.contents(atPath: published), data.count < 1 << 20,
              let text = String(data: data, encoding: .utf8), text.hasPrefix("-----BEGIN PGP PUBLIC KEY BLOCK-----") else {
            throw HavelError(.io, "the repository key \(published) is not an armored public key; remove \(base).* to make a new key")
        }
        return RepositorySigningKey(secretKeyFile: secret, publicKey: text)
    }

    static func generate(_ project: String, secret: String, published: String, processes: any ProcessRunning) async throws(HavelError) {
        let uid = "\(project.filter { !$0.isNewline && $0 != "<" && $0 != ">" }) apt repository (made by Havel)"
        try await withGnupgHome(processes) { gpg throws(HavelError) in
            try await processes.check(gpg(["--pinentry-mode", "loopback", "--passphrase", "", "--faked-system-time", "\(creationTime)!",
                                           "--quick-generate-key", uid, "ed25519", "sign", "never"]))
            for (path, arguments, mode) in [(secret, ["--export-secret-keys"], mode_t(0o600)), (published, ["--export"], mode_t(0o644))] {
                let temporary = path + ".partial"
                unlink(temporary)
                try await processes.check(gpg(["--armor", "--output", temporary] + arguments))
                chmod(temporary, mode)
                try AtomicFile.publish(temporary, as: path)
            }
        }
    }

    /// `release` signed twice: inline into `inRelease`, detached into `detached`, both dated `epoch`.
    public func sign(_ release: String, inRelease: String, detached: String, epoch: Int,
                     processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) {
        guard epoch >= Self.creationTime else {
            throw HavelError(.invalidArgument, "a repository signature cannot be dated \(epoch), before its key (\(Self.creationTime)); set SOURCE_DATE_EPOCH later than 2000")
        }
        let secretKeyFile = self.secretKeyFile
        try await Self.withGnupgHome(processes) { gpg throws(HavelError) in
            try await processes.check(gpg(["--import", secretKeyFile]))
            let time = ["--faked-system-time", "\(epoch)!", "--digest-algo", "SHA512"]
            for (output, mode) in [(inRelease, "--clearsign"), (detached, "--detach-sign")] {
                let temporary = output + ".partial"
                unlink(temporary)
                try await processes.check(gpg(time + ["--armor", "--output", temporary, mode, release]))
                try AtomicFile.publish(temporary, as: output)
            }
        }
    }

    /// Runs `body` with a gpg command maker bound to a fresh GNUPGHOME, which is removed afterwards with its agent.
    static func withGnupgHome(_ processes: any ProcessRunning,
                              _ body: (@Sendable ([String]) -> Command) async throws(HavelError) -> Void) async throws(HavelError) {
        var template = Array("/tmp/havel-gnupg-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw HavelError(.io, "cannot make a temporary GNUPGHOME: \(errnoText())") }
        let home = String(cString: made)
        let environment = ["GNUPGHOME": home]
        let gpg: @Sendable ([String]) -> Command = { Command("gpg", ["--batch", "--yes", "--no-tty", "--quiet"] + $0, environment: environment) }
        do throws(HavelError) {
            try await body(gpg)
        } catch {
            await cleanUp(home, environment, processes)
            throw error
        }
        await cleanUp(home, environment, processes)
    }

    /// The agent may still write into the home while it shuts down, so removal is tried again for a while.
    static func cleanUp(_ home: String, _ environment: [String: String], _ processes: any ProcessRunning) async {
        _ = try? await processes.run(Command("gpgconf", ["--kill", "all"], environment: environment))
        for _ in 0..<100 {
            try? FileManager.default.removeItem(atPath: home)
            guard FileManager.default.fileExists(atPath: home) else { return }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}
