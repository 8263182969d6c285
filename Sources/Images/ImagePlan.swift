import HavelCore
import Logging
import SystemKit

/// The filesystems Images can make from a directory without mounting anything.
enum FilesystemKind: String, Sendable, CaseIterable {
    case ext2, ext3, ext4, vfat, squashfs, erofs, btrfs, swap, f2fs

    /// fstab types that never live on a partition.
    static let virtualTypes: Set<String> = ["tmpfs", "debugfs", "configfs", "devpts", "proc", "sysfs", "devtmpfs"]

    var isExt: Bool { self == .ext2 || self == .ext3 || self == .ext4 }
    /// Whether it holds files from the tree (swap does not).
    var holdsFiles: Bool { self != .swap }
    /// Read-only images written compactly: the file may be smaller than the partition.
    var isCompact: Bool { self == .squashfs || self == .erofs }
    /// Whether its tool takes the link count from stat(2) instead of counting links inside the tree, and so
    /// needs a staging copy rather than hard links (mkfs.btrfs -r of btrfs-progs 6.2 writes wrong link counts;
    /// sload.f2fs is not known to do better).
    var needsPrivateFiles: Bool { self == .btrfs || self == .f2fs }

    /// Executables it needs, each with the Debian package that provides it.
    var tools: [(tool: String, package: String)] {
        switch self {
        case .ext2, .ext3, .ext4: [("mke2fs", "e2fsprogs"), ("dumpe2fs", "e2fsprogs"), ("debugfs", "e2fsprogs")]
        case .vfat: [("mkfs.vfat", "dosfstools"), ("mcopy", "mtools"), ("mmd", "mtools")]
        case .squashfs: [("mksquashfs", "squashfs-tools")]
        case .erofs: [("mkfs.erofs", "erofs-utils")]
        case .btrfs: [("mkfs.btrfs", "btrfs-progs")]
        case .swap: [("mkswap", "util-linux")]
        case .f2fs: [("mkfs.f2fs", "f2fs-tools"), ("sload.f2fs", "f2fs-tools")]
        }
    }

    /// The longest label (in bytes) the filesystem stores; nil: it has no label.
    var labelLimit: Int? {
        switch self {
        case .ext2, .ext3, .ext4, .swap, .erofs: 16
        case .vfat: 11
        case .btrfs: 255
        case .f2fs: 512
        case .squashfs: nil
        }
    }
}

/// One partition of the table with what goes into it.
struct PlannedSlot: Sendable {
    enum Content: Sendable {
        case extended
        /// Neither an fstab entry nor a binary: the partition stays zero.
        case empty
        /// A file dd'ed into the partition: a tree path (`/x`, from the rootfs) or a path relative to the project.
        case binary(String)
        case filesystem(FilesystemPlan)
    }

    var placed: PlacedPartition
    var partition: Partition?
    var content: Content
    /// sfdisk `type=`: an msdos hex code or a GPT type GUID.
    var typeCode: String
    var bootableFlag: Bool
    var gptName: String?
    var gptUUID: String?
    var gptAttributes: String?

    var filesystem: FilesystemPlan? {
        if case .filesystem(let fs) = content { return fs }
        return nil
    }
}

struct FilesystemPlan: Sendable {
    var kind: FilesystemKind
    var entry: FstabEntry
    var label: String
    /// Normalised absolute tree path; nil for swap.
    var mountpoint: String?
    /// Paths relative to the mountpoint whose contents belong to other partitions of this image: their
    /// directories stay, empty.
    var nested: [String]
    var uuid: String
    var hashSeed: String
    var volumeID: String
    var extraArguments: [String]
}

enum GPTType {
    static let linuxFilesystem = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
    static let biosBoot = "21686148-6449-6E6F-744E-656564454649"
    static let efiSystem = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    static let linuxSwap = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
}

