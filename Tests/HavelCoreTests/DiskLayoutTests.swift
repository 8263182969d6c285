import HavelCore
import Testing

@Suite struct DiskLayoutTests {
    func image(_ table: DiskImage.Table = .msdos, size: String, _ parts: [(String, String)],
               extended: (String, [(String, String)])? = nil) -> DiskImage {
        DiskImage(table: table, name: "disk.img", size: SizeSpec(parsing: size)!,
                  partitions: parts.map { Partition(size: SizeSpec(parsing: $0.1)!, label: $0.0) },
                  extended: extended.map { ext in
                      ExtendedPartition(size: SizeSpec(parsing: ext.0)!,
                                        logical: ext.1.map { Partition(size: SizeSpec(parsing: $0.1)!, label: $0.0) })
                  })
    }

    @Test func msdosWithRemainFillsTheDisk() throws {
        let placed = try image(size: "1GiB", [("boot", "64MiB"), ("rfs", "remain")]).layout()
        #expect(placed.map(\.label) == ["boot", "rfs"])
        #expect(placed[0].startSector == 2048)
        #expect(placed[0].sectorCount == 131072)
        #expect(placed[1].startSector == 2048 + 131072)
        #expect(placed[1].endSector == (1 << 30) / 512)
    }

    @Test func gptKeepsRoomForTheBackupTable() throws {
        let placed = try image(.gpt, size: "100MiB", [("data", "remain")]).layout()
        #expect(placed[0].endSector == (100 << 20) / 512 - 34)
    }

    @Test func logicalPartitionsAreNumberedFromFiveWithGaps() throws {
        let placed = try image(size: "1GiB", [("boot", "100MiB")],
                               extended: ("remain", [("a", "100MiB"), ("b", "remain")])).layout()
        #expect(placed.map(\.number) == [1, 2, 5, 6])
        #expect(placed.map(\.kind) == [.primary, .extended, .logical, .logical])
        #expect(placed[2].startSector == placed[1].startSector + 2048)
        #expect(placed[3].startSector == placed[2].endSector + 2048)
        #expect(placed[3].endSector == placed[1].endSector)
    }

    @Test func oversizedPartitionsAreRefusedWithNames() {
        #expect {
            try image(size: "1GiB", [("boot", "512MiB"), ("rfs", "600MiB")]).layout()
        } throws: { error in
            let message = (error as? HavelError)?.message ?? ""
            return message.contains("partition rfs") && message.contains("does not fit")
        }
    }

    @Test func fstabLines() {
        let root = FstabEntry(source: .label("rfs"), mountpoint: "/", filesystem: Filesystem(type: "ext4"))
        let boot = FstabEntry(source: .label("boot"), mountpoint: "/boot", filesystem: Filesystem(type: "vfat"), options: "ro")
        let tmp = FstabEntry(source: .device("tmpfs"), mountpoint: "/tmp", filesystem: Filesystem(type: "tmpfs", passno: 0))
        #expect(root.fstabLine == "LABEL=rfs / ext4 defaults 0 1")
        #expect(boot.fstabLine == "LABEL=boot /boot vfat ro 0 2")
        #expect(tmp.fstabLine == "tmpfs /tmp tmpfs defaults 0 0")
    }
}
