import Foundation
import HavelCore
import Logging
import SystemKit
import Testing
@testable import Images

/// Real images from a synthetic tree, checked with the tools a person would use: sfdisk, e2fsck, debugfs,
/// mtools, unsquashfs, fsck.erofs, blkid.
@Suite struct ImageBuildTests {
    @Test func msdosWithVfatBootExt4RootAndVar() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let before = try tree.snapshot()
        let image = DiskImage(table: .msdos, name: "sdcard.img", size: .bytes(256 * MiB), partitions: [
            Partition(size: .bytes(64 * MiB), label: "boot", bootable: true),
            Partition(size: .bytes(64 * MiB), label: "var"),
            Partition(size: .remain, label: "rootfs"),
        ])
        let fstab = [
            entry("rootfs", "/", "ext4"),
            entry("boot", "/boot", "vfat"),
            entry("var", "/var", "ext4"),
            entry("home", "/home", "ext4"),   // no partition in this image: /home stays in the root filesystem
            FstabEntry(source: .device("proc"), mountpoint: "/proc", filesystem: Filesystem(type: "proc")),
        ]
        let log = LogRecorder()
        let built = try await ImageBuilder.build(tree.request(image, fstab), log: log.logger)
        #expect(built.path == tree.output + "/sdcard.img")
        #expect(tree.outputFiles() == ["sdcard.img"])
        #expect(try FileIO.size(of: built.path) == 256 * MiB)
        #expect(try tree.snapshot() == before, "the rootfs changed")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: tree.work)) ?? []).isEmpty, "scratch left behind")

        // The table.
        let table = try await sfdiskDump(built.path).partitiontable
        #expect(table.label == "dos")
        #expect(table.id == built.diskID)
        let parts = table.partitions ?? []
        try #require(parts.count == 3)
        let starts: [UInt64] = [2048, 133_120, 264_192]
        let sizes: [UInt64] = [131_072, 131_072, 260_096]
        #expect(parts.map(\.start) == starts)
        #expect(parts.map(\.size) == sizes)
        #expect(parts.map(\.type) == ["c", "83", "83"])
        #expect(parts.map { $0.bootable ?? false } == [true, false, false])
        #expect(built.partitions.map(\.label) == ["boot", "var", "rootfs"])
        #expect(built.partitions.map(\.filesystem) == ["vfat", "ext4", "ext4"])
        #expect(built.partitions.map(\.mountpoint) == ["/boot", "/var", "/"])
        let boot = built.partitions[0], varPart = built.partitions[1], root = built.partitions[2]

        // The filesystems are sound, labelled and carry the planned UUIDs.
        for part in [varPart, root] {
            try await sh("e2fsck", ["-fn", "\(built.path)?offset=\(part.startBytes)"])
        }
        for part in built.partitions {
            let probe = try await sh("blkid", ["-p", "-O", String(part.startBytes), "-S", String(part.sizeBytes), "-o", "export", built.path]).standardOutput
            #expect(probe.contains("LABEL=\(part.label)\n"), "\(probe)")
            #expect(probe.contains("UUID=\(part.uuid ?? "-")\n"), "\(probe)")
        }

