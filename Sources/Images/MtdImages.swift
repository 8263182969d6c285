// MtdImages owns `<mtd>` images: each ubi volume's content (a ubifs made by mkfs.ubifs from the staged tree of
// its fstab mountpoint, a binary file, or nothing), the ubinize configuration, and ubinize's UBI image.

import Foundation
import HavelCore
import Logging
import SystemKit

/// One mtd image to make from a finished target tree.
public struct MtdRequest: Sendable {
    public var mtd: MtdImage
    /// All of the project's fstab entries; a `bylabel` entry of type ubifs fills the volume with its label.
    public var fstab: [FstabEntry]
    /// Host path of the finished target tree. Read only.
    public var rootfs: String
    /// `<mtd.name>` is written here (as `<name>.partial`, renamed when complete).
    public var outputDirectory: String
    /// Scratch space: `<workDirectory>/<name>.volumes`, removed when done.
    public var workDirectory: String
    /// Base for relative `binary` paths.
    public var projectDirectory: String
    public var sourceDateEpoch: Int
    /// The UBI image sequence number derives from this.
    public var seed: String
    public var processes: any ProcessRunning

    public init(mtd: MtdImage, fstab: [FstabEntry], rootfs: String, outputDirectory: String, workDirectory: String,
                projectDirectory: String, sourceDateEpoch: Int, seed: String, processes: any ProcessRunning = SystemProcesses()) {
        self.mtd = mtd
        self.fstab = fstab
        self.rootfs = rootfs
        self.outputDirectory = outputDirectory
        self.workDirectory = workDirectory
        self.projectDirectory = projectDirectory
        self.sourceDateEpoch = sourceDateEpoch
        self.seed = seed
        self.processes = processes
    }
}

/// What fills one ubi volume.
enum UbiVolumeContent: Sendable, Equatable {
    /// A ubifs made from the tree under the fstab entry's mountpoint, without `nested` subtrees.
    case ubifs(entry: FstabEntry, mountpoint: String, nested: [String])
    case binary(String)
    /// No content (see `MtdImageBuilder.staticEmptyContent` for static volumes).
    case empty
}

/// The checked plan of one mtd image.
struct MtdPlan: Sendable {
    var mtd: MtdImage
    var group: UbiVolumeGroup
    var volumes: [(volume: UbiVolume, content: UbiVolumeContent)]

    static let tools: [(tool: String, package: String)] = [("mkfs.ubifs", "mtd-utils"), ("ubinize", "mtd-utils"), ("cp", "coreutils")]

