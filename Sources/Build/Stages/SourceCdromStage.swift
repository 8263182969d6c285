// The source CD (`havel build --cdroms` or `<src-cdrom>`, ELBE's src-cdrom.iso): the source package of
// every installed package and of every package named in a Built-Using field, at the exact version, taken
// from the deb-src side of the mirror the build used, each file checked against the mirror's Sources index
// and its .dsc, laid out as a signed source apt repository and written as an ISO image. Sources the mirror
// does not have at that version are listed (src-cdrom-missing.txt) and warned about; they do not fail the build.
// The project's `<src-cdrom><archive>` files are unpacked onto the CD.

import Debian
import Foundation
import HavelCore
import Images
import SystemKit

struct SourceCdromStage: BuildStage {
    let name = "source CD"

    static let missingListName = "src-cdrom-missing.txt"
    /// Release files are a few MiB; a Sources index, unpacked, some tens of MiB per component.
    static let maximumReleaseSize = 64 << 20
    static let maximumUnpackedIndexSize = 1 << 30

    func describe(_ plan: BuildPlan) -> StageDescription {
        let why = plan.project.project.sourceCdrom ? "<src-cdrom>" : "--cdroms"
        return StageDescription(reason: "\(why): the source of every installed package (and of its Built-Using) at its version, as a signed source apt repository",
                                inputs: ["rootfs/ (dpkg status: Source and Built-Using)", "the mirror's deb-src (Release, Sources index, .dsc and files)",
                                         "source cache \(plan.options.cache.sources)", "the project's signing key in \(plan.options.cache.keys)"],
                                outputs: [(plan.options.directory.sourceCdrom as NSString).lastPathComponent, Self.missingListName])
    }

    /// A deb-src repository of the project: base URI, suite and components.
    struct SourceRepository: Sendable, Equatable {
        var uri: String
        var suite: String
        var components: [String]
        /// `<noauth/>` or `[trusted=yes]`: apt takes it unsigned, and so does the source CD.
        var trusted: Bool = false
    }

    /// A source found in an index, with the repository it came from.
    struct Located: Sendable {
        var source: IndexedSource
        var base: String
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let directory = context.directory
        let project = context.project.project
        let log = context.log
        let statusText = String(decoding: try RootedFileSystem(root: directory.rootfs).readFile("/var/lib/dpkg/status"), as: UTF8.self)
        let required = SourcesIndex.requiredSources(statusText: statusText)

        guard context.processes.which("curl") != nil else {
            throw HavelError(.hostNotReady, "the source CD downloads with curl; run scripts/setup-host.sh (apt-get install curl)")
        }
        let work = directory.work + "/src-cdrom-indexes"
        try? FileManager.default.removeItem(atPath: work)
        try Self.makeDirectory(work)
        defer { try? FileManager.default.removeItem(atPath: work) }
        var byVersion: [SourceReference: Located] = [:]
        var versionsByName: [String: Set<String>] = [:]
        let repositories = Self.sourceRepositories(project)
        let keyrings = repositories.allSatisfy(\.trusted) ? [] :
            try await ReleaseSignature.keyrings(projectKeys: AptSources.keys(for: project), work: work + "/keys", processes: context.processes)
        for (index, repository) in repositories.enumerated() {
            for source in try await readIndexes(repository, number: index, work: work, releases: products.releases, keyrings: keyrings, context) {
                let reference = SourceReference(name: source.name, version: source.version)
                versionsByName[source.name, default: []].insert(source.version)
                if byVersion[reference] == nil { byVersion[reference] = Located(source: source, base: repository.uri) }
            }
        }

        try Self.makeDirectory(context.options.cache.sources)
        var onCD: [AptRepository.SourcePackage] = []
        var missing: [(SourceReference, String)] = []
        let excluded = Self.excludedSources(project, installed: DpkgStatus.parse(statusText))
        var leftOut: [(SourceReference, String)] = []
        for reference in required.keys.sorted() {
            if let package = excluded[reference.name] {
                leftOut.append((reference, "left out: <pkg on_src_cd=\"False\">\(package)</pkg>"))
                continue
            }
            guard let located = byVersion[reference] else {
                // A source the project built itself (<pbuilder>), kept by its build.
                if let own = try await Self.ownSource(reference, in: directory.ownPackageLogs + "/sources", processes: context.processes) {
                    onCD.append(own)
                    continue
                }
                let others = versionsByName[reference.name].map { $0.sorted().joined(separator: ", ") }
                missing.append((reference, others.map { "the mirror's Sources index has only version(s) \($0)" } ?? "the mirror's Sources index does not list it"))
                continue
            }
            do {
                onCD.append(try await fetch(located, context))
            } catch let error where error.code == .notFound {
                missing.append((reference, error.message))
            }
        }