/// The checked plan of one disk image: where each partition lies, what fills it, its identifiers.
struct ImagePlan: Sendable {
    var image: DiskImage
    var slots: [PlannedSlot]
    var diskID: String
    var ids: SeededIdentifiers
    /// Tree paths whose files are in no partition of this image (mountpoints of binary partitions).
    var uncovered: [String]

    var name: String { image.name }

    init(_ request: ImageRequest, log: Logger) throws(HavelError) {
        let image = request.image
        self.image = image
        let prefix = "image \(image.name)"
        guard !image.name.isEmpty, !image.name.contains("/"), image.name != ".", image.name != "..",
              !image.name.utf8.contains(0) else {
            throw HavelError(.invalidProject, "\(prefix): the image name must be a plain file name", at: image.location)
        }
        let placed = try image.layout()
        ids = SeededIdentifiers(seed: request.seed, image: image.name)

        switch image.table {
        case .msdos:
            let primaries = image.partitions.count + (image.extended == nil ? 0 : 1)
            guard primaries <= 4 else {
                throw HavelError(.invalidProject, "\(prefix): an msdos table holds at most 4 primary partitions (the extended one included), not \(primaries)", at: image.location)
            }
            diskID = ids.dosDiskID
        case .gpt:
            guard image.extended == nil else {
                throw HavelError(.invalidProject, "\(prefix): a gpt table has no extended partition; list every partition directly", at: image.extended?.location ?? image.location)
            }
            guard image.partitions.count <= 128 else {
                throw HavelError(.invalidProject, "\(prefix): a gpt table holds at most 128 partitions, not \(image.partitions.count)", at: image.location)
            }
            diskID = ids.uuid("gpt-disk-guid").uppercased()
        }

        var seenLabels: [String: SourceLocation?] = [:]
        for partition in image.allPartitions {
            if seenLabels[partition.label] != nil {
                throw HavelError(.invalidProject, "\(prefix): two partitions have the label \(partition.label); labels link partitions to fstab entries and must be unique", at: partition.location ?? image.location)
            }
            seenLabels[partition.label] = partition.location
        }

        var byLabel: [String: FstabEntry] = [:]
        for entry in request.fstab {
            guard let label = entry.label else { continue }
            if byLabel[label] != nil {
                if seenLabels[label] != nil { log.warning("\(prefix): fstab has more than one bylabel entry for \(label); the first one is used") }
                continue
            }
            byLabel[label] = entry
        }

        var slots: [PlannedSlot] = []
        for place in placed {
            let partition: Partition?
            switch place.kind {
            case .primary: partition = image.partitions[place.number - 1]
            case .extended: partition = nil
            case .logical: partition = image.extended?.logical[place.number - 5]
            }
            guard let partition else {
                slots.append(PlannedSlot(placed: place, partition: nil, content: .extended, typeCode: "5", bootableFlag: false))
                continue
            }
            let where_ = "\(prefix): partition \(partition.label)"
            let content: PlannedSlot.Content
            let entry = byLabel[partition.label]
            if let binary = partition.binary {
                if let entry { log.info("\(where_): filled from the binary \(binary); its fstab entry (\(entry.filesystem.type) at \(entry.mountpoint)) gets no filesystem made") }
                content = .binary(binary)
            } else if let entry {
                content = .filesystem(try Self.filesystemPlan(entry, partition: partition, ids: ids, context: where_))
            } else {
                log.info("\(where_): no fstab bylabel entry and no binary; the partition is left empty")
                content = .empty
            }
            slots.append(try Self.slot(place, partition, content, table: image.table, ids: ids, context: where_, log: log))
        }

        // Which mountpoints this image fills, and so which subtrees each partition leaves out.
        var mountpoints: [String: String] = [:]   // mountpoint → label
        var binaryMountpoints: [String] = []
        for slot in slots {
            guard let partition = slot.partition else { continue }
            var mountpoint: String?
            switch slot.content {
            case .filesystem(let fs): mountpoint = fs.mountpoint
            case .binary:
                if let entry = byLabel[partition.label], let mp = try? Self.normalise(entry.mountpoint), entry.filesystem.type != "swap" {
                    mountpoint = mp
                    binaryMountpoints.append(mp)
                }
            default: break
            }
            guard let mountpoint else { continue }
            if let other = mountpoints[mountpoint] {
                throw HavelError(.invalidProject, "\(prefix): partitions \(other) and \(partition.label) are both mounted at \(mountpoint)", at: partition.location ?? image.location)
            }
            mountpoints[mountpoint] = partition.label
        }
        for index in slots.indices {
            guard var fs = slots[index].filesystem, let mountpoint = fs.mountpoint else { continue }
            let below = mountpoints.keys.filter { Self.isStrictlyBelow($0, mountpoint) }
            let outermost = below.filter { candidate in !below.contains { Self.isStrictlyBelow(candidate, $0) } }
            fs.nested = outermost.map { Self.relative($0, to: mountpoint) }.sorted()
            slots[index].content = .filesystem(fs)
        }
        uncovered = binaryMountpoints.sorted()
        if mountpoints["/"] == nil && !mountpoints.isEmpty {
            log.warning("\(prefix): no partition is mounted at /; files outside \(mountpoints.keys.sorted().joined(separator: ", ")) are not in this image")
        }
        self.slots = slots

        // Every tool, checked before anything is written.
        var needed: [(tool: String, package: String, why: String)] = [("sfdisk", "fdisk", "the partition table"), ("cp", "coreutils", "staging trees"), ("sh", "dash", "fs-finetuning")]
        for slot in slots {
            guard let fs = slot.filesystem else { continue }
            for tool in fs.kind.tools { needed.append((tool.tool, tool.package, "partition \(fs.label) (\(fs.kind.rawValue))")) }
        }
        var missing: [(tool: String, package: String, why: String)] = []
        var seenTools = Set<String>()
        for need in needed where seenTools.insert(need.tool).inserted {
            if request.processes.which(need.tool) == nil { missing.append(need) }
        }
        if !missing.isEmpty {
            let list = missing.map { "\($0.tool) (for \($0.why); apt package \($0.package))" }.joined(separator: ", ")
            let packages = Set(missing.map(\.package)).sorted().joined(separator: " ")
            throw HavelError(.hostNotReady, "\(prefix): missing tools: \(list); install them with: apt-get install \(packages)")
        }
    }

