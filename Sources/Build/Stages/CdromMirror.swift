// CdromMirror owns `<mirror><cdrom>`: a binary CD (an ISO image, read with xorriso and never mounted, or a
// directory holding one) as one more package source while installing, as ELBE adds its CD to the sources.
// Its InRelease must verify with the CD's own archive-key.asc (a CD `havel build --cdroms` wrote) or with
// Debian's archive keyring; its line never stays in the target, whose sources name no build-host path.

import Foundation
import HavelCore
import SystemKit

struct CdromMirror: Sendable {
    /// The repository's root (dists/, pool/).
    let directory: String
    let suite: String
    /// What apt checks its signature with (signed-by).
    let keyFile: String
    /// The sha256 of its InRelease: keys the install stage like a mirror's Release.
    let inReleaseSHA256: String

    var sourceLine: String { "deb [signed-by=\(keyFile)] copy://\(directory) \(suite) main" }

    static let debianKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

    static func prepare(_ path: String, suite: String, work: String, processes: any ProcessRunning) async throws(HavelError) -> CdromMirror {
        let what = "<mirror><cdrom>\(path)</cdrom>"
        guard path.hasPrefix("/") else {
            throw HavelError(.invalidProject, "\(what): give the absolute path of a binary CD (an ISO image or a directory holding its files)")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw HavelError(.notFound, "\(what): no such file or directory")
        }
        var directory = path
        if !isDirectory.boolValue {
            directory = work + "/cdrom-mirror"
            try? FileManager.default.removeItem(atPath: directory)
            try await BinaryCdromVerification.extract(path, into: directory, what: what, processes: processes)
        }
        guard !directory.contains(where: { $0.isWhitespace || $0 == "]" }) else {
            throw HavelError(.invalidProject, "\(what): the path holds whitespace or ']', which an apt sources line cannot take")
        }
        let cd = try RootedFileSystem(root: directory)
        let inRelease = "/dists/\(suite)/InRelease"
        guard cd.exists(inRelease) else {
            throw HavelError(.invalidProject, "\(what): the CD has no dists/\(suite)/InRelease; give a signed repository of suite \(suite), as havel build --cdroms writes")
        }
        let ownKey = cd.exists("/archive-key.asc")
        let keyFile = ownKey ? directory + "/archive-key.asc" : debianKeyring
        let keyring = work + "/cdrom-mirror-key.gpg"
        try? FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        unlink(keyring)
        defer { unlink(keyring) }
        if ownKey {
            try await processes.check(Command("gpg", ["--batch", "--dearmor", "-o", keyring, keyFile]))
        }
        let verified = try await processes.run(Command("gpgv", ["--keyring", ownKey ? keyring : debianKeyring, directory + inRelease]))
        guard verified.succeeded else {
            throw HavelError(.invalidProject, "\(what): dists/\(suite)/InRelease does not verify with \(ownKey ? "the CD's archive-key.asc" : "Debian's archive keyring"): \(verified.standardError.trimmingWhitespace().suffix(300))")
        }
        let digest = try await Digest.sha256(try cd.readFile(inRelease, limit: 16 << 20), processes: processes)
        return CdromMirror(directory: directory, suite: suite, keyFile: keyFile, inReleaseSHA256: digest)
    }
}
