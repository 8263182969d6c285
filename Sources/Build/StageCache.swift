import Foundation
import HavelCore
import SystemKit

/// Havel's caches under one directory (default /var/cache/havel):
/// - `debs/`: downloaded packages, shared by every build, each verified by sha256 before reuse;
/// - `sources/<sha256>`: files of source packages (the source CD), verified before reuse;
/// - `stages/<key>/`: finished stages (the installed tree, copied as it is so that reusing it is one
///   `cp -a`, plus what the reports need),
///   keyed by the sha256 of everything that went into them.
public struct HavelCache: Sendable {
    public static let defaultPath = "/var/cache/havel"

    public let path: String
    public var debs: String { path + "/debs" }
    public var stages: String { path + "/stages" }
    /// The projects' repository signing keys (0700); never pruned, never in a build directory.
    public var keys: String { path + "/keys" }
    /// Source package files for the source CD, each named by its sha256 and checked against it before reuse.
    public var sources: String { path + "/sources" }
    var debIndex: String { debs + "/index.json" }
    /// Held (exclusively, briefly) while index.json is read, changed and written back.
    var debIndexLock: String { debs + "/.index.lock" }
    /// Held shared by every build from the moment its packages come into the cache until they are
    /// recorded as verified; `verifyDebs` removes never-verified files only when it can hold it exclusively.
    var debsInUseLock: String { debs + "/.in-use.lock" }

    public init(path: String = HavelCache.defaultPath) {
        self.path = path
    }

