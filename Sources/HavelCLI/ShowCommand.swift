import ArgumentParser
import BootCheck
import Build
import Foundation
import HavelCore
import ProjectXML

/// `havel show FILE`: what a project will build, at a glance, or as JSON.
struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Summarise a project: architecture, suite, mirror, packages, images, fstab, finetuning, checks.")

    @OptionGroup var read: ProjectReadOptions
    @OptionGroup var mirrorOptions: MirrorOptions

    @Flag(name: .long, help: "Print the whole project model as JSON.")
    var json = false

    @Flag(name: .long, help: "Print the build plan: each stage in order, why it is there, what it reads and writes, its cache key.")
    var plan = false

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("With --plan: the build directory (default: build/<project name>).", valueName: "BUILDDIR"))
    var output: String?

    @Flag(name: .long, help: "With --plan: the plan of a build with --skip-checks.")
    var skipChecks = false

    @Flag(name: .long, help: "With --plan: the plan of a build with --cdroms.")
    var cdroms = false

    @Argument(help: "The project file.")
    var file: String

    func run() throws {
        if plan {
            let project = try BuildCommand.load(file, options: read.loaderOptions(hashPasswords: true), mirror: mirrorOptions.mirror)
            let options = BuildOptions(directory: BuildDirectory(output ?? "build/\(project.project.name)"), havelVersion: HavelVersion.current,
                                       skipChecks: skipChecks, binaryCdrom: cdroms)
            Terminal.out(BuildPlan(project, host: .current, options: options).describe())
            return
        }
        var loaded = try ProjectLoader.load(path: file, options: read.loaderOptions(hashPasswords: true))
        for diagnostic in loaded.errors { Terminal.error(diagnostic.description) }
        guard loaded.isValid else {
            Terminal.error("\(file): invalid (\(loaded.errors.count) error\(loaded.errors.count == 1 ? "" : "s")); run havel validate for details")
            throw ExitCode(1)
        }
        try mirrorOptions.apply(to: &loaded.project)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            Terminal.out(String(decoding: try encoder.encode(ProjectSummary(loaded.project)), as: UTF8.self))
        } else {
            Terminal.out(ProjectSummary(loaded.project).text)
            for use in loaded.unsupported {
                Terminal.out("Not built   line \(use.location.line): \(use.message)")
            }
        }
    }
}

/// The facts `show` prints, derived from the project model.
struct ProjectSummary: Encodable {
    var project: Project
    var layouts: [String: [PlacedPartition]]

    init(_ project: Project) {
        self.project = project
        var layouts: [String: [PlacedPartition]] = [:]
        for image in project.target.images {
            layouts[image.name] = (try? image.layout()) ?? []
        }
        self.layouts = layouts
    }

