import Foundation
import HavelCore
import SystemKit

/// The build as data: an ordered list of stages made from a validated project and the host's facts by a
/// pure function. Reading `stages` in order is reading the build: each says why it is there, what it
/// reads and writes, and how its cache key is made (where it has one). `StageRunner` runs them.
public struct BuildPlan: Sendable {
    public let project: ValidatedProject
    public let host: HostFacts
    public let options: BuildOptions
    public let stages: [any BuildStage]
    /// Things the plan leaves out on purpose, said in the log when the build starts.
    public let notes: [String]

    public init(_ project: ValidatedProject, host: HostFacts, options: BuildOptions) {
        self.project = project
        self.host = host
        self.options = options
        let p = project.project
        var stages: [any BuildStage] = [CheckHostStage(), options.fromCdrom != nil ? BinaryCdromSourceStage() : ProbeMirrorStage()]
        var notes: [String] = []
        // Options that change nothing for this project say so instead of passing silently.
        if options.skipOwnPackages && p.target.ownPackages.isEmpty {
            notes.append("--skip-pbuilder changes nothing: the project has no <pbuilder>")
        }
        if options.crossBuild && (p.target.ownPackages.isEmpty || host.runsNatively(project.architecture)) {
            notes.append("--cross changes nothing: " + (p.target.ownPackages.isEmpty ? "the project has no <pbuilder>" : "the target's packages build natively on this host"))
        }
        let onlyOwnPackages = options.onlyOwnPackages || options.buildChrootOnly != nil
        if !p.target.ownPackages.isEmpty && options.fromCdrom == nil {
            stages.append(options.skipOwnPackages && !onlyOwnPackages ? ExistingProjectRepositoryStage() : OwnPackagesStage())
        }
        if onlyOwnPackages {
            self.stages = stages
            self.notes = notes
            return
        }
        stages.append(InstallStage())
        if BuildEnvironmentStage.isNeeded(by: p) {
            stages.append(BuildEnvironmentStage())
        } else if let packages = p.buildimage?.packages, !packages.isEmpty {
            notes.append("buildimage/pkg-list is for the build environment only; it is not installed into the target")
        }
        if MinimiseTargetStage.isNeeded(by: p) { stages.append(MinimiseTargetStage()) }
        stages.append(ConfigureTargetStage())
        stages.append(DeviceRecordStage())
        if p.archive != nil { stages.append(ArchiveStage()) }
        stages.append(InitramfsStage())
        stages.append(FinetuningStage())
        if p.target.images.contains(where: { $0.grubInstall != nil }) { stages.append(BootloaderStage()) }
        stages.append(DeviceFilesStage())
        stages.append(ReportsAndPackingStage())
        stages.append(SBOMStage())
        if options.sdk {
            if options.fromCdrom == nil {
                stages.append(SDKStage())
            } else {
                notes.append("--sdk is not made in a rebuild from the binary CD (--from-cdrom); build the SDK from the project")
            }
        }
        if options.fromCdrom == nil {
            if options.binaryCdrom { stages.append(BinaryCdromStage()) }
            if options.binaryCdrom || p.sourceCdrom { stages.append(SourceCdromStage()) }
        }
        if RootfsArchivesStage.isNeeded(by: p) { stages.append(RootfsArchivesStage()) }
        if !p.target.images.isEmpty { stages.append(DiskImagesStage()) }
        if !p.target.mtdImages.isEmpty { stages.append(MtdImagesStage()) }
        if !p.target.projectFinetuning.isEmpty { stages.append(ProjectFinetuningStage()) }
        if !p.checks.isEmpty || p.checkScript != nil {
            if options.skipChecks {
                notes.append("boot checks and the check script skipped (--skip-checks); run havel check-image \(options.directory.path)")
            } else {
                stages.append(BootChecksStage())
            }
        }
        if !p.target.images.isEmpty { stages.append(PackImagesStage()) }
        self.stages = stages
        self.notes = notes
    }

    /// The plan for a person (`havel show --plan`).
    public func describe() -> String {
        let p = project.project
        var text = "Build plan for \(p.name) \(p.version) (\(project.architecture.debianName), \(p.suite)) in \(options.directory.path)\n"
        text += "host: \(host.architecture?.debianName ?? "unknown") (\(host.runsNatively(project.architecture) ? "native" : "foreign: qemu-user through binfmt_misc"))"
        text += host.isRoot ? "\n" : ", not root: a build needs root\n"
        for (index, stage) in stages.enumerated() {
            let description = stage.describe(self)
            text += "\n\(index + 1). \(stage.name)\n   why: \(description.reason)\n"
            if !description.inputs.isEmpty { text += "   reads: \(description.inputs.joined(separator: "; "))\n" }
            if !description.outputs.isEmpty { text += "   writes: \(description.outputs.joined(separator: "; "))\n" }
            if let key = description.cacheKey {
                text += "   cache key: sha256 of \(key.inputs.joined(separator: ", "))\n"
                if !key.resolvedAtBuild.isEmpty { text += "     resolved when the build runs: \(key.resolvedAtBuild.joined(separator: ", "))\n" }
            }
        }
        for note in notes { text += "\nnote: \(note)\n" }
        return text
    }
}

/// What a stage says of itself in a plan.
public struct StageDescription: Sendable {
    public var reason: String
    public var inputs: [String]
    public var outputs: [String]
    public var cacheKey: CacheKeyDescription?

    public init(reason: String, inputs: [String] = [], outputs: [String] = [], cacheKey: CacheKeyDescription? = nil) {
        self.reason = reason
        self.inputs = inputs
        self.outputs = outputs
        self.cacheKey = cacheKey
    }
}

/// How a stage's cache key is made: the inputs hashed, and which of them only the build can know.
public struct CacheKeyDescription: Sendable {
    public var inputs: [String]
    public var resolvedAtBuild: [String]
}

/// One step of a build: a value that says what it is (for the plan) and runs against a context,
/// reading what earlier stages made from `products` and adding its own.
public protocol BuildStage: Sendable {
    /// The stage's name in state.json, the log and the progress line.
    var name: String { get }
    func describe(_ plan: BuildPlan) -> StageDescription
    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError)
}
