import Foundation
import HavelCore
import Logging
import SystemKit

/// What goes into one partition: a file and how many of its bytes.
struct PartitionContent: Sendable {
    var number: Int
    var file: String
    var size: UInt64
}

/// Facts about the host's tools that change which options Images passes.
struct ToolCapabilities: Sendable {
    var vfatInvariant = false

    static func probe(for kinds: Set<FilesystemKind>, processes: any ProcessRunning) async -> ToolCapabilities {
        var capabilities = ToolCapabilities()
        if kinds.contains(.vfat), let help = try? await processes.run(Command("mkfs.vfat", ["--help"])) {
            capabilities.vfatInvariant = (help.standardOutput + help.standardError).contains("--invariant")
        }
        return capabilities
    }
}

/// Makes one partition's filesystem as a plain file in the work directory.
///
/// Order for a filesystem partition (ELBE runs its hooks on a mounted filesystem; Images never mounts):
/// 1. stage the partition's files (see `Staging`);
/// 2. each fs-finetuning `path-command`, with `{path}` replaced by the staging directory — **before** mkfs,
///    on a private copy of the files (ELBE runs it after the files were copied onto the mounted filesystem;
///    the effect on the files is the same, but the command sees a plain directory, not a mountpoint);
/// 3. the filesystem is made from the staging directory (mke2fs -d, mkfs.vfat + mtools, mksquashfs,
///    mkfs.erofs, mkfs.btrfs -r, mkfs.f2fs + sload.f2fs, mkswap);
/// 4. each `device-command`, with `{device}` replaced by the filesystem file (ELBE: the loop device,
///    before mounting).
enum FilesystemMaker {
    struct Context: Sendable {
        /// The disk or mtd image being made, for messages.
        var imageName: String
        var processes: any ProcessRunning
        var epoch: Int
        var rootfs: RootedFileSystem
        var work: String
        var sameDevice: Bool
        var capabilities: ToolCapabilities
        var log: Logger

        /// Times for every tool and hook: e2fsprogs' fake clock, SOURCE_DATE_EPOCH, UTC.
        var environment: [String: String] {
            ["E2FSPROGS_FAKE_TIME": String(epoch), "SOURCE_DATE_EPOCH": String(epoch), "TZ": "UTC"]
        }
    }

    static func make(_ fs: FilesystemPlan, slot: PlannedSlot, _ ctx: Context) async throws(HavelError) -> PartitionContent {
        let number = slot.placed.number
        let where_ = "image \(ctx.imageName): partition \(fs.label)"
        let file = "\(ctx.work)/p\(number).\(fs.kind.rawValue)"
        let bytes = slot.placed.sizeBytes
        var staged: StagedTree?

        if fs.kind.holdsFiles, let mountpoint = fs.mountpoint {
            let tree = try await stageFiles(mountpoint: mountpoint, nested: fs.nested, pathCommands: fs.entry.filesystem.pathCommands,
                                            privateCopy: fs.kind.needsPrivateFiles, into: "\(ctx.work)/p\(number).tree", where_, ctx)
            let nestedText = fs.nested.isEmpty ? "" : " (without \(fs.nested.map { (mountpoint == "/" ? "/" : mountpoint + "/") + $0 }.joined(separator: ", ")))"
            ctx.log.info("\(where_): \(fs.kind.rawValue) of \(ByteCount.format(bytes)) from \(mountpoint)\(nestedText): \(tree.entries) entries, \(ByteCount.format(tree.sizeBytes))\(tree.copied ? " (copied)" : "")")
            if !fs.kind.isCompact && tree.sizeBytes > bytes {
                throw HavelError(.invalidProject, "\(where_): the files under \(mountpoint) need \(ByteCount.format(tree.sizeBytes)), more than the \(ByteCount.format(bytes)) partition holds", at: slot.partition?.location)
            }
            staged = tree
        } else {
            ctx.log.info("\(where_): \(fs.kind.rawValue) of \(ByteCount.format(bytes))")
        }

        switch fs.kind {
        case .ext2, .ext3, .ext4: try await makeExt(fs, file: file, bytes: bytes, staging: staged?.path, where_, ctx)
        case .vfat: try await makeVfat(fs, file: file, bytes: bytes, startSector: slot.placed.startSector, staging: staged?.path, where_, ctx)
        case .squashfs: try await makeSquashfs(fs, file: file, staging: staged?.path, where_, ctx)
        case .erofs: try await makeErofs(fs, file: file, staging: staged?.path, where_, ctx)
        case .btrfs: try await makeBtrfs(fs, file: file, bytes: bytes, staging: staged?.path, where_, ctx)
        case .swap: try await makeSwap(fs, file: file, bytes: bytes, where_, ctx)
        case .f2fs: try await makeF2fs(fs, file: file, bytes: bytes, staging: staged?.path, where_, ctx)
        }
        if let staged { try Staging.remove(staged.path) }

        try await runHooks(fs.entry.filesystem.deviceCommands, placeholder: "{device}", value: file, kind: "device-command", where_, ctx)

        let size = try FileIO.size(of: file)
        if fs.kind.isCompact {
            guard size <= bytes else {
                throw HavelError(.invalidProject, "\(where_): the \(fs.kind.rawValue) image is \(ByteCount.format(size)), larger than the \(ByteCount.format(bytes)) partition", at: slot.partition?.location)
            }
        } else if size != bytes {
            throw HavelError(.internalError, "\(where_): the \(fs.kind.rawValue) file is \(size) bytes, not the partition's \(bytes)")
        }
        return PartitionContent(number: number, file: file, size: size)
    }

