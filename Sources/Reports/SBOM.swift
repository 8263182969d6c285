// SBOM owns the software bill of materials of a build's target, independent of its file formats: the
// packages with their purls, .deb digests, source packages, suppliers, licences (Debian short names mapped to
// SPDX identifiers) and dependencies, plus the tools and the build's fixed time. SBOMFormats.swift writes it
// as CycloneDX 1.6 and SPDX 2.3.

import Debian
import Foundation
import HavelCore

/// What an SBOM says of a target; every list is sorted, so that equal trees give equal documents.
public struct SBOM: Sendable, Equatable {
    public struct Tool: Sendable, Equatable {
        public var name: String
        public var version: String

        public init(name: String, version: String) {
            self.name = name
            self.version = version
        }
    }

    public struct Package: Sendable, Equatable {
        public var name: String
        public var version: String
        public var architecture: String
        public var sourceName: String
        public var sourceVersion: String
        /// The `Maintainer:` field, e.g. `GNU Libc Maintainers <debian-glibc@lists.debian.org>`.
        public var maintainer: String?
        /// The sha256 of the .deb, when the build verified it (source.xml's `<fullpkgs>`).
        public var sha256: String?
        /// Licence short names from the package's copyright file (DEP-5 or heuristics), in their order there.
        public var licences: [String]
        /// Indices into `SBOM.packages` of the installed packages this one depends on.
        public var dependencies: [Int]

        public var purl: String { PackageURL.deb(name: name, version: version, architecture: architecture) }
        public var sourcePurl: String { PackageURL.deb(name: sourceName, version: sourceVersion, architecture: "source") }
    }

    public var projectName: String
    public var projectVersion: String
    public var projectDescription: String?
    public var tools: [Tool]
    /// The build's clamp for file times (SOURCE_DATE_EPOCH or the newest package), the documents' timestamp.
    public var epoch: Int
    public var packages: [Package]

    /// The SBOM of installed packages: `relations` resolved among them, `sha256` of each from source.xml and
    /// `licences` by package name. Packages are sorted by name and architecture.
    public init(projectName: String, projectVersion: String, projectDescription: String?, tools: [Tool], epoch: Int,
                installed: [InstalledPackage], relations: [PackageRelations], sha256: (InstalledPackage) -> String?,
                licences: [String: [String]]) {
        self.projectName = projectName
        self.projectVersion = projectVersion
        self.projectDescription = projectDescription
        self.tools = tools
        self.epoch = epoch
        let installed = installed.sorted { ($0.name, $0.architecture) < ($1.name, $1.architecture) }
        let position = Dictionary(installed.enumerated().map { ("\($0.element.name) \($0.element.architecture)", $0.offset) }) { first, _ in first }
        // Relations of packages that dpkg lists as installed, in the order of `installed`.
        let related = relations.filter { position["\($0.name) \($0.architecture)"] != nil }
        let resolver = InstalledRelationResolver(related)
        var dependencies = [[Int]](repeating: [], count: installed.count)
        var maintainers = [String?](repeating: nil, count: installed.count)
        for (index, relation) in related.enumerated() {
            guard let at = position["\(relation.name) \(relation.architecture)"] else { continue }
            maintainers[at] = relation.maintainer
            dependencies[at] = resolver.dependencies(of: index).compactMap { position["\(related[$0].name) \(related[$0].architecture)"] }.sorted()
        }
        packages = installed.enumerated().map { index, package in
            Package(name: package.name, version: package.version, architecture: package.architecture, sourceName: package.sourceName,
                    sourceVersion: package.sourceVersion, maintainer: maintainers[index], sha256: sha256(package),
                    licences: licences[package.name] ?? [], dependencies: dependencies[index])
        }
    }

    /// Packages whose .deb digest the build does not know.
    public var packagesWithoutDigest: [String] { packages.filter { $0.sha256 == nil }.map(\.name) }

