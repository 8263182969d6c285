import Foundation
import HavelCore
import Logging
import SystemKit
@testable import Build
import Testing

/// A packed image comes from the stage cache only when the image's bytes, name, packer and time are those
/// packed before, and then it is the same file a fresh packing makes (real tar and xz).
@Suite struct PackedImageCacheTests {
    /// A sparse 64 MiB image with a few written blocks, as the image stage leaves it.
    static func makeImage(_ path: String, marker: String) throws {
        guard let handle = FileHandle(forWritingAtPath: path) ?? {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }() else { throw HavelError(.io, "cannot write \(path)") }
        defer { try? handle.close() }
        try handle.truncate(atOffset: 64 << 20)
        for offset in [0, 1 << 20, 40 << 20] {
            try handle.seek(toOffset: UInt64(offset))
            try handle.write(contentsOf: Data((marker + String(repeating: "havel", count: 2000)).utf8))
        }
    }

    @Test func anUnchangedImageIsCopiedFromTheCacheAndAChangedOneIsPackedAgain() async throws {
        let root = NSTemporaryDirectory() + "havel-packed-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let output = root + "/out"
        let work = root + "/work"
        for dir in [output, work] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        let packer = PackedImageCache(cache: HavelCache(path: root + "/cache"), workDirectory: work, processes: SystemProcesses(),
                                      log: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })

        try Self.makeImage(output + "/sd.img", marker: "first")
        let cold = try await packer.pack("sd.img", in: output, packer: "tarxz", mtime: 1_700_000_000)
        #expect(cold.name == "sd.img.tar.xz" && !cold.fromCache)
        #expect(!FileManager.default.fileExists(atPath: output + "/sd.img"), "the packed image's source stays")
        let packedFresh = try Data(contentsOf: URL(fileURLWithPath: output + "/sd.img.tar.xz"))
        try FileManager.default.removeItem(atPath: output + "/sd.img.tar.xz")
        #expect(try FileManager.default.contentsOfDirectory(atPath: work).isEmpty, "the copy for the cache was left in the work directory")

        // The same bytes again: from the cache, identical to the fresh packing.
        try Self.makeImage(output + "/sd.img", marker: "first")
        let warm = try await packer.pack("sd.img", in: output, packer: "tarxz", mtime: 1_700_000_000)
        #expect(warm.fromCache && warm.key == cold.key)
        #expect(try Data(contentsOf: URL(fileURLWithPath: output + "/sd.img.tar.xz")) == packedFresh)
        #expect(!FileManager.default.fileExists(atPath: output + "/sd.img"))
        #expect(!FileManager.default.fileExists(atPath: output + "/sd.img.tar.xz.partial"))

        // One changed byte, another time or another packer: packed afresh under another key.
        for (marker, mtime, packerName) in [("First", 1_700_000_000, "tarxz"), ("first", 1_700_000_001, "tarxz"), ("first", 1_700_000_000, "gzip")] {
            try Self.makeImage(output + "/sd.img", marker: marker)
            let again = try await packer.pack("sd.img", in: output, packer: packerName, mtime: mtime)
            #expect(!again.fromCache && again.key != cold.key, "\(marker) \(mtime) \(packerName)")
            try FileManager.default.removeItem(atPath: output + "/" + again.name)
        }
    }
}
