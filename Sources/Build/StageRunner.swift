import Logging
import Foundation
import HavelCore
import SystemKit

/// Runs a plan's stages in order against one context and owns everything around them: the build
/// directory made ready (an earlier run's mounts, results and trees cleared), state.json written at
/// every stage boundary, timing, progress events, cancellation between stages, and on failure the
/// results of this build removed so that nothing half-made looks finished.
public struct StageRunner: Sendable {
    public let plan: BuildPlan
    public let context: BuildContext

    public init(plan: BuildPlan, context: BuildContext) {
        self.plan = plan
        self.context = context
    }

    var directory: BuildDirectory { context.directory }
    var log: Logger { context.log }

    /// Runs the whole plan. On failure or cancellation the state says so and the error is rethrown.
    /// With a cgroup, cancellation kills every process of the build the moment it comes, so that a command
    /// whose output a detached child holds open cannot keep the build waiting.
    public func run() async throws(HavelError) -> BuildState {
        guard let cgroup = context.cgroup else { return try await runStages() }
        let result: Result<BuildState, HavelError> = await withTaskCancellationHandler {
            do throws(HavelError) { return .success(try await runStages()) } catch { return .failure(error) }
        } onCancel: {
            cgroup.kill()
        }
        return try result.get()
    }

    func runStages() async throws(HavelError) -> BuildState {
        let project = context.project.project
        let started = Date()
        var state = BuildState(project: project.name, version: project.version, architecture: context.architecture.debianName,
                               havelVersion: context.options.havelVersion, started: started)
        var products = BuildProducts()
        var cleanup: Task<Void, Never>?
        log.info("Havel \(context.options.havelVersion): building \(project.name) \(project.version) for \(context.architecture.debianName) (\(project.suite)) in \(directory.path)")
        for note in plan.notes { log.info("\(note)") }
        do throws(HavelError) {
            cleanup = try await prepareDirectory(state)
            for stage in plan.stages {
                try await run(stage, &products, &state)
            }
            await cleanup?.value
            state.status = .done
            state.finished = Date()
            try state.write(directory.state)
            try? FileManager.default.removeItem(atPath: directory.work)
            log.info("build done in \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(directory.path)")
            return state
        } catch {
            let failure = Task.isCancelled && error.code != .cancelled ?
                HavelError(.cancelled, "the build was interrupted (\(error.message))") : error
            await cleanup?.value
            await endProcesses(cancelled: failure.code == .cancelled)
            await fail(failure, &state)
            throw failure
        }
    }

    /// One stage: timed, announced, recorded in state.json with what it made.
    func run(_ stage: any BuildStage, _ products: inout BuildProducts, _ state: inout BuildState) async throws(HavelError) {
        try Task.checkCancellationAsHavelError()
        log.stageStarted(stage.name)
        let clock = ContinuousClock.now
        products.stageRecord = nil
        do throws(HavelError) {
            try await stage.run(context, &products)
        } catch {
            record(products, into: &state)
            throw error
        }
        let elapsed = ContinuousClock.now - clock
        let seconds = elapsed.inSeconds
        let note = products.stageRecord
        state.stages.append(.init(name: stage.name, key: note?.key, cached: note?.cached ?? false, seconds: seconds, downloads: note?.downloads))
        products.finishedStages = state.stages
        record(products, into: &state)
        log.stageFinished(stage.name, seconds: seconds, cached: note?.cached ?? false)
        try state.write(directory.state)
    }

    /// What the stages made that state.json lists (and a failure removes).
    func record(_ products: BuildProducts, into state: inout BuildState) {
        state.packedRootfs = products.packedRootfs
        state.outputs = products.outputs
        state.artifacts = products.artifacts
        state.checks = products.checks
        state.epoch = products.epoch == 0 ? nil : products.epoch
    }

    /// Clears what an earlier run left: its mounts (after a SIGKILL), its results and its trees. The trees
    /// are renamed away at once and deleted while this build runs (the returned task).
    func prepareDirectory(_ state: BuildState) async throws(HavelError) -> Task<Void, Never>? {
        let stale = try await Mounts.unmountAll(under: directory.path, processes: context.processes)
        if !stale.isEmpty { log.warning("removed \(stale.count) mount(s) an earlier run left: \(stale.joined(separator: ", "))") }
        for file in directory.resultFiles(packedRootfs: context.packedName) { unlink(file) }
        var old: [String] = []
        for dir in [directory.rootfs, directory.buildenv, directory.work, directory.artifacts] where FileManager.default.fileExists(atPath: dir) {
            let trash = "\(directory.path)/.old-\((dir as NSString).lastPathComponent)-\(UUID().uuidString.prefix(8))"
            guard rename(dir, trash) == 0 else {
                throw HavelError(.io, "cannot move \(dir) of an earlier build aside: \(errnoText())")
            }
            old.append(trash)
        }
        let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasPrefix(".old-") }.map { directory.path + "/" + $0 }
        let trash = Set(old + leftovers).sorted()
        var cleanup: Task<Void, Never>?
        if !trash.isEmpty {
            let processes = context.processes
            cleanup = Task.detached { _ = try? await processes.run(Command("rm", ["-rf", "--one-file-system", "--"] + trash)) }
        }
        do {
            try FileManager.default.createDirectory(atPath: directory.work, withIntermediateDirectories: true)
        } catch {
            throw HavelError(.io, "cannot create \(directory.work)")
        }
        try state.write(directory.state)
        return cleanup
    }

    /// After a failure, before the clean-up unmounts: nothing of the build may still run in its trees.
    /// With a cgroup every process in it is killed (those started since a cancellation too); without one,
    /// cancellation reached the process group of the running command only.
    func endProcesses(cancelled: Bool) async {
        guard let cgroup = context.cgroup else {
            if cancelled { log.info("cancelled without a cgroup: only the running command's process group was stopped") }
            return
        }
        let left = cgroup.processes.count
        let (method, empty) = await cgroup.killAll()
        if cancelled || left > 0 {
            log.info(empty ? "killed every process of the build (\(method.rawValue) on \(cgroup.path))"
                     : "some processes of the build outlived SIGKILL in \(cgroup.path): \(cgroup.processes)")
        }
    }

    func fail(_ error: HavelError, _ state: inout BuildState) async {
        state.status = error.code == .cancelled ? .cancelled : .failed
        state.reason = error.description
        state.finished = Date()
        log.info("build \(error.code == .cancelled ? "CANCELLED" : "FAILED"): \(error.description)")
        for diagnostic in error.diagnostics { log.info("\(diagnostic.description)") }
        let made = (state.outputs + state.artifacts + context.project.project.target.images.map(\.name)).map { directory.path + "/" + $0 }
        for file in directory.resultFiles(packedRootfs: context.packedName) + made { unlink(file) }
        unlink(directory.path + "/" + context.packedName + ".partial")
        _ = try? await Mounts.unmountAll(under: directory.path, processes: context.processes)
        try? FileManager.default.removeItem(atPath: directory.work)
        try? state.write(directory.state)
    }
}
