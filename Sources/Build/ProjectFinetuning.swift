import Logging
import Foundation
import HavelCore
import Images
import SystemKit

/// `<project-finetuning>`: actions on the build directory after the images exist — moving files out of
/// the target, registering artifacts, converting images, choosing packers, and working on a disk
/// image's partitions by their offsets (debugfs and mtools, no loop device; a loop device and a mount
/// only for `command` without `nomount`, released on every exit path).
struct ProjectFinetuningRunner {
    let directory: BuildDirectory
    let target: RootedFileSystem
    let log: Logger
    var artifacts: [String]
    /// Packer per image name (`set_packer` applies to the images made so far).
    var packers: [String: String] = [:]
    let images: [String]
    var processes: any ProcessRunning = SystemProcesses()
    /// The build's clamp for file times, given to the commands as SOURCE_DATE_EPOCH (0: none known).
    var epoch = 0

    func fail(_ step: FinetuningStep, _ message: String) -> HavelError {
        HavelError(.invalidProject, "project-finetuning <\(step.action.elementName)>: \(message)", at: step.location)
    }

    /// A path inside the build directory; `..` and absolute paths are refused.
    func projectPath(_ name: String, _ step: FinetuningStep) throws(HavelError) -> String {
        guard let path = BuildDirectory.confined(name, under: directory.path) else {
            throw fail(step, "\"\(name)\" must be a path inside the build directory")
        }
        return path
    }

    mutating func run(_ steps: [FinetuningStep]) async throws(HavelError) {
        for step in steps {
            try Task.checkCancellationAsHavelError()
            log.info("project-finetuning: <\(step.action.elementName)>\(step.location.map { " (\($0))" } ?? "")")
            try await run(step)
        }
    }

    mutating func run(_ step: FinetuningStep) async throws(HavelError) {
        switch step.action {
        case .move(let from, let to, _, .project):
            let sources = try target.glob(from)
            guard !sources.isEmpty else { throw fail(step, "path=\"\(from)\" matches nothing in the target") }
            for path in sources {
                let destination = try projectPath(to.isEmpty ? (path as NSString).lastPathComponent : to, step)
                try target.exportItem(path, toHost: destination)
                try target.remove(path)
                register(destination)
            }
        case .artifact(let path, _):
            let file = try projectPath(path, step)
            guard FileManager.default.fileExists(atPath: file) else { throw fail(step, "\(path) does not exist in the build directory") }
            register(file)
        case .removeArtifact(let path):
            let file = try projectPath(path, step)
            let name = relative(file)
            artifacts.removeAll { $0 == name }
            unlink(file)
        case .setPacker(let packer):
            guard Packers.imagePackers.contains(packer) else {
                throw fail(step, "packer \(packer) is not supported; use one of: " + Packers.imagePackers.joined(separator: ", "))
            }
            for image in images { packers[image] = packer }
        case .imageConvert(let source, let destination, let format, let keep):
            let input = try projectPath(source, step)
            let output = try projectPath(destination, step)
            guard FileManager.default.fileExists(atPath: input) else { throw fail(step, "\(source) does not exist") }
            try await processes.check(Command("qemu-img", ["convert", "-O", format, input, output + ".partial"]))
            try AtomicFile.publish(output + ".partial", as: output)
            if !keep {
                unlink(input)
                let name = relative(input)
                artifacts.removeAll { $0 == name }
            }
            register(output)
        case .losetup(let image, let actions):
            let path = try projectPath(image, step)
            guard FileManager.default.fileExists(atPath: path) else { throw fail(step, "image \(image) does not exist") }
            for action in actions { try await runPartitionAction(action, image: path, step: step) }
        default:
            throw fail(step, "this action belongs in <finetuning>")
        }
    }

    func relative(_ path: String) -> String { String(path.dropFirst(directory.path.count + 1)) }

    mutating func register(_ path: String) {
        let name = relative(path)
        if !artifacts.contains(name) { artifacts.append(name) }
    }

    /// Where partition `number` lies, from the image's own partition table.
    static func partition(_ number: Int, of image: String) async throws(HavelError) -> TablePartition {
        guard let place = try await DiskImageTable.partitions(of: image).first(where: { $0.number == number }) else {
            throw HavelError(.notFound, "\(image) has no partition \(number)")
        }
        return place
    }