        // Owners, modes, links and devices in the root filesystem.
        let passwd = try await debugfs(built.path, offset: root.startBytes, "stat /usr/bin/passwd")
        #expect(passwd.contains("Mode:  04755"), "\(passwd)")
        #expect(passwd.contains("User:     0   Group:     0"), "\(passwd)")
        let crontab = try await debugfs(built.path, offset: root.startBytes, "stat /usr/bin/crontab")
        #expect(crontab.contains("Mode:  02755"))
        let profile = try await debugfs(built.path, offset: root.startBytes, "stat /home/user/.profile")
        #expect(profile.contains("User:  1234   Group:  1234"), "\(profile)")
        let localtime = try await debugfs(built.path, offset: root.startBytes, "stat /etc/localtime")
        #expect(localtime.contains("Type: symlink") && localtime.contains("\"/usr/share/zoneinfo/UTC\""), "\(localtime)")
        let null = try await debugfs(built.path, offset: root.startBytes, "stat /dev/null")
        #expect(null.contains("Type: character special") && null.contains("Device major/minor number: 01:03"), "\(null)")
        let hard = try await debugfs(built.path, offset: root.startBytes, "stat /usr/lib/hard2")
        #expect(hard.contains("Links: 2"), "\(hard)")
        let cat = try await debugfs(built.path, offset: root.startBytes, "cat /etc/hostname")
        #expect(cat == "synthetic\n")
        // Times: modification times kept from the tree, access and change times at the epoch.
        #expect(passwd.contains(" ctime: 0x\(String(TestTree.epoch, radix: 16))"), "\(passwd)")
        #expect(passwd.contains(" atime: 0x\(String(TestTree.epoch, radix: 16))"), "\(passwd)")
        #expect(passwd.contains(" mtime: 0x\(String(TestTree.epoch - 86_400, radix: 16))"), "\(passwd)")
        // The late file was clamped.
        let late = try await debugfs(built.path, offset: varPart.startBytes, "stat /spool/late.txt")
        #expect(late.contains(" mtime: 0x\(String(TestTree.epoch, radix: 16))"), "\(late)")
        #expect(log.text.contains("partition var: 2 entries are newer than SOURCE_DATE_EPOCH"), "\(log.text)")
        let lateLink = try await debugfs(built.path, offset: varPart.startBytes, "stat /spool/late-link")
        #expect(lateLink.contains("Type: symlink") && lateLink.contains(" mtime: 0x\(String(TestTree.epoch, radix: 16))"), "\(lateLink)")
        let app = try await debugfs(built.path, offset: varPart.startBytes, "stat /lib/app/data")
        #expect(app.contains("User:  1234") && app.contains("Mode:  0600"), "\(app)")

        // Mountpoints of the other partitions are empty directories in the root filesystem.
        let rootEntries = try await extEntries(built.path, offset: root.startBytes)
        #expect(rootEntries["/boot"]?.kind == .directory && rootEntries["/var"]?.kind == .directory)
        #expect(!rootEntries.keys.contains { $0.hasPrefix("/boot/") || $0.hasPrefix("/var/") })
        #expect(rootEntries["/home/user/notes.txt"] != nil)
        #expect(rootEntries["/home/user/empty"]?.kind == .directory)
        #expect(rootEntries["/srv/empty"]?.kind == .directory)
        #expect(rootEntries["/run/initctl"]?.kind == .fifo)
        #expect(rootEntries["/tmp"]?.mode == 0o1777)
        #expect(rootEntries["/usr/share/doc/with space.txt"] != nil && rootEntries["/usr/share/doc/grüße.txt"] != nil)

        // FAT: /boot, including /boot/efi (no partition of its own here).
        let bootEntries = try await fatEntries(built.path, offset: boot.startBytes)
        #expect(bootEntries["/vmlinuz-6.1.0-test"] == .file)
        #expect(bootEntries["/efi/EFI/BOOT/BOOTX64.EFI"] == .file)
        #expect(bootEntries["/grub"] == .directory)
        let bootFile = tree.base + "/boot.part"
        try extract(built.path, boot, to: bootFile)
        try await sh("fsck.vfat", ["-n", bootFile])
        let copied = try await sh("mtype", ["-i", "\(built.path)@@\(boot.startBytes)", "::/grub/grub.cfg"], environment: ["MTOOLS_SKIP_CHECK": "1"])
        #expect(copied.standardOutput == "set timeout=0\n")

