import Foundation
import HavelCore
import Logging
import SystemKit
import Testing
@testable import Images

/// The parts of Images that need no tools: identifiers, option splitting, planning, the sfdisk script.
@Suite struct ImagesUnitTests {
    @Test func sha256KnownVectors() {
        func hex(_ text: String) -> String { SHA256.hash(Array(text.utf8)).map { String(format: "%02x", $0) }.joined() }
        #expect(hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(String(repeating: "a", count: 1000)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    @Test func crc32cKnownVector() {
        // The standard check value is for the inverted form: ~crc32c(~0, "123456789") == 0xE3069283.
        #expect(~CRC32C.update(~0, Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test func identifiersAreStableAndDistinct() {
        let ids = SeededIdentifiers(seed: "demo 1.0", image: "sdcard.img")
        let uuid = ids.uuid("filesystem-uuid:rootfs")
        #expect(uuid == SeededIdentifiers(seed: "demo 1.0", image: "sdcard.img").uuid("filesystem-uuid:rootfs"))
        #expect(uuid != ids.uuid("filesystem-uuid:boot"))
        #expect(uuid != SeededIdentifiers(seed: "demo 1.1", image: "sdcard.img").uuid("filesystem-uuid:rootfs"))
        #expect(uuid != SeededIdentifiers(seed: "demo 1.0", image: "emmc.img").uuid("filesystem-uuid:rootfs"))
        let parts = uuid.split(separator: "-")
        #expect(parts.map(\.count) == [8, 4, 4, 4, 12])
        #expect(parts[2].hasPrefix("8"))
        #expect("89ab".contains(parts[3].first!))
        #expect(ids.dosDiskID.hasPrefix("0x") && ids.dosDiskID.count == 10)
        #expect(ids.fatVolumeID("x").count == 8)
    }

    @Test func mkfsOptionsSplitLikeAShell() throws {
        #expect(try ShellWords.split("-O ^64bit  -b 4096") == ["-O", "^64bit", "-b", "4096"])
        #expect(try ShellWords.split("-L 'my label' -E \"a=1,b=2\" x\\ y") == ["-L", "my label", "-E", "a=1,b=2", "x y"])
        #expect(try ShellWords.split("") == [])
        #expect(throws: HavelError.self) { try ShellWords.split("-L 'open") }
    }

    @Test func nestedMountpointsAndScript() throws {
        let image = DiskImage(table: .gpt, name: "n.img", size: .bytes(64 << 20), partitions: [
            Partition(size: .bytes(8 << 20), label: "efi", name: "ESP"),
            Partition(size: .bytes(8 << 20), label: "boot"),
            Partition(size: .bytes(8 << 20), label: "usr"),
            Partition(size: .bytes(8 << 20), label: "doc"),
            Partition(size: .remain, label: "rootfs", bootable: true),
        ])
        let fstab = [
            FstabEntry(source: .label("rootfs"), mountpoint: "/", filesystem: Filesystem(type: "ext4")),
            FstabEntry(source: .label("boot"), mountpoint: "/boot/", filesystem: Filesystem(type: "ext2")),
            FstabEntry(source: .label("efi"), mountpoint: "/boot/efi", filesystem: Filesystem(type: "vfat")),
            FstabEntry(source: .label("usr"), mountpoint: "/usr", filesystem: Filesystem(type: "squashfs")),
            FstabEntry(source: .label("doc"), mountpoint: "/usr/share/doc", filesystem: Filesystem(type: "erofs")),
            FstabEntry(source: .label("data"), mountpoint: "/srv/data", filesystem: Filesystem(type: "ext4")),
        ]
        let request = ImageRequest(image: image, fstab: fstab, rootfs: "/nonexistent", outputDirectory: "/o", workDirectory: "/w",
                                   projectDirectory: "/p", sourceDateEpoch: 0, seed: "s")
        let plan = try ImagePlan(request, log: .discarding)
        let nested = Dictionary(uniqueKeysWithValues: plan.slots.compactMap { $0.filesystem }.map { ($0.label, $0.nested) })
        #expect(nested["rootfs"] == ["boot", "usr"])
        #expect(nested["boot"] == ["efi"])
        #expect(nested["usr"] == ["share/doc"])
        #expect(nested["efi"] == [] && nested["doc"] == [])
        #expect(plan.slots.map(\.typeCode) == [GPTType.efiSystem, GPTType.linuxFilesystem, GPTType.linuxFilesystem,
                                               GPTType.linuxFilesystem, GPTType.linuxFilesystem])
        let script = PartitionTable.script(plan)
        #expect(script.hasPrefix("label: gpt\nfirst-lba: 34\nlabel-id: \(plan.diskID)\nunit: sectors\nsector-size: 512\n\n"))
        #expect(script.contains("start=2048, size=16384, type=\(GPTType.efiSystem), uuid=\(plan.slots[0].gptUUID!), name=\"ESP\"\n"))
        #expect(script.contains("uuid=\(plan.slots[4].gptUUID!), attrs=\"LegacyBIOSBootable\"\n"))
        #expect(!script.contains("name=\"rootfs\""))
    }

    @Test func usedInodesFromDumpe2fs() throws {
        let text = """
        Inode count:              32
        First inode:              11
        Inodes per group:         16
        Group 0: (Blocks 0-1023) csum 0x1 [ITABLE_ZEROED]
          Free inodes: 14-16
        Group 1: (Blocks 1024-2047) csum 0x2 [INODE_UNINIT]
          Free inodes: 17-20, 22-32
        """
        #expect(try ExtTimes.usedInodes(dumpe2fs: text, context: "t") == [2, 11, 12, 13, 21])
        #expect(throws: HavelError.self) { try ExtTimes.usedInodes(dumpe2fs: "nothing", context: "t") }
    }
}
