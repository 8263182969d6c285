import Debian
import Foundation
import HavelCore
import SystemKit

/// What the install stage produced, kept with the stage in the cache so a reused stage needs nothing else.
struct InstallRecord: Codable, Sendable {
    struct Package: Codable, Sendable {
        var name: String
        var version: String
        var architecture: String
        var sha256: String?
        var origin: String?
        /// The mirror index's md5, release origin and name, and the .deb's URL: source.xml's fields, kept here
        /// so a build that reuses the cached stage (or rebuilds from the binary CD) records the same.
        var md5: String?
        var releaseOrigin: String?
        var releaseName: String?
        var uri: String?
        /// The archive's priority and section, which the binary CD's index repeats.
        var priority: String?
        var section: String?
    }

    var packages: [Package]
    var sourcesList: String
    var preferences: String

    func sha256(name: String, version: String, architecture: String) -> String? {
        package(name: name, version: version, architecture: architecture)?.sha256
    }

    func package(name: String, version: String, architecture: String) -> Package? {
        packages.first { $0.name == name && $0.version == version && $0.architecture == architecture }
    }
}

/// The bootstrap and every package of the pkg-list, in one mmdebstrap run (or debootstrap and apt when the
/// project asks), each .deb verified against the mirror's index. Cached by content: the key hashes
/// everything that decides which files the tree holds, the mirror's Release digests included.
struct InstallStage: BuildStage {
    let name = "install packages"

    /// The inputs of the key, as one encodable value; `format` changes whenever their meaning does.
    struct KeyInputs: Encodable {
        var format = 6  // 3: the lists keep their InRelease/Release; 4: the record keeps source.xml's md5, release fields and URIs; 5: and priorities; 6: own packages' URIs relative to the build directory
        var tool: String
        var architecture: String
        var suite: String
        var variant: String?
        var packages: [String]
        var exclude: [String]
        var sources: [String]
        var releases: [String]
        var preferences: String
        var keys: [String]
        var recommends: Bool
        var preseed: String
        /// The project repository's InRelease digest, when the project builds its own packages (absent otherwise,
        /// so the keys of other projects stay as they were).
        var projectRepository: String?
    }

    func describe(_ plan: BuildPlan) -> StageDescription {
        let project = plan.project.project
        let tool = (project.target.debootstrap.tool ?? .mmdebstrap).rawValue
        let packages = BootstrapRequest.packages(for: project)
        return StageDescription(
            reason: "the target tree: \(tool) with \(project.target.debootstrap.variant ?? "the default") variant and \(packages.count) named package\(packages.count == 1 ? "" : "s")",
            inputs: ["apt sources: " + AptSources.lines(for: project).joined(separator: " | "), "package cache \(plan.options.cache.debs)"],
            outputs: ["rootfs/", "the installed packages with their .deb sha256"],
            cacheKey: CacheKeyDescription(
                inputs: ["tool \(tool)", "architecture \(plan.project.architecture.debianName)", "suite \(project.suite)",
                         "variant \(project.target.debootstrap.variant ?? "-")", "packages \(packages.joined(separator: " "))",
                         "exclude \(project.target.debootstrap.exclude.isEmpty ? "-" : project.target.debootstrap.exclude.joined(separator: " "))", "apt sources", "apt preferences",
                         "keys", "install-recommends \(project.target.installRecommends)", "preseed answers"],
                resolvedAtBuild: ["the Release digest of each repository (the probe mirror stage fetches them)"]))
    }

