// Images owns disk images made from plain files (partition tables, filesystems filled from a tree, blobs),
// the root filesystem archives (tar, cpio, squashfs) and the packers of finished images.
//
// Nothing is mounted and no loop device is used: each filesystem is made as a file of its partition's size
// from a staging copy of its part of the tree, the table is written with sfdisk into the image file, and the
// filesystem files and binary blobs are copied in at their byte offsets.

import Foundation
import HavelCore
import Logging
import SystemKit

/// One disk image to make from a finished target tree.
public struct ImageRequest: Sendable {
    public var image: DiskImage
    /// All of the project's fstab entries; `bylabel` ones link partitions to mountpoints and filesystems.
    public var fstab: [FstabEntry]
    /// Host path of the finished target tree. Read only: never modified.
    public var rootfs: String
    /// `<image.name>` is written here (as `<image.name>.partial`, renamed when complete).
    public var outputDirectory: String
    /// Scratch space; Images works in `<workDirectory>/<image.name>.parts` and removes it when done. Best on
    /// the rootfs's filesystem (then partitions are staged with hard links instead of copies).
    public var workDirectory: String
    /// Base for relative `binary` paths.
    public var projectDirectory: String
    /// Modification times later than this are clamped to it; other stored times are set to it.
    public var sourceDateEpoch: Int
    /// Every UUID, label-id, volume id and hash seed derives from this (e.g. "project-name 1.0").
    public var seed: String
    /// Who runs mkfs, sfdisk and the rest (a recording runner in the build plan's unit tests).
    public var processes: any ProcessRunning

    public init(image: DiskImage, fstab: [FstabEntry], rootfs: String, outputDirectory: String, workDirectory: String,
                projectDirectory: String, sourceDateEpoch: Int, seed: String, processes: any ProcessRunning = SystemProcesses()) {
        self.processes = processes
        self.image = image
        self.fstab = fstab
        self.rootfs = rootfs
        self.outputDirectory = outputDirectory
        self.workDirectory = workDirectory
        self.projectDirectory = projectDirectory
        self.sourceDateEpoch = sourceDateEpoch
        self.seed = seed
    }
}

public struct BuiltPartition: Sendable, Codable, Equatable {
    public enum Content: String, Sendable, Codable {
        /// A filesystem made from the tree (or an empty one, such as swap).
        case filesystem
        /// A file copied in from `binary`.
        case binary
        /// Nothing: left zero.
        case empty
        /// The msdos extended partition holding the logical ones.
        case extended
    }

    public var number: Int
    public var label: String
    public var startSector: UInt64
    public var sectorCount: UInt64
    /// The fstab filesystem type, when Images made one.
    public var filesystem: String?
    /// The filesystem UUID as blkid shows it (FAT: the volume id `XXXX-XXXX`); nil for squashfs and raw content.
    public var uuid: String?
    public var mountpoint: String?
    public var content: Content
    /// The partition type: an msdos code (`c`, `83`, `82`, `5`) or a GPT type GUID.
    public var type: String
    public var bootable: Bool
    /// GPT only: the partition's unique GUID (PARTUUID) and name.
    public var partitionUUID: String?
    public var name: String?

    public init(number: Int, label: String, startSector: UInt64, sectorCount: UInt64, filesystem: String?, uuid: String?,
                mountpoint: String?, content: Content, type: String, bootable: Bool, partitionUUID: String? = nil, name: String? = nil) {
        self.number = number
        self.label = label
        self.startSector = startSector
        self.sectorCount = sectorCount
        self.filesystem = filesystem
        self.uuid = uuid
        self.mountpoint = mountpoint
        self.content = content
        self.type = type
        self.bootable = bootable
        self.partitionUUID = partitionUUID
        self.name = name
    }

    public var startBytes: UInt64 { startSector * DiskImage.sectorSize }
    public var sizeBytes: UInt64 { sectorCount * DiskImage.sectorSize }
}

public struct BuiltImage: Sendable, Codable {
    public var path: String
    public var partitions: [BuiltPartition]
    /// `dos` or `gpt`.
    public var table: String
    /// The msdos label-id (`0x…`) or the GPT disk GUID.
    public var diskID: String

    public init(path: String, partitions: [BuiltPartition], table: String, diskID: String) {
        self.path = path
        self.partitions = partitions
        self.table = table
        self.diskID = diskID
    }
}

