// The `<images><mtd>` model: a UBI image for an MTD (raw flash) partition, its volume group and volumes,
// the checks that need no build (sizes, ids, labels), and the ubi device names fstab uses for ubifs.

/// `<mtd>`: ubinize's output for one MTD partition (ELBE: `build_image_mtd`).
public struct MtdImage: Sendable, Hashable, Codable {
    public var name: String
    /// `<nr>`: the MTD number the target attaches UBI to; ubifs volumes are mounted as `ubi<nr>:<label>`.
    public var number: Int
    public var size: SizeSpec
    /// `<mtd><binary>`: in the schema, but ELBE never reads it; Havel neither.
    public var binary: String?
    public var volumeGroup: UbiVolumeGroup?
    public var location: SourceLocation?

    public init(name: String, number: Int, size: SizeSpec, binary: String? = nil, volumeGroup: UbiVolumeGroup? = nil,
                location: SourceLocation? = nil) {
        self.name = name
        self.number = number
        self.size = size
        self.binary = binary
        self.volumeGroup = volumeGroup
        self.location = location
    }
}

/// `<ubivg>`: the flash geometry and the volumes.
public struct UbiVolumeGroup: Sendable, Hashable, Codable {
    public var label: String
    /// The texts as written (`2048`, `0x800`, `128KiB`); `bytes(of:)` reads them.
    public var minIOSize: String
    public var logicalEraseBlockSize: String
    public var physicalEraseBlockSize: String
    public var maxLogicalEraseBlockCount: String
    public var subpageSize: String?
    public var volumes: [UbiVolume]
    public var location: SourceLocation?

    public init(label: String, minIOSize: String, logicalEraseBlockSize: String, physicalEraseBlockSize: String,
                maxLogicalEraseBlockCount: String, subpageSize: String? = nil, volumes: [UbiVolume] = [],
                location: SourceLocation? = nil) {
        self.label = label
        self.minIOSize = minIOSize
        self.logicalEraseBlockSize = logicalEraseBlockSize
        self.physicalEraseBlockSize = physicalEraseBlockSize
        self.maxLogicalEraseBlockCount = maxLogicalEraseBlockCount
        self.subpageSize = subpageSize
        self.volumes = volumes
        self.location = location
    }

    /// A geometry number as mtd-utils read it: decimal, `0x` hex, or with a KiB/MiB/GiB suffix; nil otherwise.
    public static func bytes(of text: String) -> UInt64? {
        var digits = Substring(text.trimmingWhitespace())
        var factor: UInt64 = 1
        for (suffix, value) in [("KiB", UInt64(1) << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)] where digits.hasSuffix(suffix) {
            digits = digits.dropLast(suffix.count)
            factor = value
        }
        let number: UInt64?
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") {
            number = UInt64(digits.dropFirst(2), radix: 16)
        } else {
            number = digits.allSatisfy({ $0.isASCII && $0.isNumber }) ? UInt64(digits) : nil
        }
        guard let number, number > 0 else { return nil }
        let (product, overflow) = number.multipliedReportingOverflow(by: factor)
        return overflow ? nil : product
    }
}

/// `<ubi>`: one UBI volume.
public struct UbiVolume: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable { case `static`, dynamic }

    public var kind: Kind
    public var label: String
    /// -1 when `<id>` is not a number (the schema check says so).
    public var id: Int
    /// `remain`: the volume grows to fill the device when first attached (ubinize's autoresize flag).
    /// nil: no usable size was given.
    public var size: SizeSpec?
    /// A file that is the volume's content: `/x` from the target tree, otherwise from the build directory.
    public var binary: String?
    /// `<empty>`: a volume with no content.
    public var empty: Bool
    public var location: SourceLocation?

    public init(kind: Kind, label: String, id: Int, size: SizeSpec?, binary: String? = nil, empty: Bool = false,
                location: SourceLocation? = nil) {
        self.kind = kind
        self.label = label
        self.id = id
        self.size = size
        self.binary = binary
        self.empty = empty
        self.location = location
    }
}