    /// The fixed time as RFC 3339 in UTC: `2024-05-01T12:00:00Z`.
    public var timestamp: String {
        var seconds = time_t(epoch)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    /// A UUID made from the document's content (the project, the time and every purl with its digest), so
    /// that two identical builds give the same serial number: the first 16 bytes of a sha256, with the
    /// version and variant bits set as RFC 4122 asks of a name-based UUID.
    public var contentUUID: String {
        var text = "\(projectName)\n\(projectVersion)\n\(epoch)\n"
        for package in packages { text += "\(package.purl) \(package.sha256 ?? "-")\n" }
        var bytes = Array(HavelCore.SHA256.hash(Array(text.utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0f) | 0x50
        bytes[8] = (bytes[8] & 0x3f) | 0x80
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let parts = [hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4), hex.dropFirst(16).prefix(4), hex.dropFirst(20)]
        return parts.joined(separator: "-")
    }
}

/// Package URLs (purl) of Debian packages, as the purl specification's `deb` type writes them.
public enum PackageURL {
    /// `pkg:deb/debian/NAME@VERSION?arch=ARCH`: the name lowercased, the version with its epoch kept
    /// (`1:2.4-1`, as the type's examples write it), each part percent-encoded except the unreserved
    /// characters and `:` (which the specification never encodes).
    public static func deb(name: String, version: String, architecture: String) -> String {
        var purl = "pkg:deb/debian/\(encode(name.lowercased()))@\(encode(version))"
        if !architecture.isEmpty { purl += "?arch=\(encode(architecture))" }
        return purl
    }

    static func encode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let character = Character(Unicode.Scalar(byte))
            if byte < 0x80 && (character.isLetter || character.isNumber || "-._~:".contains(character)) {
                out.append(character)
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}

/// Debian's short licence names (the copyright-format's list and what the heuristics give) as SPDX.
public enum SPDXLicence: Sendable, Equatable {
    /// An SPDX licence identifier.
    case id(String)
    /// No SPDX identifier: the name as written (`LicenseRef-` in SPDX documents).
    case named(String)

    public static func map(_ debianName: String) -> SPDXLicence {
        let key = debianName.trimmingWhitespace().lowercased()
        if let id = table[key] { return .id(id) }
        return .named(debianName.trimmingWhitespace())
    }

    /// Lowercased Debian short names → SPDX identifiers. Names with an exception (`GPL-2+ with OpenSSL
    /// exception`), bare families (`GPL`, `BSD`) and `public-domain` are not here: they stay named.
    static let table: [String: String] = {
        var table: [String: String] = [:]
        for family in ["GPL", "LGPL", "AGPL", "GFDL"] {
            let versions = ["GPL": ["1", "2", "3"], "LGPL": ["2", "2.1", "3"], "AGPL": ["1", "3"], "GFDL": ["1.1", "1.2", "1.3"]][family]!
            for version in versions {
                let spdx = version.contains(".") ? version : version + ".0"
                table["\(family)-\(version)".lowercased()] = "\(family)-\(spdx)-only"
                table["\(family)-\(version)+".lowercased()] = "\(family)-\(spdx)-or-later"
                table["\(family)-\(spdx)".lowercased()] = "\(family)-\(spdx)-only"
                table["\(family)-\(spdx)+".lowercased()] = "\(family)-\(spdx)-or-later"
            }
        }
        let named: [(String, String)] = [
            ("Apache-2", "Apache-2.0"), ("Apache-2.0", "Apache-2.0"), ("Apache-1.1", "Apache-1.1"), ("Apache-1.0", "Apache-1.0"),
            ("Artistic", "Artistic-1.0"), ("Artistic-1.0", "Artistic-1.0"), ("Artistic-2.0", "Artistic-2.0"),
            ("BSD-2-clause", "BSD-2-Clause"), ("BSD-3-clause", "BSD-3-Clause"), ("BSD-4-clause", "BSD-4-Clause"),
            ("ISC", "ISC"), ("Expat", "MIT"), ("MIT", "MIT"), ("X11", "X11"), ("Zlib", "Zlib"), ("curl", "curl"),
            ("CC0", "CC0-1.0"), ("CC0-1.0", "CC0-1.0"), ("CC-BY-3.0", "CC-BY-3.0"), ("CC-BY-4.0", "CC-BY-4.0"),
            ("CC-BY-SA-3.0", "CC-BY-SA-3.0"), ("CC-BY-SA-4.0", "CC-BY-SA-4.0"),
            ("MPL-1.1", "MPL-1.1"), ("MPL-2.0", "MPL-2.0"), ("EPL-1.0", "EPL-1.0"), ("EPL-2.0", "EPL-2.0"),
            ("CDDL-1.0", "CDDL-1.0"), ("BSL-1.0", "BSL-1.0"), ("Boost-1.0", "BSL-1.0"), ("Python-2.0", "Python-2.0"),
            ("PSF-2", "PSF-2.0"), ("OpenSSL", "OpenSSL"), ("FSFAP", "FSFAP"), ("FSFUL", "FSFUL"), ("FSFULLR", "FSFULLR"),
            ("Unicode-DFS-2016", "Unicode-DFS-2016"), ("WTFPL", "WTFPL"), ("ZPL-2.1", "ZPL-2.1"), ("OFL-1.1", "OFL-1.1"),
            ("Sleepycat", "Sleepycat"), ("LPPL-1.3c", "LPPL-1.3c"), ("MIT-0", "MIT-0"), ("Beerware", "Beerware"), ("Latex2e", "Latex2e"),
            ("BSD-4-clause-UC", "BSD-4-Clause-UC"), ("GFDL-NIV-1.3", "GFDL-1.3-no-invariants-only"), ("GFDL-NIV-1.3+", "GFDL-1.3-no-invariants-or-later"), ("0BSD", "0BSD"), ("Unlicense", "Unlicense"),
        ]
        for (debian, spdx) in named { table[debian.lowercased()] = spdx }
        return table
    }()
}
