import Foundation
import HavelCore
import Logging
import SystemKit

/// Temporary changes a chroot session needs, undone when it ends: a policy-rc.d that keeps services
/// from starting, and the host's resolv.conf so that tools inside can resolve names. A resolv.conf
/// that was changed inside the session is kept (the change was meant), as ELBE does.
public struct ChrootExcursions: Sendable {
    let target: RootedFileSystem
    let policyBackup: Bool
    let resolvBackup: Bool
    let resolvWritten: [UInt8]?

    static let policy = "/usr/sbin/policy-rc.d"
    static let resolv = "/etc/resolv.conf"
    static let suffix = ".havel-orig"

    public static func enter(_ target: RootedFileSystem) throws(HavelError) -> ChrootExcursions {
        let policyBackup = try backUp(policy, in: target)
        try target.writeFile(policy, contents: Array("#!/bin/sh\n# Havel: no service starts while the tree is built.\nexit 101\n".utf8), mode: 0o755)
        var resolvBackup = false
        var written: [UInt8]?
        if let host = FileManager.default.contents(atPath: "/etc/resolv.conf") {
            resolvBackup = try backUp(resolv, in: target)
            try target.writeFile(resolv, contents: [UInt8](host), mode: 0o644)
            written = [UInt8](host)
        }
        return ChrootExcursions(target: target, policyBackup: policyBackup, resolvBackup: resolvBackup, resolvWritten: written)
    }

    /// Runs `body` with the excursions in place and undoes them on every exit path.
    public static func during<T>(_ target: RootedFileSystem, log: Logger,
                                 _ body: () async throws(HavelError) -> T) async throws(HavelError) -> T {
        let excursions = try enter(target)
        do throws(HavelError) {
            let result = try await body()
            excursions.leave(log: log)
            return result
        } catch {
            excursions.leave(log: log)
            throw error
        }
    }

    static func backUp(_ path: String, in target: RootedFileSystem) throws(HavelError) -> Bool {
        let host = try target.resolve(path, followFinalSymlink: false)
        var info = stat()
        guard lstat(host, &info) == 0 else { return false }
        try target.remove(path + suffix)
        try target.move(from: path, to: path + suffix)
        return true
    }

    static func restore(_ path: String, hadBackup: Bool, in target: RootedFileSystem) throws(HavelError) {
        try target.remove(path)
        if hadBackup { try target.move(from: path + suffix, to: path) }
    }

    /// Undoes everything; problems are logged, never thrown, so it can run on every exit path.
    public func leave(log: Logger) {
        do {
            try Self.restore(Self.policy, hadBackup: policyBackup, in: target)
        } catch {
            log.warning("could not restore \(Self.policy): \(error)")
        }
        guard let written = resolvWritten else { return }
        do {
            let now = target.exists(Self.resolv) ? try target.readFile(Self.resolv) : nil
            if now == written {
                try Self.restore(Self.resolv, hadBackup: resolvBackup, in: target)
            } else {
                try target.remove(Self.resolv + Self.suffix)
            }
        } catch {
            log.warning("could not restore \(Self.resolv): \(error)")
        }
    }
}
