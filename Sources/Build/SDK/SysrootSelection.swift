// Which packages an SDK's sysroot holds, by ELBE's rule (elbepack's build_sysroot and mark_install_devpkgs):
// every package installed in the target at its version, libc6-dbg and gdbserver, and every -dev package built
// from the same source at the same source version as an installed package; the base system's sources count
// only for libc6 and libstdc++; `<pkg-blacklist><sysroot>` keeps packages out. Pure: the stage gives it the
// install record and the mirror's index.

import Debian
import HavelCore

struct SysrootSelection: Sendable, Equatable {
    /// What apt installs (`name=version`, or `name:arch=version` for another architecture), in order.
    var packages: [String]
    /// The -dev packages chosen, with their versions and architectures (their files all go into the sysroot).
    var devPackages: [Chosen]
    /// One sentence per -dev package left out, with why.
    var leftOut: [String]

    struct Chosen: Sendable, Hashable {
        var name: String
        var version: String
        var architecture: String
    }

    /// One entry of a `Conflicts:` or `Breaks:` field.
    struct Relation: Sendable, Hashable {
        var name: String
        var operation: String?
        var version: String?

        /// Whether package `name` at `version` is what this relation names.
        func matches(name: String, version: String) -> Bool {
            guard name == self.name else { return false }
            guard let operation, let wanted = self.version.flatMap(DebianVersion.init), let have = DebianVersion(version) else { return true }
            switch operation {
            case "<<": return have < wanted
            case "<=", "<": return have <= wanted
            case "=": return have == wanted
            case ">=", ">": return have >= wanted
            case ">>": return have > wanted
            default: return true
            }
        }

        /// The entries of a relation field; architecture qualifiers are dropped.
        static func parse(_ field: String) -> [Relation] {
            field.split(separator: ",").compactMap { raw in
                let entry = raw.trimmingWhitespace()
                guard !entry.isEmpty else { return nil }
                let name = String(entry.prefix { !" (\t:".contains($0) })
                guard !name.isEmpty else { return nil }
                guard let open = entry.firstIndex(of: "("), let close = entry.firstIndex(of: ")"), open < close else {
                    return Relation(name: name)
                }
                let inside = entry[entry.index(after: open)..<close].trimmingWhitespace()
                let operation = String(inside.prefix { "<>=".contains($0) })
                let version = inside.dropFirst(operation.count).trimmingWhitespace()
                return Relation(name: name, operation: operation.isEmpty ? nil : operation, version: version.isEmpty ? nil : version)
            }
        }
    }

    /// Packages every ELBE sysroot gets besides the target's.
    static let alwaysAdded = ["libc6-dbg", "gdbserver"]
    /// Base-system packages whose sources still count for -dev packages.
    static let baseKept: Set<String> = ["libc6", "libstdc++5", "libstdc++6"]

    /// Whether a package of this priority is one the bootstrap variant installs by itself (with apt, for the
    /// variants that have it, and everything these depend on: `baseSystem`).
    static func isBase(priority: String?, variant: String?) -> Bool {
        switch variant {
        case "minbase", "essential", "apt", "custom", "extract": priority == "required"
        default: priority == "required" || priority == "important"
        }
    }

    /// The packages the bootstrap variant alone would have installed: ELBE ignores their sources, having
    /// debootstrap's list; Havel installs in one run, so it takes the variant's priorities (and apt) and
    /// closes them over the installed packages' dependencies (`dependencies`: name to names).
    static func baseSystem(installed: [InstallRecord.Package], priorities: [String: String], dependencies: [String: [String]],
                           variant: String?) -> Set<String> {
        let withApt = !["essential", "custom", "extract"].contains(variant ?? "")
        var base = Set<String>()
        var queue = installed.map(\.name).filter { name in
            isBase(priority: priorities[name], variant: variant) || (withApt && name == "apt")
        }
        while let name = queue.popLast() {
            guard base.insert(name).inserted else { continue }
            queue += dependencies[name] ?? []
        }
        return base
    }