    public func prepare() throws(HavelError) {
        for dir in [debs, stages] {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw HavelError(.io, "cannot create the cache directory \(dir): \(error.localizedDescription)")
            }
        }
    }

    // MARK: - Packages

    /// sha256 of every .deb the cache vouches for, by file name.
    public func readDebIndex() -> [String: String] {
        guard let data = FileManager.default.contents(atPath: debIndex),
              let index = try? JSONDecoder().decode([String: String].self, from: data) else { return [:] }
        return index
    }

    func writeDebIndex(_ index: [String: String]) throws(HavelError) {
        try AtomicFile.writeJSON(index, to: debIndex)
    }

    public func debFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: debs)) ?? []).filter { $0.hasSuffix(".deb") }.sorted()
    }

    /// Removes every cached .deb whose sha256 is not the one recorded when it was verified against its
    /// mirror's index, and those never verified, unless another build is still bringing its packages in
    /// (then unverified files may be its downloads and stay). Returns how many were removed.
    @discardableResult
    public func verifyDebs(processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> Int {
        let alone = try FileLock.attempt(debsInUseLock, .exclusive)
        defer { alone?.release() }
        let files = debFiles()
        let digests = try await Digest.sha256(files: files.map { debs + "/" + $0 }, processes: processes)
        let indexLock = try FileLock(debIndexLock)
        defer { indexLock.release() }
        let index = readDebIndex()
        var removed = 0
        var kept: [String: String] = [:]
        for file in files {
            let expected = index[file]
            if let expected, digests[debs + "/" + file] == expected {
                kept[file] = expected
            } else if expected != nil || alone != nil {
                unlink(debs + "/" + file)
                removed += 1
            }
        }
        if kept != index { try writeDebIndex(kept) }
        return removed
    }

    /// Marks this build as bringing packages into the cache until the returned lock is released.
    public func usingDebs() throws(HavelError) -> FileLock {
        try FileLock(debsInUseLock, .shared)
    }

    /// Records packages whose digests were checked against the mirror's index.
    public func recordVerified(_ digests: [String: String]) throws(HavelError) {
        let indexLock = try FileLock(debIndexLock)
        defer { indexLock.release() }
        var index = readDebIndex()
        for (file, digest) in digests { index[file] = digest }
        try writeDebIndex(index)
    }

    // MARK: - Stages

    public func stageDirectory(_ key: String) -> String { stages + "/" + key }

    /// The format of a stored stage, written into its `complete` marker; an entry of another format (an
    /// older Havel wrote it) is never read, only replaced.
    public static let stageFormat = 3
    static var completeMarker: String { "havel-stage-format \(stageFormat)\n" }

    public enum StageLookup: Sendable, Equatable {
        case missing
        case present
        /// Stored by a Havel with another stage format (what its marker says).
        case otherFormat(String)
    }

    public func lookUpStage(_ key: String) -> StageLookup {
        guard let marker = FileManager.default.contents(atPath: stageDirectory(key) + "/complete") else { return .missing }
        let text = String(decoding: marker, as: UTF8.self)
        guard text == Self.completeMarker else {
            let said = text.trimmingCharacters(in: .whitespacesAndNewlines)
            return .otherFormat(said.isEmpty ? "no format (before format 3)" : said)
        }
        return .present
    }

    public func hasStage(_ key: String) -> Bool { lookUpStage(key) == .present }

    /// A stored stage's record.json.
    func stageRecord<Record: Decodable>(_ key: String, as type: Record.Type) -> Record? {
        guard let data = FileManager.default.contents(atPath: stageDirectory(key) + "/record.json") else { return nil }
        return try? JSONDecoder().decode(Record.self, from: data)
    }

    /// Stores a finished stage: the files given are moved in, then a `complete` marker is written,
    /// so that a half-stored stage is never reused.
    public func storeStage(_ key: String, files: [String: String]) throws(HavelError) {
        let final = stageDirectory(key)
        let temporary = final + ".tmp-\(UUID().uuidString)"
        do {
            try? FileManager.default.removeItem(atPath: temporary)
            try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
            for (name, source) in files {
                try FileManager.default.moveItem(atPath: source, toPath: temporary + "/" + name)
            }
            _ = FileManager.default.createFile(atPath: temporary + "/complete", contents: Data(Self.completeMarker.utf8))
            try? FileManager.default.removeItem(atPath: final)
            try FileManager.default.moveItem(atPath: temporary, toPath: final)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw HavelError(.io, "cannot store stage \(key) in the cache: \(error.localizedDescription)")
        }
    }

    public struct StageEntry: Sendable, Codable {
        public var key: String
        public var bytes: UInt64
        public var created: Date
        public var lastUsed: Date
        public var description: String?
        /// Written by a Havel with another stage format: never reused, removed by the next prune.
        public var otherFormat: Bool = false
    }

    /// Every complete stage, of this format or another (so that prune removes what no build can reuse).
    public func listStages() -> [StageEntry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: stages)) ?? []
        return names.filter { lookUpStage($0) != .missing }.compactMap { name in
            let dir = stageDirectory(name)
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            var bytes: UInt64 = 0
            for file in files { bytes += Self.size(of: dir + "/" + file) }
            let attributes = try? FileManager.default.attributesOfItem(atPath: dir + "/complete")
            let created = attributes?[.creationDate] as? Date ?? attributes?[.modificationDate] as? Date ?? Date(timeIntervalSince1970: 0)
            let used = (try? FileManager.default.attributesOfItem(atPath: dir + "/last-used")[.modificationDate] as? Date) ?? created
            let description = (try? String(contentsOfFile: dir + "/description", encoding: .utf8))?.trimmingWhitespace()
            return StageEntry(key: name, bytes: bytes, created: created, lastUsed: used, description: description,
                              otherFormat: !hasStage(name))
        }.sorted { $0.lastUsed > $1.lastUsed }
    }

    /// Bytes of a file, or of everything below a directory (links not followed).
    static func size(of path: String) -> UInt64 {
        var total: UInt64 = 0
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        total += UInt64(info.st_size)
        if (info.st_mode & S_IFMT) == S_IFDIR, let items = FileManager.default.enumerator(atPath: path) {
            for case let item as String in items where lstat(path + "/" + item, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG {
                total += UInt64(info.st_size)
            }
        }
        return total
    }

    public func touchStage(_ key: String) {
        _ = FileManager.default.createFile(atPath: stageDirectory(key) + "/last-used", contents: Data())
    }

    /// Removes stages not used within `olderThan` seconds (all with 0) and, with `debs`, every cached
    /// package and source file. Returns the bytes freed.
    public func prune(olderThan age: TimeInterval, debs alsoDebs: Bool) -> UInt64 {
        var freed: UInt64 = 0
        let limit = Date().addingTimeInterval(-age)
        for stage in listStages() where age == 0 || stage.lastUsed < limit || stage.otherFormat {
            if (try? FileManager.default.removeItem(atPath: stageDirectory(stage.key))) != nil { freed += stage.bytes }
        }
        if alsoDebs {
            for file in debFiles() {
                freed += (try? FileManager.default.attributesOfItem(atPath: debs + "/" + file)[.size] as? UInt64) ?? 0
                unlink(debs + "/" + file)
            }
            try? writeDebIndex([:])
            for file in (try? FileManager.default.contentsOfDirectory(atPath: sources)) ?? [] {
                freed += (try? FileManager.default.attributesOfItem(atPath: sources + "/" + file)[.size] as? UInt64) ?? 0
                unlink(sources + "/" + file)
            }
        }
        return freed
    }
}
