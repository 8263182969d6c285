import Foundation
import HavelCore
import Debian
import ProjectXML
import Reports
import SystemKit

/// Writes the reports of a build: source.xml (the lockfile), validation.txt, report.txt and the
/// target's licences. Each is written completely to a temporary name and then renamed.
struct ReportWriter {
    let builder: Builder
    let record: InstallRecord
    let added: [String]
    let touched: [String]

    var directory: BuildDirectory { builder.directory }
    var project: Project { builder.project }

    func write() async throws(HavelError) {
        let installed = try DpkgStatus.read(root: directory.rootfs)
        var hashes: [String: String] = [:]
        var origins: [String: String] = [:]
        for package in record.packages {
            if let sha = package.sha256 { hashes["\(package.name) \(package.version) \(package.architecture)"] = sha }
            origins[package.name] = package.origin
        }

        // source.xml
        let pinned = installed.map { package in
            PinnedPackage(name: package.name, version: package.version, arch: package.architecture,
                          sha256: hashes["\(package.name) \(package.version) \(package.architecture)"],
                          auto: package.autoInstalled, sourceName: package.sourceName, sourceVersion: package.sourceVersion)
        }
        var document = SourceDocument.withPrimaryMirror(builder.loaded.document, project.mirror.primary)
        document = SourceDocument.pinned(document, packages: pinned, sourcesList: record.sourcesList,
                                         aptPreferences: record.preferences, havelVersion: builder.options.havelVersion)
        try save(XMLWriter.write(document), to: directory.sourceXML)

        // validation.txt
        let requested = project.target.packages.map { package -> RequestedPackage in
            if case .version(let glob)? = package.pin { return RequestedPackage(name: package.name, versionGlob: glob) }
            return RequestedPackage(name: package.name, versionGlob: nil)
        }
        let previous = project.fullPackages.map {
            PinnedPackageRecord(name: $0.name, version: $0.version, arch: $0.arch ?? "", sha256: $0.sha256)
        }
        let validation = PackageValidation.validate(requested: requested, installed: installed, hashes: hashes, pinned: previous)
        try save(validation.text, to: directory.validation)
        if !validation.passed {
            builder.log.warning("package validation failed; see validation.txt")
        }

        // licences
        let entries = LicenceReport.collect(root: directory.rootfs, packages: installed.map(\.name))
        try save(LicenceReport.text(entries), to: directory.licenceText)
        try save(LicenceReport.xml(entries), to: directory.licenceXML)

        // report.txt
        try save(buildReport(installed: installed, origins: origins), to: directory.report)

        guard validation.passed else {
            throw HavelError(.invalidProject, "package validation failed:\n" +
                             validation.text.split(separator: "\n").filter { $0.hasPrefix("ERROR") }.prefix(10).joined(separator: "\n"))
        }
    }

    func buildReport(installed: [InstalledPackage], origins: [String: String]) -> String {
        var text = "Havel build report: \(project.name) \(project.version) (\(builder.architecture.debianName), \(project.suite))\n"
        text += "Built by Havel \(builder.options.havelVersion)\n\n"
        text += "== apt sources\n\n" + record.sourcesList + "\n"
        if !record.preferences.isEmpty { text += "== apt preferences\n\n" + record.preferences + "\n" }
        var byOrigin: [String: [InstalledPackage]] = [:]
        for package in installed { byOrigin[origins[package.name] ?? "unknown origin", default: []].append(package) }
        text += "== installed packages (\(installed.count))\n"
        for origin in byOrigin.keys.sorted() {
            text += "\n\(origin):\n"
            for package in byOrigin[origin]! {
                text += "  \(package.name) \(package.version) \(package.architecture)\(package.autoInstalled ? " (auto)" : "")\n"
            }
        }
        text += "\n== files added by the archive (\(added.count))\n\n" + added.map { "  \($0)\n" }.joined()
        text += "\n== files added or changed by finetuning (\(touched.count))\n\n" + touched.map { "  \($0)\n" }.joined()
        text += "\n== stages\n\n"
        for stage in builder.state.stages {
            text += "  \(stage.name): \(String(format: "%.1f", stage.seconds)) s\(stage.cached ? ", from the stage cache" : "")" +
                (stage.downloads.map { ", \($0) packages downloaded" } ?? "") + "\n"
        }
        return text
    }

    func save(_ text: String, to path: String) throws(HavelError) {
        let temporary = path + ".partial"
        do {
            try text.write(toFile: temporary, atomically: false, encoding: .utf8)
        } catch {
            throw HavelError(.io, "cannot write \(path): \(error.localizedDescription)")
        }
        guard rename(temporary, path) == 0 else { throw HavelError(.io, "cannot write \(path)") }
    }
}