/// Makes `msdoshd`/`gpthd` images as ELBE does (`elbepack/hdimg.py`), from plain files.
///
/// * Layout from `DiskImage.layout()`; the table by sfdisk: msdos types `c` (vfat, FAT32 LBA as ELBE), `83`,
///   `82` (swap), `5` (extended), the bootable flag; GPT names, the Linux filesystem type, BIOS boot for
///   `biosgrub`, EFI System for a vfat at /boot/efi (or a bootable vfat, as parted does), Linux swap, and the
///   LegacyBIOSBootable attribute for other bootable partitions. Read back and checked with `sfdisk --json`.
/// * A partition whose label has an fstab `bylabel` entry holds the tree under its mountpoint, without the
///   subtrees of deeper mountpoints of other partitions of this image (their directories stay, empty).
///   Files under mountpoints that have no partition in this image stay with their parent's partition. Without
///   an entry and without `binary`, a partition stays empty.
/// * `binary` partitions and disk-level `binary@offset@blocksize` blobs: `/x` is a path in the rootfs,
///   anything else is relative to the project directory. Blobs are written last; a blob that overwrites the
///   partition table is an error (the table is read back afterwards).
/// * Reproducible: identifiers from the seed, times from SOURCE_DATE_EPOCH, directory entries in sorted order;
///   two builds from the same tree and request give the same bytes (btrfs and f2fs excepted: their tools do
///   not allow it).
/// * fs-finetuning: see `FilesystemMaker` (path-commands run on a private copy of the files before mkfs).
/// * The image appears under its name only when complete; on any error the partial file is removed.
public enum ImageBuilder {
    public static func build(_ request: ImageRequest, log: Logger) async throws(HavelError) -> BuiltImage {
        let plan = try ImagePlan(request, log: log)
        let rootfs = try RootedFileSystem(root: request.rootfs)
        let prefix = "image \(plan.name)"

        for (what, directory) in [("output", request.outputDirectory), ("work", request.workDirectory)] {
            // The tree is read only, and a work directory inside it would be staged into itself.
            let real = realPath(directory)
            if real == rootfs.root || real.hasPrefix(rootfs.root + "/") {
                throw HavelError(.invalidArgument, "\(prefix): the \(what) directory \(directory) lies inside the target tree \(request.rootfs)")
            }
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw HavelError(.io, "\(prefix): cannot create \(directory)", cause: error)
            }
        }
        let work = request.workDirectory + "/" + plan.name + ".parts"
        try Staging.remove(work)
        guard mkdir(work, 0o700) == 0 else { throw HavelError(.io, "\(prefix): cannot create \(work): \(FileIO.errorText())") }
        defer { try? Staging.remove(work) }

