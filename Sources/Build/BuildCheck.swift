// BuildCheck owns `havel check-build`: a finished build directory verified after the fact, as ELBE's
// `check-build` does it: the binary CD holds every package of source.xml at its version and sha256 (signature
// checked), the source CD every source of them or names it as missing, the SBOM validates against the
// CycloneDX and SPDX schemas and covers every package, and a build from the binary CD alone gives the same
// root filesystem archive and images.

import Debian
import Foundation
import HavelCore
import Logging
import ProjectXML
import Reports
import SystemKit

/// One check and what came of it.
public struct BuildCheckResult: Sendable, Equatable {
    public enum Outcome: String, Sendable { case passed = "ok", failed = "FAIL", skipped = "skip" }
    public var check: String
    public var outcome: Outcome
    public var detail: String

    public init(check: String, outcome: Outcome, detail: String) {
        self.check = check
        self.outcome = outcome
        self.detail = detail
    }
}

public enum BuildCheck {
    /// The Python that has cyclonedx-python-lib and spdx-tools (scripts/setup-host.sh makes it).
    public static let defaultValidatorPython = "/opt/havel-sbom-validators/bin/python"

    /// Validates a CycloneDX 1.6 and an SPDX 2.3 JSON file; prints what is wrong and exits 1, or exits 0.
    public static let sbomValidatorScript = """
        import sys
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
        from spdx_tools.spdx.parser.parse_anything import parse_file
        from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
        problems = []
        with open(sys.argv[1]) as f:
            error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(f.read())
        if error is not None:
            problems.append("CycloneDX: " + str(error)[:2000])
        for message in validate_full_spdx_document(parse_file(sys.argv[2]), "SPDX-2.3"):
            problems.append("SPDX: " + message.validation_message)
        print("\\n".join(problems[:20]))
        sys.exit(1 if problems else 0)
        """

    /// The finished build's project (its source.xml) and architecture, or why there is none.
    static func recorded(_ directory: BuildDirectory) throws(HavelError) -> (project: Project, architecture: String) {
        guard let state = BuildState.read(directory.state), state.status == .done else {
            throw HavelError(.notFound, "\(directory.path) holds no finished build (state.json says it is not done)")
        }
        return (try ProjectLoader.load(path: directory.sourceXML).project, state.architecture)
    }

    /// A scratch directory for extracted CDs, removed by the caller.
    static func scratch(_ name: String) throws(HavelError) -> String {
        let path = NSTemporaryDirectory() + "havel-check-\(name)-\(UUID().uuidString.prefix(8))"
        guard mkdir(path, 0o700) == 0 else { throw HavelError(.io, "cannot create \(path): \(errnoText())") }
        return path
    }

    /// Whether two files hold the same bytes (a missing or unreadable one never does), read in bounded chunks.
    static func sameContents(_ first: String, _ second: String) -> Bool {
        guard let a = FileHandle(forReadingAtPath: first), let b = FileHandle(forReadingAtPath: second) else { return false }
        defer { try? a.close(); try? b.close() }
        do {
            while true {
                let x = try a.read(upToCount: 1 << 20) ?? Data()
                let y = try b.read(upToCount: 1 << 20) ?? Data()
                if x != y { return false }
                if x.isEmpty { return true }
            }
        } catch {
            return false
        }
    }

    static func outcome(_ check: String, _ body: () async throws(HavelError) -> String?) async -> BuildCheckResult {
        do throws(HavelError) {
            guard let detail = try await body() else { return BuildCheckResult(check: check, outcome: .passed, detail: "") }
            return BuildCheckResult(check: check, outcome: detail.hasPrefix("skipped: ") ? .skipped : .passed,
                                    detail: detail.hasPrefix("skipped: ") ? String(detail.dropFirst(9)) : detail)
        } catch {
            return BuildCheckResult(check: check, outcome: .failed, detail: error.message)
        }
    }

