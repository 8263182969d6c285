import Debian

/// One entry of the project's pkg-list: a name (optionally `name:arch`) and an optional version glob.
public struct RequestedPackage: Sendable, Hashable, Codable {
    public var name: String
    /// fnmatch-style pattern the installed version must match, e.g. `2.*`.
    public var versionGlob: String?

    public init(name: String, versionGlob: String? = nil) {
        self.name = name
        self.versionGlob = versionGlob
    }
}

/// One package of a previous build's `fullpkgs` (source.xml), which a rebuild must reproduce exactly.
public struct PinnedPackageRecord: Sendable, Hashable, Codable {
    public var name: String
    public var version: String
    public var arch: String
    /// SHA-256 of the `.deb`; a pin without one cannot be verified and counts as an error.
    public var sha256: String?

    public init(name: String, version: String, arch: String, sha256: String? = nil) {
        self.name = name
        self.version = version
        self.arch = arch
        self.sha256 = sha256
    }
}

/// ELBE's `validation.txt` (`elbepack/dump.py: check_full_pkgs`).
public enum PackageValidation {
    /// Lines of validation.txt and whether it passed. Each requested package must be installed and, with a
    /// version glob, match it (a `name:arch` request needs that architecture or `all`).
    /// With `pinned` non-empty (a rebuild from source.xml), every installed package must match its pinned
    /// version and sha256 exactly (compared by name and architecture; `hashes` is keyed
    /// `"name version arch"` as `PackagesIndex.key` builds it); pinned packages missing from the rootfs and
    /// installed packages not pinned are errors. A pin with an empty `arch` matches the only installed
    /// package of that name. Problems are listed in pkg-list order, then sorted by name
    /// and architecture; the last line is the summary.
    public static func validate(requested: [RequestedPackage], installed: [InstalledPackage],
                                hashes: [String: String], pinned: [PinnedPackageRecord]) -> (passed: Bool, text: String) {
        var lines = ["Havel package validation", "========================", ""]
        var errors = 0
        var checked: Set<String> = []
        func error(_ message: String) {
            lines.append("ERROR: " + message)
            errors += 1
        }

        lines += ["Package list", "------------", ""]
        let installedByName = Dictionary(grouping: installed, by: \.name)
        for request in requested {
            let parts = request.name.split(separator: ":", maxSplits: 1).map(String.init)
            let name = parts.first ?? request.name
            let arch = parts.count > 1 ? parts[1] : nil
            checked.insert(name)
            let candidates = (installedByName[name] ?? []).filter { package in
                arch.map { package.architecture == $0 || package.architecture == "all" } ?? true
            }
            guard !candidates.isEmpty else {
                error("package \(request.name) is not installed")
                continue
            }
            if let glob = request.versionGlob, !glob.isEmpty,
               !candidates.contains(where: { DebianVersion.matches($0.version, glob: glob) }) {
                let versions = candidates.map(\.version).joined(separator: ", ")
                error("package \(request.name) version \(versions) does not match \(glob)")
            }
        }
        if errors == 0 { lines.append("requested packages: \(requested.count), all installed") }

        if !pinned.isEmpty {
            let listErrors = errors
            lines += ["", "Pinned package list (rebuild from source.xml)", "---------------------------------------------", ""]
            func key(_ name: String, _ arch: String) -> String { name + " " + arch }
            var installedByKey: [String: InstalledPackage] = [:]
            for package in installed { installedByKey[key(package.name, package.architecture)] = package }
            var pinnedKeys: Set<String> = []
            // A pin without an architecture (a hand-written or old fullpkgs entry) stands for the one
            // installed package of that name.
            let resolvedPins = pinned.map { pin -> PinnedPackageRecord in
                guard pin.arch.isEmpty, let only = installedByName[pin.name], only.count == 1 else { return pin }
                var resolved = pin
                resolved.arch = only[0].architecture
                return resolved
            }
            let sortedPins = resolvedPins.sorted { ($0.name, $0.arch) < ($1.name, $1.arch) }
            for pin in sortedPins where pinnedKeys.insert(key(pin.name, pin.arch)).inserted {
                checked.insert(pin.name)
                let label = pin.arch.isEmpty ? pin.name : "\(pin.name) (\(pin.arch))"
                guard let package = installedByKey[key(pin.name, pin.arch)] else {
                    let sameName = installedByName[pin.name] ?? []
                    if pin.arch.isEmpty, sameName.count > 1 {
                        let archs = sameName.map(\.architecture).sorted().joined(separator: ", ")
                        error("pinned package \(label) \(pin.version) names no architecture, and \(pin.name) is installed for \(archs)")
                    } else {
                        error("pinned package \(label) \(pin.version) is not installed")
                    }
                    continue
                }
                guard package.version == pin.version else {
                    error("package \(label) version \(package.version) does not match pinned version \(pin.version)")
                    continue
                }
                guard let expected = pin.sha256?.lowercased(), !expected.isEmpty else {
                    error("pinned package \(label) \(pin.version) has no sha256")
                    continue
                }
                let hashKey = PackagesIndex.key(name: package.name, version: package.version,
                                                architecture: package.architecture)
                guard let actual = hashes[hashKey]?.lowercased() else {
                    error("package \(label) \(package.version): sha256 of the installed .deb is unknown")
                    continue
                }
                if actual != expected {
                    error("package \(label) \(package.version) sha256 \(actual) does not match pinned sha256 \(expected)")
                }
            }
            for package in installed.sorted(by: { ($0.name, $0.architecture) < ($1.name, $1.architecture) })
            where !pinnedKeys.contains(key(package.name, package.architecture)) {
                checked.insert(package.name)
                error("package \(package.name) (\(package.architecture)) \(package.version) is installed but not pinned")
            }
            if errors == listErrors { lines.append("pinned packages: \(pinnedKeys.count), all match") }
        }

        lines.append("")
        if errors == 0 {
            lines.append("validation passed: \(checked.count) package\(checked.count == 1 ? "" : "s") checked")
        } else {
            lines.append("validation FAILED: \(errors) error\(errors == 1 ? "" : "s")")
        }
        return (errors == 0, lines.joined(separator: "\n") + "\n")
    }
}
