// SBOMWriter owns a build directory's SBOM files (sbom.cdx.json, sbom.spdx.json), made from what the build
// left there: rootfs/ (dpkg status, copyright files; kept-packages.status for a minimised target) and source.xml (the project, each .deb's sha256), dated at
// the build's fixed time. The SBOM stage and `havel sbom` both write through it, so both give the same bytes.

import Debian
import Foundation
import HavelCore
import ProjectXML
import Reports
import SystemKit

public enum SBOMWriter {
    public static let cycloneDXName = "sbom.cdx.json"
    public static let spdxName = "sbom.spdx.json"

    /// Reads `directory` and writes both files into `output` (the build directory unless given).
    @discardableResult
    public static func write(_ directory: BuildDirectory, to output: String? = nil, havelVersion: String, epoch: Int) throws(HavelError) -> SBOM {
        let sbom = try read(directory, havelVersion: havelVersion, epoch: epoch)
        let output = output ?? directory.path
        try AtomicFile.writeJSON(CycloneDXDocument(sbom), to: output + "/" + cycloneDXName)
        try AtomicFile.writeJSON(SPDXDocument(sbom), to: output + "/" + spdxName)
        return sbom
    }

    /// The SBOM of a finished build directory.
    public static func read(_ directory: BuildDirectory, havelVersion: String, epoch: Int) throws(HavelError) -> SBOM {
        guard FileManager.default.fileExists(atPath: directory.sourceXML) else {
            throw HavelError(.notFound, "\(directory.sourceXML) not found: give the directory of a finished havel build")
        }
        let loaded = try ProjectLoader.load(path: directory.sourceXML)
        let project = loaded.project
        var digests: [String: String] = [:]
        for package in project.fullPackages {
            if let sha256 = package.sha256 { digests["\(package.name) \(package.version) \(package.arch ?? "")"] = sha256 }
        }
        let installed: [InstalledPackage]
        let relations: [PackageRelations]
        if !FileManager.default.fileExists(atPath: directory.rootfs + "/var/lib/dpkg/status"),
           FileManager.default.fileExists(atPath: directory.keptPackagesStatus) {
            // A <tighten/> or <diet/> target: no dpkg database, the minimise stage's record of what it kept.
            let record = try RootedFileSystem(root: directory.path).readFile("/" + URL(fileURLWithPath: directory.keptPackagesStatus).lastPathComponent, limit: 64 << 20)
            let text = String(decoding: record, as: UTF8.self)
            installed = DpkgStatus.parse(text)
            relations = PackageRelations.parse(text)
        } else {
            installed = try DpkgStatus.read(root: directory.rootfs)
            relations = try PackageRelations.read(root: directory.rootfs)
        }
        var licences: [String: [String]] = [:]
        for entry in LicenceReport.collect(root: directory.rootfs, packages: installed.map(\.name)) {
            licences[entry.package] = entry.copyright?.licenses ?? []
        }
        let tool = (project.target.debootstrap.tool ?? .mmdebstrap).rawValue
        let tools = [SBOM.Tool(name: "havel", version: havelVersion),
                     SBOM.Tool(name: tool, version: hostPackageVersion(tool))]
        return SBOM(projectName: project.name, projectVersion: project.version, projectDescription: project.description, tools: tools,
                    epoch: epoch, installed: installed, relations: relations,
                    sha256: { digests["\($0.name) \($0.version) \($0.architecture)"] }, licences: licences)
    }

    /// The version of a Debian package installed on this host (the bootstrap tool), read from the host's dpkg
    /// status, or `unknown`.
    static func hostPackageVersion(_ package: String, hostRoot: String = "/") -> String {
        (try? DpkgStatus.read(root: hostRoot))?.first { $0.name == package }?.version ?? "unknown"
    }

    /// The fixed time of an existing build: the epoch state.json recorded, else SOURCE_DATE_EPOCH, else the
    /// newest installed package's time, as the install stage picks it.
    public static func epoch(of directory: BuildDirectory, environment: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        if let recorded = BuildState.read(directory.state)?.epoch { return recorded }
        if let text = environment["SOURCE_DATE_EPOCH"], let value = Int(text), value >= 0 { return value }
        return ReproducibleTime.newestPackage(in: directory.rootfs)
    }
}

/// The SBOM of the finished tree, after source.xml (whose digests it reads).
struct SBOMStage: BuildStage {
    let name = "sbom"

    func describe(_ plan: BuildPlan) -> StageDescription {
        StageDescription(reason: "the target's software bill of materials: every installed package with its purl, .deb sha256, source, licences and dependencies",
                         inputs: ["rootfs/ (dpkg status, copyright files)", "source.xml"],
                         outputs: [SBOMWriter.cycloneDXName + " (CycloneDX 1.6)", SBOMWriter.spdxName + " (SPDX 2.3)"])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let sbom = try SBOMWriter.write(context.directory, havelVersion: context.options.havelVersion, epoch: products.epoch)
        let absent = sbom.packagesWithoutDigest
        let note = absent.isEmpty ? "" : ", \(absent.count) without a .deb sha256"
        context.log.info("SBOM: \(sbom.packages.count) packages\(note)")
    }
}