    /// bin-cdrom.iso: signature, and every .deb exactly one source.xml pins, every pinned package on it.
    public static func binaryCdrom(_ directory: BuildDirectory, processes: any ProcessRunning = SystemProcesses()) async -> BuildCheckResult {
        await outcome("binary CD") { () async throws(HavelError) -> String? in
            guard FileManager.default.fileExists(atPath: directory.binaryCdrom) else { return "skipped: no bin-cdrom.iso (build with --cdroms)" }
            let (project, architecture) = try recorded(directory)
            let work = try scratch("bincd")
            defer { try? FileManager.default.removeItem(atPath: work) }
            try await BinaryCdromVerification.extract(directory.binaryCdrom, into: work + "/cd", what: "bin-cdrom.iso", processes: processes)
            let checked = try await BinaryCdromVerification.verify(work + "/cd", project: project, architecture: architecture,
                                                                   what: "bin-cdrom.iso", work: work, processes: processes)
            guard Set(checked.pinned.values.map { "\($0.name) \($0.version)" })
                    == Set((project.fullPackages + project.buildEnvironmentPackages).map { "\($0.name) \($0.version)" }) else {
                throw HavelError(.invalidArgument, "bin-cdrom.iso carries another source.xml than the build directory's")
            }
            return "\(checked.packageCount) packages, each with the sha256 source.xml pins; InRelease verifies"
        }
    }

    /// src-cdrom.iso: every installed package's source at its version in the CD's Sources index with its
    /// files there, or named in src-cdrom-missing.txt.
    public static func sourceCdrom(_ directory: BuildDirectory, processes: any ProcessRunning = SystemProcesses()) async -> BuildCheckResult {
        await outcome("source CD") { () async throws(HavelError) -> String? in
            guard FileManager.default.fileExists(atPath: directory.sourceCdrom) else { return "skipped: no src-cdrom.iso (build with --cdroms or <src-cdrom>)" }
            let (project, _) = try recorded(directory)
            let work = try scratch("srccd")
            defer { try? FileManager.default.removeItem(atPath: work) }
            try await BinaryCdromVerification.extract(directory.sourceCdrom, into: work + "/cd", what: "src-cdrom.iso", processes: processes)
            let cd = try RootedFileSystem(root: work + "/cd")
            let index = "/dists/\(project.suite)/main/source/Sources"
            guard cd.exists(index) else { throw HavelError(.invalidArgument, "src-cdrom.iso has no \(index)") }
            let sources = SourcesIndex.parse(String(decoding: try cd.readFile(index, limit: 256 << 20), as: UTF8.self))
            for source in sources {
                for file in source.files where !cd.exists("/" + source.directory + "/" + file.name) {
                    throw HavelError(.invalidArgument, "src-cdrom.iso: \(source.name) \(source.version) lacks \(source.directory)/\(file.name)")
                }
            }
            let onCD = Set(sources.map { "\($0.name) \($0.version)" })
            let build = try RootedFileSystem(root: directory.path)
            let missingName = "/" + (directory.sourceCdromMissing as NSString).lastPathComponent
            let missingText = build.exists(missingName) ? String(decoding: try build.readFile(missingName, limit: 16 << 20), as: UTF8.self) : ""
            let listed = Set(missingText.split(separator: "\n").compactMap { line -> String? in
                guard !line.hasPrefix("#"), let colon = line.firstIndex(of: ":") else { return nil }
                return String(line[..<colon])
            })
            var needed = Set<String>()
            for package in project.fullPackages {
                needed.insert("\(package.sourceName ?? package.name) \(package.sourceVersion ?? package.version)")
            }
            let absent = needed.subtracting(onCD).subtracting(listed).sorted()
            guard absent.isEmpty else {
                throw HavelError(.invalidArgument, "src-cdrom.iso lacks \(absent.count) source(s) that src-cdrom-missing.txt does not name either: \(absent.prefix(10).joined(separator: ", "))")
            }
            return "\(needed.intersection(onCD).count) of \(needed.count) sources on the CD, the other \(needed.subtracting(onCD).count) listed with their reasons"
        }
    }