    static func filesystemPlan(_ entry: FstabEntry, partition: Partition, ids: SeededIdentifiers, context: String) throws(HavelError) -> FilesystemPlan {
        let type = entry.filesystem.type
        guard let kind = FilesystemKind(rawValue: type) else {
            if FilesystemKind.virtualTypes.contains(type) {
                throw HavelError(.invalidProject, "\(context): fstab gives it the type \(type), which is a virtual filesystem and cannot be put on a partition", at: entry.location ?? partition.location)
            }
            if type == "ubifs" {
                throw HavelError(.invalidProject, "\(context): ubifs belongs on an mtd image, not on a partition of a disk image", at: entry.location ?? partition.location)
            }
            throw HavelError(.unsupported, "\(context): unsupported filesystem type \(type); disk images can hold \(FilesystemKind.allCases.map(\.rawValue).joined(separator: ", "))", at: entry.location ?? partition.location)
        }
        let label = partition.label
        if let limit = kind.labelLimit, label.utf8.count > limit {
            throw HavelError(.invalidProject, "\(context): the label \(label) is longer than the \(limit) bytes a \(type) filesystem can store", at: partition.location)
        }
        if kind == .vfat, label.utf8.contains(where: { $0 < 0x20 || $0 >= 0x7f || Array("\"*+,./:;<=>?[\\]|".utf8).contains($0) }) {
            throw HavelError(.invalidProject, "\(context): the label \(label) has characters a FAT volume label cannot hold (use ASCII letters, digits, spaces and -_)", at: partition.location)
        }
        var mountpoint: String?
        if kind.holdsFiles {
            mountpoint = try normalise(entry.mountpoint, context: context, at: entry.location)
        }
        let extra = try ShellWords.split(entry.filesystem.mkfsOptions ?? "")
        return FilesystemPlan(kind: kind, entry: entry, label: label, mountpoint: mountpoint, nested: [],
                              uuid: ids.uuid("filesystem-uuid:" + label), hashSeed: ids.uuid("ext-hash-seed:" + label),
                              volumeID: ids.fatVolumeID("fat-volume-id:" + label), extraArguments: extra)
    }