    func key(_ context: BuildContext, releases: [RepositoryProbe.Release], projectRepository: ProjectRepository.Written? = nil) async throws(HavelError) -> String {
        let project = context.project.project
        let inputs = KeyInputs(tool: (project.target.debootstrap.tool ?? .mmdebstrap).rawValue, architecture: context.architecture.debianName,
                               suite: project.suite, variant: project.target.debootstrap.variant,
                               packages: BootstrapRequest.packages(for: project), exclude: project.target.debootstrap.exclude,
                               sources: AptSources.lines(for: project), releases: releases.map { "\($0.url) \($0.sha256)" },
                               preferences: AptSources.preferences(for: project), keys: AptSources.keys(for: project).map(\.armored),
                               recommends: project.target.installRecommends, preseed: DebconfSelection.selections(project.preseed),
                               projectRepository: projectRepository?.inReleaseSHA256)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(inputs) else { throw HavelError(.internalError, "cannot encode the stage inputs") }
        return try await Digest.sha256([UInt8](data), processes: context.processes)
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let key = try await key(context, releases: products.releases, projectRepository: products.projectRepository)
        let cache = context.options.cache
        let log = context.log
        try cache.prepare()
        // A rebuild from the binary CD installs afresh: it is there to show the CD alone gives the same tree.
        let useStageCache = context.options.useStageCache && products.cdrom == nil
        let lookup = useStageCache ? cache.lookUpStage(key) : .missing
        if case .otherFormat(let format) = lookup {
            log.info("the stage cache holds \(key.prefix(16)) in another format (\(format)); installing afresh and replacing it")
        }
        if lookup == .present {
            products.stageRecord = .init(key: key, cached: true, downloads: 0)
            log.info("reusing the installed tree from the stage cache (\(key.prefix(16)))")
            try await TreeCopy.copy(cache.stageDirectory(key) + "/rootfs", to: context.directory.rootfs, processes: context.processes)
            let keptHelpers = cache.stageDirectory(key) + "/" + Self.helpersEntry
            if context.options.installMode == .fast, FileManager.default.fileExists(atPath: keptHelpers + "/ready") {
                let bootstrapWork = context.directory.work + "/bootstrap"
                try NativeHelpers.writeScript(bootstrapWork: bootstrapWork)
                let helpers = NativeHelpers.directory(bootstrapWork: bootstrapWork)
                try await TreeCopy.copy(keptHelpers, to: helpers, processes: context.processes)
                unlink(helpers + "/said")
                log.info("the cached install's native helpers are at hand (update-initramfs runs with them)")
            }
            cache.touchStage(key)
            guard let record = cache.stageRecord(key, as: InstallRecord.self) else {
                throw HavelError(.io, "the cached stage \(key) has no readable record; run havel cache prune")
            }
            products.install = record
        } else {
            products.stageRecord = .init(key: key, cached: false, downloads: nil)
            let removed = try await cache.verifyDebs(processes: context.processes)
            if removed > 0 { log.info("dropped \(removed) cached package(s) that no build had verified against its mirror (or whose sha256 changed)") }
            let before = Set(cache.debFiles())
            let inUse = try cache.usingDebs()
            defer { inUse.release() }
            let record = try await BootstrapRun(context: context, projectRepository: products.projectRepository, cdrom: products.cdrom,
                                          cdromMirror: products.cdromMirror).install()
            let downloaded = Set(cache.debFiles()).subtracting(before).count
            products.stageRecord?.downloads = downloaded
            log.info("\(record.packages.count) packages installed, \(downloaded) downloaded")
            if useStageCache { try await store(record, key: key, context) }
            products.install = record
        }
        let epoch = context.options.sourceDateEpoch ?? ReproducibleTime.newestPackage(in: context.directory.rootfs)
            ?? Int(Date().timeIntervalSince1970)
        products.epoch = epoch
        log.info("file times are clamped to \(epoch) (\(context.options.sourceDateEpoch != nil ? "SOURCE_DATE_EPOCH" : "the newest installed package"))")
    }

    /// The install's prepared native helpers (`NativeHelpers`), kept with the stage so that a rebuild from the cache
    /// makes its initramfs with them too (otherwise it would run under emulation, minutes for a kernel).
    static let helpersEntry = "native-helpers"

    func store(_ record: InstallRecord, key: String, _ context: BuildContext) async throws(HavelError) {
        let work = context.directory.work
        let tree = work + "/stage-rootfs"
        try await TreeCopy.copy(context.directory.rootfs, to: tree, processes: context.processes)
        var files: [String: String] = [:]
        let helpers = NativeHelpers.directory(bootstrapWork: work + "/bootstrap")
        if FileManager.default.fileExists(atPath: helpers + "/ready") {
            let kept = work + "/stage-helpers"
            try await TreeCopy.copy(helpers, to: kept, processes: context.processes)
            files[Self.helpersEntry] = kept
        }
        let recordPath = work + "/record.json"
        let description = work + "/description"
        let project = context.project.project
        do {
            try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: recordPath))
            try "\(project.name) \(project.version) \(context.architecture.debianName) \(project.suite), \(record.packages.count) packages"
                .write(toFile: description, atomically: true, encoding: .utf8)
        } catch {
            throw HavelError(.io, "cannot write the stage record: \(error.localizedDescription)")
        }
        files.merge(["rootfs": tree, "record.json": recordPath, "description": description]) { kept, _ in kept }
        try context.options.cache.storeStage(key, files: files)
        context.options.cache.touchStage(key)
    }
}
