import Foundation
@testable import Build
import Testing

/// Stage cache entries carry their format; one of another format is never reused, only listed and pruned.
@Suite struct StageCacheFormatTests {
    @Test func anEntryOfAnotherFormatIsNeverReusedAndIsPruned() throws {
        let root = NSTemporaryDirectory() + "havel-cache-format-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = HavelCache(path: root)
        try cache.prepare()
        // As Havel before format 3 stored it: an empty marker.
        let old = cache.stageDirectory("old")
        try FileManager.default.createDirectory(atPath: old, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: old + "/complete", contents: Data())
        // As this Havel stores it.
        let tree = root + "/tree"
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        try cache.storeStage("new", files: ["rootfs": tree])

        #expect(cache.lookUpStage("old") == .otherFormat("no format (before format 3)"))
        #expect(!cache.hasStage("old"))
        #expect(cache.lookUpStage("new") == .present)
        #expect(cache.lookUpStage("none") == .missing)
        let listed = Dictionary(uniqueKeysWithValues: cache.listStages().map { ($0.key, $0.otherFormat) })
        #expect(listed == ["old": true, "new": false])
        // A prune of old stages only removes the other format's entry, however recently it was used.
        _ = cache.prune(olderThan: 365 * 86_400, debs: false)
        #expect(cache.listStages().map(\.key) == ["new"])
    }
}
