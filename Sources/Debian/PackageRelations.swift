// PackageRelations owns what an SBOM reads from dpkg's status beyond `InstalledPackage`: each installed
// package's Maintainer, Pre-Depends/Depends and Provides, and resolving those relations to the installed
// packages that satisfy them (an alternative `a | b` or a virtual package to its installed provider).

import HavelCore
import SystemKit

/// The relation fields of one installed package, as dpkg's status records them.
public struct PackageRelations: Sendable, Hashable {
    public var name: String
    public var architecture: String
    public var maintainer: String?
    /// Pre-Depends, then Depends: each entry a list of alternatives (`a | b`), each a package name with its
    /// `:any`/`:arch` qualifier dropped; version constraints are not kept (dpkg installed a consistent set).
    public var depends: [[String]]
    /// The virtual packages this package provides, without versions.
    public var provides: [String]

    public init(name: String, architecture: String, maintainer: String? = nil, depends: [[String]] = [], provides: [String] = []) {
        self.name = name
        self.architecture = architecture
        self.maintainer = maintainer
        self.depends = depends
        self.provides = provides
    }

    /// The relations of each installed package in a dpkg status text, in the order of `DpkgStatus.parse`.
    public static func parse(_ text: String) -> [PackageRelations] {
        let fields: Set<String> = ["package", "status", "version", "architecture", "maintainer", "pre-depends", "depends", "provides"]
        var result: [PackageRelations] = []
        for stanza in Deb822.parse(text, keeping: fields) {
            guard let name = stanza["package"], !name.isEmpty, let version = stanza["version"], !version.isEmpty,
                  DpkgStatus.isInstalled(status: stanza["status"]) else { continue }
            let depends = [stanza["pre-depends"], stanza["depends"]].compactMap { $0 }.flatMap(relationList)
            let provides = (stanza["provides"].map(relationList) ?? []).compactMap(\.first)
            result.append(PackageRelations(name: name, architecture: stanza["architecture"] ?? "", maintainer: stanza["maintainer"],
                                           depends: depends, provides: provides))
        }
        return result.sorted { ($0.name, $0.architecture) < ($1.name, $1.architecture) }
    }

    /// Reads `<root>/var/lib/dpkg/status` (confined to `root`).
    public static func read(root: String) throws(HavelError) -> [PackageRelations] {
        let tree = try RootedFileSystem(root: root)
        let statusPath = "/var/lib/dpkg/status"
        guard tree.exists(statusPath) else {
            throw HavelError(.notFound, "dpkg status \(root)\(statusPath) not found; is \(root) a Debian root filesystem?")
        }
        return parse(String(decoding: try tree.readFile(statusPath), as: UTF8.self))
    }

    /// `a (>= 1) | b:any, c [amd64] <!nocheck>` → `[[a, b], [c]]`: names only.
    static func relationList(_ field: String) -> [[String]] {
        field.split(separator: ",").compactMap { clause -> [String]? in
            let alternatives = clause.split(separator: "|").compactMap { alternative -> String? in
                var name = Substring(alternative.trimmingWhitespace())
                if let end = name.firstIndex(where: { $0 == " " || $0 == "(" || $0 == "[" || $0 == "<" || $0 == "\n" || $0 == "\t" }) {
                    name = name[..<end]
                }
                if let colon = name.firstIndex(of: ":") { name = name[..<colon] }
                return name.isEmpty ? nil : String(name)
            }
            return alternatives.isEmpty ? nil : alternatives
        }
    }
}

/// Resolves relations between installed packages: a name to the package of that name (preferring the
/// depending package's architecture, then `all`), else to the installed packages that provide it.
public struct InstalledRelationResolver: Sendable {
    /// An installed package, named by its position in the list given to `init`.
    public typealias Index = Int

    private let packages: [PackageRelations]
    private var byName: [String: [Index]] = [:]
    private var providers: [String: [Index]] = [:]

    public init(_ packages: [PackageRelations]) {
        self.packages = packages
        for (index, package) in packages.enumerated() {
            byName[package.name, default: []].append(index)
            for virtual in package.provides { providers[virtual, default: []].append(index) }
        }
    }

    /// The packages `package` depends on: for each clause, the first alternative that is installed, else the
    /// first one an installed package provides; clauses nothing installed satisfies are skipped. Sorted, unique,
    /// never the package itself.
    public func dependencies(of index: Index) -> [Index] {
        let package = packages[index]
        var result = Set<Index>()
        for clause in package.depends {
            let real = clause.lazy.compactMap { best(self.byName[$0], for: package) }.first
            if let found = real ?? clause.lazy.compactMap({ best(self.providers[$0], for: package) }).first, found != index {
                result.insert(found)
            }
        }
        return result.sorted()
    }

    private func best(_ candidates: [Index]?, for package: PackageRelations) -> Index? {
        guard let candidates, !candidates.isEmpty else { return nil }
        return candidates.first { packages[$0].architecture == package.architecture }
            ?? candidates.first { packages[$0].architecture == "all" } ?? candidates.min()
    }
}