        let missingText = Self.missingList(missing + leftOut, required: required)
        try AtomicFile.write(missingText, to: directory.sourceCdromMissing)
        let repository = directory.work + "/src-cdrom"
        try? FileManager.default.removeItem(atPath: repository)
        try Self.makeDirectory(repository)
        defer { try? FileManager.default.removeItem(atPath: repository) }
        try AtomicFile.write(Self.readme(project, count: onCD.count, missing: missing.count), to: repository + "/README.txt")
        try AtomicFile.write(missingText, to: repository + "/" + Self.missingListName)
        let key = try await RepositorySigningKey.forProject(project.name, directory: context.options.cache.keys, processes: context.processes)
        let description = AptRepository.Description(
            suite: project.suite, architectures: ["source"], origin: "Havel", label: project.name,
            text: "\(project.name) \(project.version): the sources of its root filesystem's packages", epoch: products.epoch)
        try await AptRepository.writeSources(onCD, to: repository, description: description, key: key,
                                             publicKeyFile: BinaryCdromStage.publicKeyFile, processes: context.processes)
        // <src-cdrom><archive>: unpacked over the CD's root after the repository, as ELBE does.
        for archive in project.sourceCdromArchives {
            guard archive.isOnTheOneVolume else {
                log.warning("<src-cdrom><archive volume=\"\(archive.volume ?? "")\"> names only volumes the source CD does not have (it is one volume: 0); left out")
                continue
            }
            _ = try await ArchiveOverlay.apply(archive.base64, to: try RootedFileSystem(root: repository), work: directory.work, log: log,
                                               processes: context.processes)
        }
        try await IsoImage.write(repository, to: directory.sourceCdrom, volumeID: project.name + "_src", epoch: products.epoch,
                                 processes: context.processes)
        products.outputs.append((directory.sourceCdrom as NSString).lastPathComponent)
        products.outputs.append(Self.missingListName)
        log.info("src-cdrom.iso: \(onCD.count) source packages, signed with \(key.secretKeyFile)")
        if !missing.isEmpty {
            let names = missing.map { $0.0.description }.joined(separator: ", ")
            log.warning("the source CD lacks \(missing.count) source package(s) the mirror does not have at the installed version; see \(Self.missingListName): \(names)")
        }
    }

    /// The sources ELBE leaves off its source CD: those of the pkg-list entries marked `on_src_cd="False"`
    /// (their own Source only, not their Built-Using), each with the package that names it.
    static func excludedSources(_ project: Project, installed: [InstalledPackage]) -> [String: String] {
        let names = Set(project.target.packages.filter { !$0.onSourceCdrom }.map(\.name))
        var result: [String: String] = [:]
        for package in installed where names.contains(package.name) { result[package.sourceName] = package.name }
        return result
    }

    /// The project's deb-src repositories: the primary mirror's `main` and every url-list source line.
    /// Flat repositories (a suite ending in `/`) have no per-component index and are left out.
    static func sourceRepositories(_ project: Project) -> [SourceRepository] {
        AptSources.lines(for: project, includeSource: true).compactMap { line in
            guard let entry = AptSources.entry(line), entry.type == "deb-src", !entry.components.isEmpty, !entry.suite.hasSuffix("/") else { return nil }
            let uri = entry.uri.hasSuffix("/") ? String(entry.uri.dropLast()) : entry.uri
            let trusted = project.mirror.noauth || line.contains("trusted=yes")
            return SourceRepository(uri: uri, suite: entry.suite, components: entry.components, trusted: trusted)
        }
    }

