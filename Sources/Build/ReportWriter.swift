import Foundation
import HavelCore
import Debian
import ProjectXML
import Reports
import SystemKit

/// Writes the reports of a build: source.xml (the lockfile), validation.txt, report.txt, the target's
/// licences and, when the build made one, the build environment's (licence-chroot). Each is written completely to a temporary name and then renamed.
struct ReportWriter {
    let context: BuildContext
    let record: InstallRecord
    /// The build's installed packages (`BuildProducts.installed`).
    let installed: [InstalledPackage]
    /// The packages whose files a minimised target keeps; nil when it keeps every installed package's.
    var keptPackages: Set<String>? = nil
    let added: [String]
    let touched: [String]
    /// The stages finished so far, with their times.
    let stages: [BuildState.Stage]

    var directory: BuildDirectory { context.directory }
    var project: Project { context.project.project }

    func write() async throws(HavelError) {
        var hashes: [String: String] = [:]
        var origins: [String: String] = [:]
        for package in record.packages {
            if let sha = package.sha256 { hashes["\(package.name) \(package.version) \(package.architecture)"] = sha }
            origins[package.name] = package.origin
        }

        // source.xml
        try save(XMLWriter.write(Self.sourceDocument(context, record: record, installed: installed)), to: directory.sourceXML)

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
            context.log.warning("package validation failed; see validation.txt")
        }

        // licences
        let entries = LicenceReport.collect(root: directory.rootfs, packages: installed.map(\.name).filter { keptPackages?.contains($0) ?? true })
        try save(LicenceReport.text(entries), to: directory.licenceText)
        try save(LicenceReport.xml(entries), to: directory.licenceXML)
        if FileManager.default.fileExists(atPath: directory.buildenv + "/var/lib/dpkg/status") {
            // The build environment's too, as ELBE's licence-chroot files: what built the target ships beside it.
            let buildenv = LicenceReport.collect(root: directory.buildenv, packages: try DpkgStatus.read(root: directory.buildenv).map(\.name))
            try save(LicenceReport.text(buildenv), to: directory.licenceChrootText)
            try save(LicenceReport.xml(buildenv), to: directory.licenceChrootXML)
        }

        // report.txt
        try save(buildReport(installed: installed, origins: origins, repositoryKeys: await repositoryKeys()), to: directory.report)

        guard validation.passed else {
            throw HavelError(.invalidProject, "package validation failed:\n" +
                             validation.text.split(separator: "\n").filter { $0.hasPrefix("ERROR") }.prefix(10).joined(separator: "\n"))
        }
    }

    /// source.xml's document: the preprocessed project, the mirror the build really used, and what it pinned
    /// (every installed package with the sha256 of its .deb, the apt sources and preferences).
    /// ELBE's md5, release-origin, release-name and uri come from the install record (made from the apt lists
    /// when the tree was installed, and kept with a cached stage), so a build that reuses the stage writes the same.
    static func sourceDocument(_ context: BuildContext, record: InstallRecord, installed: [InstalledPackage]) -> XMLDocument {
        let pinned = installed.map { package in
            let recorded = record.package(name: package.name, version: package.version, architecture: package.architecture)
            var pin = PinnedPackage(name: package.name, version: package.version, arch: package.architecture,
                                    sha256: recorded?.sha256, auto: package.autoInstalled,
                                    sourceName: package.sourceName, sourceVersion: package.sourceVersion)
            if let recorded {
                pin.md5 = recorded.md5
                pin.releaseOrigin = recorded.releaseOrigin
                pin.releaseName = recorded.releaseName
                pin.uri = recorded.uri
            }
            return pin
        }
        let document = SourceDocument.withPrimaryMirror(context.project.document, context.project.project.mirror.primary)
        return SourceDocument.pinned(document, packages: pinned, sourcesList: record.sourcesList,
                                     aptPreferences: record.preferences, havelVersion: context.options.havelVersion)
    }

    /// Each `deb` line's URL keyed as `PackagesIndex.origin(listFileName:)` names its lists (`host/path suite component`).
    static func repositoryURLs(_ lines: [String]) -> [String: String] {
        var result: [String: String] = [:]
        for line in lines {
            guard let entry = AptSources.entry(line), entry.type == "deb" else { continue }
            let url = entry.uri.hasSuffix("/") ? String(entry.uri.dropLast()) : entry.uri
            guard let scheme = url.range(of: "://") else { continue }
            let base = String(url[scheme.upperBound...])
            for component in entry.components where result["\(base) \(entry.suite) \(component)"] == nil {
                result["\(base) \(entry.suite) \(component)"] = url
            }
        }
        return result
    }

    /// Each key the project gives (the primary mirror's and each url-list entry's raw-key) with its fingerprints;
    /// a key gpg cannot read is said so instead of failing the finished build.
    func repositoryKeys() async -> [(source: String, fingerprints: [String])] {
        var keys: [(source: String, key: String)] = []
        if let primary = project.mirror.primary?.key { keys.append(("primary mirror", primary)) }
        for url in project.mirror.urls {
            if let raw = url.rawKey { keys.append((url.binary ?? url.source ?? "url-list entry", raw)) }
        }
        var result: [(source: String, fingerprints: [String])] = []
        for (source, key) in keys {
            do {
                result.append((source, try await KeyFingerprints.of(armored: key, processes: context.processes)))
            } catch {
                result.append((source, ["unreadable (\(error.message))"]))
            }
        }
        return result
    }

    func buildReport(installed: [InstalledPackage], origins: [String: String],
                     repositoryKeys: [(source: String, fingerprints: [String])] = []) -> String {
        BuildReport(title: "\(project.name) \(project.version) (\(context.architecture.debianName), \(project.suite))",
                    havelVersion: context.options.havelVersion, sourcesList: record.sourcesList, preferences: record.preferences,
                    installed: installed, origins: origins, archiveFiles: added, finetunedFiles: touched,
                    stages: stages.map { BuildReport.Stage(name: $0.name, seconds: $0.seconds, cached: $0.cached, downloads: $0.downloads) },
                    repositoryKeys: repositoryKeys)
            .text
    }

    func save(_ text: String, to path: String) throws(HavelError) {
        try AtomicFile.write(text, to: path)
    }
}