    /// The files under `mountpoint` (without the `nested` subtrees) staged in `directory`, the fs-finetuning
    /// path-commands run on them, and their times clamped to the epoch. `privateCopy`: copy even when hard
    /// links would do.
    static func stageFiles(mountpoint: String, nested: [String], pathCommands: [String], privateCopy: Bool, into directory: String,
                           _ where_: String, _ ctx: Context) async throws(HavelError) -> StagedTree {
        let source = try Staging.source(mountpoint, in: ctx.rootfs, context: where_)
        if source == nil { ctx.log.warning("\(where_): \(mountpoint) does not exist in the tree; the filesystem stays empty") }
        var tree = try await Staging.stage(source: source, nested: nested, into: directory,
                                           copy: !pathCommands.isEmpty || !ctx.sameDevice || privateCopy, epoch: ctx.epoch,
                                           context: where_, processes: ctx.processes, log: ctx.log)
        if tree.hasTimesAfterEpoch && !tree.copied, let source,
           !(try await Staging.clampLinked(directory, source: source, epoch: ctx.epoch, context: where_, processes: ctx.processes, log: ctx.log)) {
            ctx.log.info("\(where_): a file newer than SOURCE_DATE_EPOCH has a name that is not UTF-8; copying the whole tree to clamp times")
            try Staging.remove(directory)
            tree = try await Staging.stage(source: source, nested: nested, into: directory, copy: true,
                                           epoch: ctx.epoch, context: where_, processes: ctx.processes, log: ctx.log)
        }
        try await runHooks(pathCommands, placeholder: "{path}", value: directory, kind: "path-command", where_, ctx)
        if tree.copied { try Staging.clampTimes(directory, epoch: ctx.epoch) }
        return tree
    }

    // MARK: filesystems

    static func makeExt(_ fs: FilesystemPlan, file: String, bytes: UInt64, staging: String?, _ where_: String, _ ctx: Context) async throws(HavelError) {
        try FileIO.createSparse(file, size: bytes)
        // mke2fs keeps only the last -E, so the user's extended options join ours.
        var extended = ["root_owner=0:0", "hash_seed=\(fs.hashSeed)"]
        var arguments: [String] = []
        var words = fs.extraArguments[...]
        while let word = words.popFirst() {
            if word == "-E", let value = words.popFirst() { extended.append(value) }
            else if word.hasPrefix("-E") && word.count > 2 { extended.append(String(word.dropFirst(2))) }
            else { arguments.append(word) }
        }
        arguments += ["-t", fs.kind.rawValue, "-F", "-q", "-L", fs.label, "-U", fs.uuid, "-E", extended.joined(separator: ",")]
        if let staging { arguments += ["-d", staging] }
        try await run(Command("mke2fs", arguments + [file], environment: ctx.environment), where_, ctx)
        var root: stat?
        if let staging {
            var status = stat()
            if lstat(staging, &status) == 0 { root = status }
        }
        try await ExtTimes.fix(file, epoch: ctx.epoch, root: root, environment: ctx.environment, context: where_,
                              processes: ctx.processes)
    }

