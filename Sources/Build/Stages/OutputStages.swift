import BootCheck
import Foundation
import HavelCore
import Images
import SystemKit

/// The reports (source.xml, validation.txt, licences, report.txt) and the packed root filesystem: both
/// only read the finished tree, so they run side by side.
struct ReportsAndPackingStage: BuildStage {
    let name = "reports and packing"

    func describe(_ plan: BuildPlan) -> StageDescription {
        let packed = BuildContext.packedName(plan.project.project)
        return StageDescription(reason: "the build's record and its rootfs archive",
                                inputs: ["rootfs/ (dpkg status, copyright files)", "the install record"],
                                outputs: ["source.xml", "validation.txt", "report.txt", "licence-target.txt/.xml", packed])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        guard let record = products.install else { throw HavelError(.internalError, "the reports need the install stage's record") }
        let directory = context.directory
        let packedName = context.packedName
        let packed = directory.path + "/" + packedName
        let clamp = products.epoch
        let rootfs = directory.rootfs
        let processes = context.processes
        let options = try context.project.project.target.outputs.tarOptions.map { text throws(HavelError) in try ArchiveOptions.tar(text) } ?? []
        let packing = Task { try await Tar.pack(rootfs, to: packed, mtimeClamp: clamp, options: options, processes: processes) }
        do throws(HavelError) {
            try await ReportWriter(context: context, record: record, installed: try products.installed(in: directory),
                                   keptPackages: products.keptPackages, added: products.archiveFiles,
                                   touched: products.finetunedFiles, stages: products.finishedStages, cdrom: products.cdrom).write()
        } catch {
            packing.cancel()
            _ = await packing.result
            throw error
        }
        if case .failure(let error) = await packing.result {
            throw error as? HavelError ?? HavelError(.internalError, "packing failed: \(error)")
        }
        products.packedRootfs = packedName
    }
}

/// cpio and squashfs archives of the tree, and the base image (a second tarball), as `<target><package>` asks.
struct RootfsArchivesStage: BuildStage {
    let name = "rootfs archives"

    static func isNeeded(by project: Project) -> Bool {
        let outputs = project.target.outputs
        return outputs.cpio != nil || outputs.squashfs != nil || outputs.baseImage != nil
    }

    static func files(_ project: Project) -> (cpio: String?, squashfs: String?, baseImage: String?) {
        let outputs = project.target.outputs
        return (outputs.cpio.map { $0.isEmpty ? "\(project.name)-\(project.version)-rootfs.cpio" : $0 },
                outputs.squashfs.map { $0.isEmpty ? "\(project.name)-\(project.version)-rootfs.squashfs" : $0 },
                outputs.baseImage.map { $0.isEmpty ? "\(project.name)-\(project.version)-base.tar.gz" : $0 })
    }

    func describe(_ plan: BuildPlan) -> StageDescription {
        let files = Self.files(plan.project.project)
        return StageDescription(reason: "<target><package> asks for them", inputs: ["rootfs/"],
                                outputs: [files.cpio, files.squashfs, files.baseImage].compactMap { $0 })
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let project = context.project.project
        let directory = context.directory
        let files = Self.files(project)
        if let file = files.cpio {
            try await Packers.cpio(directory.rootfs, to: directory.path + "/" + file, mtime: products.epoch, processes: context.processes)
            products.outputs.append(file)
        }
        if let file = files.squashfs {
            try await Packers.squashfs(directory.rootfs, to: directory.path + "/" + file, options: project.target.outputs.squashfsOptions,
                                       mtime: products.epoch, processes: context.processes)
            products.outputs.append(file)
        }
        if let file = files.baseImage {
            // ELBE's base image: the tree as a gzip tarball without the <tar> options, whatever the name says.
            let known = Tar.compressor(for: file) != nil
            let packed = directory.path + "/" + file + (known ? "" : ".havel.tar.gz")
            try await Tar.pack(directory.rootfs, to: packed, mtimeClamp: products.epoch, processes: context.processes)
            if !known, rename(packed, directory.path + "/" + file) != 0 {
                throw HavelError(.io, "cannot name the base image \(file): \(errnoText())")
            }
            products.outputs.append(file)
        }
    }
}

/// Each msdoshd/gpthd image, its filesystems made from the tree as plain files; GRUB's BIOS core
/// written where the image asks for grub-install.
struct DiskImagesStage: BuildStage {
    let name = "disk images"

    func describe(_ plan: BuildPlan) -> StageDescription {
        let images = plan.project.project.target.images
        return StageDescription(reason: "<images>: " + images.map { "\($0.name) (\($0.table.rawValue), \($0.partitions.count) partition\($0.partitions.count == 1 ? "" : "s"))" }
                                    .joined(separator: ", "),
                                inputs: ["rootfs/", "fstab"], outputs: images.map(\.name))
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let project = context.project.project
        let directory = context.directory
        let log = context.log
        for image in project.target.images {
            let request = ImageRequest(image: image, fstab: project.target.fstab, rootfs: directory.rootfs,
                                       outputDirectory: directory.path, workDirectory: directory.work + "/images",
                                       projectDirectory: directory.path, sourceDateEpoch: products.epoch,
                                       seed: "\(project.name) \(project.version)", processes: context.processes)
            let built = try await ImageBuilder.build(request, log: log)
            if image.grubInstall != nil, let core = products.grubCore {
                try Bootloader.installBIOS(core: core, image: built.path, built: built,
                                           target: try RootedFileSystem(root: directory.rootfs), log: log)
            }
            log.info("image \(image.name): \(built.partitions.map { "\($0.number) \($0.label)" }.joined(separator: ", "))")
        }
    }
}

/// Each `<mtd>`: its ubifs volumes made from the tree, its binary volumes copied, ubinize's UBI image.
struct MtdImagesStage: BuildStage {
    let name = "mtd images"

