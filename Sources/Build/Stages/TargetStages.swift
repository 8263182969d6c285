import Chroot
import Debian
import Foundation
import HavelCore
import Logging
import ProjectXML
import SystemKit

/// A copy of the installed tree with `buildimage/pkg-list` installed into it (under emulation), for
/// projects whose finetuning works in a build environment; never part of the target.
struct BuildEnvironmentStage: BuildStage {
    let name = "build environment"

    static func isNeeded(by project: Project) -> Bool {
        if let packages = project.buildimage?.packages, !packages.isEmpty { return true }
        return project.target.finetuning.contains { step in
            switch step.action {
            case .makeDirectory(_, let place), .command(_, let place): return place == .buildenv
            case .copy(_, _, let source, let destination), .move(_, _, let source, let destination):
                return source == .buildenv || destination == .buildenv
            default: return false
            }
        }
    }

    func describe(_ plan: BuildPlan) -> StageDescription {
        let packages = plan.project.project.buildimage?.packages.map(\.name) ?? []
        return StageDescription(reason: packages.isEmpty ? "finetuning works in the build environment"
                                    : "buildimage/pkg-list: \(packages.joined(separator: " "))",
                                inputs: ["rootfs/"], outputs: ["buildenv/"])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let directory = context.directory
        try await context.processes.check(Command("cp", ["-a", "--reflink=auto", directory.rootfs, directory.buildenv]))
        let buildenv = try RootedFileSystem(root: directory.buildenv)
        products.buildenv = buildenv
        let project = context.project.project
        let packages = project.buildimage?.packages.map(\.name) ?? []
        guard !packages.isEmpty else { return }
        context.log.info("installing into the build environment: \(packages.joined(separator: " "))")
        let sources = AptSources.lines(for: project)
        let chroot = context.chroot(directory.buildenv)
        if let cdrom = products.cdrom, try await installFromCdrom(cdrom, context) { return }
        let cache = context.options.cache
        let inUse = try cache.usingDebs()
        defer { inUse.release() }
        try await ChrootExcursions.during(buildenv, log: context.log) { () async throws(HavelError) in
            try await context.runTool(chroot.command(["apt-get", "update"]), what: "apt-get update", sources: sources)
            try await context.runTool(chroot.command(["apt-get", "-y", "install"] + packages), what: "apt-get install", sources: sources)
            try await keepPackages(context)
            try await context.runTool(chroot.command(["apt-get", "clean"]), what: "apt-get clean", sources: sources)
        }
    }

    /// A rebuild from the binary CD installs the build environment's packages from the CD too, exactly those the
    /// original build's source.xml lists (`<debootstrappkgs>`), with dpkg: no mirror, no apt resolution. False when
    /// that source.xml lists none (a CD of an older Havel): the mirror is read then, as the log says.
    func installFromCdrom(_ cdrom: BinaryCdromSource, _ context: BuildContext) async throws(HavelError) -> Bool {
        let directory = context.directory
        let original = try ProjectLoader.load(path: cdrom.directory + "/source.xml").project.buildEnvironmentPackages
        guard !original.isEmpty else {
            context.log.warning("the binary CD's source.xml lists no build environment packages; buildimage/pkg-list is installed from the mirror")
            return false
        }
        let target = Set(try DpkgStatus.read(root: directory.rootfs).map { "\($0.name) \($0.version) \($0.architecture)" })
        let index = "\(cdrom.directory)/dists/\(cdrom.suite)/main/binary-\(context.architecture.debianName)/Packages"
        let onCD = PackagesIndex.index(PackagesIndex.parse(String(decoding: try RootedFileSystem(root: cdrom.directory)
            .readFile(String(index.dropFirst(cdrom.directory.count)), limit: 256 << 20), as: UTF8.self), origin: "cdrom"))
        let staging = "/var/cache/havel-cdrom"
        let buildenv = try RootedFileSystem(root: directory.buildenv)
        try buildenv.createDirectory(staging)
        var count = 0
        for package in original where !target.contains("\(package.name) \(package.version) \(package.arch ?? "")") {
            guard let entry = PackagesIndex.lookup(onCD, name: package.name, version: package.version, architecture: package.arch ?? context.architecture.debianName) else {
                throw HavelError(.notFound, "--from-cdrom: the build environment's \(package.name) \(package.version) is not on the CD")
            }
            try buildenv.importItem(fromHost: cdrom.directory + "/" + entry.filename, to: staging + "/" + (entry.filename as NSString).lastPathComponent)
            count += 1
        }
        context.log.info("installing the build environment's \(count) packages from the binary CD, as the original build's source.xml lists them")
        let command = context.chroot(directory.buildenv).command(["/bin/sh", "-c", "dpkg -i \(staging)/*.deb && rm -rf \(staging)"])
        try await ChrootExcursions.during(buildenv, log: context.log) { () async throws(HavelError) in
            if count > 0 { try await context.runTool(command, what: "dpkg -i (the binary CD's build environment packages)", sources: []) }
        }
        try? buildenv.remove(staging)
        return true
    }