    /// The sources a repository's components list: its (In)Release, its signature checked as apt checks it (the
    /// signed text only; Release.gpg for a plain Release; not for a trusted repository), then each
    /// `COMPONENT/source/Sources.xz` checked against the Release's SHA256. A Release that differs from the one
    /// the build was probed with is used with a warning (the mirror changed since). A component without a
    /// Sources index adds nothing.
    func readIndexes(_ repository: SourceRepository, number: Int, work: String, releases: [RepositoryProbe.Release],
                     keyrings: [String], _ context: BuildContext) async throws(HavelError) -> [IndexedSource] {
        let dists = "\(repository.uri)/dists/\(repository.suite)/"
        var releaseText: String?
        var failures: [String] = []
        for name in ["InRelease", "Release"] {
            let file = "\(work)/release-\(number)-\(name)"
            let outcome = try await BoundedDownload.fetch(dists + name, to: file, maximumBytes: Self.maximumReleaseSize, timeoutSeconds: 120,
                                                          processes: context.processes)
            guard outcome.complete else {
                failures.append("\(dists)\(name): \(outcome.tooLarge ? "larger than \(Self.maximumReleaseSize) bytes" : outcome.error)")
                continue
            }
            if let probed = releases.first(where: { $0.url == dists + name }),
               let digest = try await Digest.sha256(files: [file], processes: context.processes)[file], digest != probed.sha256 {
                context.log.warning("\(dists)\(name) changed since the build probed it; the source CD uses the mirror's newer index")
            }
            if repository.trusted {
                releaseText = String(decoding: FileManager.default.contents(atPath: file) ?? Data(), as: UTF8.self)
            } else if name == "InRelease" {
                releaseText = try await ReleaseSignature.verifiedInRelease(file, keyrings: keyrings, work: work, what: dists + name,
                                                                           processes: context.processes)
            } else {
                let signature = file + ".gpg"
                let fetched = try await BoundedDownload.fetch(dists + "Release.gpg", to: signature, maximumBytes: 1 << 20, timeoutSeconds: 120,
                                                              processes: context.processes)
                guard fetched.complete else {
                    throw HavelError(.notFound, "the source CD cannot check \(dists)Release: no InRelease and no Release.gpg (\(fetched.error)); set <noauth/> or [trusted=yes] for an unsigned repository")
                }
                try await ReleaseSignature.verifyDetached(file, signature: signature, keyrings: keyrings, what: dists + name, processes: context.processes)
                releaseText = String(decoding: FileManager.default.contents(atPath: file) ?? Data(), as: UTF8.self)
            }
            break
        }
        guard let releaseText else {
            throw HavelError(.notFound, "the source CD cannot read the Release of \(repository.uri) \(repository.suite): \(failures.joined(separator: "; "))")
        }
        let listed = SourcesIndex.releaseSHA256(releaseText)
        var sources: [IndexedSource] = []
        for component in repository.components {
            let path = "\(component)/source/Sources.xz"
            guard let entry = listed[path] else {
                context.log.warning("\(dists) lists no \(path); the source CD takes no sources from \(repository.uri) \(repository.suite) \(component)")
                continue
            }
            let packed = "\(work)/sources-\(number)-\(sources.count).xz", unpacked = packed + ".txt"
            let outcome = try await BoundedDownload.fetch(dists + path, to: packed, maximumBytes: entry.size, timeoutSeconds: Self.timeout(entry.size),
                                                          processes: context.processes)
            guard outcome.complete else {
                throw HavelError(.notFound, "the source CD cannot download \(dists)\(path): \(outcome.tooLarge ? "larger than the Release says" : outcome.error)")
            }
            let digest = try await Digest.sha256(files: [packed], processes: context.processes)[packed]
            guard digest == entry.sha256 else {
                throw HavelError(.processFailed, "\(dists)\(path) does not have the sha256 its Release gives; the mirror is inconsistent (mid-update?) or tampered with: build again later")
            }
            let line = "xz -dc -- \(Command.shellQuote(packed)) | head -c \(Self.maximumUnpackedIndexSize) > \(Command.shellQuote(unpacked))"
            try await context.processes.check(Command("bash", ["-o", "pipefail", "-c", line]))
            sources += SourcesIndex.parse(String(decoding: FileManager.default.contents(atPath: unpacked) ?? Data(), as: UTF8.self))
            unlink(packed)
            unlink(unpacked)
        }
        return sources
    }

