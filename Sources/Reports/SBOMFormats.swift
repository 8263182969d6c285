// SBOMFormats owns the two file formats an `SBOM` is written in: CycloneDX 1.6 JSON (sbom.cdx.json) and
// SPDX 2.3 JSON (sbom.spdx.json), as Encodable values for the sorted-key encoder reports use.

import Foundation
import HavelCore

/// CycloneDX 1.6: the project as `metadata.component` (an operating system), each package a component
/// named by its purl, `dependencies` from the resolved Depends, the tools in `metadata.tools.components`.
public struct CycloneDXDocument: Encodable, Sendable {
    struct Contact: Encodable, Sendable { var name: String?; var email: String? }
    struct Entity: Encodable, Sendable { var name: String; var contact: [Contact]? }
    struct Hash: Encodable, Sendable { var alg: String; var content: String }
    struct Licence: Encodable, Sendable { var id: String?; var name: String? }
    struct LicenceChoice: Encodable, Sendable { var license: Licence }
    struct Property: Encodable, Sendable { var name: String; var value: String }
    struct Ancestor: Encodable, Sendable {
        var type = "library"
        var name: String
        var version: String
        var purl: String
        enum CodingKeys: String, CodingKey { case type, name, version, purl }
    }
    struct Pedigree: Encodable, Sendable { var ancestors: [Ancestor] }
    struct Component: Encodable, Sendable {
        var type: String
        var bomRef: String
        var name: String
        var version: String
        var description: String?
        var supplier: Entity?
        var purl: String?
        var hashes: [Hash]?
        var licenses: [LicenceChoice]?
        var pedigree: Pedigree?
        var properties: [Property]?
        enum CodingKeys: String, CodingKey {
            case type, bomRef = "bom-ref", name, version, description, supplier, purl, hashes, licenses, pedigree, properties
        }
    }
    struct Tools: Encodable, Sendable { var components: [Component] }
    struct Metadata: Encodable, Sendable {
        var timestamp: String
        var tools: Tools
        var component: Component
        var properties: [Property]?
    }
    struct Dependency: Encodable, Sendable { var ref: String; var dependsOn: [String] }

    var bomFormat = "CycloneDX"
    var specVersion = "1.6"
    var serialNumber: String
    var version = 1
    var metadata: Metadata
    var components: [Component]
    var dependencies: [Dependency]

    public static let projectReference = "havel-project"

    public init(_ sbom: SBOM) {
        serialNumber = "urn:uuid:" + sbom.contentUUID
        let root = Component(type: "operating-system", bomRef: Self.projectReference, name: sbom.projectName, version: sbom.projectVersion,
                             description: sbom.projectDescription?.trimmingWhitespace().nilIfEmpty)
        let tools = sbom.tools.map { Component(type: "application", bomRef: "tool:\($0.name)", name: $0.name, version: $0.version) }
        let absent = sbom.packagesWithoutDigest
        metadata = Metadata(timestamp: sbom.timestamp, tools: Tools(components: tools), component: root,
                            properties: absent.isEmpty ? nil : [Property(name: "havel:digests-absent", value: absent.joined(separator: " "))])
        components = sbom.packages.map { package in
            var properties = [Property(name: "havel:source-package", value: "\(package.sourceName) \(package.sourceVersion)")]
            if package.sha256 == nil { properties.append(Property(name: "havel:sha256", value: "absent: the build recorded no verified .deb for it")) }
            return Component(type: package.name.hasPrefix("lib") ? "library" : "application", bomRef: package.purl, name: package.name,
                             version: package.version, supplier: package.maintainer.map(Self.supplier), purl: package.purl,
                             hashes: package.sha256.map { [Hash(alg: "SHA-256", content: $0)] },
                             licenses: package.licences.isEmpty ? nil : Self.licences(package.licences),
                             pedigree: Pedigree(ancestors: [Ancestor(name: package.sourceName, version: package.sourceVersion, purl: package.sourcePurl)]),
                             properties: properties)
        }
        dependencies = [Dependency(ref: Self.projectReference, dependsOn: sbom.packages.map(\.purl))]
            + sbom.packages.map { package in Dependency(ref: package.purl, dependsOn: package.dependencies.map { sbom.packages[$0].purl }) }
    }

