// OwnPackageBuilds owns building a project's `<pbuilder>` sources: each fetched into a source tree (git clone,
// an unpacked `<archive>`, or a source package downloaded inside the build chroot), made into a .dsc, ordered
// by Build-Depends, and built by pbuilder in a chroot tarball that mmdebstrap makes once per content (stage
// cache). Every built package goes into the project repository at once, which the next builds install from.
//
// pbuilder rather than sbuild: it runs as root with no subuid setup (Havel's builds run as root), it is what
// ELBE uses, and its hooks and bind mounts give the builds the project repository as a real apt source.

import Debian
import Foundation
import HavelCore
import SystemKit

struct OwnPackageBuilds {
    /// What the builds need on the host (the build dependencies go into the chroot, not here).
    static let hostTools: [(tool: String, package: String)] = [
        ("pbuilder", "pbuilder"), ("git", "git"), ("dpkg-source", "dpkg-dev"), ("apt-ftparchive", "apt-utils"), ("gpg", "gnupg"),
        // gpg makes the repository's signing key through its agent (a separate package)
        ("gpg-agent", "gpg-agent"),
    ]
    /// The longest a git clone or a source download may take.
    static let fetchTimeoutSeconds = 900
    /// The most bytes of a debian/control that are read.
    static let maximumControlSize = 1 << 20

    let context: BuildContext
    /// The mirror's Release digests the build probed: a chroot made before the mirror changed is made again
    /// (what ELBE's `pbuilder update` is for).
    var releases: [RepositoryProbe.Release] = []
    var project: Project { context.project.project }
    var work: String { context.directory.work + "/pbuilder" }
    var logs: String { context.directory.ownPackageLogs }
    var repository: String { context.directory.projectRepository }

    /// Cross-building: asked for with --cross and meaningful only for a target the host cannot run natively.
    var crossBuilds: Bool { context.options.crossBuild && !context.host.runsNatively(context.architecture) }
    /// The architecture of the chroot: the host's when cross-building, else the target's (run through qemu-user).
    var chrootArchitecture: Architecture { crossBuilds ? (context.host.architecture ?? context.architecture) : context.architecture }
    var mode: String { crossBuilds ? "cross (\(chrootArchitecture.debianName) building for \(context.architecture.debianName))" : context.host.runsNatively(context.architecture) ? "native" : "qemu-user" }

    /// One source ready to build.
    struct Prepared {
        var source: BuildDependsOrder.Source
        var dsc: String
        var summary: String
    }

    /// Builds every source and returns the repository that holds all of them.
    func run() async throws(HavelError) -> ProjectRepository.Written {
        let sources = project.target.ownPackages
        guard !sources.isEmpty else { throw HavelError(.internalError, "the own-package builds need <pbuilder> sources") }
        for path in [repository, logs] where path.contains(where: \.isWhitespace) {
            throw HavelError(.invalidArgument, "the build directory \(context.directory.path) holds whitespace, which pbuilder's bind mounts cannot take; build into a directory without spaces")
        }
        try? FileManager.default.removeItem(atPath: work)
        try? FileManager.default.removeItem(atPath: repository)
        try? FileManager.default.removeItem(atPath: keptSources)
        for directory in [work, logs, work + "/hooks", work + "/place"] { try Self.makeDirectory(directory) }
        let log = context.log
        log.info("own packages: \(sources.count) source(s), \(mode) builds with pbuilder")

        let tarball = try await chrootTarball()
        let configuration = try writeConfiguration()
        var prepared: [Prepared] = []
        for (index, source) in sources.enumerated() {
            prepared.append(try await prepare(source, number: index + 1, tarball: tarball, configuration: configuration))
        }
        var byName: [String: Prepared] = [:]
        for item in prepared {
            if let other = byName[item.source.name] {
                throw HavelError(.invalidProject, "the <pbuilder> sources \(other.summary) and \(item.summary) are both the source package \(item.source.name); keep one")
            }
            byName[item.source.name] = item
        }
        let ordered = try BuildDependsOrder.order(prepared.map(\.source))
        log.info("own packages in build order: \(ordered.map(\.name).joined(separator: ", "))")

        let epoch = context.options.sourceDateEpoch ?? Int(Date().timeIntervalSince1970)
        var built: [AptRepository.Package] = []
        var written: ProjectRepository.Written?
        for source in ordered {
            guard let item = byName[source.name] else { continue }
            built += try await build(item, tarball: tarball, configuration: configuration)
            // Into the repository at once: the next source may build-depend on it.
            written = try await ProjectRepository.write(built, to: repository, project: project, architecture: context.architecture.debianName,
                                                        keys: context.options.cache.keys, epoch: epoch, processes: context.processes)
        }
        guard let written else { throw HavelError(.internalError, "no own package was built") }
        log.info("project repository repo/: \(written.packages.count) package(s): \(written.packages.map(\.name).joined(separator: ", "))")
        try? FileManager.default.removeItem(atPath: work)
        return written
    }