    /// ext2/3/4 or vfat, told by the filesystem's own magic bytes.
    static func filesystem(of image: String, at offset: UInt64) -> String? {
        guard let handle = FileHandle(forReadingAtPath: image) else { return nil }
        defer { try? handle.close() }
        try? handle.seek(toOffset: offset)
        guard let head = try? handle.read(upToCount: 2048), head.count == 2048 else { return nil }
        let bytes = [UInt8](head)
        if bytes[1080] == 0x53 && bytes[1081] == 0xEF { return "ext" }
        if bytes[510] == 0x55 && bytes[511] == 0xAA && (bytes[82..<87].elementsEqual(Array("FAT32".utf8)) || bytes[54..<57].elementsEqual(Array("FAT".utf8))) {
            return "vfat"
        }
        return nil
    }

    mutating func runPartitionAction(_ action: ImageAction, image: String, step: FinetuningStep) async throws(HavelError) {
        switch action {
        case .extractPartition(let number, let artifact):
            let place = try await Self.partition(number, of: image)
            let output = try projectPath(artifact, step)
            try await dd(from: image, skip: place.startBytes, count: place.sizeBytes, to: output + ".partial", seek: 0)
            try AtomicFile.publish(output + ".partial", as: output)
            register(output)
        case .copyFromPartition(let number, let path, let artifact):
            let place = try await Self.partition(number, of: image)
            let output = try projectPath(artifact, step)
            switch Self.filesystem(of: image, at: place.startBytes) {
            case "ext":
                try await processes.check(Command("debugfs", ["-R", "dump -p \(path) \(output)", "\(image)?offset=\(place.startBytes)"]))
                guard FileManager.default.fileExists(atPath: output) else { throw fail(step, "\(path) is not in partition \(number)") }
            case "vfat":
                try await processes.check(Command("mcopy", ["-n", "-i", "\(image)@@\(place.startBytes)", "::" + path, output],
                                                      environment: ["MTOOLS_SKIP_CHECK": "1"]))
            default:
                throw fail(step, "partition \(number) holds no ext2/3/4 or vfat filesystem Havel can read without mounting")
            }
            register(output)
        case .copyToPartition(let number, let artifact, let path):
            let place = try await Self.partition(number, of: image)
            let input = try projectPath(artifact, step)
            guard FileManager.default.fileExists(atPath: input) else { throw fail(step, "artifact \(artifact) does not exist") }
            switch Self.filesystem(of: image, at: place.startBytes) {
            case "ext":
                _ = try await processes.run(Command("debugfs", ["-w", "-R", "rm \(path)", "\(image)?offset=\(place.startBytes)"]))
                try await processes.check(Command("debugfs", ["-w", "-R", "write \(input) \(path)", "\(image)?offset=\(place.startBytes)"]))
            case "vfat":
                try await processes.check(Command("mcopy", ["-o", "-i", "\(image)@@\(place.startBytes)", input, "::" + path],
                                                      environment: ["MTOOLS_SKIP_CHECK": "1"]))
            default:
                throw fail(step, "partition \(number) holds no ext2/3/4 or vfat filesystem Havel can write without mounting")
            }
        case .setPartitionType(let number, let type):
            try await processes.check(Command("sfdisk", ["--part-type", image, String(number), type]))
        case .command(let number, let script, let mount):
            let place = try await Self.partition(number, of: image)
            if mount, Self.filesystem(of: image, at: place.startBytes) == "vfat", !Self.kernelMounts("vfat") {
                try await withVfatFiles(image, place: place, number: number) { files throws(HavelError) in
                    try await runScript(script, environment: ["ELBE_MNT": files, "HAVEL_MNT": files], step: step)
                }
            } else if mount {
                try await withMountedPartition(image, place: place, step: step) { mountPoint throws(HavelError) in
                    try await runScript(script, environment: ["ELBE_MNT": mountPoint, "HAVEL_MNT": mountPoint], step: step)
                }
            } else {
                // The partition as a plain file: changed in place, then written back.
                let file = directory.work + "/partition-\(number).img"
                try await dd(from: image, skip: place.startBytes, count: place.sizeBytes, to: file, seek: 0)
                try await runScript(script, environment: ["ELBE_DEV": file, "HAVEL_DEV": file], step: step)
                try await dd(from: file, skip: 0, count: place.sizeBytes, to: image, seek: place.startBytes)
                unlink(file)
            }
        }
    }