        // Every file of the tree is in exactly one partition.
        let varEntries = try await extEntries(built.path, offset: varPart.startBytes)
        expectExactCover(tree: try tree.entries(), partitions: [
            ("/", Array(rootEntries.keys)), ("/var", Array(varEntries.keys)), ("/boot", Array(bootEntries.keys)),
        ])
    }

    @Test func msdosWithExtendedAndLogicalPartitions() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let image = DiskImage(table: .msdos, name: "logical.img", size: .bytes(256 * MiB), partitions: [
            Partition(size: .bytes(100 * MiB), label: "rootfs", bootable: true),
        ], extended: ExtendedPartition(size: .remain, logical: [
            Partition(size: .bytes(60 * MiB), label: "var"),
            Partition(size: .remain, label: "home"),
        ]))
        let fstab = [entry("rootfs", "/", "ext4"), entry("var", "/var", "ext4"), entry("home", "/home/user", "ext3")]
        let built = try await ImageBuilder.build(tree.request(image, fstab), log: .discarding)
        let parts = try #require(try await sfdiskDump(built.path).partitiontable.partitions)
        #expect(parts.map(\.node).map { $0.replacingOccurrences(of: built.path, with: "") } == ["1", "2", "5", "6"])
        #expect(parts.map(\.type) == ["83", "5", "83", "83"])
        let rootEnd: UInt64 = 2048 + 204_800
        #expect(parts[1].start == rootEnd && parts[1].size == 524_288 - rootEnd)
        #expect(parts[2].start == rootEnd + 2048 && parts[2].size == 122_880)
        #expect(parts[3].start == rootEnd + 2048 + 122_880 + 2048 && parts[3].start + parts[3].size == 524_288)
        #expect(built.partitions.map(\.content) == [.filesystem, .extended, .filesystem, .filesystem])
        #expect(built.partitions.map(\.number) == [1, 2, 5, 6])

        var lists: [(mountpoint: String, entries: [String])] = []
        for part in built.partitions where part.content == .filesystem {
            try await sh("e2fsck", ["-fn", "\(built.path)?offset=\(part.startBytes)"])
            let features = try await sh("dumpe2fs", ["-h", "\(built.path)?offset=\(part.startBytes)"]).standardOutput
            #expect(features.contains("Filesystem volume name:   \(part.label)\n"))
            if part.label == "home" { #expect(features.contains("has_journal") && !features.contains("extent")) }
            lists.append((part.mountpoint ?? "?", Array(try await extEntries(built.path, offset: part.startBytes).keys)))
        }
        expectExactCover(tree: try tree.entries(), partitions: lists)
        // The root directory of a filesystem takes the mode, owner and time of its mountpoint in the tree.
        let home = try await debugfs(built.path, offset: built.partitions[3].startBytes, "stat /")
        #expect(home.contains("Mode:  0750") && home.contains("User:  1234   Group:  1234"), "\(home)")
        #expect(home.contains(" mtime: 0x\(String(TestTree.epoch - 86_400, radix: 16))"), "\(home)")
    }

    @Test func gptWithNamesBiosGrubEspAndSwap() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let image = DiskImage(table: .gpt, name: "gpt.img", size: .bytes(200 * MiB), partitions: [
            Partition(size: .bytes(1 * MiB), label: "bios", name: "BIOS boot", biosgrub: true),
            Partition(size: .bytes(40 * MiB), label: "efi", name: "EFI System"),
            Partition(size: .bytes(16 * MiB), label: "swap", name: "swap"),
            Partition(size: .remain, label: "rootfs", name: "root", bootable: true),
        ])
        let fstab = [entry("rootfs", "/", "ext4"), entry("efi", "/boot/efi", "vfat"), entry("swap", "none", "swap")]
        let log = LogRecorder()
        let built = try await ImageBuilder.build(tree.request(image, fstab), log: log.logger)
        let table = try await sfdiskDump(built.path).partitiontable
        #expect(table.label == "gpt" && table.id == built.diskID)
        let parts = try #require(table.partitions)
        #expect(parts.map(\.type) == [GPTType.biosBoot, GPTType.efiSystem, GPTType.linuxSwap, GPTType.linuxFilesystem])
        #expect(parts.map(\.name) == ["BIOS boot", "EFI System", "swap", "root"])
        #expect(parts.map(\.uuid) == built.partitions.map(\.partitionUUID))
        #expect(parts[3].attrs == "LegacyBIOSBootable")
        let starts: [UInt64] = [2048, 4096, 86_016, 118_784]
        #expect(parts.map(\.start) == starts)
        #expect(parts[3].start + parts[3].size == 409_600 - 34)
        #expect(built.partitions[0].content == .empty)
        #expect(log.text.contains("partition bios: no fstab bylabel entry and no binary; the partition is left empty"))
        #expect(try readImage(built.path, at: built.partitions[0].startBytes, count: Int(MiB)).allSatisfy { $0 == 0 })

        let swap = try await sh("blkid", ["-p", "-O", String(built.partitions[2].startBytes), "-o", "export", built.path]).standardOutput
        #expect(swap.contains("TYPE=swap") && swap.contains("LABEL=swap") && swap.contains("UUID=\(built.partitions[2].uuid!)"), "\(swap)")
        let root = built.partitions[3]
        try await sh("e2fsck", ["-fn", "\(built.path)?offset=\(root.startBytes)"])
        let rootEntries = try await extEntries(built.path, offset: root.startBytes)
        // /boot is in the root filesystem; /boot/efi is an empty mountpoint there.
        #expect(rootEntries["/boot/vmlinuz-6.1.0-test"] != nil)
        #expect(rootEntries["/boot/efi"]?.kind == .directory && !rootEntries.keys.contains { $0.hasPrefix("/boot/efi/") })
        let efiEntries = try await fatEntries(built.path, offset: built.partitions[1].startBytes)
        #expect(Set(efiEntries.keys) == ["/EFI", "/EFI/BOOT", "/EFI/BOOT/BOOTX64.EFI", "/EFI/debian", "/EFI/debian/grub.cfg"])
        expectExactCover(tree: try tree.entries(), partitions: [("/", Array(rootEntries.keys)), ("/boot/efi", Array(efiEntries.keys))])
    }

    @Test func diskBlobAndPartitionBinaries() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let uboot = TestTree.bytes(100_000, seed: 42)
        let spl = TestTree.bytes(20_000, seed: 43)
        _ = FileManager.default.createFile(atPath: tree.project + "/u-boot.bin", contents: Data(uboot))
        try FileManager.default.createDirectory(atPath: tree.project + "/fw", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: tree.project + "/fw/spl.bin", contents: Data(spl))
        let image = DiskImage(table: .msdos, name: "blobs.img", size: .bytes(64 * MiB), partitions: [
            Partition(size: .bytes(1 * MiB), label: "uboot", binary: "u-boot.bin"),
            Partition(size: .bytes(1 * MiB), label: "firmware", binary: "/boot/fw.bin"),
            Partition(size: .remain, label: "rootfs"),
        ], binaries: [
            BinaryBlob(path: "fw/spl.bin", offset: 16, blockSize: 512),
            BinaryBlob(path: "/boot/config-6.1.0-test", offset: 100, blockSize: 1024),
        ])
        let built = try await ImageBuilder.build(tree.request(image, [entry("rootfs", "/", "ext4")]), log: .discarding)
        #expect(built.partitions.map(\.content) == [.binary, .binary, .filesystem])
        let p1 = built.partitions[0], p2 = built.partitions[1]
        #expect(try readImage(built.path, at: p1.startBytes, count: uboot.count) == uboot)
        #expect(try readImage(built.path, at: p1.startBytes + UInt64(uboot.count), count: Int(MiB) - uboot.count).allSatisfy { $0 == 0 })
        let fw = try Array(Data(contentsOf: URL(fileURLWithPath: tree.root + "/boot/fw.bin")))
        #expect(try readImage(built.path, at: p2.startBytes, count: fw.count) == fw)
        #expect(try readImage(built.path, at: 16 * 512, count: spl.count) == spl)
        #expect(try readImage(built.path, at: 100 * 1024, count: 17) == Array("CONFIG_EXT4_FS=y\n".utf8))
        // The blobs did not disturb the table, and the root filesystem is sound.
        #expect(try await sfdiskDump(built.path).partitiontable.partitions?.count == 3)
        try await sh("e2fsck", ["-fn", "\(built.path)?offset=\(built.partitions[2].startBytes)"])
    }

    @Test func squashfsRootWithExt4Var() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let image = DiskImage(table: .msdos, name: "squash.img", size: .bytes(128 * MiB), partitions: [
            Partition(size: .bytes(64 * MiB), label: "rootfs"),
            Partition(size: .remain, label: "data"),
        ])
        let fstab = [entry("rootfs", "/", "squashfs", mkfs: "-comp gzip"), entry("data", "/var", "ext4"), entry("boot", "/boot", "vfat")]
        let built = try await ImageBuilder.build(tree.request(image, fstab), log: .discarding)
        let root = built.partitions[0]
        #expect(root.uuid == nil && root.filesystem == "squashfs")
        let file = tree.base + "/root.squashfs"
        try extract(built.path, root, to: file)
        let entries = try await squashEntries(file)
        #expect(entries["/usr/bin/passwd"]?.hasPrefix("-rwsr-xr-x 0/0") == true, "\(entries["/usr/bin/passwd"] ?? "-")")
        #expect(entries["/home/user/notes.txt"]?.hasPrefix("-rw------- 1234/1234") == true)
        #expect(entries["/dev/null"]?.hasPrefix("crw-rw-rw- 0/0") == true)
        #expect(entries["/etc/localtime"]?.hasSuffix("/etc/localtime -> /usr/share/zoneinfo/UTC") == true)
        #expect(entries["/boot/efi/EFI/BOOT/BOOTX64.EFI"] != nil, "/boot has no partition in this image")
        #expect(entries["/var"] != nil && !entries.keys.contains { $0.hasPrefix("/var/") })
        let superblock = try await sh("unsquashfs", ["-s", file]).standardOutput
        #expect(superblock.contains("Compression gzip"))
        let varEntries = try await extEntries(built.path, offset: built.partitions[1].startBytes)
        expectExactCover(tree: try tree.entries(), partitions: [("/", Array(entries.keys)), ("/var", Array(varEntries.keys))])
    }

    @Test func fsFinetuningHooks() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let before = try tree.snapshot()
        let image = DiskImage(table: .msdos, name: "hooks.img", size: .bytes(64 * MiB), partitions: [Partition(size: .remain, label: "rootfs")])
        let fstab = [entry("rootfs", "/", "ext4", mkfs: "-E stride=4 -O ^has_journal",
                           device: ["tune2fs -c 7 {device}"],
                           path: ["echo hello > {path}/etc/added-by-hook", "echo more >> {path}/etc/hostname"])]
        let log = LogRecorder()
        let built = try await ImageBuilder.build(tree.request(image, fstab), log: log.logger)
        let root = built.partitions[0]
        let header = try await sh("dumpe2fs", ["-h", "\(built.path)?offset=\(root.startBytes)"]).standardOutput
        #expect(header.contains("Maximum mount count:      7"))
        #expect(header.contains("RAID stride:              4"))
        #expect(!header.contains("has_journal"))
        #expect(try await debugfs(built.path, offset: root.startBytes, "cat /etc/added-by-hook") == "hello\n")
        #expect(try await debugfs(built.path, offset: root.startBytes, "cat /etc/hostname") == "synthetic\nmore\n")
        #expect(try tree.snapshot() == before, "a path-command changed the rootfs")
        #expect(log.text.contains("path-command: echo hello"))
        try await sh("e2fsck", ["-fn", "\(built.path)?offset=\(root.startBytes)"])
    }

    @Test func erofsAndBtrfs() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let image = DiskImage(table: .gpt, name: "ro.img", size: .bytes(400 * MiB), partitions: [
            Partition(size: .bytes(32 * MiB), label: "usrro"),
            Partition(size: .remain, label: "rootfs"),
        ])
        let fstab = [entry("rootfs", "/", "btrfs"), entry("usrro", "/usr", "erofs")]
        let log = LogRecorder()
        let built = try await ImageBuilder.build(tree.request(image, fstab), log: log.logger)
        let usr = built.partitions[0], root = built.partitions[1]
        let erofsFile = tree.base + "/usr.erofs"
        try extract(built.path, usr, to: erofsFile)
        let probe = try await sh("blkid", ["-p", "-o", "export", erofsFile]).standardOutput
        #expect(probe.contains("TYPE=erofs") && probe.contains("LABEL=usrro") && probe.contains("UUID=\(usr.uuid!)"), "\(probe)")
        let usrEntries = try await erofsEntries(erofsFile)
        #expect(usrEntries["/bin/passwd"] == .file && usrEntries["/lib/libfoo.so"] == .symlink)
        let hard = try await sh("dump.erofs", ["--path=/lib/hard1", erofsFile]).standardOutput
        #expect(hard.contains("Links: 2"), "\(hard)")
        let btrfsFile = tree.base + "/root.btrfs"
        try extract(built.path, root, to: btrfsFile)
        try await sh("btrfs", ["check", "--readonly", btrfsFile])
        #expect(log.text.contains("partition rootfs: btrfs of 367 MiB from / (without /usr): ") && log.text.contains("(copied)"), "\(log.text)")
        let btrfsProbe = try await sh("blkid", ["-p", "-o", "export", btrfsFile]).standardOutput
        #expect(btrfsProbe.contains("LABEL=rootfs") && btrfsProbe.contains("UUID=\(root.uuid!)"), "\(btrfsProbe)")
    }

    @Test(.enabled(if: ProcessRunner.which("mkfs.f2fs") != nil, "f2fs-tools is not installed"))
    func f2fsRoot() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let image = DiskImage(table: .msdos, name: "f2fs.img", size: .bytes(128 * MiB), partitions: [Partition(size: .remain, label: "rootfs")])
        let built = try await ImageBuilder.build(tree.request(image, [entry("rootfs", "/", "f2fs")]), log: .discarding)
        let file = tree.base + "/root.f2fs"
        try extract(built.path, built.partitions[0], to: file)
        try await sh("fsck.f2fs", ["-f", file])
        let probe = try await sh("blkid", ["-p", "-o", "export", file]).standardOutput
        #expect(probe.contains("TYPE=f2fs") && probe.contains("LABEL=rootfs") && probe.contains("UUID=\(built.partitions[0].uuid!)"), "\(probe)")
    }

    @Test func twoBuildsGiveTheSameBytes() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let image = DiskImage(table: .gpt, name: "repro.img", size: .bytes(400 * MiB), partitions: [
            Partition(size: .bytes(1 * MiB), label: "bios", biosgrub: true),
            Partition(size: .bytes(40 * MiB), label: "efi"),
            Partition(size: .bytes(100 * MiB), label: "rootfs"),
            Partition(size: .bytes(40 * MiB), label: "usr"),
            Partition(size: .bytes(24 * MiB), label: "doc"),
            Partition(size: .bytes(8 * MiB), label: "swap"),
            Partition(size: .remain, label: "var"),
        ])
        let fstab = [entry("rootfs", "/", "ext4"), entry("efi", "/boot/efi", "vfat"), entry("usr", "/usr", "squashfs"),
                     entry("doc", "/usr/share/doc", "erofs"), entry("swap", "none", "swap"), entry("var", "/var", "ext2")]
        let first = try await ImageBuilder.build(tree.request(image, fstab, output: tree.base + "/a", work: tree.base + "/wa"), log: .discarding)
        // Something in between that changes change times and access times in the rootfs without changing its contents.
        try await sh("sh", ["-c", "find \(tree.root) -type f -exec cat {} + >/dev/null; touch -h -d @\(TestTree.epoch - 86_400) \(tree.root)/etc/hostname"])
        let second = try await ImageBuilder.build(tree.request(image, fstab, output: tree.base + "/b", work: tree.base + "/wb"), log: .discarding)
        let digests = try await Digest.sha256(files: [first.path, second.path])
        #expect(digests[first.path] != nil && digests[first.path] == digests[second.path])
        #expect(first.partitions == second.partitions)

        // A different seed changes the identifiers (and so the bytes).
        let third = try await ImageBuilder.build(tree.request(image, fstab, output: tree.base + "/c", work: tree.base + "/wc", seed: "other 2.0"), log: .discarding)
        #expect(third.diskID != first.diskID)
        #expect(third.partitions.map(\.uuid) != first.partitions.map(\.uuid))

        // And the kitchen sink covers the tree, nested mountpoints (/usr/share/doc inside /usr) included.
        var lists: [(mountpoint: String, entries: [String])] = []
        for part in first.partitions {
            switch part.filesystem {
            case "ext4", "ext2": lists.append((part.mountpoint!, Array(try await extEntries(first.path, offset: part.startBytes).keys)))
            case "vfat": lists.append((part.mountpoint!, Array(try await fatEntries(first.path, offset: part.startBytes).keys)))
            case "squashfs", "erofs":
                let file = tree.base + "/\(part.label).part"
                try extract(first.path, part, to: file)
                let entries = part.filesystem == "squashfs" ? Array(try await squashEntries(file).keys) : Array(try await erofsEntries(file).keys)
                lists.append((part.mountpoint!, entries))
            default: break
            }
        }
        expectExactCover(tree: try tree.entries(), partitions: lists)
    }
}