    /// sbom.cdx.json and sbom.spdx.json: valid, and every package of the target in the CycloneDX document.
    public static func sbom(_ directory: BuildDirectory, python: String = defaultValidatorPython,
                            processes: any ProcessRunning = SystemProcesses()) async -> BuildCheckResult {
        await outcome("SBOM") { () async throws(HavelError) -> String? in
            for file in [directory.sbomCycloneDX, directory.sbomSPDX] where !FileManager.default.fileExists(atPath: file) {
                throw HavelError(.notFound, "\(file) is missing (havel sbom \(directory.path) writes it)")
            }
            let (project, _) = try recorded(directory)
            // A tightened or dieted target's SBOM lists what it kept; every other lists every installed package.
            var expected = project.fullPackages.map { PackageURL.deb(name: $0.name, version: $0.version, architecture: $0.arch ?? "") }
            let build = try RootedFileSystem(root: directory.path)
            let keptName = "/" + (directory.keptPackagesStatus as NSString).lastPathComponent
            if build.exists(keptName) {
                let kept = String(decoding: try build.readFile(keptName, limit: 64 << 20), as: UTF8.self)
                expected = DpkgStatus.parse(kept).map { PackageURL.deb(name: $0.name, version: $0.version, architecture: $0.architecture) }
            }
            let document = try build.readFile("/" + SBOMWriter.cycloneDXName, limit: 256 << 20)
            let text = String(decoding: document, as: UTF8.self)
            let uncovered = expected.filter { !text.contains("\"" + $0 + "\"") }
            guard uncovered.isEmpty else {
                throw HavelError(.invalidArgument, "the SBOM lacks \(uncovered.count) package(s): \(uncovered.prefix(10).joined(separator: ", "))")
            }
            guard FileManager.default.isExecutableFile(atPath: python) else {
                return "skipped: covers all \(expected.count) packages, but the schema validators are not installed (\(python); scripts/setup-host.sh installs them)"
            }
            let result = try await processes.run(Command(python, ["-c", sbomValidatorScript, directory.sbomCycloneDX, directory.sbomSPDX]))
            guard result.termination == .exited(0) else {
                throw HavelError(.invalidArgument, "the SBOM does not validate: " + (result.standardOutput + result.standardError).trimmingWhitespace().suffix(2000))
            }
            return "valid CycloneDX 1.6 and SPDX 2.3, covering all \(expected.count) packages"
        }
    }

    /// The project built again from the build's binary CD into `rebuildDirectory` (no network needed): its
    /// packed rootfs and every image output must be the same bytes.
    public static func rebuild(_ directory: BuildDirectory, project: ValidatedProject, into rebuildDirectory: BuildDirectory,
                               cache: HavelCache, havelVersion: String, logger: Logger) async -> BuildCheckResult {
        await outcome("rebuild") { () async throws(HavelError) -> String? in
            guard FileManager.default.fileExists(atPath: directory.binaryCdrom) else { return "skipped: no bin-cdrom.iso to rebuild from (build with --cdroms)" }
            guard let original = BuildState.read(directory.state), original.status == .done else {
                throw HavelError(.notFound, "\(directory.path) holds no finished build")
            }
            var options = BuildOptions(directory: rebuildDirectory, cache: cache, useStageCache: false,
                                       sourceDateEpoch: original.epoch, havelVersion: havelVersion, skipChecks: true)
            options.fromCdrom = directory.binaryCdrom
            let state = try await Builder(project: project, options: options, logger: logger).run()
            let files = ([original.packedRootfs].compactMap { $0 } + original.outputs).filter { !$0.hasSuffix(".iso") && !$0.hasSuffix(".txt") }
            var differing: [String] = []
            for file in files where !sameContents(directory.path + "/" + file, rebuildDirectory.path + "/" + file) {
                differing.append(file)
            }
            guard differing.isEmpty else {
                let version = original.havelVersion == havelVersion ? "" : "; the build was made by Havel \(original.havelVersion), this is \(havelVersion), and source.xml records it"
                throw HavelError(.processFailed, "built again from bin-cdrom.iso into \(rebuildDirectory.path), these differ: \(differing.joined(separator: ", ")) (havel diff \(directory.path) \(rebuildDirectory.path) lists how)\(version)")
            }
            guard state.status == .done else { throw HavelError(.processFailed, "the rebuild did not finish") }
            return "built again from bin-cdrom.iso alone: \(files.joined(separator: ", ")) the same bytes"
        }
    }
}
