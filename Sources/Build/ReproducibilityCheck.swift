// ReproducibilityCheck owns `havel build --check-reproducible`: one project built twice from scratch into two
// build directories, and every file in which the two differ: the trees entry by entry (TreeComparison) and
// each result file (packed rootfs, archives, images, artifacts, source.xml, licences) by its bytes.

import Foundation
import HavelCore
import Logging
import SystemKit

/// Two cold builds of one project and what differs between them.
public struct ReproducibilityCheck: Sendable {
    /// Where the second build goes: beside the first, kept so that the differences can be looked at.
    public static func secondDirectory(of first: BuildDirectory) -> BuildDirectory {
        BuildDirectory(first.path + ".again")
    }

    public struct Outcome: Sendable {
        public var first: BuildState
        public var second: BuildState
        /// One line per differing file: `rootfs/etc/shadow (content)`, `+ rootfs/x`, `- rootfs/y`, `disk.img`.
        public var differences: [String]
        public var isReproducible: Bool { differences.isEmpty }
    }

    /// Builds `project` into `options.directory` and into its `secondDirectory`, both without the stage cache
    /// (a cached tree would hide whatever an install makes differently each time; verified packages are
    /// still shared), then compares them.
    public static func run(project: ValidatedProject, options: BuildOptions, logger: Logger,
                           processes: any ProcessRunning = SystemProcesses(), cgroup: ProcessCgroup? = nil) async throws(HavelError) -> Outcome {
        var cold = options
        cold.useStageCache = false
        var again = cold
        again.directory = secondDirectory(of: options.directory)
        logger.info("reproducibility check: first build in \(cold.directory.path)")
        let first = try await Builder(project: project, options: cold, processes: processes, cgroup: cgroup, logger: logger).run()
        logger.info("reproducibility check: second build in \(again.directory.path)")
        let second = try await Builder(project: project, options: again, processes: processes, cgroup: cgroup, logger: logger).run()
        let differences = try await compare(cold.directory, first, again.directory, second, processes: processes)
        return Outcome(first: first, second: second, differences: differences)
    }

    /// The files a build hands out, relative to its directory. report.txt, log.txt, state.json and check.xml
    /// are left out: they record times and durations by design.
    static func resultFiles(_ directory: BuildDirectory, _ state: BuildState) -> [String] {
        let reports = [directory.sourceXML, directory.validation, directory.licenceText, directory.licenceXML, directory.sbomCycloneDX, directory.sbomSPDX]
            .map { String($0.dropFirst(directory.path.count + 1)) }
        return reports + (state.packedRootfs.map { [$0] } ?? []) + state.outputs + state.artifacts
    }

    /// Every difference between two finished build directories, sorted: the trees under rootfs/ and the result files.
    public static func compare(_ firstDirectory: BuildDirectory, _ first: BuildState, _ secondDirectory: BuildDirectory, _ second: BuildState,
                               processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> [String] {
        let tree = try await TreeComparison.compare(firstDirectory.rootfs, secondDirectory.rootfs, processes: processes)
        var differences = tree.lines.map { line in
            // "~ /etc/shadow (content)" becomes "~ rootfs/etc/shadow (content)".
            String(line.prefix(2)) + "rootfs" + line.dropFirst(2)
        }
        let firstFiles = Set(resultFiles(firstDirectory, first)), secondFiles = Set(resultFiles(secondDirectory, second))
        differences += firstFiles.subtracting(secondFiles).map { "- \($0)" } + secondFiles.subtracting(firstFiles).map { "+ \($0)" }
        let shared = firstFiles.intersection(secondFiles).sorted()
        let firstDigests = try await Digest.sha256(files: shared.map { firstDirectory.path + "/" + $0 }, processes: processes)
        let secondDigests = try await Digest.sha256(files: shared.map { secondDirectory.path + "/" + $0 }, processes: processes)
        for file in shared {
            let left = firstDigests[firstDirectory.path + "/" + file], right = secondDigests[secondDirectory.path + "/" + file]
            if left == nil || left != right { differences.append("~ \(file) (content)") }
        }
        return differences.sorted { $0.dropFirst(2) < $1.dropFirst(2) }
    }
}