@Suite struct ImageErrorTests {
    func expectNoImage(_ tree: TestTree, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(tree.outputFiles().isEmpty, "left in the output directory: \(tree.outputFiles())", sourceLocation: sourceLocation)
        let scratch = (try? FileManager.default.contentsOfDirectory(atPath: tree.work)) ?? []
        #expect(scratch.isEmpty, "left in the work directory: \(scratch)", sourceLocation: sourceLocation)
    }

    func build(_ tree: TestTree, _ image: DiskImage, _ fstab: [FstabEntry]) async -> HavelError? {
        do {
            _ = try await ImageBuilder.build(tree.request(image, fstab), log: .discarding)
            return nil
        } catch {
            return error
        }
    }

    @Test func unsupportedFilesystemType() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let image = DiskImage(table: .msdos, name: "bad.img", size: .bytes(32 * MiB), partitions: [Partition(size: .remain, label: "rootfs")])
        let error = try #require(await build(tree, image, [entry("rootfs", "/", "ntfs")]))
        #expect(error.code == .unsupported)
        #expect(error.message.contains("partition rootfs: unsupported filesystem type ntfs"), "\(error)")
        expectNoImage(tree)
        let virtual = try #require(await build(tree, image, [entry("rootfs", "/", "tmpfs")]))
        #expect(virtual.message.contains("tmpfs, which is a virtual filesystem"), "\(virtual)")
    }

    @Test(.enabled(if: ProcessRunner.which("mkfs.f2fs") == nil, "f2fs-tools is installed"))
    func missingToolNamesThePackage() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let image = DiskImage(table: .msdos, name: "f2fs.img", size: .bytes(64 * MiB), partitions: [Partition(size: .remain, label: "rootfs")])
        let error = try #require(await build(tree, image, [entry("rootfs", "/", "f2fs")]))
        #expect(error.code == .hostNotReady)
        #expect(error.message.contains("mkfs.f2fs") && error.message.contains("apt-get install f2fs-tools"), "\(error)")
        expectNoImage(tree)
    }

    @Test func missingBinary() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let image = DiskImage(table: .msdos, name: "bin.img", size: .bytes(32 * MiB), partitions: [
            Partition(size: .bytes(1 * MiB), label: "uboot", binary: "missing/u-boot.bin"),
            Partition(size: .remain, label: "rootfs"),
        ])
        let error = try #require(await build(tree, image, [entry("rootfs", "/", "ext4")]))
        #expect(error.code == .notFound)
        #expect(error.message.contains("partition uboot: the binary missing/u-boot.bin does not exist in the project directory"), "\(error)")
        expectNoImage(tree)

        let inTree = DiskImage(table: .msdos, name: "bin.img", size: .bytes(32 * MiB), partitions: [Partition(size: .remain, label: "rootfs")],
                               binaries: [BinaryBlob(path: "/usr/lib/u-boot/missing.bin", offset: 8, blockSize: 1024)])
        let blobError = try #require(await build(tree, inTree, [entry("rootfs", "/", "ext4")]))
        #expect(blobError.message.contains("/usr/lib/u-boot/missing.bin does not exist in the target tree"), "\(blobError)")
        expectNoImage(tree)
    }

    @Test func blobOverwritingTheTableLeavesNoImage() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        _ = FileManager.default.createFile(atPath: tree.project + "/ff.bin", contents: Data(repeating: 0xff, count: 512))
        let image = DiskImage(table: .msdos, name: "clobber.img", size: .bytes(32 * MiB), partitions: [Partition(size: .remain, label: "rootfs")],
                              binaries: [BinaryBlob(path: "ff.bin")])
        let error = try #require(await build(tree, image, [entry("rootfs", "/", "ext4")]))
        #expect(error.message.contains("a blob overwrote it"), "\(error)")
        expectNoImage(tree)
    }

    @Test func partitionTooSmallAndFailingHook() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let small = DiskImage(table: .msdos, name: "small.img", size: .bytes(8 * MiB), partitions: [
            Partition(size: .bytes(1 * MiB), label: "rootfs"), Partition(size: .remain, label: "spare"),
        ])
        let error = try #require(await build(tree, small, [entry("rootfs", "/", "ext4")]))
        #expect(error.message.contains("partition rootfs"), "\(error)")
        #expect(error.message.contains("more than the 1 MiB partition holds"), "\(error)")
        expectNoImage(tree)

        let image = DiskImage(table: .msdos, name: "hook.img", size: .bytes(32 * MiB), partitions: [Partition(size: .remain, label: "rootfs")])
        let hook = try #require(await build(tree, image, [entry("rootfs", "/", "ext4", device: ["exit 3"])]))
        #expect(hook.message.contains("device-command \"exit 3\" failed with exit status 3"), "\(hook)")
        expectNoImage(tree)
    }

    @Test func inconsistentLayouts() async throws {
        let tree = try TestTree()
        defer { tree.remove() }
        let five = DiskImage(table: .msdos, name: "five.img", size: .bytes(32 * MiB),
                             partitions: (1...4).map { Partition(size: .bytes(MiB), label: "p\($0)") },
                             extended: ExtendedPartition(size: .remain, logical: [Partition(size: .remain, label: "l")]))
        #expect(await build(tree, five, [])?.message.contains("at most 4 primary partitions") == true)
        let twins = DiskImage(table: .gpt, name: "twins.img", size: .bytes(32 * MiB),
                              partitions: [Partition(size: .bytes(MiB), label: "a"), Partition(size: .remain, label: "a")])
        #expect(await build(tree, twins, [])?.message.contains("two partitions have the label a") == true)
        let longLabel = DiskImage(table: .gpt, name: "long.img", size: .bytes(64 * MiB), partitions: [Partition(size: .remain, label: "bootpartition")])
        #expect(await build(tree, longLabel, [entry("bootpartition", "/boot", "vfat")])?.message.contains("longer than the 11 bytes") == true)
        let sameMount = DiskImage(table: .gpt, name: "same.img", size: .bytes(64 * MiB),
                                  partitions: [Partition(size: .bytes(20 * MiB), label: "a"), Partition(size: .remain, label: "b")])
        #expect(await build(tree, sameMount, [entry("a", "/srv", "ext4"), entry("b", "/srv/", "ext4")])?.message.contains("both mounted at /srv") == true)
        let inside = tree.request(sameMount, [entry("a", "/srv", "ext4")], work: tree.root + "/tmp/work")
        await #expect(throws: HavelError.self) { _ = try await ImageBuilder.build(inside, log: .discarding) }
        #expect(!FileManager.default.fileExists(atPath: tree.root + "/tmp/work"))
        expectNoImage(tree)
    }
}