    /// nil when the mtd has no `<ubivg>` (ELBE then makes nothing either).
    init?(_ request: MtdRequest, log: Logger) throws(HavelError) {
        let mtd = request.mtd
        let prefix = "mtd \(mtd.name)"
        guard !mtd.name.isEmpty, !mtd.name.contains("/"), mtd.name != ".", mtd.name != "..", !mtd.name.utf8.contains(0) else {
            throw HavelError(.invalidProject, "\(prefix): the image name must be a plain file name", at: mtd.location)
        }
        try mtd.check()
        guard let group = mtd.volumeGroup else {
            log.warning("\(prefix): no <ubivg>; nothing is written (ELBE makes only UBI images of an mtd)")
            return nil
        }
        if mtd.binary != nil { log.warning("\(prefix): <mtd><binary> is ignored, as ELBE does") }
        self.mtd = mtd
        self.group = group

        var byLabel: [String: FstabEntry] = [:]
        for entry in request.fstab { if let label = entry.label, byLabel[label] == nil { byLabel[label] = entry } }
        var planned: [(volume: UbiVolume, content: UbiVolumeContent)] = []
        for volume in group.volumes {
            let where_ = "\(prefix): ubi volume \(volume.label)"
            let entry = byLabel[volume.label]
            if let binary = volume.binary {
                if let entry { log.info("\(where_): filled from the binary \(binary); its fstab entry (\(entry.filesystem.type) at \(entry.mountpoint)) gets no filesystem made") }
                planned.append((volume, .binary(binary)))
            } else if volume.empty {
                planned.append((volume, .empty))
            } else if let entry {
                guard entry.filesystem.type == "ubifs" else {
                    throw HavelError(.invalidProject, "\(where_): its fstab entry gives the type \(entry.filesystem.type); a ubi volume holds ubifs (or give it a <binary>)", at: entry.location ?? volume.location)
                }
                let mountpoint = try ImagePlan.normalise(entry.mountpoint, context: where_, at: entry.location)
                planned.append((volume, .ubifs(entry: entry, mountpoint: mountpoint, nested: [])))
            } else {
                log.info("\(where_): no fstab bylabel entry, no binary; the volume stays empty")
                planned.append((volume, .empty))
            }
        }
        // A ubifs leaves out the trees of the deeper mountpoints of this mtd's other ubifs volumes.
        let mountpoints = planned.compactMap { item -> String? in
            if case .ubifs(_, let mountpoint, _) = item.content { return mountpoint }
            return nil
        }
        if let twice = Dictionary(grouping: mountpoints, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw HavelError(.invalidProject, "\(prefix): two ubifs volumes are mounted at \(twice)", at: group.location ?? mtd.location)
        }
        for index in planned.indices {
            guard case .ubifs(let entry, let mountpoint, _) = planned[index].content else { continue }
            let below = mountpoints.filter { ImagePlan.isStrictlyBelow($0, mountpoint) }
            let outermost = below.filter { candidate in !below.contains { ImagePlan.isStrictlyBelow(candidate, $0) } }
            planned[index].content = .ubifs(entry: entry, mountpoint: mountpoint,
                                            nested: outermost.map { ImagePlan.relative($0, to: mountpoint) }.sorted())
        }
        volumes = planned

        let missing = Self.tools.filter { request.processes.which($0.tool) == nil }
        if !missing.isEmpty {
            throw HavelError(.hostNotReady, "\(prefix): missing tools: \(missing.map(\.tool).joined(separator: ", ")); install them with: apt-get install \(Set(missing.map(\.package)).sorted().joined(separator: " "))")
        }
    }
}

/// Makes `<mtd>` images as ELBE does (`elbepack/hdimg.py`: mkfs_mtd, build_image_mtd), without mounting:
///
/// * a volume with `<binary>` holds that file: `/x` from the target tree (ELBE: from its build environment),
///   links resolved inside the tree; anything else relative to the build directory;
/// * a volume with `<empty>`, or with neither a binary nor an fstab entry, is empty when dynamic; a static one
///   holds the 5 bytes `EMPTY`, as ELBE writes into every `<empty>` volume (ubinize refuses a static volume
///   without content);
/// * otherwise the volume's label names a `bylabel` fstab entry of type ubifs: `mkfs.ubifs -r` of the tree
///   under its mountpoint (deeper mountpoints of other volumes left out, times clamped, fs-finetuning
///   path-commands and device-commands as for disk images) with `-m miniosize -e LEB -c max-LEB-count` and the
///   entry's `<mkfs>` options;
/// * then `ubinize -o <name> -p PEB -m miniosize [-s subpagesize] -Q <seeded>` with one section per volume:
///   a size, or `vol_flags=autoresize` for `remain`.
///
/// Reproducible: the ubifs is made from a private copy of the tree, its UUID and inode access and change times
/// are set afterwards (`UbifsFixup`), and ubinize's image sequence number is seeded.
public enum MtdImageBuilder {
    /// Checks and tools only: the same errors `build` would give before writing anything.
    public static func check(_ request: MtdRequest, log: Logger) throws(HavelError) {
        _ = try MtdPlan(request, log: log)
    }

