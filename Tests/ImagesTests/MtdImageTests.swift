// `<mtd>` images: the ubinize configuration as text, and real UBI images from the synthetic tree read back
// with ubi_reader (ubireader_display_info, ubireader_extract_images, ubireader_extract_files).
import Foundation
import HavelCore
import SystemKit
import Testing
@testable import Images

@Suite struct MtdConfigTests {
    @Test func eachVolumeIsASectionWithItsSizeOrTheAutoresizeFlag() {
        let config = MtdImageBuilder.ubinizeConfig([
            UbinizeSection(volume: UbiVolume(kind: .dynamic, label: "rfs", id: 0, size: .remain), image: "/w/v0.ubifs"),
            UbinizeSection(volume: UbiVolume(kind: .static, label: "kernel", id: 1, size: .bytes(4 << 20), binary: "/boot/vmlinuz"), image: "/w/v1.bin"),
            UbinizeSection(volume: UbiVolume(kind: .dynamic, label: "data", id: 2, size: .bytes(1_000_000), empty: true), image: nil),
        ])
        #expect(config == """
            [rfs]
            mode=ubi
            image=/w/v0.ubifs
            vol_type=dynamic
            vol_id=0
            vol_name=rfs
            vol_flags=autoresize
            [kernel]
            mode=ubi
            image=/w/v1.bin
            vol_type=static
            vol_id=1
            vol_name=kernel
            vol_size=4194304
            [data]
            mode=ubi
            vol_type=dynamic
            vol_id=2
            vol_name=data
            vol_size=1000000

            """)
    }

    @Test func theImageSequenceNumberFollowsTheSeed() {
        let one = MtdImageBuilder.imageSequence(seed: "p 1.0", name: "flash.ubi")
        #expect(one == MtdImageBuilder.imageSequence(seed: "p 1.0", name: "flash.ubi"))
        #expect(one != MtdImageBuilder.imageSequence(seed: "p 1.1", name: "flash.ubi"))
    }
}

/// Needs mtd-utils and ubi_reader (scripts/setup-host.sh installs both).
@Suite(.enabled(if: UbiTools.missingReason == nil, Comment(rawValue: UbiTools.missingReason ?? "")))
struct MtdImageBuildTests {
    static func mtd(_ volumes: [UbiVolume], size: SizeSpec = .bytes(64 * MiB)) -> MtdImage {
        MtdImage(name: "flash.ubi", number: 3, size: size, volumeGroup: UbiVolumeGroup(
            label: "nand", minIOSize: "2048", logicalEraseBlockSize: "126976", physicalEraseBlockSize: "128KiB",
            maxLogicalEraseBlockCount: "400", volumes: volumes))
    }

    static func request(_ tree: TestTree, _ mtd: MtdImage, _ fstab: [FstabEntry]) -> MtdRequest {
        MtdRequest(mtd: mtd, fstab: fstab, rootfs: tree.root, outputDirectory: tree.output, workDirectory: tree.work,
                   projectDirectory: tree.project, sourceDateEpoch: TestTree.epoch, seed: "synthetic 1.0")
    }

    @Test func aUbifsRootABinaryAndAnEmptyVolumeReadBack() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        try Data("from the build directory\n".utf8).write(to: URL(fileURLWithPath: tree.project + "/env.bin"))
        let mtd = Self.mtd([
            UbiVolume(kind: .dynamic, label: "rfs", id: 0, size: .remain),
            // A link in the tree, resolved inside it.
            UbiVolume(kind: .static, label: "lib", id: 1, size: .bytes(1 * MiB), binary: "/usr/lib/libfoo.so"),
            UbiVolume(kind: .static, label: "env", id: 2, size: .bytes(256 * 1024), binary: "env.bin"),
            UbiVolume(kind: .dynamic, label: "spare", id: 3, size: .bytes(2 * MiB), empty: true),
            // ubinize refuses a static volume without content.
            UbiVolume(kind: .static, label: "blank", id: 4, size: .bytes(128 * 1024), empty: true),
        ])
        let fstab = [FstabEntry(source: .label("rfs"), mountpoint: "/", filesystem: Filesystem(type: "ubifs"))]
        let before = try tree.snapshot()
        let path = try #require(try await MtdImageBuilder.build(Self.request(tree, mtd, fstab), log: LogRecorder().logger))
        #expect(path == tree.output + "/flash.ubi")
        #expect(tree.outputFiles() == ["flash.ubi"])
        #expect(try tree.snapshot() == before, "the rootfs changed")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: tree.work)) ?? []).isEmpty, "scratch left behind")

        let info = try await sh("ubireader_display_info", [path]).standardOutput
        for (name, type) in [("rfs", "dynamic"), ("lib", "static"), ("env", "static"), ("spare", "dynamic"), ("blank", "static")] {
            #expect(info.contains("Volume: \(name)\n"), "no volume \(name) in:\n\(info)")
            #expect(info.range(of: "name: '\(name)'[^V]*vol_type: '\(type)'", options: .regularExpression) != nil, "\(name) is not \(type)")
        }
        #expect(info.contains("flags: 'autoresize'"))
        #expect(info.contains("Image Sequence Num: \(MtdImageBuilder.imageSequence(seed: "synthetic 1.0", name: "flash.ubi"))"))

        let images = tree.base + "/volumes"
        try await sh("ubireader_extract_images", ["-o", images, path])
        let volumes = images + "/flash.ubi"
        let names = try FileManager.default.contentsOfDirectory(atPath: volumes)
        func volume(_ label: String) throws -> Data {
            let name = try #require(names.first { $0.hasSuffix("_vol-\(label).ubifs") }, "no \(label) in \(names)")
            return try Data(contentsOf: URL(fileURLWithPath: volumes + "/" + name))
        }
        #expect(try volume("lib") == Data(contentsOf: URL(fileURLWithPath: tree.root + "/usr/lib/libfoo.so.1")))
        #expect(try volume("env") == Data("from the build directory\n".utf8))
        #expect(try volume("blank") == Data(MtdImageBuilder.staticEmptyContent.utf8))

        let files = tree.base + "/files"
        try await sh("ubireader_extract_files", ["-k", "-o", files, path], expectSuccess: false)
        let roots = try FileManager.default.subpathsOfDirectory(atPath: files).filter { $0.hasSuffix("/rfs") }
        let rfs = files + "/" + (try #require(roots.first, "no rfs volume extracted"))
        #expect(try String(contentsOfFile: rfs + "/etc/hostname", encoding: .utf8) == "synthetic\n")
        #expect(try Data(contentsOf: URL(fileURLWithPath: rfs + "/usr/lib/libfoo.so.1")) == Data(contentsOf: URL(fileURLWithPath: tree.root + "/usr/lib/libfoo.so.1")))
    }

    /// Two trees of the same content made at different times (other change times, other inode numbers): the
    /// same bytes. Without UbifsFixup the UUIDs and inode times differ; from a hard-linked staging tree the
    /// files come out in another order.
    @Test func twoBuildsFromEqualTreesAreBitIdentical() async throws {
        var images: [Data] = []
        for _ in 0..<2 {
            let tree = try TestTree()
            defer { tree.remove() }
            let mtd = Self.mtd([UbiVolume(kind: .dynamic, label: "rfs", id: 0, size: .remain)])
            let fstab = [FstabEntry(source: .label("rfs"), mountpoint: "/", filesystem: Filesystem(type: "ubifs"))]
            let path = try #require(try await MtdImageBuilder.build(Self.request(tree, mtd, fstab), log: LogRecorder().logger))
            images.append(try Data(contentsOf: URL(fileURLWithPath: path)))
            try await Task.sleep(for: .seconds(1.5))   // the next tree's change times are other seconds
        }
        #expect(images[0].count == images[1].count)
        #expect(images[0] == images[1], "\(zip(images[0], images[1]).filter { $0 != $1 }.count) bytes differ")
    }

    @Test func aMissingBinaryIsAnErrorAtItsVolume() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let place = SourceLocation(file: "p.xml", line: 42, column: 5)
        let mtd = Self.mtd([UbiVolume(kind: .static, label: "kernel", id: 0, size: .bytes(MiB), binary: "/boot/missing", location: place)])
        let error = await #expect(throws: HavelError.self) {
            _ = try await MtdImageBuilder.build(Self.request(tree, mtd, []), log: LogRecorder().logger)
        }
        #expect(error?.location?.line == 42)
        #expect(error?.message.contains("ubi volume kernel: the binary /boot/missing does not exist in the target tree") == true, "\(String(describing: error))")
        #expect(tree.outputFiles() == [])
    }

    @Test func aUbiVolumeWithAnotherFilesystemInFstabIsRefused() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let mtd = Self.mtd([UbiVolume(kind: .dynamic, label: "rfs", id: 0, size: .remain)])
        let fstab = [FstabEntry(source: .label("rfs"), mountpoint: "/", filesystem: Filesystem(type: "ext4"))]
        let error = await #expect(throws: HavelError.self) {
            _ = try await MtdImageBuilder.build(Self.request(tree, mtd, fstab), log: LogRecorder().logger)
        }
        #expect(error?.message.contains("gives the type ext4; a ubi volume holds ubifs") == true, "\(String(describing: error))")
    }
}

enum UbiTools {
    static let missingReason: String? = {
        for tool in ["mkfs.ubifs", "ubinize"] where ProcessRunner.which(tool) == nil {
            return "needs \(tool) (apt package mtd-utils; scripts/setup-host.sh installs it)"
        }
        for tool in ["ubireader_display_info", "ubireader_extract_images", "ubireader_extract_files"] where ProcessRunner.which(tool) == nil {
            return "needs \(tool) (python3 -m pip install ubi_reader; scripts/setup-host.sh installs it)"
        }
        return nil
    }()
}
