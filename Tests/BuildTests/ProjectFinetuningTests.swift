import Foundation
import HavelCore
import Images
import Logging
import SystemKit
import Testing
@testable import Build
@testable import ProjectXML

/// project-finetuning on a real image made from a synthetic tree: partitions worked on by offset with
/// debugfs, mtools and sfdisk (no mounts), image conversion, artifacts; and the rootfs archives.
@Suite(.enabled(if: geteuid() == 0 && ProcessRunner.which("mkfs.vfat") != nil && ProcessRunner.which("qemu-img") != nil,
                "needs root, dosfstools and qemu-utils (scripts/setup-host.sh installs them)"))
struct ProjectFinetuningTests {
    func makeImage(_ tree: SyntheticTree) async throws -> BuildDirectory {
        try FileManager.default.createDirectory(atPath: tree.root + "/boot", withIntermediateDirectories: true)
        try tree.write("/boot/config.txt", "boot config\n")
        let image = DiskImage(table: .msdos, name: "disk.img", size: SizeSpec(parsing: "128MiB")!,
                              partitions: [Partition(size: SizeSpec(parsing: "32MiB")!, label: "boot", bootable: true),
                                           Partition(size: .remain, label: "rfs")])
        let fstab = [FstabEntry(source: .label("rfs"), mountpoint: "/", filesystem: Filesystem(type: "ext4")),
                     FstabEntry(source: .label("boot"), mountpoint: "/boot", filesystem: Filesystem(type: "vfat"))]
        let directory = BuildDirectory(tree.base)
        _ = try await ImageBuilder.build(ImageRequest(image: image, fstab: fstab, rootfs: tree.root, outputDirectory: tree.base,
                                                      workDirectory: tree.base + "/.work/images", projectDirectory: tree.base,
                                                      sourceDateEpoch: 1_700_000_000, seed: "test 1"), log: .discarding)
        return directory
    }

    func steps(_ xml: String) throws -> [FinetuningStep] {
        let text = "<RootFileSystem xmlns=\"https://www.linutronix.de/projects/Elbe\" revision=\"6\"><target><project-finetuning>\(xml)</project-finetuning></target></RootFileSystem>"
        return ProjectDecoder.decode(try XMLReader.parse(text, file: "pf.xml").root).target.projectFinetuning
    }