    var text: String {
        var lines: [String] = []
        func row(_ key: String, _ value: String) {
            lines.append(key.padding(toLength: 12, withPad: " ", startingAt: 0) + value)
        }
        let p = project
        var title = "\(p.name) \(p.version)"
        if let description = p.description?.trimmingWhitespace().split(separator: "\n").first {
            title += " — " + description.trimmingWhitespace()
        }
        row("Project", title)
        if let arch = p.architecture {
            row("Arch", "\(arch.debianName) (buildtype \(p.buildtype), qemu-\(arch.qemuUserName), uname -m \(arch.unameMachine))")
        }
        row("Suite", p.suite)
        var mirror = p.mirror.primary?.url ?? "(no primary mirror)"
        if p.mirror.noauth { mirror += " [noauth: no signature checks]" }
        row("Mirror", mirror)
        for url in p.mirror.urls {
            row("", "+ " + (url.binary ?? url.source ?? "") + (url.rawKey != nil ? " (with key)" : ""))
        }
        let pinned = p.target.packages.filter { $0.pin != nil }.count
        row("Packages", "\(p.target.packages.count)" + (pinned > 0 ? " (\(pinned) pinned)" : "") +
            (p.target.installRecommends ? ", with recommends" : ", without recommends"))
        if let tool = p.target.debootstrap.tool?.rawValue ?? Optional("mmdebstrap"), true {
            var bootstrap = tool
            if let variant = p.target.debootstrap.variant { bootstrap += " --variant=\(variant)" }
            if !p.target.debootstrap.include.isEmpty { bootstrap += " include " + p.target.debootstrap.include.joined(separator: ",") }
            row("Bootstrap", bootstrap)
        }
        row("Host", p.target.hostname + (p.target.domain.map { ".\($0)" } ?? "") +
            (p.target.console.map { ", console \($0)" } ?? "") +
            (p.target.passwdHashed == nil ? ", root locked" : ", root password set"))
        let fstabByLabel = Dictionary(p.target.fstab.compactMap { e in e.label.map { ($0, e) } }, uniquingKeysWith: { a, _ in a })
        if p.target.images.isEmpty && p.target.mtdImages.isEmpty { row("Images", "none") }
        for image in p.target.images {
            var header = "\(image.name)  \(image.table.rawValue)  \(image.size)"
            if image.grubInstall != nil { header += "  grub-install" }
            row(lines.last?.hasPrefix("Images") == true || p.target.images.first != image ? "" : "Images", header)
            let placed = layouts[image.name] ?? []
            for part in placed {
                let partition = image.allPartitions.first { $0.label == part.label }
                var line = "  \(part.number)  \(part.label.padding(toLength: 10, withPad: " ", startingAt: 0)) \(ByteCount.format(part.sizeBytes).padding(toLength: 10, withPad: " ", startingAt: 0)) at sector \(part.startSector)"
                if part.kind != .primary { line += "  \(part.kind.rawValue)" }
                if let entry = fstabByLabel[part.label] { line += "  \(entry.filesystem.type) \(entry.mountpoint)" }
                if partition?.bootable == true { line += "  bootable" }
                if partition?.biosgrub == true { line += "  biosgrub" }
                if let binary = partition?.binary { line += "  binary \(binary)" }
                row("", line)
            }
        }
        for (index, mtd) in p.target.mtdImages.enumerated() {
            var header = "\(mtd.name)  mtd \(mtd.number)  \(mtd.size)"
            if let group = mtd.volumeGroup {
                header += "  ubivg \(group.label) (PEB \(group.physicalEraseBlockSize), LEB \(group.logicalEraseBlockSize), min I/O \(group.minIOSize))"
            } else {
                header += "  no ubivg: not written"
            }
            row(index == 0 && p.target.images.isEmpty ? "Images" : "", header)
            for volume in mtd.volumeGroup?.volumes ?? [] {
                var line = "  \(volume.id)  \(volume.label.padding(toLength: 10, withPad: " ", startingAt: 0)) \(volume.kind.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) \(volume.size?.description ?? "no size")"
                if let binary = volume.binary { line += "  binary \(binary)" }
                else if volume.empty { line += "  empty" }
                else if let entry = fstabByLabel[volume.label] { line += "  \(entry.filesystem.type) \(entry.mountpoint)" }
                row("", line)
            }
        }
        if p.target.fstab.isEmpty { row("Fstab", "none") }
        for (i, entry) in p.target.fstab.enumerated() {
            row(i == 0 ? "Fstab" : "", p.target.fstabLine(entry) + (entry.noFstab ? "  (not written to /etc/fstab)" : ""))
        }
        var counts: [String: Int] = [:]
        for step in p.target.finetuning { counts[step.action.elementName, default: 0] += 1 }
        row("Finetuning", "\(p.target.finetuning.count) action\(p.target.finetuning.count == 1 ? "" : "s")" +
            (counts.isEmpty ? "" : " (" + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"))
        if !p.target.projectFinetuning.isEmpty {
            row("Project ft", p.target.projectFinetuning.map(\.action.elementName).joined(separator: ", "))
        }
        var outputs: [String] = []
        if let tar = p.target.outputs.tar { outputs.append("tar \(tar)") }
        if let cpio = p.target.outputs.cpio { outputs.append("cpio \(cpio)") }
        if let squashfs = p.target.outputs.squashfs { outputs.append("squashfs \(squashfs)") }
        row("Outputs", outputs.isEmpty ? "rootfs only" : outputs.joined(separator: ", "))
        if p.checks.isEmpty && p.checkScript == nil { row("Checks", "none") }
        for (i, check) in p.checks.enumerated() {
            let action: String
            switch check.action {
            case .login: action = "login"
            case .serial(let steps): action = "serial (\(steps.count) steps)"
            }
            row(i == 0 ? "Checks" : "", "\(check.image) with \(check.interpreter), \(action)")
        }
        if let script = p.checkScript {
            let first = CheckScriptRunner.runnable(script.text).prefix { $0 != "\n" }
            row(p.checks.isEmpty ? "Checks" : "", "check-script \(first) (\(script.text.split(separator: "\n").count) lines)")
        }
        if p.archive != nil { row("Archive", "overlay of \(ByteCount.format(UInt64(p.archive!.count * 3 / 4))) (tar.bz2)") }
        return lines.joined(separator: "\n")
    }
}