    static func slot(_ place: PlacedPartition, _ partition: Partition, _ content: PlannedSlot.Content, table: DiskImage.Table,
                     ids: SeededIdentifiers, context: String, log: Logger) throws(HavelError) -> PlannedSlot {
        let fs: FilesystemPlan? = if case .filesystem(let f) = content { f } else { nil }
        switch table {
        case .msdos:
            let code = switch fs?.kind {
            case .vfat: "c"
            case .swap: "82"
            default: "83"
            }
            if partition.biosgrub { log.warning("\(context): biosgrub means nothing in an msdos table and is ignored") }
            if partition.name != nil { log.warning("\(context): msdos partitions have no names; the name \(partition.name!) is ignored") }
            return PlannedSlot(placed: place, partition: partition, content: content, typeCode: code, bootableFlag: partition.bootable)
        case .gpt:
            var code = GPTType.linuxFilesystem
            var attributes: String?
            if partition.biosgrub {
                code = GPTType.biosBoot
            } else if fs?.kind == .vfat && (fs?.mountpoint == "/boot/efi" || fs?.mountpoint == "/efi" || partition.bootable) {
                // parted (and so ELBE) turns a bootable GPT partition into an EFI System Partition.
                code = GPTType.efiSystem
            } else if fs?.kind == .swap {
                code = GPTType.linuxSwap
            } else if partition.bootable {
                attributes = "LegacyBIOSBootable"
            }
            let name = partition.name
            if let name {
                guard !name.contains("\""), !name.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
                    throw HavelError(.invalidProject, "\(context): the GPT name \(String(reflecting: name)) may not contain quotes or control characters", at: partition.location)
                }
                guard name.utf16.count <= 36 else {
                    throw HavelError(.invalidProject, "\(context): the GPT name \(name) is longer than 36 characters", at: partition.location)
                }
            }
            return PlannedSlot(placed: place, partition: partition, content: content, typeCode: code, bootableFlag: false,
                               gptName: name, gptUUID: ids.uuid("gpt-partition-guid:" + partition.label).uppercased(),
                               gptAttributes: attributes)
        }
    }

    /// `/boot/` → `/boot`; rejects relative paths and `.`/`..` components.
    static func normalise(_ path: String, context: String = "", at location: SourceLocation? = nil) throws(HavelError) -> String {
        guard path.hasPrefix("/") else {
            throw HavelError(.invalidProject, "\(context): the mountpoint \(String(reflecting: path)) is not an absolute path", at: location)
        }
        let parts = path.split(separator: "/")
        guard !parts.contains(where: { $0 == "." || $0 == ".." }) else {
            throw HavelError(.invalidProject, "\(context): the mountpoint \(path) may not contain . or ..", at: location)
        }
        return "/" + parts.joined(separator: "/")
    }

    static func isStrictlyBelow(_ path: String, _ ancestor: String) -> Bool {
        ancestor == "/" ? path != "/" : path.hasPrefix(ancestor + "/")
    }

    /// `relative("/boot/efi", to: "/boot")` → `efi`; `relative("/var", to: "/")` → `var`.
    static func relative(_ path: String, to ancestor: String) -> String {
        ancestor == "/" ? String(path.dropFirst()) : String(path.dropFirst(ancestor.count + 1))
    }
}
