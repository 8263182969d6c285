@testable import Debian
import Foundation
import Testing

let samplePackages = """
Package: bash
Source: bash (5.2.15-2)
Version: 5.2.15-2+b8
Installed-Size: 6464
Maintainer: Matthias Klose <doko@debian.org>
Architecture: arm64
Depends: base-files (>= 2.1.12), debianutils (>= 5.6-0.1)
Description: GNU Bourne Again SHell
Multi-Arch: foreign
Description-md5: 3522aa7b4374048d6450e348a5bb45d9
Essential: yes
Section: shells
Priority: required
Filename: pool/main/b/bash/bash_5.2.15-2+b8_arm64.deb
Size: 1459880
MD5sum: 6a4e2a5b2d0ba9bd5bdc5f7a06c0e3d2
SHA256: 8D0F2A6F6A1C1B7E2F0E5E0A3F9C1C2B3A4D5E6F708192A3B4C5D6E7F8091A2B

Package: debconf
Version: 1.5.82
Installed-Size: 520
Maintainer: Debconf Developers <debconf-devel@lists.alioth.debian.org>
Architecture: all
Description: Debian configuration management system
Filename: pool/main/d/debconf/debconf_1.5.82_all.deb
SHA256: 74ab2da2fa0e1e4c1d3e5d9e4ff1b6b0a5f7c1d2e3f4a5b6c7d8e9f0a1b2c3d4

Package: no-version
Architecture: all

"""

@Suite struct PackagesIndexTests {
    @Test func parsesStanzas() {
        let packages = PackagesIndex.parse(samplePackages, origin: "mirror.example/debian bookworm main")
        #expect(packages.count == 2)
        let bash = packages[0]
        #expect(bash.name == "bash")
        #expect(bash.version == "5.2.15-2+b8")
        #expect(bash.architecture == "arm64")
        #expect(bash.filename == "pool/main/b/bash/bash_5.2.15-2+b8_arm64.deb")
        #expect(bash.size == 1_459_880)
        #expect(bash.sha256 == "8d0f2a6f6a1c1b7e2f0e5e0a3f9c1c2b3a4d5e6f708192a3b4c5d6e7f8091a2b")
        #expect(bash.sourceName == "bash")
        #expect(bash.sourceVersion == "5.2.15-2")
        #expect(bash.origin == "mirror.example/debian bookworm main")

        let debconf = packages[1]
        #expect(debconf.size == nil)
        #expect(debconf.sourceName == "debconf")
        #expect(debconf.sourceVersion == "1.5.82")
    }

    @Test(arguments: [
        ("host.example_debian_dists_bookworm_main_binary-arm64_Packages", "host.example/debian bookworm main"),
        ("mirror.example_debian-security_dists_bookworm-security_main_binary-armhf_Packages",
         "mirror.example/debian-security bookworm-security main"),
        ("mirror.example:8080_my%5frepo_debian_dists_stable_contrib_binary-amd64_Packages",
         "mirror.example:8080/my_repo/debian stable contrib"),
        ("mirror.example_debian_dists_bookworm_main_debian-installer_binary-arm64_Packages",
         "mirror.example/debian bookworm main/debian-installer"),
        ("_srv_repo_dists_bookworm_main_binary-arm64_Packages", "/srv/repo bookworm main"),
        ("_repo_._Packages", "/repo"),
        ("/var/lib/apt/lists/ftp.example_dists_sid_main_binary-all_Packages", "ftp.example sid main"),
    ])
    func originFromListFileName(name: String, origin: String) {
        #expect(PackagesIndex.origin(listFileName: name) == origin)
    }