    // MARK: - The build chroot

    /// What decides the chroot tarball's content.
    struct ChrootKeyInputs: Encodable {
        var format = 2  // 2: the mirror's Release digests
        var purpose = "pbuilder chroot"
        var mode: String
        var architecture: String
        var foreignArchitectures: [String]
        var suite: String
        var variant: String
        var packages: [String]
        var sources: [String]
        var keys: [String]
        var preferences: String
        var releases: [String]
    }

    var chrootPackages: [String] { crossBuilds ? ["crossbuild-essential-\(context.architecture.debianName)"] : [] }

    func chrootKey() async throws(HavelError) -> String {
        let inputs = ChrootKeyInputs(mode: crossBuilds ? "cross" : "chroot", architecture: chrootArchitecture.debianName,
                                     foreignArchitectures: crossBuilds ? [context.architecture.debianName] : [], suite: project.suite,
                                     variant: "buildd", packages: chrootPackages, sources: AptSources.lines(for: project),
                                     keys: AptSources.keys(for: project).map(\.armored), preferences: AptSources.preferences(for: project),
                                     releases: releases.map { "\($0.url) \($0.sha256)" })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(inputs) else { throw HavelError(.internalError, "cannot encode the build chroot's key") }
        return try await Digest.sha256([UInt8](data), processes: context.processes)
    }

    /// `havel pbuilder create|update`: only the build chroot, kept in the stage cache.
    func chrootOnly(_ action: BuildChrootAction) async throws(HavelError) -> (key: String, path: String, fromCache: Bool) {
        guard context.options.useStageCache else {
            throw HavelError(.invalidArgument, "havel pbuilder \(action.rawValue) keeps the build chroot in the stage cache; it cannot run without it")
        }
        try? FileManager.default.removeItem(atPath: work)
        try Self.makeDirectory(work)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let key = try await chrootKey()
        let fromCache = action == .create && context.options.cache.lookUpStage(key) == .present
        let path = try await chrootTarball(refresh: action == .update)
        context.log.info("the \(mode) build chroot of \(project.name): \(path) (\(fromCache ? "already in the stage cache" : "made now"))")
        return (key, path, fromCache)
    }