    /// Builds the image; returns its path, or nil when the mtd has no volume group.
    public static func build(_ request: MtdRequest, log: Logger) async throws(HavelError) -> String? {
        guard let plan = try MtdPlan(request, log: log) else { return nil }
        let mtd = request.mtd
        let prefix = "mtd \(mtd.name)"
        let rootfs = try RootedFileSystem(root: request.rootfs)
        for directory in [request.outputDirectory, request.workDirectory] {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw HavelError(.io, "\(prefix): cannot create \(directory)", cause: error)
            }
        }
        let work = request.workDirectory + "/" + mtd.name + ".volumes"
        try Staging.remove(work)
        guard mkdir(work, 0o700) == 0 else { throw HavelError(.io, "\(prefix): cannot create \(work): \(FileIO.errorText())") }
        defer { try? Staging.remove(work) }

        var workStatus = stat(), rootStatus = stat()
        let sameDevice = stat(work, &workStatus) == 0 && stat(rootfs.root, &rootStatus) == 0 && workStatus.st_dev == rootStatus.st_dev
        let ctx = FilesystemMaker.Context(imageName: mtd.name, processes: request.processes, epoch: request.sourceDateEpoch, rootfs: rootfs,
                                          work: work, sameDevice: sameDevice, capabilities: ToolCapabilities(), log: log)
        var sections: [UbinizeSection] = []
        for (volume, content) in plan.volumes {
            let where_ = "\(prefix): ubi volume \(volume.label)"
            var image: String?
            switch content {
            case .empty where volume.kind == .static:
                // ubinize refuses a static volume without content; ELBE's placeholder is kept for these.
                image = "\(work)/v\(volume.id).empty"
                do {
                    try Data(Self.staticEmptyContent.utf8).write(to: URL(fileURLWithPath: image!))
                } catch {
                    throw HavelError(.io, "\(where_): cannot write \(image!)", cause: error)
                }
            case .empty:
                image = nil
            case .binary(let path):
                let host = try ImageBuilder.hostPath(ofBinary: path, rootfs: rootfs, projectDirectory: request.projectDirectory,
                                                     context: where_, at: volume.location)
                image = "\(work)/v\(volume.id).bin"
                try copyFile(host, to: image!, what: "\(where_): the binary")
            case .ubifs(let entry, let mountpoint, let nested):
                let uuid = SeededIdentifiers(seed: request.seed, image: mtd.name).uuidBytes("ubifs-uuid:" + volume.label)
                image = try await makeUbifs(entry: entry, mountpoint: mountpoint, nested: nested, group: plan.group, uuid: uuid,
                                            file: "\(work)/v\(volume.id).ubifs", where_, ctx)
            }
            if let image, case .bytes(let limit)? = volume.size {
                let size = try FileIO.size(of: image)
                guard size <= limit else {
                    throw HavelError(.invalidProject, "\(where_): its content is \(ByteCount.format(size)), larger than the volume's \(ByteCount.format(limit))", at: volume.location)
                }
            }
            sections.append(UbinizeSection(volume: volume, image: image))
        }

