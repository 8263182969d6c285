// `<mtd>` checks that need no build (sizes, remain, ids, labels, geometry) and the ubi device in fstab lines.
import HavelCore
import Testing

@Suite struct MtdImageCheckTests {
    static func volume(_ label: String, id: Int, _ size: SizeSpec?, line: Int) -> UbiVolume {
        UbiVolume(kind: .dynamic, label: label, id: id, size: size, location: SourceLocation(file: "p.xml", line: line, column: 9))
    }

    static func mtd(_ volumes: [UbiVolume], size: String = "64MiB", peb: String = "128KiB") -> MtdImage {
        MtdImage(name: "flash.ubi", number: 2, size: SizeSpec(parsing: size)!, volumeGroup: UbiVolumeGroup(
            label: "nand", minIOSize: "2048", logicalEraseBlockSize: "126976", physicalEraseBlockSize: peb,
            maxLogicalEraseBlockCount: "0x200", volumes: volumes), location: SourceLocation(file: "p.xml", line: 3, column: 5))
    }

    func failure(_ mtd: MtdImage) -> HavelError? {
        do throws(HavelError) {
            try mtd.check()
            return nil
        } catch {
            return error
        }
    }

    @Test func fixedSizesAndOneRemainThatFitPass() {
        #expect(failure(Self.mtd([Self.volume("kernel", id: 0, .bytes(4 << 20), line: 10), Self.volume("rfs", id: 1, .remain, line: 11)])) == nil)
    }

    @Test func aVolumeWithoutSizeIsAnErrorAtItsLine() {
        let error = failure(Self.mtd([Self.volume("rfs", id: 0, nil, line: 12)]))
        #expect(error?.location?.line == 12)
        #expect(error?.message == "mtd flash.ubi: ubi volume rfs: it has no size; give <size> as a size (such as 4MiB) or remain")
    }

    @Test func sizesBeyondTheMtdAreAnError() {
        let error = failure(Self.mtd([Self.volume("a", id: 0, .bytes(40 << 20), line: 10), Self.volume("b", id: 1, .bytes(30 << 20), line: 11)]))
        #expect(error?.location?.line == 3)
        #expect(error?.message.contains("do not fit the 64 MiB mtd") == true, "\(String(describing: error))")
        // Fixed sizes filling the mtd leave nothing for a remain volume.
        let full = failure(Self.mtd([Self.volume("a", id: 0, .bytes(64 << 20), line: 10), Self.volume("b", id: 1, .remain, line: 11)]))
        #expect(full?.message.contains("the remain volume b do not fit") == true, "\(String(describing: full))")
    }

    @Test func idsAndLabelsAreUnique() {
        let id = failure(Self.mtd([Self.volume("a", id: 1, .bytes(1 << 20), line: 10), Self.volume("b", id: 1, .bytes(1 << 20), line: 11)]))
        #expect(id?.location?.line == 11)
        #expect(id?.message.contains("the id 1 is already used by volume a (line 10)") == true)
        let label = failure(Self.mtd([Self.volume("a", id: 1, .bytes(1 << 20), line: 10), Self.volume("a", id: 2, .bytes(1 << 20), line: 14)]))
        #expect(label?.location?.line == 14)
        #expect(label?.message.contains("the label is already used by the volume with id 1 (line 10)") == true)
        let remains = failure(Self.mtd([Self.volume("a", id: 1, .remain, line: 10), Self.volume("b", id: 2, .remain, line: 15)]))
        #expect(remains?.location?.line == 15)
    }

    @Test func geometryReadsAsMtdUtilsDo() {
        #expect(UbiVolumeGroup.bytes(of: "128KiB") == 131_072)
        #expect(UbiVolumeGroup.bytes(of: "0x800") == 2048)
        #expect(UbiVolumeGroup.bytes(of: " 126976 ") == 126_976)
        #expect(UbiVolumeGroup.bytes(of: "128k") == nil)
        #expect(UbiVolumeGroup.bytes(of: "0") == nil)
        #expect(failure(Self.mtd([Self.volume("a", id: 1, .remain, line: 10)], peb: "lots"))?.message.contains("<physicaleraseblocksize> \"lots\"") == true)
    }

    @Test func aUbifsVolumeIsMountedByItsUbiDevice() {
        var target = Target()
        target.mtdImages = [Self.mtd([Self.volume("rfs", id: 0, .remain, line: 10)])]
        let rfs = FstabEntry(source: .label("rfs"), mountpoint: "/", filesystem: Filesystem(type: "ubifs"), options: "rw")
        let other = FstabEntry(source: .label("boot"), mountpoint: "/boot", filesystem: Filesystem(type: "ext4"))
        #expect(target.fstabLine(rfs) == "ubi2:rfs / ubifs rw 0 0")
        #expect(target.fstabLine(other) == "LABEL=boot /boot ext4 defaults 0 2")
        #expect(target.ubiDeviceNumber(ofVolume: "boot") == nil)
    }
}