    /// The build chroot as a tar.gz (mmdebstrap, buildd variant), from the stage cache when it holds one
    /// with the same content, unless `refresh` asks for it to be made again (and replaced there).
    func chrootTarball(refresh: Bool = false) async throws(HavelError) -> String {
        let cache = context.options.cache
        try cache.prepare()
        let key = try await chrootKey()
        let log = context.log
        if context.options.useStageCache, cache.lookUpStage(key) == .present {
            if refresh {
                log.info("making the build chroot afresh in place of the cached one (\(key.prefix(16)))")
            } else {
                log.info("reusing the build chroot from the stage cache (\(key.prefix(16)))")
                cache.touchStage(key)
                return cache.stageDirectory(key) + "/base.tgz"
            }
        }
        log.info("making the \(chrootArchitecture.debianName) build chroot (mmdebstrap, buildd variant\(chrootPackages.isEmpty ? "" : ", " + chrootPackages.joined(separator: ", ")))")
        let sources = AptSources.lines(for: project)
        var request = BootstrapRequest(
            tool: .mmdebstrap, architecture: chrootArchitecture, suite: project.suite, variant: "buildd", packages: chrootPackages, exclude: [],
            sourceLines: sources, preferences: AptSources.preferences(for: project), keys: AptSources.keys(for: project),
            installRecommends: false, packageCache: cache.debs, listsDirectory: work + "/chroot-lists")
        request.foreignArchitectures = crossBuilds ? [context.architecture.debianName] : []
        let tarball = work + "/base.tgz"
        let command = try Mmdebstrap.prepare(request, workDirectory: work + "/chroot", output: tarball)
        do {
            let inUse = try cache.usingDebs()
            defer { inUse.release() }
            try await context.runTool(command.inPrivateMountNamespace(), what: "mmdebstrap (build chroot)", sources: sources)
        }
        guard context.options.useStageCache else { return tarball }
        let description = work + "/chroot-description"
        do {
            try "\(project.name) build chroot \(chrootArchitecture.debianName) \(project.suite) (\(mode))".write(toFile: description, atomically: true, encoding: .utf8)
        } catch {
            throw HavelError(.io, "cannot write \(description): \(error.localizedDescription)")
        }
        try cache.storeStage(key, files: ["base.tgz": tarball, "description": description])
        cache.touchStage(key)
        return cache.stageDirectory(key) + "/base.tgz"
    }

    // MARK: - pbuilder

    /// pbuilder's configuration (read after /etc/pbuilderrc) and the hook that gives each build the project
    /// repository: its signed lines when it holds packages, then apt-get update.
    func writeConfiguration() throws(HavelError) -> String {
        try checkLocalRepositories()
        let hooks = work + "/hooks"
        let suite = project.suite
        let q = Command.shellQuote
        let hook = """
            #!/bin/sh
            # Havel: the project repository (the packages built before this one) as an apt source, then fresh lists.
            set -e
            repo=\(q(repository))
            if [ -f "$repo/dists/\(suite)/InRelease" ]; then
                echo "deb [signed-by=$repo/\(ProjectRepository.publicKeyFile)] file:$repo \(suite) \(ProjectRepository.component)" > /etc/apt/sources.list.d/havel-project.list
            fi
            apt-get update -q -o Acquire::Retries=3

            """
        let configuration = """
            # Havel: pbuilder for the project's own packages.
            BUILDPLACE=\(q(work + "/place"))
            APTCACHE=\(q(context.options.cache.path + "/pbuilder-debs"))
            APTCACHEHARDLINK=no
            USECOLORS=no
            USECGROUP=no
            USENETWORK=no
            EATMYDATA=no
            CCACHEDIR=
            BINDMOUNTS=\(q(([repository] + localRepositories).joined(separator: " ")))
            HOOKDIR=\(q(hooks))
            PBUILDERSATISFYDEPENDSCMD=/usr/lib/pbuilder/pbuilder-satisfydepends-apt
            AUTO_DEBSIGN=no

            """
        do {
            try Self.makeDirectory(repository)
            try Self.makeDirectory(context.options.cache.path + "/pbuilder-debs")
            try hook.write(toFile: hooks + "/D10havel-project-repository", atomically: true, encoding: .utf8)
            chmod(hooks + "/D10havel-project-repository", 0o755)
            try configuration.write(toFile: work + "/pbuilderrc", atomically: true, encoding: .utf8)
        } catch let error as HavelError {
            throw error
        } catch {
            throw HavelError(.io, "cannot write pbuilder's configuration into \(work): \(error.localizedDescription)")
        }
        return work + "/pbuilderrc"
    }