    func describe(_ plan: BuildPlan) -> StageDescription {
        let images = plan.project.project.target.mtdImages
        return StageDescription(reason: "<images><mtd>: " + images.map { mtd in
                                    let volumes = mtd.volumeGroup?.volumes.map { "\($0.label) (\($0.kind.rawValue))" } ?? []
                                    return "\(mtd.name) (mtd \(mtd.number)" + (volumes.isEmpty ? ", no ubivg: nothing is written)" : ": ubi volumes \(volumes.joined(separator: ", ")))")
                                }.joined(separator: ", "),
                                inputs: ["rootfs/", "fstab"], outputs: images.filter { $0.volumeGroup != nil }.map(\.name))
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let project = context.project.project
        let directory = context.directory
        for mtd in project.target.mtdImages {
            let request = MtdRequest(mtd: mtd, fstab: project.target.fstab, rootfs: directory.rootfs, outputDirectory: directory.path,
                                     workDirectory: directory.work + "/images", projectDirectory: directory.path,
                                     sourceDateEpoch: products.epoch, seed: "\(project.name) \(project.version)", processes: context.processes)
            if try await MtdImageBuilder.build(request, log: context.log) != nil { products.outputs.append(mtd.name) }
        }
    }
}

/// `<project-finetuning>`: work on the finished images and the build directory.
struct ProjectFinetuningStage: BuildStage {
    let name = "project finetuning"

    func describe(_ plan: BuildPlan) -> StageDescription {
        let steps = plan.project.project.target.projectFinetuning
        return StageDescription(reason: "\(steps.count) <project-finetuning> step\(steps.count == 1 ? "" : "s"): "
                                    + steps.map(\.action.elementName).joined(separator: ", "),
                                inputs: ["the images", "rootfs/"], outputs: ["the build directory", "artifacts/"])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let project = context.project.project
        let images = project.target.images
        var runner = ProjectFinetuningRunner(directory: context.directory, target: try RootedFileSystem(root: context.directory.rootfs),
                                             log: context.log, artifacts: products.artifacts,
                                             packers: products.imagePackers(images), images: images.map(\.name),
                                             processes: context.processes)
        runner.epoch = products.epoch
        try await runner.run(project.target.projectFinetuning)
        products.artifacts = runner.artifacts
        products.packers = runner.packers
    }
}

/// `<check-image-list>`: each image booted under qemu and driven over its serial console, then the
/// check script run with the build directory; any failure fails the build.
struct BootChecksStage: BuildStage {
    let name = "boot checks"

    func describe(_ plan: BuildPlan) -> StageDescription {
        let project = plan.project.project
        let boots = project.checks.map { "\($0.image) with \(($0.interpreter as NSString).lastPathComponent)" }
        let script = project.checkScript == nil ? [] : ["<check-script> with the build directory"]
        return StageDescription(reason: "<check-image-list>: " + (boots + script).joined(separator: ", "),
                                inputs: project.checks.map(\.image) + (script.isEmpty ? [] : ["the build directory"]),
                                outputs: ["check.xml"] + (project.checks.isEmpty ? [] : ["check-N-IMAGE.log"])
                                    + (script.isEmpty ? [] : ["check-script.log"]))
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let project = context.project.project
        let results = try await context.checkImages(project.checks, project.checkScript, context.directory, context.log)
        for result in results { products.checks[result.name] = result.passed }
        let failed = results.filter { !$0.passed }
        if !failed.isEmpty {
            let what = failed.allSatisfy { $0.name == CheckScriptRunner.checkName } ? "check script failed: " : "boot check failed: "
            throw HavelError(.processFailed, what + failed.map { "\($0.name): \($0.message)" }.joined(separator: "; "))
        }
    }
}

/// Each image packed as its packer says (default tar.xz, as ELBE).
struct PackImagesStage: BuildStage {
    let name = "pack images"

    func describe(_ plan: BuildPlan) -> StageDescription {
        StageDescription(reason: "images are handed out packed (set_packer chooses how)",
                         inputs: plan.project.project.target.images.map(\.name),
                         outputs: plan.project.project.target.images.map { Packers.packedName($0.name, packer: Packers.defaultImagePacker) },
                         cacheKey: CacheKeyDescription(inputs: ["the image's name", "its packer", "the clamped file time"],
                                                       resolvedAtBuild: ["the sha256 of the finished image"]))
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let directory = context.directory
        let packers = products.imagePackers(context.project.project.target.images)
        let cache = PackedImageCache(cache: context.options.cache, workDirectory: directory.work, processes: context.processes, log: context.log)
        var results: [PackedImageCache.Packed] = []
        for image in context.project.project.target.images where FileManager.default.fileExists(atPath: directory.path + "/" + image.name) {
            let packer = packers[image.name] ?? Packers.defaultImagePacker
            let packed: String
            if context.options.useStageCache && packer != "none" {
                let result = try await cache.pack(image.name, in: directory.path, packer: packer, mtime: products.epoch)
                results.append(result)
                packed = result.name
            } else {
                packed = try await Packers.packImage(image.name, in: directory.path, packer: packer, mtime: products.epoch, processes: context.processes)
            }
            products.outputs.append(packed)
        }
        if !results.isEmpty {
            products.stageRecord = .init(key: results.count == 1 ? results[0].key : nil, cached: results.allSatisfy(\.fromCache), downloads: nil)
        }
    }
}

extension BuildProducts {
    /// The packer of each image: the default unless project-finetuning's set_packer chose another.
    func imagePackers(_ images: [DiskImage]) -> [String: String] {
        var result: [String: String] = [:]
        for image in images { result[image.name] = packers[image.name] ?? Packers.defaultImagePacker }
        return result
    }
}