        let output = request.outputDirectory + "/" + plan.name
        let temporary = output + ".partial"
        do throws(HavelError) {
            let started = ContinuousClock.now
            let contents = try await prepareContents(plan, request: request, rootfs: rootfs, work: work, log: log)
            try await assemble(plan, request: request, rootfs: rootfs, contents: contents, into: temporary, log: log)
            try AtomicFile.publish(temporary, as: output)
            let elapsed = ContinuousClock.now - started
            let tenths = elapsed.components.seconds * 10 + elapsed.components.attoseconds / 100_000_000_000_000_000
            log.info("\(prefix): written to \(output) in \(tenths / 10).\(tenths % 10) s")
        } catch {
            unlink(temporary)
            throw error
        }
        return BuiltImage(path: output, partitions: plan.slots.map { built($0) }, table: plan.image.table == .msdos ? "dos" : "gpt",
                          diskID: plan.diskID)
    }

    /// The real path of `path`, whose last components may not exist yet.
    static func realPath(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var existing = absolute
        var missing: [String] = []
        while true {
            if let resolved = realpath(existing, nil) {
                defer { free(resolved) }
                let base = String(cString: resolved)
                return missing.reversed().reduce(base) { $0 == "/" ? "/" + $1 : $0 + "/" + $1 }
            }
            let parent = (existing as NSString).deletingLastPathComponent
            if parent == existing || parent.isEmpty { return absolute }
            missing.append((existing as NSString).lastPathComponent)
            existing = parent
        }
    }

    static func built(_ slot: PlannedSlot) -> BuiltPartition {
        var result = BuiltPartition(number: slot.placed.number, label: slot.placed.label, startSector: slot.placed.startSector,
                                    sectorCount: slot.placed.sectorCount, filesystem: nil, uuid: nil, mountpoint: nil, content: .empty,
                                    type: slot.typeCode, bootable: slot.bootableFlag || slot.gptAttributes == "LegacyBIOSBootable",
                                    partitionUUID: slot.gptUUID, name: slot.gptName)
        switch slot.content {
        case .extended: result.content = .extended
        case .empty: result.content = .empty
        case .binary: result.content = .binary
        case .filesystem(let fs):
            result.content = .filesystem
            result.filesystem = fs.kind.rawValue
            result.mountpoint = fs.mountpoint
            switch fs.kind {
            case .squashfs: result.uuid = nil
            case .vfat:
                let id = fs.volumeID.uppercased()
                result.uuid = String(id.prefix(4)) + "-" + String(id.suffix(4))
            default: result.uuid = fs.uuid
            }
        }
        return result
    }

    /// Makes every filesystem file (several at once) and resolves every partition binary.
    static func prepareContents(_ plan: ImagePlan, request: ImageRequest, rootfs: RootedFileSystem, work: String,
                                log: Logger) async throws(HavelError) -> [PartitionContent] {
        var workStatus = stat()
        var rootStatus = stat()
        let sameDevice = stat(work, &workStatus) == 0 && stat(rootfs.root, &rootStatus) == 0 && workStatus.st_dev == rootStatus.st_dev
        if !sameDevice { log.info("image \(plan.name): the work directory is not on the rootfs's filesystem; partitions are staged by copying") }
        let kinds = Set(plan.slots.compactMap { $0.filesystem?.kind })
        let context = FilesystemMaker.Context(imageName: plan.name, processes: request.processes, epoch: request.sourceDateEpoch, rootfs: rootfs, work: work, sameDevice: sameDevice,
                                              capabilities: await ToolCapabilities.probe(for: kinds, processes: request.processes), log: log)
        for path in plan.uncovered {
            log.warning("image \(plan.name): the files under \(path) are in no partition: it is mounted from a binary partition")
        }

        var contents: [PartitionContent] = []
        var jobs: [PlannedSlot] = []
        for slot in plan.slots {
            switch slot.content {
            case .binary(let path):
                contents.append(try binaryContent(path, slot: slot, request: request, rootfs: rootfs))
            case .filesystem: jobs.append(slot)
            case .empty, .extended: break
            }
        }
        let width = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 4))
        do {
            try await withThrowingTaskGroup(of: PartitionContent.self) { group in
                var pending = jobs[...]
                func startNext() {
                    guard let slot = pending.popFirst(), let fs = slot.filesystem else { return }
                    group.addTask { try await FilesystemMaker.make(fs, slot: slot, context) }
                }
                for _ in 0..<width { startNext() }
                while let made = try await group.next() {
                    contents.append(made)
                    startNext()
                }
            }
        } catch let error as HavelError {
            throw error
        } catch {
            throw HavelError(.internalError, "image \(plan.name): making the filesystems failed", cause: error)
        }
        return contents.sorted { $0.number < $1.number }
    }

    /// A partition's `binary`: `/x` from the rootfs (resolved inside it), otherwise relative to the project directory.
    static func binaryContent(_ path: String, slot: PlannedSlot, request: ImageRequest, rootfs: RootedFileSystem) throws(HavelError) -> PartitionContent {
        let where_ = "image \(request.image.name): partition \(slot.placed.label)"
        let host = try hostPath(ofBinary: path, rootfs: rootfs, projectDirectory: request.projectDirectory, context: where_, at: slot.partition?.location)
        let (fd, size) = try FileIO.openRegular(host, what: "\(where_): the binary")
        close(fd)
        guard size <= slot.placed.sizeBytes else {
            throw HavelError(.invalidProject, "\(where_): the binary \(path) is \(ByteCount.format(size)), larger than the \(ByteCount.format(slot.placed.sizeBytes)) partition",
                             at: slot.partition?.location)
        }
        return PartitionContent(number: slot.placed.number, file: host, size: size)
    }

    /// `/x`: the file in the target tree (links resolved inside it); otherwise relative to `projectDirectory`.
    static func hostPath(ofBinary path: String, rootfs: RootedFileSystem, projectDirectory: String, context: String,
                         at location: SourceLocation? = nil) throws(HavelError) -> String {
        guard !path.isEmpty else { throw HavelError(.invalidProject, "\(context): the binary path is empty", at: location) }
        if path.hasPrefix("/") {
            let host = try rootfs.resolve(path)
            guard FileManager.default.fileExists(atPath: host) else {
                throw HavelError(.notFound, "\(context): the binary \(path) does not exist in the target tree \(rootfs.root)", at: location)
            }
            return host
        }
        let host = projectDirectory + "/" + path
        guard FileManager.default.fileExists(atPath: host) else {
            throw HavelError(.notFound, "\(context): the binary \(path) does not exist in the project directory \(projectDirectory)", at: location)
        }
        return host
    }

    /// Creates the image file, writes and checks the table, copies the partitions in, then the disk blobs.
    static func assemble(_ plan: ImagePlan, request: ImageRequest, rootfs: RootedFileSystem, contents: [PartitionContent],
                         into path: String, log: Logger) async throws(HavelError) {
        let prefix = "image \(plan.name)"
        guard let size = plan.image.size.byteCount else { throw HavelError(.internalError, "\(prefix): no size") }
        try FileIO.createSparse(path, size: size)
        try await PartitionTable.write(plan, to: path, processes: request.processes, log: log)
        try await PartitionTable.verify(plan, image: path, when: "after sfdisk", processes: request.processes)

        let fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw HavelError(.io, "\(prefix): cannot open \(path): \(FileIO.errorText())") }
        var closed = false
        defer { if !closed { close(fd) } }
        for content in contents {
            guard let slot = plan.slots.first(where: { $0.placed.number == content.number }) else { continue }
            let (source, sourceSize) = try FileIO.openRegular(content.file, what: "\(prefix): partition \(slot.placed.label):")
            defer { close(source) }
            guard sourceSize == content.size else {
                throw HavelError(.io, "\(prefix): \(content.file) changed size while the image was made")
            }
            do {
                let size = content.size, start = slot.placed.startBytes
                try await BlockingWork.run { () throws(HavelError) in try FileIO.copySparse(from: source, size: size, to: fd, at: start) }
            } catch {
                throw HavelError(.io, "\(prefix): copying \(content.file) into partition \(slot.placed.label) failed: \(error.message)")
            }
        }

        for (index, blob) in plan.image.binaries.enumerated() {
            let where_ = "\(prefix): binary \(index + 1) (\(blob.path))"
            let (offset, overflow) = blob.offset.multipliedReportingOverflow(by: blob.blockSize)
            guard !overflow else { throw HavelError(.invalidProject, "\(where_): offset \(blob.offset) × \(blob.blockSize) is too large", at: plan.image.location) }
            let host = try hostPath(ofBinary: blob.path, rootfs: rootfs, projectDirectory: request.projectDirectory, context: where_, at: plan.image.location)
            let (source, blobSize) = try FileIO.openRegular(host, what: "\(where_):")
            defer { close(source) }
            guard offset + blobSize <= size else {
                throw HavelError(.invalidProject, "\(where_): \(ByteCount.format(blobSize)) at byte \(offset) reach beyond the \(ByteCount.format(size)) image", at: plan.image.location)
            }
            let end = offset + blobSize
            for slot in plan.slots where slot.partition != nil && offset < slot.placed.startBytes + slot.placed.sizeBytes && end > slot.placed.startBytes {
                log.warning("\(where_): bytes \(offset)..<\(end) overlap partition \(slot.placed.number) (\(slot.placed.label))")
            }
            log.info("\(where_): \(blobSize) bytes at byte \(offset)")
            do {
                try await BlockingWork.run { () throws(HavelError) in try FileIO.copyAll(from: source, size: blobSize, to: fd, at: offset) }
            } catch {
                throw HavelError(.io, "\(where_): writing into the image failed: \(error.message)")
            }
        }
        guard fsync(fd) == 0 else { throw HavelError(.io, "\(prefix): cannot flush \(path): \(FileIO.errorText())") }
        close(fd)
        closed = true
        if !plan.image.binaries.isEmpty {
            try await PartitionTable.verify(plan, image: path, when: "after writing the binary blobs (a blob overwrote it)",
                                            processes: request.processes)
        }
    }
}
