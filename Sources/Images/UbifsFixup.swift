// UbifsFixup owns what makes a mkfs.ubifs image reproducible after it is written: the superblock's UUID and
// every inode's access and change times, set in place with each changed node's CRC written again.

import Foundation
import HavelCore

/// mkfs.ubifs 2.1.5 picks a random UUID and copies each file's access and change times from stat(2); the
/// change times are the moment of staging and never reproducible. This walks the image's nodes eraseblock by
/// eraseblock (they never cross one), skipping the log and LPT areas, and sets the superblock's UUID to a
/// seeded one and each inode node's access and change times to the epoch (modification times stay: they come
/// from the clamped tree). A node's CRC is CRC-32 (IEEE, seed ~0, no final inversion) of its bytes from
/// offset 8. No index or LPT node covers inode contents, so nothing else changes.
enum UbifsFixup {
    static let magic: UInt32 = 0x0610_1831
    static let headerSize = 24
    enum NodeType: UInt8 { case inode = 0, pad = 5, superblock = 6 }
    static let crc = RawCRC32(reflectedPolynomial: 0xEDB8_8320)

    static func apply(_ file: String, lebSize: Int, uuid: [UInt8], epoch: Int, context: String) throws(HavelError) {
        let fd = open(file, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw HavelError(.io, "\(context): cannot open \(file): \(FileIO.errorText())") }
        defer { close(fd) }
        let size = try FileIO.size(of: file)
        guard lebSize >= 4096, size % UInt64(lebSize) == 0, size > 0 else {
            throw HavelError(.internalError, "\(context): \(file) is not a whole number of \(lebSize)-byte eraseblocks")
        }
        var skipped: Range<Int> = 0..<0
        var patchedSuperblock = false
        for leb in 0..<Int(size / UInt64(lebSize)) where !skipped.contains(leb) {
            let start = UInt64(leb) * UInt64(lebSize)
            var block = try FileIO.readBytes(fd, at: start, count: lebSize)
            var changed = false
            var offset = 0
            while offset + headerSize <= lebSize, le32(block, offset) == magic {
                let length = Int(le32(block, offset + 16))
                guard length >= headerSize, offset + length <= lebSize else { break }
                switch NodeType(rawValue: block[offset + 20]) {
                case .superblock? where leb == 0 && length >= 124:
                    // After the superblock: 2 master LEBs, then log_lebs of log and lpt_lebs of LPT (no node walk).
                    let logLEBs = Int(le32(block, offset + 56)), lptLEBs = Int(le32(block, offset + 60))
                    skipped = 3..<(3 + logLEBs + lptLEBs)
                    block.replaceSubrange((offset + 108)..<(offset + 124), with: uuid.prefix(16))
                    writeCRC(&block, offset, length)
                    changed = true
                    patchedSuperblock = true
                case .inode? where length >= 92:
                    put64(&block, offset + 56, UInt64(epoch))   // atime_sec
                    put64(&block, offset + 64, UInt64(epoch))   // ctime_sec
                    put32(&block, offset + 80, 0)               // atime_nsec
                    put32(&block, offset + 84, 0)               // ctime_nsec
                    writeCRC(&block, offset, length)
                    changed = true
                case .pad?:
                    offset += length + Int(le32(block, offset + headerSize))
                    continue
                default: break
                }
                offset += (length + 7) & ~7
            }
            if changed { try FileIO.writeBytes(fd, block, at: start) }
        }
        guard patchedSuperblock else { throw HavelError(.internalError, "\(context): \(file) has no UBIFS superblock") }
    }

    static func le32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }

    static func put32(_ bytes: inout [UInt8], _ at: Int, _ value: UInt32) {
        for i in 0..<4 { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
    }

    static func put64(_ bytes: inout [UInt8], _ at: Int, _ value: UInt64) {
        for i in 0..<8 { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }

    static func writeCRC(_ block: inout [UInt8], _ offset: Int, _ length: Int) {
        put32(&block, offset + 4, crc.update(~0, block[(offset + 8)..<(offset + length)]))
    }
}