    @Test func readListsSkipsCompressedAndOtherFiles() throws {
        let tree = try TemporaryTree()
        let lists = "var/lib/apt/lists/"
        try tree.write(lists + "host.example_debian_dists_bookworm_main_binary-arm64_Packages", samplePackages)
        try tree.write(lists + "host.example_debian_dists_bookworm-updates_main_binary-arm64_Packages", """
        Package: tzdata
        Version: 2025b-0+deb12u1
        Architecture: all
        Filename: pool/main/t/tzdata/tzdata_2025b-0+deb12u1_all.deb
        SHA256: 00ff

        """)
        try tree.write(lists + "host.example_debian_dists_bookworm_main_binary-armhf_Packages.lz4", "not text")
        try tree.write(lists + "host.example_debian_dists_bookworm_InRelease",
                       "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nLabel: Debian\nCodename: bookworm\n")
        try tree.write(lists + "lock", "")

        let packages = try PackagesIndex.readLists(root: tree.path)
        #expect(packages.map(\.name) == ["tzdata", "bash", "debconf"])
        #expect(packages[0].origin == "host.example/debian bookworm-updates main")
        #expect(packages[1].origin == "host.example/debian bookworm main")
        // ELBE's fullpkgs fields: the .deb's MD5 and its Release's Origin and Codename (none without a Release).
        #expect(packages[1].md5 == "6a4e2a5b2d0ba9bd5bdc5f7a06c0e3d2")
        #expect(packages[1].releaseOrigin == "Debian" && packages[1].releaseName == "bookworm")
        #expect(packages[0].releaseOrigin == nil && packages[0].md5 == nil)
    }

    /// Reading only some names gives exactly the full parse's stanzas of those names, whatever the spacing; a stanza
    /// that does not begin with Package: is parsed, not guessed at.
    @Test func onlyTheNamedStanzasAreReadAndNoneIsLost() {
        let text = "Package: bash\nVersion: 5.2\nArchitecture: arm64\n\n\n"
            + "Package:   less  \nVersion: 590\nArchitecture: arm64\nDescription: pager\n more text\n\n"
            + "Version: 1.0\nPackage: late\nArchitecture: all\n\n"
            + "Package: bash-completion\nVersion: 2.11\nArchitecture: all\n\n"
            + "Package: zlib1g\nVersion: 1.2\nArchitecture: arm64"
        let bytes = Array(text.utf8)
        let all = PackagesIndex.parse(text, origin: "o")
        #expect(all.map(\.name) == ["bash", "less", "late", "bash-completion", "zlib1g"])
        for names: Set<String> in [["bash"], ["less", "zlib1g"], ["late"], ["bash-completion", "nothing"], []] {
            let some = PackagesIndex.parse(PackagesIndex.stanzas(of: bytes, named: names), origin: "o")
            // "late" starts with Version:, so it is always parsed (and kept by the caller's own lookup).
            #expect(some == all.filter { names.contains($0.name) || $0.name == "late" }, "\(names)")
        }
    }

    @Test func readListsWithoutListsDirectoryIsEmpty() throws {
        let tree = try TemporaryTree()
        #expect(try PackagesIndex.readLists(root: tree.path).isEmpty)
    }

    @Test func indexAndLookup() {
        var packages = PackagesIndex.parse(samplePackages, origin: "first")
        packages += PackagesIndex.parse(samplePackages, origin: "second")
        let index = PackagesIndex.index(packages)
        #expect(index.count == 2)
        #expect(index["bash 5.2.15-2+b8 arm64"]?.origin == "first")
        #expect(index["debconf 1.5.82 all"] != nil)
        #expect(PackagesIndex.lookup(index, name: "debconf", version: "1.5.82", architecture: "arm64")?.name == "debconf")
        #expect(PackagesIndex.lookup(index, name: "bash", version: "5.2.15-2+b8", architecture: "arm64") != nil)
        #expect(PackagesIndex.lookup(index, name: "bash", version: "5.2.15-2+b8", architecture: "armhf") == nil)
        #expect(PackagesIndex.lookup(index, name: "bash", version: "5.2.15-2", architecture: "arm64") == nil)
    }
}
