// ProjectRepository owns a build directory's `repo/`: the signed apt repository of the project's own
// packages (those built from `<pbuilder>` and those uploaded by hand), written by `AptRepository` with the
// project's key from `RepositorySigningKey`, replaced whole on every change so a reader never sees half of it.

import Debian
import Foundation
import HavelCore
import SystemKit

public enum ProjectRepository {
    public static let publicKeyFile = "archive-key.asc"
    /// The component every package goes into.
    public static let component = "main"
    /// The origin report.txt gives a package installed from it.
    public static let originName = "project repository (repo/, built from <pbuilder>)"

    /// What a written repository is, for the stages after it and the install.
    public struct Written: Sendable {
        /// The repository's directory (absolute).
        public var directory: String
        public var suite: String
        public var publicKey: String
        /// The sha256 of dists/<suite>/InRelease: the repository's content, for cache keys.
        public var inReleaseSHA256: String
        public var packages: [AptRepository.Package]

        /// The apt line the target's install reads it through: copy: puts the .debs into the tree's apt cache, where dpkg in the chroot finds them.
        public var sourceLine: String { "deb copy://\(directory) \(suite) \(ProjectRepository.component)" }
        /// The name of its key among the install's keys.
        public static let keyFileName = "havel-project-repository.asc"
        /// While installing, the project's own packages win over the mirror's, a version rebuilt unchanged from
        /// `<src-pkg>` included (apt would otherwise take either file of the same version).
        public static let installPreferences = "Package: *\nPin: release o=\(ProjectRepository.originField)\nPin-Priority: 990\n"
    }

    /// The repository's Release `Origin:`, which the install's pin names.
    public static let originField = "Havel-project-repository"

    /// Every .deb in the repository's pool, described by its control fields.
    public static func packages(in repository: String, processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> [AptRepository.Package] {
        let pool = repository + "/pool"
        guard FileManager.default.fileExists(atPath: pool) else { return [] }
        var packages: [AptRepository.Package] = []
        let enumerator = FileManager.default.enumerator(atPath: pool)
        while let relative = enumerator?.nextObject() as? String {
            guard relative.hasSuffix(".deb") else { continue }
            let path = pool + "/" + relative
            var status = stat()
            guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { continue }
            packages.append(try await AptRepository.Package.reading(path, processes: processes))
        }
        return packages.sorted { ($0.name, $0.version, $0.architecture) < ($1.name, $1.version, $1.architecture) }
    }

    /// Writes `packages` as the project's repository in `repository` (replacing what was there), signed with
    /// the project's key from `keys`. A package given twice (same name, version, architecture) is kept once,
    /// the later one winning, so an upload replaces a package of the same version.
    public static func write(_ packages: [AptRepository.Package], to repository: String, project: Project, architecture: String,
                             keys: String, epoch: Int, processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> Written {
        var unique: [String: AptRepository.Package] = [:]
        var order: [String] = []
        for package in packages {
            let id = "\(package.name) \(package.version) \(package.architecture)"
            if unique[id] == nil { order.append(id) }
            unique[id] = package
        }
        let chosen = order.compactMap { unique[$0] }
        let key = try await RepositorySigningKey.forProject(project.name, directory: keys, processes: processes)
        let description = AptRepository.Description(
            suite: project.suite, component: component, architectures: [architecture], origin: originField, label: "\(project.name) project repository",
            text: "\(project.name) \(project.version): the project's own packages", epoch: epoch)
        let fresh = repository + ".new", old = repository + ".old"
        try? FileManager.default.removeItem(atPath: fresh)
        try? FileManager.default.removeItem(atPath: old)
        do {
            try FileManager.default.createDirectory(atPath: fresh, withIntermediateDirectories: true)
        } catch {
            throw HavelError(.io, "cannot create \(fresh): \(error.localizedDescription)")
        }
        do throws(HavelError) {
            try await AptRepository.write(chosen, to: fresh, description: description, key: key, publicKeyFile: publicKeyFile, processes: processes)
        } catch {
            try? FileManager.default.removeItem(atPath: fresh)
            throw error
        }
        if FileManager.default.fileExists(atPath: repository), rename(repository, old) != 0 {
            throw HavelError(.io, "cannot replace the project repository \(repository): \(errnoText())")
        }
        guard rename(fresh, repository) == 0 else { throw HavelError(.io, "cannot put the project repository in place at \(repository): \(errnoText())") }
        try? FileManager.default.removeItem(atPath: old)
        let inRelease = repository + "/dists/\(project.suite)/InRelease"
        let digest = try await Digest.sha256(files: [inRelease], processes: processes)[inRelease] ?? ""
        let placed = chosen.map { package in
            var moved = package
            moved.path = repository + "/" + AptRepository.poolDirectory(source: package.source, component: component) + "/" + package.fileName
            return moved
        }
        return Written(directory: repository, suite: project.suite, publicKey: key.publicKey, inReleaseSHA256: digest, packages: placed)
    }

    /// The repository with `debs` added (a package of the same name, version and architecture replaced),
    /// signed again: `havel prjrepo upload` and the daemon's upload route. Each must be a .deb for
    /// `architecture` or `all`.
    public static func add(_ debs: [String], to repository: String, project: Project, architecture: String, keys: String, epoch: Int,
                           processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> Written {
        var packages = try await packages(in: repository, processes: processes)
        for deb in debs {
            let package = try await AptRepository.Package.reading(deb, processes: processes)
            guard package.architecture == architecture || package.architecture == "all" else {
                throw HavelError(.invalidArgument, "\((deb as NSString).lastPathComponent) is for \(package.architecture); the project repository holds \(architecture) and all packages")
            }
            packages.append(package)
        }
        return try await write(packages, to: repository, project: project, architecture: architecture, keys: keys, epoch: epoch, processes: processes)
    }

    /// The repository a build directory already holds (an earlier build's, with uploads), for a build that
    /// skips the package builds (`--skip-pbuilder`); nil when there is none.
    public static func existing(_ repository: String, suite: String, processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> Written? {
        let inRelease = repository + "/dists/\(suite)/InRelease"
        guard FileManager.default.fileExists(atPath: inRelease) else { return nil }
        let tree = try RootedFileSystem(root: repository)
        let publicKey = String(decoding: try tree.readFile("/" + publicKeyFile, limit: 1 << 20), as: UTF8.self)
        let digest = try await Digest.sha256(files: [inRelease], processes: processes)[inRelease] ?? ""
        return Written(directory: repository, suite: suite, publicKey: publicKey, inReleaseSHA256: digest,
                       packages: try await packages(in: repository, processes: processes))
    }

    /// `name version architecture` lines of a repository's packages, for `havel prjrepo list`.
    public static func listing(_ packages: [AptRepository.Package]) -> String {
        packages.map { "\($0.name) \($0.version) \($0.architecture) (source \($0.source))\n" }.joined()
    }
}
