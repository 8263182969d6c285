// `havel build --sdk`: the cross SDK of the built target, as ELBE's build_sdk makes it: a sysroot (the target's
// packages, their -dev packages, libc6-dbg and gdbserver; ELBE's paths; links made relative) and a host part
// (the cross compiler, `<hostsdk-pkg-list>`), packed with an environment-setup file, a CMake toolchain file and
// the target's pkg-config into one self-extracting installer. Both trees are unpacked natively by mmdebstrap's
// extract variant: nothing runs under emulation, no maintainer script runs, and neither tree is a system.

import Debian
import Foundation
import HavelCore
import Logging
import SystemKit

struct SDKStage: BuildStage {
    let name = "sdk"

    func files(_ project: ValidatedProject, host: Architecture) -> SDKFiles {
        let p = project.project
        return SDKFiles(projectName: p.name, projectVersion: p.version, architecture: project.architecture,
                        triplet: p.buildimage?.triplet ?? project.architecture.gnuTriplet, hostArchitecture: host)
    }

    func describe(_ plan: BuildPlan) -> StageDescription {
        let host = plan.host.architecture ?? .amd64
        let sdk = files(plan.project, host: host)
        let hostPackages = SDKFiles.hostPackages(listed: plan.project.project.target.hostSDKPackages, triplet: sdk.triplet, hostArchitecture: host)
        return StageDescription(
            reason: "--sdk: a sysroot of the target's packages with their -dev packages, libc6-dbg and gdbserver (ELBE's rule), and host tools",
            inputs: ["the install record", "the project's repositories' Packages index", "host tools: " + hostPackages.joined(separator: " ")],
            outputs: [sdk.installerName])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        guard let record = products.install else { throw HavelError(.internalError, "the SDK needs the install stage's record") }
        guard let host = context.host.architecture, let loader = SDKFiles.dynamicLoader(host) else {
            throw HavelError(.unsupported, "the SDK's host tools are made for amd64 and arm64 hosts; this host is \(context.host.architecture?.debianName ?? "unknown")")
        }
        let project = context.project.project
        let architecture = context.architecture
        let sdk = files(context.project, host: host)
        let log = context.log
        let work = context.directory.work + "/sdk"
        try? FileManager.default.removeItem(atPath: work)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let tree = work + "/tree"
        do { try FileManager.default.createDirectory(atPath: tree + "/sysroots", withIntermediateDirectories: true) } catch {
            throw HavelError(.io, "cannot create \(tree): \(error.localizedDescription)")
        }

        // Which packages: the mirror's index says each package's source, ELBE's rule says which -dev packages follow.
        var sources = AptSources.lines(for: project)
        var keys = AptSources.keys(for: project)
        if let repository = products.projectRepository {
            sources.append(repository.sourceLine)
            keys.append((ProjectRepository.Written.keyFileName, repository.publicKey))
        }
        let index = try await UpdateCheck.fetchIndexes(sourcesList: sources, architecture: architecture.debianName, keys: keys,
                                                       workDirectory: work + "/apt", processes: context.processes)
        let selection = SysrootSelection.choose(
            installed: record.packages, index: index, relations: try Self.devRelations(lists: work + "/apt"),
            dependencies: Self.installedDependencies(context.directory.rootfs, log: log),
            requested: Set(project.target.packages.map(\.name)), variant: project.target.debootstrap.variant,
            blacklist: Set(project.target.sysrootBlacklist), architecture: architecture.debianName)
        let devNames = selection.devPackages.map(\.name).joined(separator: " ")
        log.info("sysroot: \(selection.packages.count) packages, \(selection.devPackages.count) of them -dev packages of the target's sources: \(devNames)")
        for line in selection.leftOut { log.info("sysroot: left out \(line)") }

        // The sysroot: unpacked in full, then ELBE's paths and every file of the -dev packages kept.
        let unpacked = work + "/sysroot-unpacked"
        try await extract(packages: selection.packages, architecture: architecture, sources: sources, keys: keys,
                          into: unpacked, label: "sysroot", context)
        for directory in ["usr/lib", "usr/lib64"] { try SDKFiles.relativizeLinks(root: unpacked, under: directory) }
        let list = work + "/sysroot-files"
        try await sysrootFileList(unpacked, selection: selection, into: list, context)
        let target = tree + "/sysroots/target"
        try await context.processes.check(Command("/bin/bash", ["-o", "pipefail", "-c", "mkdir -p \"$3\" && tar -C \"$1\" -c --no-recursion -T \"$2\" -f - | tar -C \"$3\" -x -f -",
                                                              "sh", unpacked, list, target]))
        try? FileManager.default.removeItem(atPath: unpacked)

        // The host part: the cross tools for this host, from the primary mirror, stripped to what runs.
        let hostTree = tree + "/sysroots/host"
        let hostPackages = SDKFiles.hostPackages(listed: project.target.hostSDKPackages, triplet: sdk.triplet, hostArchitecture: host)
        guard let primary = sources.first, project.mirror.primary != nil else {
            throw HavelError(.invalidProject, "the SDK's host tools come from the primary mirror; the project has none (<primary_host>)")
        }
        try await extract(packages: hostPackages, architecture: host, sources: [primary], keys: AptSources.keys(for: project),
                          into: hostTree, label: "host tools", context)
        for directory in ["boot", "dev", "etc", "home", "media", "mnt", "proc", "root", "run", "srv", "sys", "tmp", "var"] {
            try? FileManager.default.removeItem(atPath: hostTree + "/" + directory)
        }
        try SDKFiles.relativizeLinks(root: hostTree)
        try SDKFiles.bareLinkerScripts(root: hostTree)
        guard FileManager.default.fileExists(atPath: hostTree + "/usr/bin/patchelf") else {
            throw HavelError(.notFound, "the SDK's host tools have no usr/bin/patchelf; the installer relocates with it (is patchelf on the mirror?)")
        }
        let wrapper = hostTree + "/usr/bin/\(sdk.triplet)-pkg-config"
        unlink(wrapper)
        try AtomicFile.write(sdk.pkgConfigWrapper, to: wrapper)
        chmod(wrapper, 0o755)
        try AtomicFile.write(sdk.toolchainCMake, to: tree + "/toolchain.cmake")
        try AtomicFile.write(sdk.environmentSetup, to: tree + "/" + sdk.environmentName)

        // One file: the script, then the tree as an xz-compressed tar (owners root, times clamped, names sorted).
        let installer = context.directory.path + "/" + sdk.installerName
        let partial = installer + ".partial"
        do throws(HavelError) {
            try AtomicFile.write(sdk.installerScript(loader: loader), to: partial)
            try await context.processes.check(Command("/bin/bash", ["-c", """
                set -e -o pipefail
                tar -C "$1" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@"$2" --clamp-mtime -c -f - . | xz -T0 -3 >> "$3"
                chmod 755 "$3"
                mv "$3" "$4"
                """, "sh", tree, String(products.epoch), partial, installer]))
        } catch {
            unlink(partial)
            throw error
        }
        products.outputs.append(sdk.installerName)
        let size = (try? FileManager.default.attributesOfItem(atPath: installer)[.size] as? Int) ?? 0
        log.info("SDK: \(sdk.installerName) (\(size / 1_048_576) MiB); install with: sh \(sdk.installerName) -d DIRECTORY")
    }