    /// - Parameters:
    ///   - installed: the target's packages (the install record's).
    ///   - index: the target architecture's packages on the project's repositories.
    ///   - relations: `Conflicts` and `Breaks` of -dev packages, keyed by `name version`.
    ///   - requested: the pkg-list's names (never treated as base).
    ///   - dependencies: each installed package's installed dependencies, by name (for `baseSystem`).
    static func choose(installed: [InstallRecord.Package], index: [IndexedPackage], relations: [String: [Relation]],
                       dependencies: [String: [String]] = [:], requested: Set<String>, variant: String?, blacklist: Set<String>,
                       architecture: String) -> SysrootSelection {
        let byKey = PackagesIndex.index(index)
        var indexed: [String: IndexedPackage] = [:]
        var priorities: [String: String] = [:]
        for package in installed {
            guard let found = PackagesIndex.lookup(byKey, name: package.name, version: package.version, architecture: package.architecture) else { continue }
            indexed[package.name] = found
            if let priority = package.priority ?? found.priority { priorities[package.name] = priority }
        }
        let base = baseSystem(installed: installed, priorities: priorities, dependencies: dependencies, variant: variant)
        var sources = Set<String>()
        for package in installed {
            guard let found = indexed[package.name] else { continue }
            if requested.contains(package.name) || baseKept.contains(package.name) || !base.contains(package.name) {
                sources.insert(found.sourceName + " " + found.sourceVersion)
            }
        }
        func spec(_ name: String, _ version: String, _ packageArchitecture: String) -> String {
            packageArchitecture == architecture || packageArchitecture == "all" ? "\(name)=\(version)" : "\(name):\(packageArchitecture)=\(version)"
        }
        var candidates: [String: IndexedPackage] = [:]
        for package in index where package.name.hasSuffix("-dev") && (package.architecture == architecture || package.architecture == "all")
            && sources.contains(package.sourceName + " " + package.sourceVersion) {
            candidates[package.name] = candidates[package.name] ?? package
        }
        let installedNames = Dictionary(installed.map { ($0.name, $0.version) }, uniquingKeysWith: { first, _ in first })
        var chosen: [IndexedPackage] = []
        var leftOut: [String] = []
        for name in candidates.keys.sorted() {
            let candidate = candidates[name]!
            if blacklist.contains(name) {
                leftOut.append("\(name): in <pkg-blacklist><sysroot>")
                continue
            }
            let own = relations[name + " " + candidate.version] ?? []
            if let clash = own.first(where: { relation in
                (installedNames[relation.name].map { relation.matches(name: relation.name, version: $0) } ?? false)
                    || chosen.contains { relation.matches(name: $0.name, version: $0.version) }
            }) {
                leftOut.append("\(name): conflicts with \(clash.name), which the sysroot already has")
                continue
            }
            if let earlier = chosen.first(where: { other in
                (relations[other.name + " " + other.version] ?? []).contains { $0.matches(name: name, version: candidate.version) }
            }) {
                leftOut.append("\(name): \(earlier.name) conflicts with it")
                continue
            }
            chosen.append(candidate)
        }
        var seen = Set<String>()
        var packages: [String] = []
        for package in installed where !blacklist.contains(package.name) && seen.insert(package.name).inserted {
            packages.append(spec(package.name, package.version, package.architecture))
        }
        for name in alwaysAdded where !blacklist.contains(name) && seen.insert(name).inserted { packages.append(name) }
        for package in chosen where seen.insert(package.name).inserted {
            packages.append(spec(package.name, package.version, package.architecture))
        }
        return SysrootSelection(packages: packages,
                                devPackages: chosen.map { Chosen(name: $0.name, version: $0.version, architecture: $0.architecture) },
                                leftOut: leftOut)
    }

    /// ELBE's paths of a sysroot (`find -path` patterns from the tree's root), for the multiarch tuple.
    static func paths(multiarch tuple: String) -> [String] {
        [
            "./usr/include", "./usr/include/\(tuple)", "./usr/bin/gdbserver", "./usr/sbin/ldconfig", "./usr/share/pkgconfig",
            "./usr/share/cmake", "./etc/ld.so.conf*", "./opt/*/lib/*.a", "./opt/*/lib/*.so", "./opt/*lib/*.so.*", "./opt/*/include",
            "./opt/*/lib/\(tuple)", "./opt/*/include/\(tuple)", "./lib/*.a", "./lib/*.so", "./lib/*.so.*", "./lib/\(tuple)",
            "./usr/lib/debug/.build-id/*/*.debug", "./usr/lib/*.a", "./usr/lib/*.so", "./usr/lib/*.so.*", "./usr/lib/\(tuple)",
            "./usr/lib/pkgconfig", "./usr/lib64/*.so.*",
        ]
    }
}
