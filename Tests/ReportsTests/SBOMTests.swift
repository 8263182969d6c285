// Tests of the SBOM model and its two formats: purls, the licence table, the packages assembled from a dpkg
// status with their digests and dependencies, and byte-identical output for identical input.

import Debian
import Foundation
import HavelCore
@testable import Reports
import Testing

private let status = """
Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2
Source: bash (5.2.15-2)
Maintainer: Matthias Klose <doko@debian.org>
Pre-Depends: libc6 (>= 2.36), libtinfo6 (>= 6)
Depends: base-files (>= 2.1.12), debianutils (>= 5.6-0.1)

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u4
Source: glibc
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>

Package: libtinfo6
Status: install ok installed
Architecture: amd64
Version: 6.4-4
Source: ncurses
Maintainer: Craig Small <csmall@debian.org>
Depends: libc6 (>= 2.34)

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 1:12.4+deb12u5
Maintainer: Santiago Vila <sanvila@debian.org>

"""

private func sampleSBOM(epoch: Int = 1_700_000_000) -> SBOM {
    SBOM(projectName: "demo", projectVersion: "1.0", projectDescription: "a demo", tools: [.init(name: "havel", version: "test"), .init(name: "mmdebstrap", version: "1.3.5-7")],
         epoch: epoch, installed: DpkgStatus.parse(status), relations: PackageRelations.parse(status),
         sha256: { $0.name == "libc6" ? nil : String(repeating: "a", count: 64) },
         licences: ["bash": ["GPL-3+"], "libc6": ["LGPL-2.1+", "GPL-2+ with OpenSSL exception", "public-domain"], "base-files": ["GPL", "Expat", "BSD-3-clause"]])
}

private func json(_ value: some Encodable) throws -> [String: Any] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return try #require(JSONSerialization.jsonObject(with: try encoder.encode(value)) as? [String: Any])
}

struct SBOMTests {
    @Test func purlsEncodeAsTheSpecificationSays() {
        #expect(PackageURL.deb(name: "libc6", version: "2.36-9+deb12u4", architecture: "amd64") == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64")
        // The epoch stays in the version, its colon unencoded; names are lowercased; `~` is unreserved.
        #expect(PackageURL.deb(name: "base-files", version: "1:12.4+deb12u5", architecture: "amd64") == "pkg:deb/debian/base-files@1:12.4%2Bdeb12u5?arch=amd64")
        #expect(PackageURL.deb(name: "G++", version: "4:12.2.0-3~bpo1", architecture: "all") == "pkg:deb/debian/g%2B%2B@4:12.2.0-3~bpo1?arch=all")
        #expect(PackageURL.deb(name: "x", version: "1 2/3", architecture: "") == "pkg:deb/debian/x@1%202%2F3")
    }

    @Test func debianLicenceNamesMapToSPDX() {
        #expect(SPDXLicence.map("GPL-2+") == .id("GPL-2.0-or-later"))
        #expect(SPDXLicence.map("GPL-2") == .id("GPL-2.0-only"))
        #expect(SPDXLicence.map("LGPL-2.1+") == .id("LGPL-2.1-or-later"))
        #expect(SPDXLicence.map("lgpl-3") == .id("LGPL-3.0-only"))
        #expect(SPDXLicence.map("BSD-3-clause") == .id("BSD-3-Clause"))
        #expect(SPDXLicence.map("Expat") == .id("MIT"))
        #expect(SPDXLicence.map("Apache-2.0") == .id("Apache-2.0"))
        #expect(SPDXLicence.map("GFDL-1.3+") == .id("GFDL-1.3-or-later"))
        #expect(SPDXLicence.map("public-domain") == .named("public-domain"))
        #expect(SPDXLicence.map("GPL-2+ with OpenSSL exception") == .named("GPL-2+ with OpenSSL exception"))
        #expect(SPDXLicence.map("GPL") == .named("GPL"))
    }