    /// mmdebstrap's extract variant: `packages` and their dependencies unpacked into `output`, nothing run.
    func extract(packages: [String], architecture: Architecture, sources: [String], keys: [(fileName: String, armored: String)],
                 into output: String, label: String, _ context: BuildContext) async throws(HavelError) {
        let project = context.project.project
        let work = context.directory.work + "/sdk/bootstrap-" + label.replacingOccurrences(of: " ", with: "-")
        let request = BootstrapRequest(tool: .mmdebstrap, architecture: architecture, suite: project.suite, variant: "extract",
                                       packages: packages, exclude: [], sourceLines: sources, preferences: "", keys: keys,
                                       installRecommends: false, packageCache: context.options.cache.debs, listsDirectory: work + "/lists")
        let command = try Mmdebstrap.prepare(request, workDirectory: work, output: output)
        context.log.info("SDK \(label): unpacking \(packages.count) packages and their dependencies for \(architecture.debianName)")
        try await context.runTool(command.inPrivateMountNamespace(), what: "mmdebstrap (SDK \(label))", sources: sources)
    }

    /// The sysroot's files, one per line, relative as `./path`: ELBE's paths found in the tree, the merged-/usr
    /// links, and every non-directory entry of the chosen -dev packages.
    func sysrootFileList(_ unpacked: String, selection: SysrootSelection, into list: String, _ context: BuildContext) async throws(HavelError) {
        let patterns = SysrootSelection.paths(multiarch: context.architecture.multiarchTuple)
        // find lists a matched directory's contents too: the tar that reads the list does not recurse.
        let script = """
            set -e
            cd "$1"
            shift
            for pattern in "$@"; do
                find . -path "$pattern" -print -o -path "$pattern/*" -print
            done
            for link in lib lib64 sbin bin; do
                if [ -L "$link" ]; then echo "./$link"; fi
            done
            """
        let found = try await context.processes.check(Command("/bin/sh", ["-c", script, "sh", unpacked] + patterns))
        var lines = found.standardOutput.split(separator: "\n").map(String.init)
        let debs = context.options.cache.debs
        for package in selection.devPackages {
            let file = debs + "/" + Self.debFileName(package)
            guard FileManager.default.fileExists(atPath: file) else {
                context.log.info("sysroot: \(Self.debFileName(package)) is not in the package cache; its files come only by ELBE's paths")
                continue
            }
            let listing = try await context.processes.check(Command("/bin/bash", ["-o", "pipefail", "-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -t", "sh", file]))
            lines += listing.standardOutput.split(separator: "\n").filter { !$0.hasSuffix("/") }.map(String.init)
        }
        var seen = Set<String>()
        let unique = lines.filter { seen.insert($0).inserted }.sorted()
        try AtomicFile.write(unique.joined(separator: "\n") + "\n", to: list)
    }

