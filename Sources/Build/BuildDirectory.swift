// Build owns the pipeline as data: `BuildEntry` makes a `ValidatedProject`, `BuildPlan` turns it into an
// ordered list of stages (Stages/), `StageRunner` runs them against a `BuildContext`; also the stage cache
// and its content keys, the build directory's layout and its state record, and the progress events a
// front end renders. It formats nothing for a terminal.

import Foundation
import HavelCore
import SystemKit

/// The one layout of a build directory, wherever the build ran.
public struct BuildDirectory: Sendable {
    public let path: String

    /// A relative `path` is taken from the current directory and kept absolute: tools run with other
    /// working directories (cp in a tree, qemu in the build directory) get paths that still hold.
    public init(_ path: String) {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let standardized = URL(fileURLWithPath: absolute).standardized.path
        self.path = standardized.hasSuffix("/") && standardized.count > 1 ? String(standardized.dropLast()) : standardized
    }

    public var rootfs: String { path + "/rootfs" }
    /// The build environment: a copy of the installed tree plus `buildimage/pkg-list`, made only for
    /// projects that use it (buildenv_* finetuning, b2t_cp, t2b_cp); never part of the target.
    public var buildenv: String { path + "/buildenv" }
    public var sourceXML: String { path + "/source.xml" }
    public var log: String { path + "/log.txt" }
    public var report: String { path + "/report.txt" }
    public var validation: String { path + "/validation.txt" }
    public var licenceText: String { path + "/licence-target.txt" }
    public var licenceXML: String { path + "/licence-target.xml" }
    /// The build environment's licences (as ELBE's licence-chroot), when the build made one.
    public var licenceChrootText: String { path + "/licence-chroot.txt" }
    public var licenceChrootXML: String { path + "/licence-chroot.xml" }
    public var artifacts: String { path + "/artifacts" }
    public var checkReport: String { path + "/check.xml" }
    /// The target's software bill of materials, as CycloneDX 1.6 and as SPDX 2.3 JSON.
    public var sbomCycloneDX: String { path + "/" + SBOMWriter.cycloneDXName }
    public var sbomSPDX: String { path + "/" + SBOMWriter.spdxName }
    public var state: String { path + "/state.json" }
    /// Scratch space of a running build (hooks, keyrings, package lists); removed when it ends.
    public var work: String { path + "/.work" }
    /// The apt package lists of the install (`var/lib/apt/lists/*_Packages` below it), kept while the build runs.
    public var aptLists: String { work + "/lists" }
    /// The dpkg status stanzas of the packages a `<tighten/>` or `<diet/>` target keeps: its tree has no dpkg
    /// database, and the SBOM describes these.
    public var keptPackagesStatus: String { path + "/kept-packages.status" }
    /// The binary CD (`--cdroms`).
    public var binaryCdrom: String { path + "/bin-cdrom.iso" }
    /// The signed apt repository of the project's own packages (`<pbuilder>`, `havel prjrepo upload`).
    public var projectRepository: String { path + "/repo" }
    /// One log per own package built: pbuilder/<source>.log.
    public var ownPackageLogs: String { path + "/pbuilder" }
    /// The source CD (`--cdroms` or `<src-cdrom>`) and the list of sources it lacks, with the reasons.
    public var sourceCdrom: String { path + "/src-cdrom.iso" }
    public var sourceCdromMissing: String { path + "/src-cdrom-missing.txt" }

    /// `name` below `base` (the build directory or artifacts/), or nil when `name` is absolute, empty or
    /// climbs out with `..`: project files named by a project never leave the build directory.
    public static func confined(_ name: String, under base: String) -> String? {
        let parts = name.split(separator: "/").filter { $0 != "." }
        guard !parts.isEmpty, !parts.contains(".."), !name.hasPrefix("/") else { return nil }
        return base + "/" + parts.joined(separator: "/")
    }

    /// Files a finished build presents as results (besides rootfs/ and artifacts/).
    public func resultFiles(packedRootfs: String?) -> [String] {
        [sourceXML, report, validation, licenceText, licenceXML, licenceChrootText, licenceChrootXML, sbomCycloneDX, sbomSPDX, checkReport, binaryCdrom, binaryCdrom + ".partial",
         sourceCdrom, sourceCdrom + ".partial", sourceCdromMissing] + (packedRootfs.map { [path + "/" + $0] } ?? [])
    }
}

/// state.json: what a build did, stage by stage, and how it ended. Written at every stage boundary,
/// so an interrupted build says where it stopped.
public struct BuildState: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable { case running, done, failed, cancelled }

    public struct Stage: Codable, Sendable, Equatable {
        public var name: String
        /// Content key of the stage's inputs (stages that are cached have one).
        public var key: String?
        /// The stage's result came from the stage cache.
        public var cached: Bool
        public var seconds: Double
        /// .deb files downloaded from a mirror during this stage.
        public var downloads: Int?
        public var note: String?
    }

    /// The layout of this record; `currentFormat` when Havel wrote it, nil in records before format 2.
    public var format: Int?
    public static let currentFormat = 2

    public var status: Status
    public var reason: String?
    public var project: String
    public var version: String
    public var architecture: String
    public var havelVersion: String
    public var started: Date
    public var finished: Date?
    public var stages: [Stage]
    /// The packed root filesystem's file name within the build directory.
    public var packedRootfs: String?
    /// Other root filesystem archives (cpio, squashfs) and the disk images, as finally packed.
    public var outputs: [String]
    public var artifacts: [String]
    /// Boot checks by name: passed or not.
    public var checks: [String: Bool]
    /// The clamp for file times the build used (SOURCE_DATE_EPOCH or the newest package): `havel sbom` dates
    /// a rewritten SBOM with it. Nil in records before it was kept.
    public var epoch: Int?

    public init(project: String, version: String, architecture: String, havelVersion: String, started: Date) {
        self.format = Self.currentFormat
        self.status = .running
        self.project = project
        self.version = version
        self.architecture = architecture
        self.havelVersion = havelVersion
        self.started = started
        self.stages = []
        self.outputs = []
        self.artifacts = []
        self.checks = [:]
    }

    public static func read(_ path: String) -> BuildState? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(BuildState.self, from: data)
    }

    public func write(_ path: String) throws(HavelError) {
        try AtomicFile.writeJSON(self, to: path)
    }
}