    func runScript(_ script: String, environment: [String: String], step: FinetuningStep) async throws(HavelError) {
        var env = environment.merging(FinetuningRunner.epochEnvironment(epoch)) { given, _ in given }
        env["HAVEL_BUILDDIR"] = directory.path
        let log = self.log
        let status = try await processes.stream(Command("sh", ["-c", script], environment: env, workingDirectory: directory.path)) { log.tool($0) }
        guard status == .exited(0) else { throw fail(step, "the command failed (\(status))") }
    }

    /// Whether this kernel has `filesystem` built in or loaded (/proc/filesystems).
    static func kernelMounts(_ filesystem: String) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/filesystems", encoding: .utf8) else { return false }
        return text.split(separator: "\n").contains { $0.split(whereSeparator: \.isWhitespace).last.map(String.init) == filesystem }
    }

    /// A vfat partition where the kernel cannot mount vfat (a bare CI box, a container): its files copied
    /// out with mtools into a directory that stands for the mount point, and, when `body` succeeds, the
    /// partition's content replaced by the directory's (same filesystem, label and serial; DOS attributes
    /// such as hidden are not kept).
    func withVfatFiles(_ image: String, place: TablePartition, number: Int,
                       _ body: (String) async throws(HavelError) -> Void) async throws(HavelError) {
        let drive = "\(image)@@\(place.startBytes)"
        let environment = ["MTOOLS_SKIP_CHECK": "1"]
        let files = directory.work + "/partition-\(number)-files"
        try? FileManager.default.removeItem(atPath: files)
        do {
            try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        } catch {
            throw HavelError(.io, "cannot create \(files): \(error.localizedDescription)")
        }
        defer { try? FileManager.default.removeItem(atPath: files) }
        // `mdir -b` names each top-level entry, hidden ones too with -a; directories end with '/'.
        let listing = try await processes.check(Command("mdir", ["-a", "-b", "-i", drive, "::/"], environment: environment))
        let entries = listing.standardOutput.split(separator: "\n").map(String.init).filter { $0.hasPrefix("::/") && $0 != "::/" }
        let names = entries.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        if !names.isEmpty {
            try await processes.check(Command("mcopy", ["-s", "-p", "-n", "-m", "-i", drive] + names + [files + "/"], environment: environment))
        }
        try await body(files)
        for entry in entries {
            let name = entry.hasSuffix("/") ? String(entry.dropLast()) : entry
            try await processes.check(Command(entry.hasSuffix("/") ? "mdeltree" : "mdel", ["-i", drive, name], environment: environment))
        }
        let local: [String]
        do {
            local = try FileManager.default.contentsOfDirectory(atPath: files).sorted().map { files + "/" + $0 }
        } catch {
            throw HavelError(.io, "cannot read \(files): \(error.localizedDescription)")
        }
        if !local.isEmpty {
            try await processes.check(Command("mcopy", ["-s", "-p", "-m", "-i", drive] + local + ["::/"], environment: environment))
        }
    }

    func withMountedPartition(_ image: String, place: TablePartition, step: FinetuningStep,
                              _ body: (String) async throws(HavelError) -> Void) async throws(HavelError) {
        let mountPoint = directory.work + "/mnt-\(place.startBytes)"
        try? FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let loop = try await processes.check(Command("losetup", ["--find", "--show", "--offset", String(place.startBytes),
                                                                     "--sizelimit", String(place.sizeBytes), image]))
            .standardOutput.trimmingWhitespace()
        var failure: HavelError?
        let mounted = try await processes.run(Command("mount", [loop, mountPoint]))
        if mounted.succeeded {
            do throws(HavelError) { try await body(mountPoint) } catch { failure = error }
            _ = try? await processes.run(Command("umount", [mountPoint]))
        } else {
            failure = fail(step, "partition at offset \(place.startBytes) cannot be mounted here (\(mounted.standardError.trimmingWhitespace())); use nomount=\"true\" and $ELBE_DEV")
        }
        _ = try? await processes.run(Command("losetup", ["--detach", loop]))
        if let failure { throw failure }
    }

    func dd(from input: String, skip: UInt64, count: UInt64, to output: String, seek: UInt64) async throws(HavelError) {
        try await processes.check(Command("dd", ["if=\(input)", "of=\(output)", "bs=64K", "iflag=skip_bytes,count_bytes",
                                                     "oflag=seek_bytes", "skip=\(skip)", "count=\(count)", "seek=\(seek)",
                                                     "conv=notrunc,sparse", "status=none"]))
    }
}