    static func makeDirectory(_ path: String) throws(HavelError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw HavelError(.io, "cannot create \(path): \(error.localizedDescription)")
        }
    }

    /// A download's time limit: two minutes, plus a second for every 256 KiB.
    static func timeout(_ size: Int) -> Int { 120 + size / (256 << 10) }

    /// Every file of a source in the source cache (downloaded when absent), each checked against the index
    /// and the .dsc. A file the mirror does not serve throws `.notFound` (the source is then listed as
    /// missing); a file whose digest differs is refused by name and fails the stage.
    func fetch(_ located: Located, _ context: BuildContext) async throws(HavelError) -> AptRepository.SourcePackage {
        let source = try SourcesIndex.checked(located.source)
        let cache = context.options.cache.sources
        var paths: [String: String] = [:]
        for file in source.files {
            let cached = cache + "/" + file.sha256
            paths[file.name] = cached
            if FileManager.default.fileExists(atPath: cached),
               try await Digest.sha256(files: [cached], processes: context.processes)[cached] == file.sha256 { continue }
            unlink(cached)
            let partial = cache + "/.partial-" + file.sha256 + "-" + UUID().uuidString
            defer { unlink(partial) }
            let url = "\(located.base)/\(source.directory)/\(file.name)"
            let outcome = try await BoundedDownload.fetch(url, to: partial, maximumBytes: file.size, timeoutSeconds: Self.timeout(file.size),
                                                          processes: context.processes)
            guard !outcome.tooLarge else {
                throw HavelError(.processFailed, "\(file.name) of source \(source.name) \(source.version) is larger than the mirror's Sources index says (\(file.size) bytes); refusing it")
            }
            guard outcome.succeeded else {
                throw HavelError(.notFound, "\(file.name) could not be downloaded from \(url): \(outcome.error)")
            }
            let digest = try await Digest.sha256(files: [partial], processes: context.processes)[partial]
            guard digest == file.sha256 else {
                throw HavelError(.processFailed, "\(file.name) of source \(source.name) \(source.version) from \(url) does not have the sha256 the mirror's Sources index gives; refusing it")
            }
            try AtomicFile.publish(partial, as: cached)
        }
        let digests = try await Digest.sha256(files: Array(Set(paths.values)), processes: context.processes)
        let byName = paths.compactMapValues { digests[$0] }
        guard let dsc = source.dsc, let dscPath = paths[dsc.name], let handle = FileHandle(forReadingAtPath: dscPath) else {
            throw HavelError(.internalError, "the .dsc of \(source.name) \(source.version) is not in the source cache")
        }
        let dscData = (try? handle.read(upToCount: dsc.size)) ?? Data()
        try? handle.close()
        try SourcesIndex.verify(source, dscText: String(decoding: dscData, as: UTF8.self), digests: byName)
        return AptRepository.SourcePackage(name: source.name, version: source.version,
                                           files: source.files.map { AptRepository.SourcePackage.File(path: paths[$0.name]!, name: $0.name) })
    }

    /// A source of the project's own packages from `directory` (pbuilder/sources/, where their build keeps each .dsc
    /// with its files), every file checked against the .dsc's sha256; nil when the directory has no such .dsc.
    static func ownSource(_ reference: SourceReference, in directory: String,
                          processes: any ProcessRunning) async throws(HavelError) -> AptRepository.SourcePackage? {
        let upstream = reference.version.split(separator: ":", maxSplits: 1).last.map(String.init) ?? reference.version
        let dscName = "\(reference.name)_\(upstream).dsc"
        guard SourcesIndex.isPlainFileName(dscName), let handle = FileHandle(forReadingAtPath: directory + "/" + dscName) else { return nil }
        let data = (try? handle.read(upToCount: 1 << 20)) ?? Data()
        try? handle.close()
        let files = SourcesIndex.dscFiles(String(decoding: data, as: UTF8.self))
        guard !files.isEmpty, files.allSatisfy({ SourcesIndex.isPlainFileName($0.name) }) else {
            throw HavelError(.invalidArgument, "\(directory)/\(dscName) lists no files with their sha256, or names one that is not a plain file name")
        }
        let paths = files.map { directory + "/" + $0.name }
        let digests = try await Digest.sha256(files: paths, processes: processes)
        for file in files where digests[directory + "/" + file.name] != file.sha256 {
            throw HavelError(.processFailed, "\(file.name) of the project's own source \(reference.name) \(reference.version) does not have the sha256 its .dsc gives")
        }
        return AptRepository.SourcePackage(name: reference.name, version: reference.version,
                                           files: ([dscName] + files.map(\.name)).map { AptRepository.SourcePackage.File(path: directory + "/" + $0, name: $0) })
    }

    /// src-cdrom-missing.txt: one line per missing source, `name version: reason (needed by …)`.
    static func missingList(_ missing: [(SourceReference, String)], required: [SourceReference: [String]]) -> String {
        var text = "# Sources of installed packages that are not on the source CD, with the reason (\(missing.count)).\n"
        for (reference, reason) in missing {
            let users = (required[reference] ?? []).sorted().joined(separator: ", ")
            text += "\(reference.name) \(reference.version): \(reason.replacingOccurrences(of: "\n", with: " ")) (needed by \(users))\n"
        }
        return text
    }

    static func readme(_ project: Project, count: Int, missing: Int) -> String {
        """
        \(project.name) \(project.version) (\(project.suite)): source packages

        The sources of the \(count) source packages whose binaries are installed in the project's root
        filesystem (or named in their Built-Using), each at its exact version, as a source apt repository
        signed with the project's key (\(BinaryCdromStage.publicKeyFile) is its public half).
        \(missing == 0 ? "Every source was found on the mirror." : "\(missing) source(s) the mirror did not have are listed in \(missingListName).")
        With this CD mounted at /media/cdrom, apt-get source reads it with the sources line

            deb-src [signed-by=/media/cdrom/\(BinaryCdromStage.publicKeyFile)] file:/media/cdrom \(project.suite) main

        """
    }
}