    /// Each installed package's installed dependencies, by name, from the target's dpkg status; empty (the base
    /// system is then the variant's priorities alone) where the target keeps no dpkg status (`<tighten/>`, `<diet/>`).
    static func installedDependencies(_ rootfs: String, log: Logger) -> [String: [String]] {
        guard let packages = try? PackageRelations.read(root: rootfs) else {
            log.info("sysroot: the target keeps no dpkg status; the base system is told by priority alone")
            return [:]
        }
        let resolver = InstalledRelationResolver(packages)
        var dependencies: [String: [String]] = [:]
        for (index, package) in packages.enumerated() {
            dependencies[package.name, default: []] += resolver.dependencies(of: index).map { packages[$0].name }
        }
        return dependencies
    }

    /// The name apt gives a downloaded .deb.
    static func debFileName(_ package: SysrootSelection.Chosen) -> String {
        "\(package.name)_\(package.version.replacingOccurrences(of: ":", with: "%3a"))_\(package.architecture).deb"
    }

    /// `Conflicts` and `Breaks` of every -dev package in the lists apt fetched under `lists`, keyed by `name version`.
    static func devRelations(lists: String) throws(HavelError) -> [String: [SysrootSelection.Relation]] {
        let tree = try RootedFileSystem(root: lists)
        var relations: [String: [SysrootSelection.Relation]] = [:]
        for path in try tree.glob("/var/lib/apt/lists/*_Packages") {
            let text = String(decoding: try tree.readFile(path), as: UTF8.self)
            for stanza in Deb822.parse(text, keeping: ["package", "version", "conflicts", "breaks"]) {
                guard let name = stanza["package"], name.hasSuffix("-dev"), let version = stanza["version"] else { continue }
                let fields = [stanza["conflicts"], stanza["breaks"]].compactMap { $0 }.joined(separator: ",")
                guard !fields.isEmpty else { continue }
                relations[name + " " + version, default: []] += SysrootSelection.Relation.parse(fields)
            }
        }
        return relations
    }
}