    /// `Name <mail>` → name and contact.
    static func supplier(_ maintainer: String) -> Entity {
        let person = Maintainer(maintainer)
        return Entity(name: person.name, contact: person.email.map { [Contact(name: person.name, email: $0)] })
    }

    static func licences(_ names: [String]) -> [LicenceChoice] {
        var seen = Set<String>()
        return names.compactMap { name in
            switch SPDXLicence.map(name) {
            case .id(let id): seen.insert(id).inserted ? LicenceChoice(license: Licence(id: id)) : nil
            case .named(let named): seen.insert(named).inserted ? LicenceChoice(license: Licence(name: named)) : nil
            }
        }
    }
}

/// SPDX 2.3: a document that describes the project's package, which contains every installed package;
/// `DEPENDS_ON` relationships from the resolved Depends; unmapped licences as `LicenseRef-` with their
/// Debian name in `hasExtractedLicensingInfos`.
public struct SPDXDocument: Encodable, Sendable {
    struct CreationInfo: Encodable, Sendable { var created: String; var creators: [String] }
    struct Checksum: Encodable, Sendable { var algorithm: String; var checksumValue: String }
    struct ExternalReference: Encodable, Sendable { var referenceCategory: String; var referenceType: String; var referenceLocator: String }
    struct Package: Encodable, Sendable {
        var SPDXID: String
        var name: String
        var versionInfo: String
        var supplier: String?
        var downloadLocation = "NOASSERTION"
        var filesAnalyzed = false
        var checksums: [Checksum]?
        var licenseConcluded = "NOASSERTION"
        var licenseDeclared: String
        var copyrightText = "NOASSERTION"
        var sourceInfo: String?
        var comment: String?
        var description: String?
        var primaryPackagePurpose: String
        var externalRefs: [ExternalReference]?
    }
    struct Relationship: Encodable, Sendable { var spdxElementId: String; var relationshipType: String; var relatedSpdxElement: String }
    struct ExtractedLicence: Encodable, Sendable { var licenseId: String; var name: String; var extractedText: String }

    var spdxVersion = "SPDX-2.3"
    var dataLicense = "CC0-1.0"
    var SPDXID = "SPDXRef-DOCUMENT"
    var name: String
    var documentNamespace: String
    var creationInfo: CreationInfo
    var documentDescribes: [String]
    var packages: [Package]
    var relationships: [Relationship]
    var hasExtractedLicensingInfos: [ExtractedLicence]?

    static let projectID = "SPDXRef-project"

