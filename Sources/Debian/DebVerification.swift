import Foundation
import HavelCore
import SystemKit

/// Every installed package checked against the mirror's index: the .deb that was downloaded (when it
/// is in the package cache) must have the sha256 the signed index names. A mismatching file is removed
/// from the cache and the install refused.
public enum DebVerification {
    public struct Package: Sendable, Hashable {
        public var name: String
        public var version: String
        public var architecture: String
        /// The index's sha256, else the digest of the cached file.
        public var sha256: String?
        public var origin: String?
        /// From the index entry, when there is one: what source.xml records of the package (ELBE's md5,
        /// release-origin, release-name, and the pool path its uri ends with).
        public var md5: String? = nil
        public var releaseOrigin: String? = nil
        public var releaseName: String? = nil
        public var filename: String? = nil
        /// The archive's priority and section (a binary CD's index repeats them: mmdebstrap's variants read them).
        public var priority: String? = nil
        public var section: String? = nil
    }

    public struct Outcome: Sendable {
        public var packages: [Package]
        /// Cache file name → sha256, for the files that matched the index.
        public var verified: [String: String]
    }

    /// The file name apt gives a package's .deb.
    public static func debFileName(_ package: InstalledPackage) -> String {
        "\(package.name)_\(package.version.replacingOccurrences(of: ":", with: "%3a"))_\(package.architecture).deb"
    }

    /// Checks `installed` against the index read from `lists` (a tree with var/lib/apt/lists), using the
    /// .debs present in `debs` (the package cache).
    public static func verify(_ installed: [InstalledPackage], lists: String, debs: String, present: Set<String>,
                              processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> Outcome {
        // Every entry of each name, version and architecture: a package rebuilt into the project repository has
        // the mirror's version with other bytes, and the .deb is checked against the entry it matches.
        var index: [String: [IndexedPackage]] = [:]
        for package in try PackagesIndex.readLists(root: lists, names: Set(installed.map(\.name))) {
            index[PackagesIndex.key(name: package.name, version: package.version, architecture: package.architecture), default: []].append(package)
        }
        let files = installed.map(debFileName).filter { present.contains($0) }
        let digests = try await Digest.sha256(files: files.map { debs + "/" + $0 }, processes: processes)
        var verified: [String: String] = [:]
        var packages: [Package] = []
        for package in installed {
            let file = debFileName(package)
            let entries = index[PackagesIndex.key(name: package.name, version: package.version, architecture: package.architecture)]
                ?? index[PackagesIndex.key(name: package.name, version: package.version, architecture: "all")] ?? []
            let digest = digests[debs + "/" + file]
            var indexed = entries.first
            if let digest, entries.contains(where: { $0.sha256 != nil }) {
                guard let matching = entries.first(where: { $0.sha256 == digest }) else {
                    unlink(debs + "/" + file)
                    let expected = entries.compactMap(\.sha256).joined(separator: " or ")
                    throw HavelError(.processFailed, "package \(package.name) \(package.version): the downloaded .deb has sha256 \(digest) but the mirror's index says \(expected); it was removed from the cache, build again")
                }
                indexed = matching
                verified[file] = digest
            }
            packages.append(Package(name: package.name, version: package.version, architecture: package.architecture,
                                    sha256: indexed?.sha256 ?? digest, origin: indexed?.origin, md5: indexed?.md5,
                                    releaseOrigin: indexed?.releaseOrigin, releaseName: indexed?.releaseName,
                                    filename: indexed.map(\.filename).flatMap { $0.isEmpty ? nil : $0 },
                                    priority: indexed?.priority, section: indexed?.section))
        }
        return Outcome(packages: packages, verified: verified)
    }
}