    /// Builds one source with pbuilder; its output goes to pbuilder/<source>.log, and a failure names the log's end.
    func build(_ item: Prepared, tarball: String, configuration: String) async throws(HavelError) -> [AptRepository.Package] {
        let result = work + "/result-" + item.source.name
        try Self.makeDirectory(result)
        let logPath = logs + "/\(item.source.name).log"
        var arguments = ["build", "--configfile", configuration, "--basetgz", tarball, "--buildresult", result]
        if crossBuilds { arguments += ["--host-arch", context.architecture.debianName] }
        arguments.append(item.dsc)
        let command = Command("pbuilder", arguments, environment: ["DEB_BUILD_OPTIONS": "nocheck"])
        context.log.info("building \(item.source.name) (\(item.summary)); log: pbuilder/\(item.source.name).log")
        guard FileManager.default.createFile(atPath: logPath, contents: nil), let handle = FileHandle(forWritingAtPath: logPath) else {
            throw HavelError(.io, "cannot write the package log \(logPath)")
        }
        defer { try? handle.close() }
        handle.write(Data("$ \(command.description)\n".utf8))
        let tail = LineTail(limit: 40)
        let status = try await context.processes.stream(command) { line in
            tail.append(line)
            handle.write(Data((line + "\n").utf8))
        }
        guard status == .exited(0) else {
            throw HavelError(.processFailed, "building the package \(item.source.name) failed (pbuilder \(status)); the end of pbuilder/\(item.source.name).log:\n"
                             + tail.all.suffix(15).joined(separator: "\n"))
        }
        let debs = ((try? FileManager.default.contentsOfDirectory(atPath: result)) ?? []).filter { $0.hasSuffix(".deb") }.sorted()
        guard !debs.isEmpty else {
            throw HavelError(.processFailed, "building the package \(item.source.name) made no .deb; see pbuilder/\(item.source.name).log")
        }
        var packages: [AptRepository.Package] = []
        for deb in debs { packages.append(try await AptRepository.Package.reading(result + "/" + deb, processes: context.processes)) }
        let names = packages.map { "\($0.name) \($0.version)" }.joined(separator: ", ")
        context.log.info("\(item.source.name): built \(names)")
        try keepSource(item)
        return packages
    }

    /// Where each built source (its .dsc and the files it names) is kept for the source CD.
    var keptSources: String { logs + "/sources" }

    /// The source as it was built, into pbuilder/sources/: the source CD takes it from there.
    func keepSource(_ item: Prepared) throws(HavelError) {
        try Self.makeDirectory(keptSources)
        let directory = (item.dsc as NSString).deletingLastPathComponent
        guard let data = FileManager.default.contents(atPath: item.dsc), data.count < Self.maximumControlSize else {
            throw HavelError(.io, "cannot read the .dsc \(item.dsc) of \(item.source.name)")
        }
        let names = [(item.dsc as NSString).lastPathComponent] + SourcesIndex.dscFiles(String(decoding: data, as: UTF8.self)).map(\.name)
        for name in names {
            guard SourcesIndex.isPlainFileName(name) else { throw HavelError(.invalidProject, "\(item.summary): its .dsc names the file \(name.debugDescription)") }
            let target = keptSources + "/" + name
            try? FileManager.default.removeItem(atPath: target)
            do { try FileManager.default.copyItem(atPath: directory + "/" + name, toPath: target) } catch {
                throw HavelError(.io, "cannot keep \(name) of \(item.source.name) for the source CD: \(error.localizedDescription)")
            }
        }
    }

    // MARK: - Sources

