import HavelCore

/// Every identifier an image carries (disk label-id, GPT disk and partition GUIDs, filesystem UUIDs, the ext
/// directory hash seed, the FAT volume id) is derived from the request's seed, the image name and what the
/// identifier is for, so that the same project gives the same bytes and different images or partitions do not
/// collide.
struct SeededIdentifiers: Sendable {
    let seed: String
    let image: String

    /// 32 bytes: SHA-256 of `havel-image`, seed, image name and purpose, NUL-separated.
    func bytes(_ purpose: String) -> [UInt8] {
        var message = Array("havel-image".utf8)
        for part in [seed, image, purpose] {
            message.append(0)
            message.append(contentsOf: part.utf8)
        }
        return SHA256.hash(message)
    }

    /// A UUID in RFC 9562 form with version 8 (custom) and the RFC variant bits, lowercase.
    func uuid(_ purpose: String) -> String {
        Self.format(uuid: uuidBytes(purpose))
    }

    /// The 16 bytes of `uuid(purpose)`.
    func uuidBytes(_ purpose: String) -> [UInt8] {
        var b = Array(bytes(purpose).prefix(16))
        b[6] = (b[6] & 0x0f) | 0x80
        b[8] = (b[8] & 0x3f) | 0x80
        return b
    }

    /// An msdos disk identifier `0xXXXXXXXX` (never zero, which means "none").
    var dosDiskID: String {
        var value = bytes("dos-disk-id").prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        if value == 0 { value = 1 }
        return "0x" + Self.hex(value, digits: 8)
    }

    /// A FAT volume id: 8 hex digits for `mkfs.vfat -i`.
    func fatVolumeID(_ purpose: String) -> String {
        let value = bytes(purpose).prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return Self.hex(value, digits: 8)
    }

    static func format(uuid b: [UInt8]) -> String {
        let digits: [String] = b.map { Self.hex(UInt32($0), digits: 2) }
        let groups: [String] = [digits[0..<4].joined(), digits[4..<6].joined(), digits[6..<8].joined(),
                                digits[8..<10].joined(), digits[10..<16].joined()]
        return groups.joined(separator: "-")
    }

    static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}

/// A reflected CRC-32 in the raw form the Linux kernel uses: no final inversion, the caller chooses the seed.
/// CRC-32C (Castagnoli) for erofs (seed ~0); the IEEE polynomial for UBIFS nodes (seed ~0).
struct RawCRC32: Sendable {
    private let table: [UInt32]

    init(reflectedPolynomial: UInt32) {
        table = (0..<256).map { i in
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ reflectedPolynomial : c >> 1 }
            return c
        }
    }

    func update(_ crc: UInt32, _ bytes: some Collection<UInt8>) -> UInt32 {
        var c = crc
        for byte in bytes { c = table[Int((c ^ UInt32(byte)) & 0xff)] ^ (c >> 8) }
        return c
    }
}

enum CRC32C {
    private static let crc = RawCRC32(reflectedPolynomial: 0x82F6_3B78)

    static func update(_ crc: UInt32, _ bytes: some Collection<UInt8>) -> UInt32 { Self.crc.update(crc, bytes) }
}