    static func makeVfat(_ fs: FilesystemPlan, file: String, bytes: UInt64, startSector: UInt64, staging: String?, _ where_: String, _ ctx: Context) async throws(HavelError) {
        try FileIO.createSparse(file, size: bytes)
        var arguments = fs.extraArguments
        if ctx.capabilities.vfatInvariant { arguments.append("--invariant") }
        arguments += ["-i", fs.volumeID, "-n", fs.label, "-h", String(startSector), file]
        try await run(Command("mkfs.vfat", arguments, environment: ctx.environment.merging(FatFiller.environment(epoch: ctx.epoch)) { $1 }), where_, ctx)
        if let staging {
            try await FatFiller.fill(file, from: staging, epoch: ctx.epoch, context: where_, processes: ctx.processes, log: ctx.log)
        }
    }

    static func makeSquashfs(_ fs: FilesystemPlan, file: String, staging: String?, _ where_: String, _ ctx: Context) async throws(HavelError) {
        guard let staging else { throw HavelError(.internalError, "\(where_): squashfs without a staging tree") }
        unlink(file)
        // mksquashfs refuses SOURCE_DATE_EPOCH together with -mkfs-time; the option alone fixes the superblock time,
        // and file times come from the (clamped) staging tree.
        var env = ctx.environment
        env.removeValue(forKey: "SOURCE_DATE_EPOCH")
        try await run(Command("mksquashfs", [staging, file, "-noappend", "-no-progress", "-quiet", "-mkfs-time", String(ctx.epoch)] + fs.extraArguments,
                              environment: env), where_, ctx)
        ctx.log.warning("\(where_): squashfs has no label; mount it by device or PARTUUID, not LABEL=\(fs.label)")
    }

    static func makeErofs(_ fs: FilesystemPlan, file: String, staging: String?, _ where_: String, _ ctx: Context) async throws(HavelError) {
        guard let staging else { throw HavelError(.internalError, "\(where_): erofs without a staging tree") }
        unlink(file)
        try await run(Command("mkfs.erofs", ["--quiet", "-T\(ctx.epoch)", "-U\(fs.uuid)"] + fs.extraArguments + [file, staging],
                              environment: ctx.environment), where_, ctx)
        try ErofsLabel.set(fs.label, in: file, context: where_)
    }

    static func makeBtrfs(_ fs: FilesystemPlan, file: String, bytes: UInt64, staging: String?, _ where_: String, _ ctx: Context) async throws(HavelError) {
        try FileIO.createSparse(file, size: bytes)
        var arguments = ["-q", "-f", "-L", fs.label, "-U", fs.uuid] + fs.extraArguments
        if let staging { arguments += ["-r", staging] }
        // mkfs.btrfs refuses a UUID that libblkid's cache knows, and a reproducible build has its UUID already
        // when an earlier image was probed; an empty private cache keeps it to the real block devices.
        var env = ctx.environment
        env["BLKID_FILE"] = ctx.work + "/blkid.tab"
        try await run(Command("mkfs.btrfs", arguments + [file], environment: env), where_, ctx)
        ctx.log.warning("\(where_): btrfs images are not bit-reproducible (btrfs-progs picks random device and chunk UUIDs and keeps change times)")
    }

    static func makeSwap(_ fs: FilesystemPlan, file: String, bytes: UInt64, _ where_: String, _ ctx: Context) async throws(HavelError) {
        try FileIO.createSparse(file, size: bytes)
        try await run(Command("mkswap", ["-q", "-L", fs.label, "-U", fs.uuid] + fs.extraArguments + [file], environment: ctx.environment), where_, ctx)
    }

    static func makeF2fs(_ fs: FilesystemPlan, file: String, bytes: UInt64, staging: String?, _ where_: String, _ ctx: Context) async throws(HavelError) {
        try FileIO.createSparse(file, size: bytes)
        try await run(Command("mkfs.f2fs", ["-q", "-f", "-l", fs.label, "-U", fs.uuid] + fs.extraArguments + [file], environment: ctx.environment), where_, ctx)
        if let staging {
            try await run(Command("sload.f2fs", ["-f", staging, "-t", "/", "-T", String(ctx.epoch), "-P", file], environment: ctx.environment), where_, ctx)
        }
        ctx.log.warning("\(where_): f2fs images are not bit-reproducible (f2fs-tools 1.15 writes varying checkpoint data)")
    }

    // MARK: helpers