    /// The source in a directory of its own: a tree with debian/ and a .dsc made from it (or downloaded).
    func prepare(_ source: OwnPackageSource, number: Int, tarball: String, configuration: String) async throws(HavelError) -> Prepared {
        let directory = work + "/source-\(number)"
        let tree = directory + "/tree"
        try Self.makeDirectory(directory)
        let what = "<pbuilder> source \(source.summary)" + (source.location.map { " at \($0)" } ?? "")
        var dsc: String?
        switch source.origin {
        case .git(let url, let revision):
            try await clone(url, revision: revision, into: tree, what: what)
        case .archive(let base64):
            try await unpack(base64, into: tree, what: what)
        case .sourcePackage(let name, let version):
            dsc = try await download(name, version: version, into: directory + "/download", tarball: tarball, configuration: configuration, what: what)
            let unpacked = try await context.processes.run(Command("dpkg-source", ["--no-check", "-x", dsc!, tree]))
            guard unpacked.succeeded else {
                throw HavelError(.processFailed, "\(what): dpkg-source cannot unpack \(dsc!): \(unpacked.standardError.trimmingWhitespace())")
            }
        }
        let root = Self.sourceRoot(tree)
        let control = try Self.readControl(root + "/debian/control", what: what)
        let parsed = try BuildDependsOrder.source(control: control, file: "\(what): debian/control")
        if dsc == nil { dsc = try await makeDsc(root, in: directory, what: what) }
        return Prepared(source: parsed, dsc: dsc!, summary: source.summary)
    }

    func clone(_ url: String, revision: String?, into tree: String, what: String) async throws(HavelError) {
        let environment = ["GIT_ALLOW_PROTOCOL": "https:http:git:file", "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"]
        let timeout = ["--kill-after=10", String(Self.fetchTimeoutSeconds)]
        let cloned = try await context.processes.run(Command("timeout", timeout + ["git", "clone", "--quiet", "--", url, tree], environment: environment))
        guard cloned.succeeded else {
            throw HavelError(.notFound, "\(what): git clone failed: \(cloned.standardError.trimmingWhitespace()); check the URL (https, http, git or file:///)")
        }
        guard let revision else { return }
        for candidate in [revision, "origin/" + revision] {
            let checkout = try await context.processes.run(Command("git", ["-C", tree, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach",
                                                                           candidate], environment: environment))
            if checkout.succeeded { return }
        }
        throw HavelError(.notFound, "\(what): the repository has no revision \(revision); give a commit, tag or branch it holds")
    }

    func unpack(_ base64: String, into tree: String, what: String) async throws(HavelError) {
        guard let data = Data(base64Encoded: base64.filter { !$0.isWhitespace }) else {
            throw HavelError(.invalidProject, "\(what): <archive> is not valid base64")
        }
        let archive = tree + ".tar"
        do {
            try Self.makeDirectory(tree)
            try data.write(to: URL(fileURLWithPath: archive))
        } catch let error as HavelError {
            throw error
        } catch {
            throw HavelError(.io, "cannot stage \(what) in \(tree): \(error.localizedDescription)")
        }
        // tar refuses members with .. or absolute names; the tree is new and empty, so no link can redirect one.
        let result = try await context.processes.run(Command("tar", ["-x", "-f", archive, "-C", tree, "--no-same-owner"]))
        guard result.succeeded else {
            throw HavelError(.invalidProject, "\(what): <archive> cannot be unpacked (it must be a tar, plain or compressed): \(result.standardError.trimmingWhitespace())")
        }
    }

    /// The project's deb-src lines as ELBE gives them: the primary mirror's `main` and each url-list `<source>`.
    var sourceLines: [String] {
        AptSources.lines(for: project, includeSource: true).filter { AptSources.entry($0)?.type == "deb-src" }
    }

    /// Directories of the project's file: repositories (binary and source), bound into pbuilder's chroot so that
    /// apt inside it reads them as mmdebstrap did when it made the chroot.
    var localRepositories: [String] {
        var seen: [String] = []
        for line in AptSources.lines(for: project, includeSource: true) {
            guard let uri = AptSources.entry(line)?.uri, uri.hasPrefix("file:") else { continue }
            var path = String(uri.dropFirst("file:".count))
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
            while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
            if !seen.contains(path) { seen.append(path) }
        }
        return seen
    }