    @Test func packagesCarryDigestsSourcesSuppliersAndResolvedDependencies() throws {
        let sbom = sampleSBOM()
        #expect(sbom.packages.map(\.name) == ["base-files", "bash", "libc6", "libtinfo6"])
        let bash = sbom.packages[1]
        #expect(bash.sourceName == "bash" && bash.sourceVersion == "5.2.15-2")
        #expect(bash.maintainer == "Matthias Klose <doko@debian.org>")
        // debianutils is not installed: skipped, not invented.
        #expect(bash.dependencies.map { sbom.packages[$0].name } == ["base-files", "libc6", "libtinfo6"])
        #expect(sbom.packagesWithoutDigest == ["libc6"])
        #expect(sbom.timestamp == "2023-11-14T22:13:20Z")

        let cdx = try json(CycloneDXDocument(sbom))
        #expect(cdx["specVersion"] as? String == "1.6")
        let components = try #require(cdx["components"] as? [[String: Any]])
        let bashComponent = try #require(components.first { $0["name"] as? String == "bash" })
        #expect(bashComponent["purl"] as? String == "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64")
        #expect((bashComponent["hashes"] as? [[String: String]])?.first?["alg"] == "SHA-256")
        #expect(((bashComponent["supplier"] as? [String: Any])?["name"] as? String) == "Matthias Klose")
        #expect(((bashComponent["licenses"] as? [[String: [String: String]]])?.first?["license"]?["id"]) == "GPL-3.0-or-later")
        let libc = try #require(components.first { $0["name"] as? String == "libc6" })
        #expect(libc["hashes"] == nil)
        let dependencies = try #require(cdx["dependencies"] as? [[String: Any]])
        #expect(dependencies.first { $0["ref"] as? String == bash.purl }?["dependsOn"] as? [String]
                == ["pkg:deb/debian/base-files@1:12.4%2Bdeb12u5?arch=amd64", "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64",
                    "pkg:deb/debian/libtinfo6@6.4-4?arch=amd64"])
        let tools = try #require(((cdx["metadata"] as? [String: Any])?["tools"] as? [String: Any])?["components"] as? [[String: Any]])
        #expect(tools.map { "\($0["name"] ?? "") \($0["version"] ?? "")" } == ["havel test", "mmdebstrap 1.3.5-7"])

        let spdx = try json(SPDXDocument(sbom))
        let packages = try #require(spdx["packages"] as? [[String: Any]])
        #expect(packages.count == 5)
        let libcPackage = try #require(packages.first { $0["name"] as? String == "libc6" })
        #expect(libcPackage["licenseDeclared"] as? String
                == "LGPL-2.1-or-later AND LicenseRef-GPL-2--with-OpenSSL-exception AND LicenseRef-public-domain")
        #expect(libcPackage["supplier"] as? String == "Organization: GNU Libc Maintainers (debian-glibc@lists.debian.org)")
        let extracted = try #require(spdx["hasExtractedLicensingInfos"] as? [[String: Any]])
        #expect(Set(extracted.compactMap { $0["licenseId"] as? String })
                == ["LicenseRef-GPL", "LicenseRef-GPL-2--with-OpenSSL-exception", "LicenseRef-public-domain"])
        let relationships = try #require(spdx["relationships"] as? [[String: String]])
        #expect(relationships.filter { $0["relationshipType"] == "DEPENDS_ON" }.count == 4)
    }

    @Test func identicalInputWritesIdenticalBytes() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        #expect(try encoder.encode(CycloneDXDocument(sampleSBOM())) == encoder.encode(CycloneDXDocument(sampleSBOM())))
        #expect(try encoder.encode(SPDXDocument(sampleSBOM())) == encoder.encode(SPDXDocument(sampleSBOM())))
        // Another time is another document: the serial number and namespace follow the content.
        #expect(sampleSBOM().contentUUID != sampleSBOM(epoch: 1).contentUUID)
        #expect(sampleSBOM().contentUUID.range(of: "^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", options: .regularExpression) != nil)
    }
}