    static func run(_ command: Command, _ where_: String, _ ctx: Context) async throws(HavelError) {
        let result = try await ctx.processes.run(command)
        guard result.succeeded else {
            let tail = (result.standardError + "\n" + result.standardOutput).split(separator: "\n").suffix(6).joined(separator: "\n")
            throw HavelError(.processFailed, "\(where_): \(command.executable) failed with \(result.termination)" + (tail.isEmpty ? "" : ":\n" + tail))
        }
    }

    /// fs-finetuning hooks: each command with the placeholder replaced (shell-quoted), run by `sh -c` in the
    /// work directory with the build's clock settings; the output goes to the log.
    static func runHooks(_ commands: [String], placeholder: String, value: String, kind: String, _ where_: String, _ ctx: Context) async throws(HavelError) {
        for command in commands {
            let line = command.replacingOccurrences(of: placeholder, with: Command.shellQuote(value))
            ctx.log.info("\(where_): \(kind): \(line)")
            let log = ctx.log
            let termination = try await ctx.processes.stream(Command("sh", ["-c", line], environment: ctx.environment, workingDirectory: ctx.work)) {
                log.tool($0)
            }
            guard termination == .exited(0) else {
                throw HavelError(.processFailed, "\(where_): the fs-finetuning \(kind) \(String(reflecting: command)) failed with \(termination)")
            }
        }
    }
}

/// e2fsprogs' `mke2fs -d` copies each file's access and change times from the staging tree; change times are
/// the moment of staging and never reproducible. This sets the access and change time of every inode in use
/// to SOURCE_DATE_EPOCH (modification times stay: they come from the tree, clamped), by inode number, so
/// that any file name works.
///
/// mke2fs 1.47.0 also gives the filesystem's root directory mode 0755, owner root and the creation time,
/// whatever the mountpoint directory in the tree has; the root takes the mountpoint's mode, owner and
/// modification time here (a /tmp partition keeps 1777, a /home/user partition its owner).
enum ExtTimes {
    static func fix(_ file: String, epoch: Int, root: stat?, environment: [String: String], context: String,
                    processes: any ProcessRunning) async throws(HavelError) {
        let dump = try await processes.run(Command("dumpe2fs", [file], environment: environment), input: [], outputLimit: 256 << 20)
        guard dump.succeeded else {
            throw HavelError(.processFailed, "\(context): dumpe2fs failed: \(dump.standardError.trimmingWhitespace())")
        }
        let inodes = try usedInodes(dumpe2fs: dump.standardOutput, context: context)
        var script = ""
        script.reserveCapacity(inodes.count * 48 + 200)
        if let root {
            let mtime = min(Int(root.st_mtim.tv_sec), epoch)
            script += "sif <2> mode 0\(String(UInt32(S_IFDIR) | (UInt32(root.st_mode) & 0o7777), radix: 8))\n"
            script += "sif <2> uid \(root.st_uid)\nsif <2> gid \(root.st_gid)\nsif <2> mtime @\(mtime)\n"
        }
        for inode in inodes {
            script += "sif <\(inode)> atime @\(epoch)\nsif <\(inode)> ctime @\(epoch)\n"
        }
        let scriptPath = file + ".debugfs"
        guard FileManager.default.createFile(atPath: scriptPath, contents: Data(script.utf8)) else {
            throw HavelError(.io, "\(context): cannot write \(scriptPath)")
        }
        defer { unlink(scriptPath) }
        let result = try await processes.run(Command("sh", ["-c", "exec debugfs -w -f \"$1\" \"$2\" >/dev/null", "sh", scriptPath, file],
                                                         environment: environment))
        let problems = result.standardError.split(separator: "\n").filter { !$0.hasPrefix("debugfs ") }
        guard result.succeeded, problems.isEmpty else {
            throw HavelError(.processFailed, "\(context): debugfs could not set inode times: \(problems.prefix(5).joined(separator: "\n"))")
        }
    }