    @Test func partitionActionsWorkByOffset() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        let directory = try await makeImage(tree)
        try "added after the build\n".write(toFile: tree.base + "/new.conf", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: directory.work, withIntermediateDirectories: true)
        var runner = ProjectFinetuningRunner(directory: directory, target: try RootedFileSystem(root: tree.root), log: Logger.discarding,
                                             artifacts: [], images: ["disk.img"])
        try await runner.run(try steps("""
        <losetup img="disk.img">
          <extract_partition part="1">boot.vfat</extract_partition>
          <copy_from_partition part="2" artifact="hostname.txt">/etc/hostname</copy_from_partition>
          <copy_from_partition part="1" artifact="config.txt">/config.txt</copy_from_partition>
          <copy_to_partition part="2" artifact="new.conf">/etc/new.conf</copy_to_partition>
          <set_partition_type part="2" type="8e"/>
          <command part="1" nomount="true">mdir -i "$ELBE_DEV" ::/ > "$HAVEL_BUILDDIR/boot-listing.txt"</command>
        </losetup>
        <img_convert dst="disk.qcow2" fmt="qcow2" keep_src="true">disk.img</img_convert>
        <artifact>boot-listing.txt</artifact>
        <rm_artifact>boot.vfat</rm_artifact>
        <set_packer packer="zstd"/>
        """))
        #expect(!FileManager.default.fileExists(atPath: tree.base + "/boot.vfat"))
        #expect((try? String(contentsOfFile: tree.base + "/hostname.txt", encoding: .utf8)) == "tree-hostname\n")
        #expect((try? String(contentsOfFile: tree.base + "/config.txt", encoding: .utf8)) == "boot config\n")
        #expect((try? String(contentsOfFile: tree.base + "/boot-listing.txt", encoding: .utf8))?.contains("config") == true)
        let place = try await ProjectFinetuningRunner.partition(2, of: tree.base + "/disk.img")
        #expect(place.type == "8e")
        let written = try await ProcessRunner.check(Command("debugfs", ["-R", "cat /etc/new.conf", "\(tree.base)/disk.img?offset=\(place.startBytes)"]))
        #expect(written.standardOutput == "added after the build\n")
        let info = try await ProcessRunner.check(Command("qemu-img", ["info", "--output=json", tree.base + "/disk.qcow2"])).standardOutput
        #expect(info.contains("\"format\": \"qcow2\""))
        #expect(runner.artifacts == ["hostname.txt", "config.txt", "disk.qcow2", "boot-listing.txt"])
        #expect(runner.packers["disk.img"] == "zstd")
    }

    /// ELBE's x86_64-pc-hdimg-grub-uefi example lists its vfat ESP with `<command part="1">ls $ELBE_MNT`;
    /// where the kernel cannot mount vfat (here), the command sees the files in a directory and its changes
    /// are written back.
    @Test func aCommandOnAVfatPartitionSeesAndChangesItsFiles() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        try FileManager.default.createDirectory(atPath: tree.root + "/boot/EFI/BOOT", withIntermediateDirectories: true)
        try tree.write("/boot/EFI/BOOT/BOOTX64.EFI", "not really an EFI binary\n")
        let directory = try await makeImage(tree)
        try FileManager.default.createDirectory(atPath: directory.work, withIntermediateDirectories: true)
        var runner = ProjectFinetuningRunner(directory: directory, target: try RootedFileSystem(root: tree.root), log: Logger.discarding,
                                             artifacts: [], images: ["disk.img"])
        try await runner.run(try steps("""
        <losetup img="disk.img">
          <command part="1">
            set -e
            ls -R "$ELBE_MNT" > "$HAVEL_BUILDDIR/listing.txt"
            echo "console=ttyS0" > "$ELBE_MNT/cmdline.txt"
            rm "$ELBE_MNT/config.txt"
            mkdir -p "$ELBE_MNT/overlays"
            cp "$ELBE_MNT/EFI/BOOT/BOOTX64.EFI" "$ELBE_MNT/overlays/copy.efi"
          </command>
        </losetup>
        """))
        let listing = try String(contentsOfFile: tree.base + "/listing.txt", encoding: .utf8)
        #expect(listing.contains("config.txt") && listing.contains("BOOTX64.EFI"), "\(listing)")
        let place = try await ProjectFinetuningRunner.partition(1, of: tree.base + "/disk.img")
        let drive = "\(tree.base)/disk.img@@\(place.startBytes)"
        func read(_ path: String) async throws -> String? {
            let result = try await ProcessRunner.run(Command("mtype", ["-i", drive, "::" + path], environment: ["MTOOLS_SKIP_CHECK": "1"]))
            return result.succeeded ? result.standardOutput : nil
        }
        #expect(try await read("/cmdline.txt") == "console=ttyS0\n")
        #expect(try await read("/config.txt") == nil, "a file the command removed is gone")
        #expect(try await read("/EFI/BOOT/BOOTX64.EFI") == "not really an EFI binary\n")
        #expect(try await read("/overlays/copy.efi") == "not really an EFI binary\n")
        try await ProcessRunner.check(Command("dd", ["if=\(tree.base)/disk.img", "of=\(tree.base)/boot-check.img", "bs=512", "status=none",
                                                     "skip=\(place.startBytes / 512)", "count=\(place.sizeBytes / 512)"]))
        let fsck = try await ProcessRunner.run(Command("fsck.vfat", ["-n", tree.base + "/boot-check.img"]))
        #expect(fsck.succeeded, "\(fsck.standardOutput)\(fsck.standardError)")
        #expect(!FileManager.default.fileExists(atPath: directory.work + "/partition-1-files"), "the stand-in directory is removed")
        // A failing command leaves the partition as it was.
        await #expect(throws: HavelError.self) {
            try await runner.run(try steps("<losetup img=\"disk.img\"><command part=\"1\">rm \"$ELBE_MNT/cmdline.txt\"; exit 3</command></losetup>"))
        }
        #expect(try await read("/cmdline.txt") == "console=ttyS0\n")
    }

    @Test func extractedPartitionIsTheFilesystem() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        let directory = try await makeImage(tree)
        var runner = ProjectFinetuningRunner(directory: directory, target: try RootedFileSystem(root: tree.root), log: Logger.discarding,
                                             artifacts: [], images: ["disk.img"])
        try await runner.run(try steps("<losetup img=\"disk.img\"><extract_partition part=\"2\">root.ext4</extract_partition></losetup>"))
        #expect(try await ProcessRunner.run(Command("e2fsck", ["-fn", tree.base + "/root.ext4"])).succeeded)
        #expect(runner.artifacts == ["root.ext4"])
        await #expect(throws: HavelError.self) {
            try await runner.run(try steps("<losetup img=\"disk.img\"><extract_partition part=\"7\">none</extract_partition></losetup>"))
        }
        await #expect(throws: HavelError.self) {
            try await runner.run(try steps("<artifact>../outside</artifact>"))
        }
    }

    @Test func packersAndRootfsArchives() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        try await Packers.cpio(tree.root, to: tree.base + "/rootfs.cpio", mtime: 1_700_000_000)
        let cpio = try await ProcessRunner.check(Command("bsdtar", ["-tf", tree.base + "/rootfs.cpio"])).standardOutput
        #expect(cpio.contains("./etc/hostname"))
        #expect(try await ProcessRunner.check(Command("file", ["-b", tree.base + "/rootfs.cpio"])).standardOutput.contains("cpio archive") ||
                cpio.contains("./etc/passwd"))
        try await Packers.squashfs(tree.root, to: tree.base + "/rootfs.squashfs", options: nil, mtime: 1_700_000_000)
        let squash = try await ProcessRunner.check(Command("unsquashfs", ["-l", tree.base + "/rootfs.squashfs"])).standardOutput
        #expect(squash.contains("/etc/hostname"))
        try "image bytes".write(toFile: tree.base + "/x.img", atomically: true, encoding: .utf8)
        let packed = try await Packers.packImage("x.img", in: tree.base, packer: "tarxz", mtime: 1_700_000_000)
        #expect(packed == "x.img.tar.xz")
        #expect(!FileManager.default.fileExists(atPath: tree.base + "/x.img"))
        let listing = try await ProcessRunner.check(Command("tar", ["-tJf", tree.base + "/" + packed])).standardOutput
        #expect(listing == "x.img\n")
        await #expect(throws: HavelError.self) { try await Packers.packImage("x.img.tar.xz", in: tree.base, packer: "rar", mtime: 0) }
    }

    @Test(.enabled(if: ProcessRunner.which("img2simg") != nil && ProcessRunner.which("simg2img") != nil,
                   "android-sdk-libsparse-utils is not installed (scripts/setup-host.sh installs it)"))
    func androidSparseGivesBackTheImage() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        // 8 MiB, mostly holes, with data at the start, the middle and the end: a sparse image keeps only those.
        let path = tree.base + "/disk.img"
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        for (offset, text) in [(0, "boot sector"), (4 << 20, "middle"), ((8 << 20) - 4096, "end block")] {
            try handle.seek(toOffset: UInt64(offset))
            try handle.write(contentsOf: Data(repeating: UInt8(ascii: "x"), count: 4096 - text.utf8.count) + Data(text.utf8))
        }
        try handle.close()
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        let packed = try await Packers.packImage("disk.img", in: tree.base, packer: "android-sparse", mtime: 0)
        #expect(packed == "disk.img.simg")
        #expect(!FileManager.default.fileExists(atPath: path))
        let sparse = try Data(contentsOf: URL(fileURLWithPath: tree.base + "/disk.img.simg"))
        #expect(sparse.prefix(4) == Data([0x3a, 0xff, 0x26, 0xed]), "the Android sparse magic")
        #expect(sparse.count < original.count / 4, "holes are not stored: \(sparse.count) bytes")
        try await ProcessRunner.check(Command("simg2img", [tree.base + "/disk.img.simg", tree.base + "/back.img"]))
        #expect(try Data(contentsOf: URL(fileURLWithPath: tree.base + "/back.img")) == original)
    }
}