extension MtdImage {
    /// The checks a project file can fail before anything is built: the geometry reads as numbers, every
    /// volume has a size (or `remain`, at most one), ids and labels are unique, the fixed sizes fit `<size>`.
    public func check() throws(HavelError) {
        let prefix = "mtd \(name)"
        guard let total = size.byteCount else {
            throw HavelError(.invalidProject, "\(prefix): the mtd size must be a size, not remain", at: location)
        }
        guard let group = volumeGroup else { return }
        let geometry = [("miniosize", group.minIOSize), ("logicaleraseblocksize", group.logicalEraseBlockSize),
                        ("physicaleraseblocksize", group.physicalEraseBlockSize),
                        ("maxlogicaleraseblockcount", group.maxLogicalEraseBlockCount)] + (group.subpageSize.map { [("subpagesize", $0)] } ?? [])
        for (element, text) in geometry where UbiVolumeGroup.bytes(of: text) == nil {
            throw HavelError(.invalidProject, "\(prefix): <\(element)> \(String(reflecting: text)) is not a positive number (decimal, 0x hex, or with KiB/MiB)", at: group.location ?? location)
        }
        guard !group.volumes.isEmpty else {
            throw HavelError(.invalidProject, "\(prefix): the ubi volume group \(group.label) has no <ubi> volume", at: group.location ?? location)
        }
        var ids: [Int: UbiVolume] = [:]
        var labels: [String: UbiVolume] = [:]
        var fixed: UInt64 = 0
        var remaining: [UbiVolume] = []
        for volume in group.volumes {
            let where_ = "\(prefix): ubi volume \(volume.label)"
            guard !volume.label.isEmpty else { throw HavelError(.invalidProject, "\(prefix): a ubi volume needs a non-empty <label>", at: volume.location) }
            guard !volume.label.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f || "[]=".unicodeScalars.contains($0) }) else {
                throw HavelError(.invalidProject, "\(where_): the label may not hold control characters, [, ] or = (it becomes a section of ubinize's configuration)", at: volume.location)
            }
            guard volume.label.utf8.count <= 127 else {
                throw HavelError(.invalidProject, "\(where_): the label is longer than the 127 bytes a UBI volume name holds", at: volume.location)
            }
            guard (0..<128).contains(volume.id) else {
                throw HavelError(.invalidProject, "\(where_): the id must be a number from 0 to 127", at: volume.location)
            }
            if let other = ids[volume.id] {
                throw HavelError(.invalidProject, "\(where_): the id \(volume.id) is already used by volume \(other.label) (line \(other.location?.line ?? 0)); give each volume its own id", at: volume.location)
            }
            if let other = labels[volume.label] {
                throw HavelError(.invalidProject, "\(where_): the label is already used by the volume with id \(other.id) (line \(other.location?.line ?? 0)); labels name volumes and must be unique", at: volume.location)
            }
            ids[volume.id] = volume
            labels[volume.label] = volume
            if volume.binary != nil && volume.empty {
                throw HavelError(.invalidProject, "\(where_): it has both <binary> and <empty>; give one of them", at: volume.location)
            }
            switch volume.size {
            case nil:
                throw HavelError(.invalidProject, "\(where_): it has no size; give <size> as a size (such as 4MiB) or remain", at: volume.location)
            case .remain?:
                remaining.append(volume)
            case .bytes(let bytes)?:
                guard bytes > 0 else { throw HavelError(.invalidProject, "\(where_): the size is 0", at: volume.location) }
                fixed += bytes
            }
        }
        if remaining.count > 1 {
            throw HavelError(.invalidProject, "\(prefix): volumes \(remaining.map(\.label).joined(separator: " and ")) both have size remain; only one volume can grow to fill the device", at: remaining[1].location)
        }
        if fixed > total || (fixed == total && !remaining.isEmpty) {
            let fixedVolumes = group.volumes.filter { $0.size != .remain }
            throw HavelError(.invalidProject, "\(prefix): the volumes' sizes (\(fixedVolumes.map { "\($0.label) \($0.size?.description ?? "?")" }.joined(separator: " + ")))"
                             + (remaining.isEmpty ? "" : " and the remain volume \(remaining[0].label)")
                             + " do not fit the \(ByteCount.format(total)) mtd; make them smaller or the <size> of the mtd larger", at: location)
        }
    }
}

extension Target {
    /// The `<nr>` of the mtd holding the ubi volume labelled `label`.
    public func ubiDeviceNumber(ofVolume label: String) -> Int? {
        mtdImages.first { $0.volumeGroup?.volumes.contains { $0.label == label } == true }?.number
    }

    /// An fstab entry's /etc/fstab line: a ubifs volume is named `ubi<nr>:<label>` as ELBE does.
    public func fstabLine(_ entry: FstabEntry) -> String {
        guard entry.filesystem.type == "ubifs", let label = entry.label, let number = ubiDeviceNumber(ofVolume: label) else {
            return entry.fstabLine
        }
        return entry.fstabLine(device: "ubi\(number):\(label)")
    }
}
