// SBOMCommand owns `havel sbom BUILDDIR`: the SBOM files a build writes (sbom.cdx.json, sbom.spdx.json),
// rewritten from an existing build directory, into it or into another directory.

import ArgumentParser
import Build
import Foundation
import HavelCore

struct SBOMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sbom",
        abstract: "Write a build's SBOM (sbom.cdx.json, CycloneDX 1.6; sbom.spdx.json, SPDX 2.3) from its directory.",
        discussion: """
            Reads rootfs/ (dpkg status, copyright files) and source.xml (each .deb's sha256) of a finished build \
            and writes what the build's sbom stage writes, dated at the build's fixed time (state.json's, else \
            SOURCE_DATE_EPOCH, else the newest installed package).
            """)

    @Argument(help: ArgumentHelp("A finished build directory.", valueName: "BUILDDIR"))
    var directory: String

    @Option(name: [.short, .long], help: ArgumentHelp("Write the two files into this directory instead.", valueName: "DIR"))
    var output: String?

    func run() async throws {
        let build = BuildDirectory(directory)
        guard FileManager.default.fileExists(atPath: build.sourceXML) else {
            throw HavelError(.notFound, "\(build.sourceXML) not found: give the directory of a finished havel build")
        }
        guard let epoch = SBOMWriter.epoch(of: build) else {
            throw HavelError(.notFound, "\(build.path) has no state.json epoch and no installed packages to date the SBOM by; set SOURCE_DATE_EPOCH")
        }
        let target = output.map { BuildDirectory($0).path } ?? build.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw HavelError(.notFound, "output directory \(target) does not exist: create it first")
        }
        let sbom = try SBOMWriter.write(build, to: target, havelVersion: HavelVersion.current, epoch: epoch)
        Terminal.out("\(target)/\(SBOMWriter.cycloneDXName), \(target)/\(SBOMWriter.spdxName): \(sbom.packages.count) packages")
        let absent = sbom.packagesWithoutDigest
        if !absent.isEmpty {
            Terminal.out("no .deb sha256 in source.xml for \(absent.count) package\(absent.count == 1 ? "" : "s"): \(absent.joined(separator: " "))")
        }
    }
}
