@testable import Debian
import Foundation
import HavelCore
import Testing

/// A temporary directory removed when the value goes out of scope in a test.
final class TemporaryTree {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("havel-debian-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ relative: String, _ text: String) throws {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: true, encoding: .utf8)
    }
}

let sampleStatus = """
Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12988
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: arm64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u10
Depends: libgcc-s1
Conffiles:
 /etc/ld.so.conf.d/aarch64-linux-gnu.conf d4e5a4ad4e9d1a6c1d8a7e4a0d7b0e7c
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
 .
 This package includes shared versions of the standard C library.

# a comment line between stanzas
Package: bash
Essential: yes
Status: install ok installed
Priority: required
Architecture: arm64
Multi-Arch: foreign
Source: bash (5.2.15-2)
Version: 5.2.15-2+b8
Description: GNU Bourne Again SHell
 Bash is an sh-compatible command language interpreter.

Package: libc6
Status: install ok installed
Architecture: armhf
Source: glibc
Version: 2.36-9+deb12u10

Package: oldconf
Status: deinstall ok config-files
Architecture: arm64
Version: 1.0-1

Package: broken
Status: install reinstreq half-configured
Architecture: arm64
Version: 2.0-1

Package: held
Status: hold ok installed
Architecture: all
Version: 3.1-2
\t
Package: halfway
Status: install ok unpacked
Architecture: arm64
Version: 0.9-1

Package: debconf
Status: install ok installed
Architecture: all
Multi-Arch: foreign
Version: 1.5.82
"""

@Suite struct DpkgStatusTests {
    @Test func parsesInstalledPackagesSortedByNameThenArchitecture() {
        let packages = DpkgStatus.parse(sampleStatus)
        #expect(packages.map { "\($0.name):\($0.architecture)" } ==
            ["bash:arm64", "debconf:all", "held:all", "libc6:arm64", "libc6:armhf"])
    }

    @Test func stanzasOfChosenPackagesParseAsTheirOwnStatus() {
        let kept = DpkgStatus.stanzas(of: sampleStatus, packages: ["bash", "libc6"])
        #expect(DpkgStatus.parse(kept).map { "\($0.name):\($0.architecture)" } == ["bash:arm64", "libc6:arm64", "libc6:armhf"])
        #expect(kept.hasSuffix("\n\n") && !kept.contains("Package: debconf"))
        #expect(DpkgStatus.stanzas(of: sampleStatus, packages: []).isEmpty)
    }

    @Test func sourceFieldWithAndWithoutVersion() throws {
        let packages = DpkgStatus.parse(sampleStatus)
        let bash = try #require(packages.first(where: { $0.name == "bash" }))
        #expect(bash.version == "5.2.15-2+b8")
        #expect(bash.sourceName == "bash")
        #expect(bash.sourceVersion == "5.2.15-2")
        #expect(bash.essential)

        let libc = packages.first { $0.name == "libc6" }
        #expect(libc?.sourceName == "glibc")
        #expect(libc?.sourceVersion == "2.36-9+deb12u10")
        #expect(libc?.essential == false)

        let debconf = packages.first { $0.name == "debconf" }
        #expect(debconf?.sourceName == "debconf")
        #expect(debconf?.sourceVersion == "1.5.82")
        #expect(packages.allSatisfy { !$0.autoInstalled })
    }

    @Test func statusWordsDecideWhatIsInstalled() {
        #expect(DpkgStatus.isInstalled(status: "install ok installed"))
        #expect(DpkgStatus.isInstalled(status: "hold ok installed"))
        #expect(DpkgStatus.isInstalled(status: "deinstall ok installed"))
        #expect(!DpkgStatus.isInstalled(status: "install ok unpacked"))
        #expect(!DpkgStatus.isInstalled(status: "deinstall ok config-files"))
        #expect(!DpkgStatus.isInstalled(status: "install reinstreq installed"))
        #expect(!DpkgStatus.isInstalled(status: nil))
        #expect(!DpkgStatus.isInstalled(status: "installed"))
    }

    @Test func continuationLinesAndCarriageReturnsAreTolerated() {
        let text = "Package: a\r\nStatus: install ok installed\r\nVersion: 1\r\nArchitecture: arm64\r\n\r\n"
            + "Package: b\nDescription: x\n more\nStatus: install ok installed\nVersion: 2\nArchitecture: arm64\n"
        #expect(DpkgStatus.parse(text).map(\.name) == ["a", "b"])
        #expect(DpkgStatus.parse(text).first?.version == "1")
        let stanzas = Deb822.parse("Description: short\n long line\n .\n next\n")
        #expect(stanzas.first?["description"] == "short\nlong line\n\nnext")
    }

    @Test func sourceSplitting() {
        #expect(DpkgStatus.splitSource("gcc-12 (12.2.0-14)", package: "libgcc-s1", version: "12.2.0-14") == ("gcc-12", "12.2.0-14"))
        #expect(DpkgStatus.splitSource("util-linux", package: "mount", version: "2.38.1-5") == ("util-linux", "2.38.1-5"))
        #expect(DpkgStatus.splitSource(nil, package: "dash", version: "0.5.12-2") == ("dash", "0.5.12-2"))
        #expect(DpkgStatus.splitSource("  ", package: "dash", version: "0.5.12-2") == ("dash", "0.5.12-2"))
    }

    @Test func readMarksAutoInstalledPackages() throws {
        let tree = try TemporaryTree()
        try tree.write("var/lib/dpkg/status", sampleStatus)
        try tree.write("var/lib/apt/extended_states", """
        Package: libc6
        Architecture: arm64
        Auto-Installed: 1

        Package: bash
        Architecture: arm64
        Auto-Installed: 0

        Package: debconf
        Architecture: arm64
        Auto-Installed: 1

        Package: held
        Auto-Installed: 1

        """)
        let packages = try DpkgStatus.read(root: tree.path + "/")
        let auto = packages.filter(\.autoInstalled).map { "\($0.name):\($0.architecture)" }
        // debconf is arch:all but apt records it under the native architecture; held has no architecture.
        #expect(auto == ["debconf:all", "held:all", "libc6:arm64"])
    }

    @Test func readWithoutExtendedStates() throws {
        let tree = try TemporaryTree()
        try tree.write("var/lib/dpkg/status", sampleStatus)
        #expect(try DpkgStatus.read(root: tree.path).count == 5)
    }

    @Test func readWithoutStatusIsNotFound() throws {
        let tree = try TemporaryTree()
        #expect {
            try DpkgStatus.read(root: tree.path)
        } throws: { error in
            (error as? HavelError)?.code == .notFound
        }
    }
}
