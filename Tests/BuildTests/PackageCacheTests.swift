import Foundation
@testable import Build
import SystemKit
import Testing

/// The shared .deb cache: verified files stay, changed ones go, and a build that is still bringing its
/// downloads in does not lose them to another build's check.
struct PackageCacheTests {
    @Test func unverifiedDebsOfABuildInFlightSurviveAnotherBuildsCheck() async throws {
        let root = NSTemporaryDirectory() + "havel-debs-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = HavelCache(path: root)
        try cache.prepare()
        func put(_ name: String, _ text: String) throws {
            try text.write(toFile: cache.debs + "/" + name, atomically: true, encoding: .utf8)
        }
        try put("verified_1_all.deb", "good")
        try put("changed_1_all.deb", "tampered")
        try put("downloading_1_all.deb", "new")
        let digests = try await Digest.sha256(files: [cache.debs + "/verified_1_all.deb"])
        try cache.recordVerified(["verified_1_all.deb": try #require(digests[cache.debs + "/verified_1_all.deb"]),
                                  "changed_1_all.deb": String(repeating: "0", count: 64)])

        // Another build is between its download and its verification: its file stays; a changed one goes.
        let inFlight = try cache.usingDebs()
        #expect(try await cache.verifyDebs() == 1)
        #expect(cache.debFiles() == ["downloading_1_all.deb", "verified_1_all.deb"])
        #expect(cache.readDebIndex().keys.sorted() == ["verified_1_all.deb"])

        // Once that build is done, a file nobody verified is dropped.
        inFlight.release()
        #expect(try await cache.verifyDebs() == 1)
        #expect(cache.debFiles() == ["verified_1_all.deb"])
    }

    @Test func locksConflictInsideOneProcess() throws {
        let path = NSTemporaryDirectory() + "havel-lock-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let shared = try FileLock(path, .shared)
        let alsoShared = try #require(try FileLock.attempt(path, .shared))
        #expect(try FileLock.attempt(path, .exclusive) == nil)
        shared.release()
        alsoShared.release()
        let exclusive = try #require(try FileLock.attempt(path, .exclusive))
        #expect(try FileLock.attempt(path, .shared) == nil)
        exclusive.release()
    }
}