    public init(_ sbom: SBOM) {
        name = "\(sbom.projectName)-\(sbom.projectVersion)"
        documentNamespace = "https://spdx.org/spdxdocs/\(PackageURL.encode(sbom.projectName))-\(PackageURL.encode(sbom.projectVersion))-\(sbom.contentUUID)"
        creationInfo = CreationInfo(created: sbom.timestamp, creators: sbom.tools.map { "Tool: \($0.name)-\($0.version)" })
        documentDescribes = [Self.projectID]
        let ids = sbom.packages.map(Self.identifier)
        var references = LicenceReferences()
        packages = [Package(SPDXID: Self.projectID, name: sbom.projectName, versionInfo: sbom.projectVersion, licenseDeclared: "NOASSERTION",
                            description: sbom.projectDescription?.trimmingWhitespace().nilIfEmpty, primaryPackagePurpose: "OPERATING-SYSTEM")]
        for (index, package) in sbom.packages.enumerated() {
            packages.append(Package(
                SPDXID: ids[index], name: package.name, versionInfo: package.version,
                supplier: package.maintainer.map { "Organization: " + Maintainer($0).spdxActor },
                checksums: package.sha256.map { [Checksum(algorithm: "SHA256", checksumValue: $0)] },
                licenseDeclared: references.expression(package.licences),
                sourceInfo: "built from the Debian source package \(package.sourceName) \(package.sourceVersion)",
                comment: package.sha256 == nil ? "the .deb's sha256 is absent: the build recorded no verified .deb for it" : nil,
                primaryPackagePurpose: package.name.hasPrefix("lib") ? "LIBRARY" : "APPLICATION",
                externalRefs: [ExternalReference(referenceCategory: "PACKAGE-MANAGER", referenceType: "purl", referenceLocator: package.purl)]))
        }
        relationships = [Relationship(spdxElementId: "SPDXRef-DOCUMENT", relationshipType: "DESCRIBES", relatedSpdxElement: Self.projectID)]
            + ids.map { Relationship(spdxElementId: Self.projectID, relationshipType: "CONTAINS", relatedSpdxElement: $0) }
        for (index, package) in sbom.packages.enumerated() {
            relationships += package.dependencies.map { Relationship(spdxElementId: ids[index], relationshipType: "DEPENDS_ON", relatedSpdxElement: ids[$0]) }
        }
        let extracted = references.used.sorted { $0.key < $1.key }.map { name, id in
            ExtractedLicence(licenseId: id, name: name,
                             extractedText: "The licence a Debian copyright file names \"\(name)\"; its text is in the package's /usr/share/doc/<package>/copyright.")
        }
        hasExtractedLicensingInfos = extracted.isEmpty ? nil : extracted
    }

    /// `SPDXRef-` and the package name and architecture in the characters SPDX allows, then 8 hex digits of the
    /// purl's sha256 so that names that differ only in other characters (`g++`, `g--`) stay apart.
    static func identifier(_ package: SBOM.Package) -> String {
        let safe = String("\(package.name)-\(package.architecture)".map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") ? $0 : "-" })
        let digest = HavelCore.SHA256.hash(Array(package.purl.utf8)).prefix(4).map { String(format: "%02x", $0) }.joined()
        return "SPDXRef-deb-\(safe)-\(digest)"
    }

    /// Licence names → an SPDX expression (`AND` of each name: a package's files are under all of them), and
    /// the `LicenseRef-` identifiers given to names without an SPDX identifier.
    struct LicenceReferences {
        var used: [String: String] = [:]

        mutating func expression(_ names: [String]) -> String {
            var terms: [String] = []
            for name in names {
                let term: String
                switch SPDXLicence.map(name) {
                case .id(let id): term = id
                case .named(let named): term = reference(named)
                }
                if !terms.contains(term) { terms.append(term) }
            }
            return terms.isEmpty ? "NOASSERTION" : terms.joined(separator: " AND ")
        }

        mutating func reference(_ name: String) -> String {
            if let id = used[name] { return id }
            let base = "LicenseRef-" + String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") ? $0 : "-" })
            var id = base, suffix = 2
            while used.values.contains(id) { id = "\(base)-\(suffix)"; suffix += 1 }
            used[name] = id
            return id
        }
    }
}

/// A Debian `Maintainer:` value, `Name <mail>`.
struct Maintainer {
    var name: String
    var email: String?

    init(_ field: String) {
        let text = field.trimmingWhitespace()
        if let open = text.lastIndex(of: "<"), let close = text.lastIndex(of: ">"), open < close {
            name = text[..<open].trimmingWhitespace()
            email = String(text[text.index(after: open)..<close]).trimmingWhitespace().nilIfEmpty
            if name.isEmpty { name = email ?? text }
        } else {
            name = text
            email = nil
        }
    }

    /// SPDX's actor form, `Name (mail)`, with parentheses in the name dropped so that the mail stays readable.
    var spdxActor: String {
        let cleaned = name.filter { $0 != "(" && $0 != ")" }
        return email.map { "\(cleaned) (\($0))" } ?? cleaned
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
