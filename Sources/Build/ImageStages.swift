import BootCheck
import Foundation
import HavelCore
import Images
import SystemKit

/// The stages after the tree is finished: root filesystem archives, disk images, project-finetuning,
/// boot checks, and packing the images.
extension Builder {
    func imageStages() async throws(HavelError) {
        let outputs = project.target.outputs
        if outputs.cpio != nil || outputs.squashfs != nil {
            try await stage("rootfs archives") { () async throws(HavelError) in
                if let name = outputs.cpio {
                    let file = name.isEmpty ? "\(project.name)-\(project.version)-rootfs.cpio" : name
                    try await Packers.cpio(directory.rootfs, to: directory.path + "/" + file, mtime: epoch)
                    state.outputs.append(file)
                }
                if let name = outputs.squashfs {
                    let file = name.isEmpty ? "\(project.name)-\(project.version)-rootfs.squashfs" : name
                    try await Packers.squashfs(directory.rootfs, to: directory.path + "/" + file, options: outputs.squashfsOptions, mtime: epoch)
                    state.outputs.append(file)
                }
            }
        }
        let images = project.target.images
        if !images.isEmpty {
            try await stage("disk images") { () async throws(HavelError) in
                for image in images {
                    let request = ImageRequest(image: image, fstab: project.target.fstab, rootfs: directory.rootfs,
                                               outputDirectory: directory.path, workDirectory: directory.work + "/images",
                                               projectDirectory: directory.path, sourceDateEpoch: epoch,
                                               seed: "\(project.name) \(project.version)")
                    let log = self.log
                    let built = try await ImageBuilder.build(request) { log.info($0) }
                    if image.grubInstall != nil, let core = grubCore {
                        try Bootloader.installBIOS(core: core, image: built.path, built: built,
                                                   target: try RootedFileSystem(root: directory.rootfs), log: log)
                    }
                    log.info("image \(image.name): " + built.partitions.map { "\($0.number) \($0.label)" }.joined(separator: ", "))
                }
            }
        }
        var packers: [String: String] = [:]
        for image in images { packers[image.name] = Packers.defaultImagePacker }
        if !project.target.projectFinetuning.isEmpty {
            try await stage("project finetuning") { () async throws(HavelError) in
                var runner = ProjectFinetuningRunner(directory: directory, target: try RootedFileSystem(root: directory.rootfs), log: log,
                                                     artifacts: state.artifacts, packers: packers, images: images.map(\.name))
                try await runner.run(project.target.projectFinetuning)
                state.artifacts = runner.artifacts
                packers = runner.packers
            }
        }
        if !project.checks.isEmpty {
            if options.skipChecks {
                log.info("boot checks skipped (--skip-checks); run havel check-image \(directory.path)")
            } else {
                try await stage("boot checks") { () async throws(HavelError) in try await runChecks() }
            }
        }
        if !images.isEmpty {
            try await stage("pack images") { () async throws(HavelError) in
                for image in images where FileManager.default.fileExists(atPath: directory.path + "/" + image.name) {
                    let packed = try await Packers.packImage(image.name, in: directory.path, packer: packers[image.name] ?? Packers.defaultImagePacker,
                                                             mtime: epoch)
                    state.outputs.append(packed)
                }
            }
        }
    }

    /// Boots each image of `check-image-list` and records check.xml; a failing check fails the build.
    func runChecks() async throws(HavelError) {
        let results = try await CheckRunner.run(project.checks, directory: directory, log: log)
        for result in results { state.checks[result.name] = result.passed }
        let failed = results.filter { !$0.passed }
        if !failed.isEmpty {
            throw HavelError(.processFailed, "boot check failed: " + failed.map { "\($0.name): \($0.message)" }.joined(separator: "; "))
        }
    }

    /// Files this build made besides the standard reports: removed when it fails.
    func resultsOfThisBuild() -> [String] {
        (state.outputs + state.artifacts + project.target.images.map(\.name)).map { directory.path + "/" + $0 }
    }
}

/// Runs a project's checks against a build directory (at the end of a build, or by `havel check-image`).
public enum CheckRunner {
    public static func run(_ checks: [ImageCheck], directory: BuildDirectory, log: BuildLog) async throws(HavelError) -> [CheckResult] {
        var results: [CheckResult] = []
        for (index, check) in checks.enumerated() {
            let accelerator = await AcceleratorChoice.choose(for: check, directory: directory, log: log)
            let name = "check-\(index + 1)-\(check.image)"
            let image = directory.path + "/" + check.image
            guard FileManager.default.fileExists(atPath: image) else {
                throw HavelError(.notFound, "boot check \(index + 1): image \(check.image) is not in \(directory.path)")
            }
            let context = CheckContext(buildDirectory: directory.path, imagePath: image, accelerator: accelerator,
                                       transcriptPath: directory.path + "/\(name).log")
            log.info("boot check \(name): \(check.interpreter) \(check.interpreterOptions)")
            let result = await BootChecker.run(check, name: name, context: context) { log.info($0) }
            log.info("boot check \(name): \(result.passed ? "passed" : "FAILED: \(result.message)") in \(String(format: "%.1f", result.seconds)) s")
            results.append(result)
        }
        let xml = BootChecker.junitXML(results, suite: "havel-checks")
        do {
            try xml.write(toFile: directory.checkReport, atomically: true, encoding: .utf8)
        } catch {
            throw HavelError(.io, "cannot write \(directory.checkReport)")
        }
        return results
    }
}

import QEMU

/// The accelerator for a boot check, by the QEMU module's one policy (KVM when a real probe boot
/// shows it works here, otherwise TCG), with a visible warning when KVM is not used.
enum AcceleratorChoice {
    static func choose(for check: ImageCheck, directory: BuildDirectory, log: BuildLog) async -> Accelerator {
        let options = (try? ShellWords.split(check.interpreterOptions)) ?? []
        let outcome = await AcceleratorPolicy.host.choose(interpreter: check.interpreter, options: options,
                                                          directory: directory.path, host: HostArchitecture.current)
        if outcome.accelerator == .kvm {
            log.info("KVM works here: boot checks use it")
        } else if !outcome.foreignGuest {
            log.warning("KVM is not used (\(outcome.reason)): boot checks run under software emulation (TCG), 5-15x slower")
        }
        return outcome.accelerator
    }
}