    /// The packages the build environment added, into the package cache, each checked against the environment's
    /// apt lists: the binary CD carries them as ELBE's carries its build chroot's.
    func keepPackages(_ context: BuildContext) async throws(HavelError) {
        let directory = context.directory
        let cache = context.options.cache
        let archives = directory.buildenv + "/var/cache/apt/archives"
        try await context.processes.check(Command("/bin/sh", ["-c", """
            find "$1" -maxdepth 1 -name '*.deb' -type f -print0 | xargs -0 -r cp -l -n -t "$2/" 2>/dev/null ||
            find "$1" -maxdepth 1 -name '*.deb' -type f -print0 | xargs -0 -r cp -n -t "$2/"
            """, "sh", archives, cache.debs]))
        let added = try BinaryCdromStage.buildEnvironmentOnly(directory, target: try DpkgStatus.read(root: directory.rootfs))
        let outcome = try await DebVerification.verify(added, lists: directory.buildenv, debs: cache.debs, present: Set(cache.debFiles()),
                                                       processes: context.processes)
        try cache.recordVerified(outcome.verified)
    }
}

/// Host name, users, fstab, serial getty, apt's files: what `<target>` says of the system.
struct ConfigureTargetStage: BuildStage {
    let name = "configure target"

    func describe(_ plan: BuildPlan) -> StageDescription {
        StageDescription(reason: "the system settings of <target>", inputs: ["<target>: hostname, domain, passwd, console, fstab"],
                         outputs: ["rootfs/etc"])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let target = try RootedFileSystem(root: context.directory.rootfs)
        try await TargetSetup.apply(context.project.project, to: target, havelVersion: context.options.havelVersion,
                                    date: Date(timeIntervalSince1970: TimeInterval(products.epoch)), log: context.log,
                                    processes: context.processes)
    }
}

/// The project's `<archive>`, unpacked over the tree.
struct ArchiveStage: BuildStage {
    let name = "archive"

    func describe(_ plan: BuildPlan) -> StageDescription {
        StageDescription(reason: "<archive> overlays files on the tree", inputs: ["<archive> (a base64 tar)"], outputs: ["rootfs/"])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        guard let archive = context.project.project.archive else { return }
        products.archiveFiles = try await ArchiveOverlay.apply(archive, to: try RootedFileSystem(root: context.directory.rootfs),
                                                               work: context.directory.work, log: context.log, processes: context.processes)
    }
}

/// update-initramfs, deferred from the install: once, with the archive's initramfs settings, before
/// finetuning (which may take the kernel and initrd as artifacts, as with ELBE).
struct InitramfsStage: BuildStage {
    let name = "initramfs"

