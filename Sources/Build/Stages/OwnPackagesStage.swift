// The own-package stage: the project's `<pbuilder>` sources built before the target install, into the
// signed project repository repo/ that the install then reads (`OwnPackageBuilds`, `ProjectRepository`).

import Foundation
import HavelCore

struct OwnPackagesStage: BuildStage {
    let name = "build own packages"

    func describe(_ plan: BuildPlan) -> StageDescription {
        if let action = plan.options.buildChrootOnly {
            return StageDescription(
                reason: "havel pbuilder \(action.rawValue): only the build chroot of the <pbuilder> packages"
                    + (action == .update ? ", made afresh in place of the cached one" : ", from the stage cache when it holds it"),
                inputs: ["the mirror"], outputs: ["the build chroot (base.tgz) in the stage cache \(plan.options.cache.stages)"],
                cacheKey: Self.chrootKeyDescription(plan))
        }
        let sources = plan.project.project.target.ownPackages
        let foreign = !plan.host.runsNatively(plan.project.architecture)
        let mode = !foreign ? "native" : plan.options.crossBuild ? "cross-building (--cross)" : "qemu-user, in a target (\(plan.project.architecture.debianName)) chroot"
        return StageDescription(
            reason: "<pbuilder>: \(sources.count) source(s) built with pbuilder (\(mode)) in Build-Depends order, each able to install those built before it",
            inputs: sources.map { "source " + $0.summary } + ["the build chroot (mmdebstrap, buildd variant) from the stage cache"],
            outputs: ["repo/ (signed with the project's key from \(plan.options.cache.keys))", "pbuilder/<source>.log"],
            cacheKey: Self.chrootKeyDescription(plan))
    }

    static func chrootKeyDescription(_ plan: BuildPlan) -> CacheKeyDescription {
        CacheKeyDescription(inputs: ["(the build chroot only) suite \(plan.project.project.suite)", "architecture", "mode", "apt sources",
                                     "keys", "apt preferences", "the chroot's extra packages"],
                            resolvedAtBuild: ["the Release digest of each repository (so the chroot is made again when the mirror changes)"])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let builds = OwnPackageBuilds(context: context, releases: products.releases)
        if let action = context.options.buildChrootOnly {
            let chroot = try await builds.chrootOnly(action)
            products.stageRecord = .init(key: chroot.key, cached: chroot.fromCache, downloads: nil)
            return
        }
        // The stage's key is its chroot's (the packages themselves are built every time).
        products.stageRecord = .init(key: try await builds.chrootKey(), cached: false, downloads: nil)
        products.projectRepository = try await builds.run()
    }
}

/// `--skip-pbuilder`: the `<pbuilder>` packages are not built; the install reads the project repository the
/// build directory already holds (an earlier build's, with what was uploaded to it), as ELBE's submit does.
struct ExistingProjectRepositoryStage: BuildStage {
    let name = "project repository"

    func describe(_ plan: BuildPlan) -> StageDescription {
        StageDescription(reason: "--skip-pbuilder: the <pbuilder> packages are not built; the install reads the project repository as it is",
                         inputs: [plan.options.directory.projectRepository], outputs: [])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let repository = context.directory.projectRepository
        guard let existing = try await ProjectRepository.existing(repository, suite: context.project.project.suite, processes: context.processes) else {
            throw HavelError(.notFound, "--skip-pbuilder: \(repository) holds no project repository yet; build once without --skip-pbuilder (or havel pbuilder build)")
        }
        context.log.info("--skip-pbuilder: the project repository as it is, \(existing.packages.count) package(s), not built again")
        products.projectRepository = existing
    }
}
