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
    /// `--from-cdrom`: the CD whose source.xml records what the build environment's packages were.
    var cdrom: BinaryCdromSource? = nil

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
        try save(XMLWriter.write(Self.sourceDocument(context, record: record, installed: installed, cdrom: cdrom)), to: directory.sourceXML)

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
    static func sourceDocument(_ context: BuildContext, record: InstallRecord, installed: [InstalledPackage],
                               cdrom: BinaryCdromSource? = nil) -> XMLDocument {
        let pinned = installed.map { pin($0, record: record) }
        let document = SourceDocument.withPrimaryMirror(context.project.document, context.project.project.mirror.primary)
        return SourceDocument.pinned(document, packages: pinned, buildEnvironment: buildEnvironmentPackages(context, record: record, cdrom: cdrom),
                                     sourcesList: record.sourcesList, aptPreferences: record.preferences,
                                     havelVersion: context.options.havelVersion)
    }

    /// An installed package as source.xml pins it: the install record's fields, else (a package the build
    /// environment installed afterwards) those of the apt lists it was installed from.
    static func pin(_ package: InstalledPackage, record: InstallRecord, lists: [String: IndexedPackage] = [:],
                    urls: [String: String] = [:], cdrom: BinaryCdromSource? = nil) -> PinnedPackage {
        var pin = PinnedPackage(name: package.name, version: package.version, arch: package.architecture,
                                auto: package.autoInstalled, sourceName: package.sourceName, sourceVersion: package.sourceVersion)
        if let recorded = record.package(name: package.name, version: package.version, architecture: package.architecture) {
            pin.sha256 = recorded.sha256
            pin.md5 = recorded.md5
            pin.releaseOrigin = recorded.releaseOrigin
            pin.releaseName = recorded.releaseName
            pin.uri = recorded.uri
            pin.priority = recorded.priority
        } else if let indexed = PackagesIndex.lookup(lists, name: package.name, version: package.version, architecture: package.architecture) {
            pin.sha256 = indexed.sha256
            pin.md5 = indexed.md5
            pin.releaseOrigin = indexed.releaseOrigin
            pin.releaseName = indexed.releaseName
            pin.uri = urls[indexed.origin].map { $0 + "/" + indexed.filename }
            pin.priority = indexed.priority
        } else if var original = cdrom?.pinned(name: package.name, version: package.version, architecture: package.architecture) {
            // Installed from the binary CD: what the original build recorded of it, with this tree's own marks.
            (original.auto, original.sourceName, original.sourceVersion) = (pin.auto, pin.sourceName, pin.sourceVersion)
            return original
        }
        return pin
    }

    /// The build environment's packages (`<debootstrappkgs>`), when the build made one; its own apt lists give the
    /// fields of the packages it added (buildimage/pkg-list).
    static func buildEnvironmentPackages(_ context: BuildContext, record: InstallRecord, cdrom: BinaryCdromSource? = nil) -> [PinnedPackage] {
        let root = context.directory.buildenv
        guard FileManager.default.fileExists(atPath: root + "/var/lib/dpkg/status"),
              let installed = try? DpkgStatus.read(root: root) else { return [] }
        let lists = PackagesIndex.index((try? PackagesIndex.readLists(root: root, names: Set(installed.map(\.name)))) ?? [])
        let urls = repositoryURLs(AptSources.lines(for: context.project.project))
        return installed.map { pin($0, record: record, lists: lists, urls: urls, cdrom: cdrom) }
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