    /// A file: repository pbuilder can bind: an absolute directory whose path has no blanks (its list is blank-separated).
    func checkLocalRepositories() throws(HavelError) {
        for path in localRepositories {
            var isDirectory: ObjCBool = false
            guard path.hasPrefix("/"), !path.contains(where: \.isWhitespace),
                  FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw HavelError(.invalidProject, "the file: repository file://\(path) of the project's mirror cannot be given to the package "
                                 + "builds: it must be an existing directory with an absolute path without blanks")
            }
        }
    }

    /// Downloads a source package inside the build chroot, with the project's deb-src lines as its only source lines.
    func download(_ name: String, version: String?, into directory: String, tarball: String, configuration: String, what: String) async throws(HavelError) -> String {
        try Self.makeDirectory(directory)
        try checkLocalRepositories()
        let script = work + "/download-source.sh"
        let text = """
            #!/bin/sh
            # Havel: a <src-pkg> downloaded with the project's deb-src lines.
            set -e
            cat > /etc/apt/sources.list.d/havel-sources.list <<'HAVEL_SOURCE_LINES'
            \(sourceLines.joined(separator: "\n"))
            HAVEL_SOURCE_LINES
            apt-get update -q -o Acquire::Retries=3
            cd "$1"
            apt-get source --download-only -q "$2"

            """
        do { try text.write(toFile: script, atomically: true, encoding: .utf8) } catch {
            throw HavelError(.io, "cannot write \(script): \(error.localizedDescription)")
        }
        let spec = version.map { "\(name)=\($0)" } ?? name
        let result = try await context.processes.run(Command("timeout", ["--kill-after=10", String(Self.fetchTimeoutSeconds), "pbuilder", "execute",
                                                                         "--configfile", configuration, "--basetgz", tarball,
                                                                         "--bindmounts", ([directory] + localRepositories).joined(separator: " "),
                                                                         "--", script, directory, spec]))
        let dscs = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".dsc") }
        guard result.succeeded, dscs.count == 1 else {
            let output = (result.standardOutput + result.standardError).split(separator: "\n").suffix(8).joined(separator: "\n")
            throw HavelError(.notFound, "\(what): the source package cannot be downloaded from the project's deb-src lines "
                             + "(the mirror's and each url-list <source>: \(sourceLines.joined(separator: "; "))):\n\(output)")
        }
        return directory + "/" + dscs[0]
    }

    /// `dpkg-source -b` of the tree; the .dsc it wrote.
    func makeDsc(_ tree: String, in directory: String, what: String) async throws(HavelError) -> String {
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
        let result = try await context.processes.run(Command("dpkg-source", ["-b", tree], workingDirectory: directory))
        let made = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".dsc") && !before.contains($0) }
        guard result.succeeded, made.count == 1 else {
            throw HavelError(.processFailed, "\(what): dpkg-source cannot make a source package of it (a 3.0 (quilt) tree needs its orig tarball; "
                             + "use 3.0 (native) or give the source as <src-pkg>): \(result.standardError.trimmingWhitespace())")
        }
        return directory + "/" + made[0]
    }

    /// The tree's root: itself when it holds debian/, else its only directory when that does (an archive of `name/`).
    static func sourceRoot(_ tree: String) -> String {
        let files = FileManager.default
        if files.fileExists(atPath: tree + "/debian/control") { return tree }
        let entries = (try? files.contentsOfDirectory(atPath: tree)) ?? []
        if entries.count == 1, files.fileExists(atPath: tree + "/" + entries[0] + "/debian/control") { return tree + "/" + entries[0] }
        return tree
    }

    /// debian/control as text: a regular file (not a link out of the tree), at most `maximumControlSize` bytes.
    static func readControl(_ path: String, what: String) throws(HavelError) -> String {
        var status = stat()
        guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            throw HavelError(.invalidProject, "\(what) has no debian/control file; a package source needs debian/control, debian/changelog and debian/rules")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw HavelError(.io, "cannot read \(path)") }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: maximumControlSize + 1)) ?? Data()
        guard data.count <= maximumControlSize, let text = String(data: data, encoding: .utf8) else {
            throw HavelError(.invalidProject, "\(what): debian/control is larger than 1 MiB or not UTF-8")
        }
        return text
    }

    static func makeDirectory(_ path: String) throws(HavelError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw HavelError(.io, "cannot create \(path): \(error.localizedDescription)")
        }
    }
}
