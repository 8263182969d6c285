/// Where each partition of a `DiskImage` lies, in 512-byte sectors, as ELBE lays them out: the first
/// at `first_partition_sector`, each next one right after the previous, `remain` up to the end of the
/// disk (a GPT keeps 34 sectors for its backup table), logical partitions 2048 sectors apart.
public struct PlacedPartition: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable { case primary, extended, logical }

    /// The partition number in the table (logical partitions count from 5 in msdos).
    public var number: Int
    public var kind: Kind
    public var label: String
    public var startSector: UInt64
    public var sectorCount: UInt64

    public var startBytes: UInt64 { startSector * DiskImage.sectorSize }
    public var sizeBytes: UInt64 { sectorCount * DiskImage.sectorSize }
    public var endSector: UInt64 { startSector + sectorCount }
}

extension DiskImage {
    public static let sectorSize: UInt64 = 512
    /// ELBE leaves this gap before each logical partition (for its EBR and alignment).
    public static let logicalGapSectors: UInt64 = 2048
    static let gptBackupSectors: UInt64 = 34

    /// Places every partition; throws when they do not fit or the sizes are inconsistent.
    public func layout() throws(HavelError) -> [PlacedPartition] {
        guard let total = size.byteCount else {
            throw HavelError(.invalidProject, "image \(name): the image size cannot be remain", at: location)
        }
        let diskSectors = total / Self.sectorSize
        let reserved = table == .gpt ? Self.gptBackupSectors : 0
        let lastUsable = diskSectors > reserved ? diskSectors - reserved : 0
        var next = firstPartitionSector
        var placed: [PlacedPartition] = []

        func sectors(_ spec: SizeSpec, label: String, available: UInt64, at place: SourceLocation?) throws(HavelError) -> UInt64 {
            switch spec {
            case .remain: return available
            case .bytes(let bytes):
                let count = bytes / Self.sectorSize + (bytes % Self.sectorSize == 0 ? 0 : 1)
                guard count <= available else {
                    throw HavelError(.invalidProject,
                                     "image \(name): partition \(label) (\(ByteCount.format(bytes))) does not fit; only \(ByteCount.format(available * Self.sectorSize)) are left of the \(ByteCount.format(total)) image",
                                     at: place ?? location)
                }
                return count
            }
        }

        guard next < lastUsable else {
            throw HavelError(.invalidProject, "image \(name): first_partition_sector \(next) lies beyond the \(ByteCount.format(total)) image", at: location)
        }
        for (i, partition) in partitions.enumerated() {
            let available = lastUsable > next ? lastUsable - next : 0
            let count = try sectors(partition.size, label: partition.label, available: available, at: partition.location)
            guard count > 0 else {
                throw HavelError(.invalidProject, "image \(name): no space is left for partition \(partition.label)", at: partition.location)
            }
            placed.append(PlacedPartition(number: i + 1, kind: .primary, label: partition.label, startSector: next, sectorCount: count))
            next += count
        }
        if let extended {
            let available = lastUsable > next ? lastUsable - next : 0
            let count = try sectors(extended.size, label: "extended", available: available, at: extended.location)
            placed.append(PlacedPartition(number: partitions.count + 1, kind: .extended, label: "extended", startSector: next, sectorCount: count))
            let extendedEnd = next + count
            var logicalNext = next
            for (i, logical) in extended.logical.enumerated() {
                logicalNext += Self.logicalGapSectors
                let available = extendedEnd > logicalNext ? extendedEnd - logicalNext : 0
                let logicalCount = try sectors(logical.size, label: logical.label, available: available, at: logical.location)
                guard logicalCount > 0 else {
                    throw HavelError(.invalidProject, "image \(name): no space is left in the extended partition for \(logical.label)", at: logical.location)
                }
                placed.append(PlacedPartition(number: 5 + i, kind: .logical, label: logical.label, startSector: logicalNext, sectorCount: logicalCount))
                logicalNext += logicalCount
            }
            next = extendedEnd
        }
        return placed
    }
}