        let config = "\(work)/ubinize.cfg"
        do {
            try Data(ubinizeConfig(sections).utf8).write(to: URL(fileURLWithPath: config))
        } catch {
            throw HavelError(.io, "\(prefix): cannot write \(config)", cause: error)
        }
        let output = request.outputDirectory + "/" + mtd.name
        let temporary = output + ".partial"
        unlink(temporary)
        var arguments = ["-o", temporary, "-p", plan.group.physicalEraseBlockSize, "-m", plan.group.minIOSize]
        if let subpage = plan.group.subpageSize { arguments += ["-s", subpage] }
        arguments += ["-Q", String(imageSequence(seed: request.seed, name: mtd.name)), config]
        do throws(HavelError) {
            try await FilesystemMaker.run(Command("ubinize", arguments, environment: ctx.environment), prefix, ctx)
            let size = try FileIO.size(of: temporary)
            if let total = mtd.size.byteCount, size > total {
                throw HavelError(.invalidProject, "\(prefix): the UBI image is \(ByteCount.format(size)), larger than the \(ByteCount.format(total)) mtd", at: mtd.location)
            }
            try AtomicFile.publish(temporary, as: output)
        } catch {
            unlink(temporary)
            throw error
        }
        log.info("\(prefix): written to \(output) (\(sections.map { "\($0.volume.id) \($0.volume.label)" }.joined(separator: ", ")))")
        return output
    }

    /// What an empty static volume holds (ubinize needs content for it); ELBE writes the same into every empty volume.
    static let staticEmptyContent = "EMPTY"

    /// The ubifs of one volume. The tree is a private copy: in a hard-linked one every file has more than one
    /// link, and mkfs.ubifs writes such files in the order of their host inode numbers, which differ per build.
    static func makeUbifs(entry: FstabEntry, mountpoint: String, nested: [String], group: UbiVolumeGroup, uuid: [UInt8],
                          file: String, _ where_: String, _ ctx: FilesystemMaker.Context) async throws(HavelError) -> String {
        let tree = try await FilesystemMaker.stageFiles(mountpoint: mountpoint, nested: nested, pathCommands: entry.filesystem.pathCommands,
                                                        privateCopy: true, into: file + ".tree", where_, ctx)
        ctx.log.info("\(where_): ubifs from \(mountpoint): \(tree.entries) entries, \(ByteCount.format(tree.sizeBytes))\(tree.copied ? " (copied)" : "")")
        let extra = try ShellWords.split(entry.filesystem.mkfsOptions ?? "")
        try await FilesystemMaker.run(Command("mkfs.ubifs", ["-r", tree.path, "-o", file, "-m", group.minIOSize, "-e", group.logicalEraseBlockSize,
                                                             "-c", group.maxLogicalEraseBlockCount] + extra, environment: ctx.environment), where_, ctx)
        try Staging.remove(tree.path)
        guard let lebSize = UbiVolumeGroup.bytes(of: group.logicalEraseBlockSize), lebSize <= 1 << 24 else {
            throw HavelError(.invalidProject, "\(where_): the logical eraseblock size \(group.logicalEraseBlockSize) is out of range", at: group.location)
        }
        try UbifsFixup.apply(file, lebSize: Int(lebSize), uuid: uuid, epoch: ctx.epoch, context: where_)
        try await FilesystemMaker.runHooks(entry.filesystem.deviceCommands, placeholder: "{device}", value: file, kind: "device-command", where_, ctx)
        return file
    }

    static func copyFile(_ source: String, to destination: String, what: String) throws(HavelError) {
        let (input, size) = try FileIO.openRegular(source, what: what)
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard output >= 0 else { throw HavelError(.io, "\(what): cannot create \(destination): \(FileIO.errorText())") }
        defer { close(output) }
        try FileIO.copyAll(from: input, size: size, to: output, at: 0)
    }

    /// ubinize's `-Q`: 32 bits derived from the seed and the mtd name, so that two builds give the same headers.
    static func imageSequence(seed: String, name: String) -> UInt32 {
        let bytes = SeededIdentifiers(seed: seed, image: name).bytes("ubi-image-sequence")
        return bytes.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// ubinize's configuration: one section per volume, in the project's order.
    static func ubinizeConfig(_ sections: [UbinizeSection]) -> String {
        var text = ""
        for section in sections {
            let volume = section.volume
            text += "[\(volume.label)]\nmode=ubi\n"
            if let image = section.image { text += "image=\(image)\n" }
            text += "vol_type=\(volume.kind.rawValue)\nvol_id=\(volume.id)\nvol_name=\(volume.label)\n"
            switch volume.size {
            case .remain?: text += "vol_flags=autoresize\n"
            case .bytes(let bytes)?: text += "vol_size=\(bytes)\n"
            case nil: break
            }
        }
        return text
    }
}

/// One volume of the ubinize configuration and its image file (nil: an empty volume).
struct UbinizeSection: Sendable {
    var volume: UbiVolume
    var image: String?
}