    /// Inodes in use other than the reserved ones below `First inode` (except the root directory, 2), from
    /// dumpe2fs's per-group `Free inodes:` lists.
    static func usedInodes(dumpe2fs text: String, context: String) throws(HavelError) -> [Int] {
        var perGroup = 0
        var firstInode = 11
        var inodeCount = 0
        var freeRanges: [ClosedRange<Int>] = []
        var groups = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let trimmed = line.trimmingWhitespace()
            if trimmed.hasPrefix("Inodes per group:") { perGroup = Int(trimmed.split(separator: ":")[1].trimmingWhitespace()) ?? 0 }
            else if trimmed.hasPrefix("First inode:") { firstInode = Int(trimmed.split(separator: ":")[1].trimmingWhitespace()) ?? 11 }
            else if trimmed.hasPrefix("Inode count:") { inodeCount = Int(trimmed.split(separator: ":")[1].trimmingWhitespace()) ?? 0 }
            else if trimmed.hasPrefix("Group "), trimmed.dropFirst(6).first?.isNumber == true { groups += 1 }
            else if trimmed.hasPrefix("Free inodes:") {
                let list = trimmed.dropFirst("Free inodes:".count)
                for item in list.split(separator: ",") {
                    let bounds = item.trimmingWhitespace().split(separator: "-").compactMap { Int($0) }
                    if bounds.count == 1 { freeRanges.append(bounds[0]...bounds[0]) }
                    else if bounds.count == 2, bounds[0] <= bounds[1] { freeRanges.append(bounds[0]...bounds[1]) }
                }
            }
        }
        guard perGroup > 0, inodeCount > 0, groups > 0, groups * perGroup == inodeCount else {
            throw HavelError(.internalError, "\(context): cannot read the inode tables from dumpe2fs (\(groups) groups of \(perGroup), \(inodeCount) inodes)")
        }
        var free = [Bool](repeating: false, count: inodeCount + 1)
        for range in freeRanges where range.upperBound <= inodeCount {
            for inode in range { free[inode] = true }
        }
        var used: [Int] = []
        for inode in 1...inodeCount where !free[inode] && (inode == 2 || inode >= firstInode) {
            used.append(inode)
        }
        return used
    }
}

/// erofs-utils before 1.6 has no `-L`; the volume name is a 16-byte field of the superblock (offset 1024 + 64),
/// covered by the superblock checksum when the `sb_csum` feature is set (crc32c from offset 1024 to the end
/// of the first block, with the checksum field zeroed, seed ~0, no final inversion).
enum ErofsLabel {
    static let superblockOffset: UInt64 = 1024

    static func set(_ label: String, in file: String, context: String) throws(HavelError) {
        let fd = open(file, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw HavelError(.io, "\(context): cannot open \(file): \(FileIO.errorText())") }
        defer { close(fd) }
        var header = try FileIO.readBytes(fd, at: superblockOffset, count: 128)
        guard header[0] == 0xE2, header[1] == 0xE1, header[2] == 0xF5, header[3] == 0xE0 else {
            throw HavelError(.internalError, "\(context): \(file) has no erofs superblock")
        }
        let blockBits = Int(header[12])
        guard (9...16).contains(blockBits) else { throw HavelError(.internalError, "\(context): erofs block size 2^\(blockBits) is unexpected") }
        let compat = UInt32(header[8]) | UInt32(header[9]) << 8 | UInt32(header[10]) << 16 | UInt32(header[11]) << 24
        let checksummed = compat & 0x1 != 0   // EROFS_FEATURE_COMPAT_SB_CHKSUM
        let length = (1 << blockBits) - Int(superblockOffset)
        if checksummed {
            // Check our checksum against mkfs.erofs's before changing anything.
            let stored = UInt32(header[4]) | UInt32(header[5]) << 8 | UInt32(header[6]) << 16 | UInt32(header[7]) << 24
            guard checksum(try FileIO.readBytes(fd, at: superblockOffset, count: length)) == stored else {
                throw HavelError(.internalError, "\(context): the erofs superblock checksum of \(file) is not what Images computes; the label is not set")
            }
        }
        let name = Array(label.utf8.prefix(16))
        for i in 0..<16 { header[64 + i] = i < name.count ? name[i] : 0 }
        try FileIO.writeBytes(fd, Array(header[64..<80]), at: superblockOffset + 64)
        guard checksummed else { return }
        let crc = checksum(try FileIO.readBytes(fd, at: superblockOffset, count: length))
        try FileIO.writeBytes(fd, [UInt8(crc & 0xff), UInt8(crc >> 8 & 0xff), UInt8(crc >> 16 & 0xff), UInt8(crc >> 24)], at: superblockOffset + 4)
    }

    static func checksum(_ superblockBlock: [UInt8]) -> UInt32 {
        var block = superblockBlock
        for i in 4..<8 { block[i] = 0 }
        return CRC32C.update(~0, block)
    }
}