    func describe(_ plan: BuildPlan) -> StageDescription {
        StageDescription(reason: "update-initramfs was deferred during the install; it runs once here, when a kernel is installed",
                         inputs: ["rootfs/boot", "rootfs/etc/initramfs-tools"], outputs: ["rootfs/boot/initrd.img-*"])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let target = try RootedFileSystem(root: context.directory.rootfs)
        guard target.exists(InitramfsDeferral.diverted) || target.exists(InitramfsDeferral.tool) else { return }
        // With the install's native helpers (NativeHelpers), mkinitramfs's shell and tools run natively; the initrd
        // is then checked to carry none of them.
        let helpers = NativeHelpers.enterCommand(bootstrapWork: context.directory.work + "/bootstrap")
        context.log.info(helpers == nil ? "update-initramfs under emulation (no native helpers from this build's install)"
                                        : "update-initramfs with the native helpers of the install")
        // SOURCE_DATE_EPOCH: mkinitramfs clamps the times in the initrd to it, so the initrd is the same each build.
        let command = context.chroot(context.directory.rootfs).command(["/bin/sh", "-c", InitramfsDeferral.finishCommands],
                                                                       environment: ["SOURCE_DATE_EPOCH": String(products.epoch)],
                                                                       enter: helpers?.enter)
        try await ChrootExcursions.during(target, log: context.log) { () async throws(HavelError) in
            try await context.runTool(command, what: "update-initramfs", sources: [])
        }
        if let helpers {
            let boot = context.directory.rootfs + "/boot"
            let initrds = ((try? FileManager.default.contentsOfDirectory(atPath: boot)) ?? [])
                .filter { $0.hasPrefix("initrd.img-") }.sorted().map { boot + "/" + $0 }
            try await context.runTool(Command(helpers.scan[0], Array(helpers.scan.dropFirst()) + ["scan_initrd"] + initrds),
                                      what: "checking the initramfs for native helpers", sources: [])
            try await context.runTool(Command(helpers.scan[0], Array(helpers.scan.dropFirst()) + ["scan", context.directory.rootfs]),
                                      what: "checking the tree for native helpers", sources: [])
        }
    }
}

/// `<finetuning>`: files, users, groups, commands, artifacts.
struct FinetuningStage: BuildStage {
    let name = "finetuning"

    func describe(_ plan: BuildPlan) -> StageDescription {
        let steps = plan.project.project.target.finetuning
        return StageDescription(reason: steps.isEmpty ? "no <finetuning> steps (the stage records that)"
                                    : "\(steps.count) <finetuning> step\(steps.count == 1 ? "" : "s"): "
                                    + steps.map(\.action.elementName).joined(separator: ", "),
                                inputs: ["rootfs/"], outputs: ["rootfs/", "artifacts/"])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let directory = context.directory
        let target = try RootedFileSystem(root: directory.rootfs)
        var runner = FinetuningRunner(target: target, chroot: context.chroot(directory.rootfs), buildenv: products.buildenv,
                                      directory: directory, log: context.log, processes: context.processes)
        runner.epoch = products.epoch
        let steps = context.project.project.target.finetuning
        try await ChrootExcursions.during(target, log: context.log) { () async throws(HavelError) in
            try await runner.run(steps)
        }
        products.finetunedFiles = runner.touched
        products.artifacts = runner.artifacts
    }
}

/// GRUB's files in the tree and its BIOS core image, for images with `<grub-install/>`.
struct BootloaderStage: BuildStage {
    let name = "bootloader"

    func describe(_ plan: BuildPlan) -> StageDescription {
        StageDescription(reason: "an image asks for grub-install", inputs: ["rootfs/usr/lib/grub"], outputs: ["rootfs/boot/grub", "GRUB's core image"])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let directory = context.directory
        let target = try RootedFileSystem(root: directory.rootfs)
        try? FileManager.default.createDirectory(atPath: directory.work, withIntermediateDirectories: true)
        products.grubCore = try await Bootloader(project: context.project.project, target: target,
                                                 chroot: context.chroot(directory.rootfs), log: context.log)
            .prepare(work: directory.work)
    }
}

/// Per-device secrets out of the image (made at first boot by a unit Havel installs), machine-id emptied,
/// seeds and caches removed, shadow's dates clamped: after everything that changes the tree, before packing.
struct DeviceFilesStage: BuildStage {
    let name = "device files"

    func describe(_ plan: BuildPlan) -> StageDescription {
        StageDescription(reason: "an image is the same for every build and every device makes its own host keys",
                         inputs: ["rootfs/"],
                         outputs: ["rootfs/etc/ssh/ssh_host_* and the snakeoil key removed", DeviceFiles.unitPath + " (with systemd)",
                                   "rootfs/etc/machine-id emptied", "rootfs/etc/shadow dates clamped"])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let fromProject = Set((products.archiveFiles + products.finetunedFiles).map { $0.hasPrefix("/") ? $0 : "/" + $0 })
        _ = try DeviceFiles(target: try RootedFileSystem(root: context.directory.rootfs), epoch: products.epoch,
                            fromProject: fromProject, log: context.log).apply()
    }
}
