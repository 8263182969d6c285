import Foundation
import HavelCore
import Images
import Logging
import SystemKit

/// Packed disk images kept in the stage cache by content: the key is the sha256 of the finished image's
/// bytes with its name, packer and clamped time, so an unchanged image (a warm rebuild makes the same bytes)
/// is copied from the cache instead of packed again, which for tar.xz of a 1 GiB image is most of a warm
/// rebuild. Any change to the image, however it came about, is a new key.
struct PackedImageCache {
    /// Raised when what goes into the key or what is stored changes.
    static let format = 1

    let cache: HavelCache
    /// Where the copy to be stored is made (the build's work directory: nothing is left in the cache if
    /// the build is killed).
    let workDirectory: String
    let processes: any ProcessRunning
    let log: Logger

    struct KeyInputs: Codable {
        var format: Int
        var image: String
        var packer: String
        var mtime: Int
        var sha256: String
    }

    struct Packed {
        var name: String
        var key: String
        var fromCache: Bool
    }

    /// Packs `directory/name` as `Packers.packImage` does, taking the result from the cache when the same
    /// image was packed the same way before, and storing it otherwise.
    func pack(_ name: String, in directory: String, packer: String, mtime: Int) async throws(HavelError) -> Packed {
        let image = directory + "/" + name
        let inputs = KeyInputs(format: Self.format, image: name, packer: packer, mtime: mtime,
                               sha256: try await Digest.sha256(largeFile: image, processes: processes))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(inputs) else { throw HavelError(.internalError, "cannot encode the packed image's key") }
        let key = try await Digest.sha256([UInt8](data), processes: processes)
        let output = Packers.packedName(name, packer: packer)
        let stored = cache.stageDirectory(key) + "/packed"
        if cache.lookUpStage(key) == .present {
            let temporary = directory + "/" + output + ".partial"
            let copied = try await processes.run(Command("cp", ["--reflink=auto", "--sparse=always", "--", stored, temporary]))
            if copied.succeeded {
                try AtomicFile.publish(temporary, as: directory + "/" + output)
                unlink(image)
                cache.touchStage(key)
                log.info("image \(name): \(output) from the stage cache (\(key.prefix(16))): the image's bytes are those packed before")
                return Packed(name: output, key: key, fromCache: true)
            }
            unlink(temporary)
            log.warning("image \(name): the cached \(output) could not be copied (\(copied.standardError.trimmingWhitespace())); packing it again")
        }
        let packed = try await Packers.packImage(name, in: directory, packer: packer, mtime: mtime, processes: processes)
        try cache.prepare()
        let copy = workDirectory + "/packed-\(UUID().uuidString)"
        let description = copy + ".description"
        defer {
            unlink(copy)
            unlink(description)
        }
        let copied = try await processes.run(Command("cp", ["--reflink=auto", "--sparse=always", "--", directory + "/" + packed, copy]))
        guard copied.succeeded, FileManager.default.createFile(atPath: description, contents: Data("packed image \(output) (\(packer))\n".utf8)) else {
            // The build's result is complete; only the next rebuild is slower.
            log.warning("image \(name): \(output) not kept in the stage cache: \(copied.standardError.trimmingWhitespace())")
            return Packed(name: packed, key: key, fromCache: false)
        }
        try cache.storeStage(key, files: ["packed": copy, "description": description])
        cache.touchStage(key)
        return Packed(name: packed, key: key, fromCache: false)
    }
}
