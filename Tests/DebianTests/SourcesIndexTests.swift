// Tests of the source CD's text handling: the Sources index, a Release's SHA256 list, a .dsc's
// Checksums-Sha256, the sources a dpkg status asks for, and the checks that refuse a tampered file.

@testable import Debian
import Foundation
import HavelCore
import Testing

@Suite struct SourcesIndexTests {
    static func sha256(_ text: String) -> String {
        SHA256.hash(Array(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static let orig = "the upstream sources\n", debian = "the debian directory\n"

    static var dsc: String {
        """
        -----BEGIN PGP SIGNED MESSAGE-----
        Hash: SHA512

        Format: 3.0 (quilt)
        Source: hello
        Version: 2.10-3
        Checksums-Sha256:
         \(sha256(orig)) \(orig.utf8.count) hello_2.10.orig.tar.gz
         \(sha256(debian)) \(debian.utf8.count) hello_2.10-3.debian.tar.xz
        Files:
         00000000000000000000000000000000 21 hello_2.10.orig.tar.gz

        -----BEGIN PGP SIGNATURE-----

        iQIzBAEBCgAdFiEE
        -----END PGP SIGNATURE-----

        """
    }

    static var sources: String {
        """
        Package: hello
        Binary: hello
        Version: 2.10-3
        Directory: pool/main/h/hello
        Checksums-Sha256:
         \(sha256(dsc)) \(dsc.utf8.count) hello_2.10-3.dsc
         \(sha256(orig)) \(orig.utf8.count) hello_2.10.orig.tar.gz
         \(sha256(debian)) \(debian.utf8.count) hello_2.10-3.debian.tar.xz

        Package: evil
        Version: 1
        Directory: pool/main/e/../../../etc
        Checksums-Sha256:
         \(sha256(dsc)) 10 evil_1.dsc

        Package: sneaky
        Version: 1
        Directory: pool/main/s/sneaky
        Checksums-Sha256:
         \(sha256(dsc)) 10 sneaky_1.dsc
         \(sha256(orig)) 10 ../../escape.tar.gz

        """
    }

    static var digests: [String: String] {
        ["hello_2.10-3.dsc": sha256(dsc), "hello_2.10.orig.tar.gz": sha256(orig), "hello_2.10-3.debian.tar.xz": sha256(debian)]
    }

    func hello() throws -> IndexedSource {
        try #require(SourcesIndex.parse(Self.sources).first { $0.name == "hello" })
    }

    @Test func theIndexGivesDirectoryAndChecksums() throws {
        let parsed = SourcesIndex.parse(Self.sources)
        #expect(parsed.map(\.name) == ["hello", "evil", "sneaky"])
        let hello = try hello()
        #expect(hello.version == "2.10-3")
        #expect(hello.directory == "pool/main/h/hello")
        #expect(hello.files.map(\.name) == ["hello_2.10-3.dsc", "hello_2.10.orig.tar.gz", "hello_2.10-3.debian.tar.xz"])
        #expect(hello.files[1] == SourceFile(name: "hello_2.10.orig.tar.gz", size: 21, sha256: Self.sha256(Self.orig)))
        #expect(hello.dsc?.name == "hello_2.10-3.dsc")
        #expect(try SourcesIndex.checked(hello) == hello)
    }

    @Test func namesThatLeaveThePoolAreRefused() throws {
        let parsed = SourcesIndex.parse(Self.sources)
        for name in ["evil", "sneaky"] {
            let source = try #require(parsed.first { $0.name == name })
            let error = #expect(throws: HavelError.self) { try SourcesIndex.checked(source) }
            #expect(error?.code == .invalidArgument)
        }
        for bad in ["", ".", "..", "a/b", "-rf"] { #expect(!SourcesIndex.isPlainFileName(bad), "\(bad)") }
        #expect(SourcesIndex.isPlainFileName("gcc-12_12.2.0.orig.tar.xz"))
        #expect(!SourcesIndex.isPoolDirectory("/pool/main/h/hello"))
        #expect(!SourcesIndex.isPoolDirectory("pool//h"))
        #expect(SourcesIndex.isPoolDirectory("pool/main/h/hello"))
    }

    @Test func aSignedDscGivesItsChecksums() {
        let files = SourcesIndex.dscFiles(Self.dsc)
        #expect(files.map(\.name) == ["hello_2.10.orig.tar.gz", "hello_2.10-3.debian.tar.xz"])
        #expect(files.first?.sha256 == Self.sha256(Self.orig))
        // The unsigned body gives the same; a .dsc without the field gives none.
        #expect(SourcesIndex.dscFiles("Source: hello\nChecksums-Sha256:\n \(Self.sha256(Self.orig)) 21 hello_2.10.orig.tar.gz\n").count == 1)
        #expect(SourcesIndex.dscFiles("Source: hello\nFiles:\n 0 1 x\n").isEmpty)
    }

    @Test func untouchedFilesPass() throws {
        try SourcesIndex.verify(try hello(), dscText: Self.dsc, digests: Self.digests)
    }

    @Test func aTamperedFileIsRefusedByName() throws {
        var digests = Self.digests
        digests["hello_2.10.orig.tar.gz"] = Self.sha256("the upstream sources, with a back door\n")
        let error = #expect(throws: HavelError.self) { try SourcesIndex.verify(try hello(), dscText: Self.dsc, digests: digests) }
        #expect(error?.message.contains("hello_2.10.orig.tar.gz") == true, "\(String(describing: error))")
        #expect(error?.message.contains("hello_2.10-3.debian") == false)
    }

    @Test func aDscThatDisagreesWithTheIndexIsRefused() throws {
        // The .dsc names another digest for the debian tarball than the index (and the file) have.
        let other = Self.dsc.replacingOccurrences(of: Self.sha256(Self.debian), with: Self.sha256("something else\n"))
        var source = try hello()
        source.files[0].sha256 = Self.sha256(other)
        var digests = Self.digests
        digests["hello_2.10-3.dsc"] = Self.sha256(other)
        let error = #expect(throws: HavelError.self) { try SourcesIndex.verify(source, dscText: other, digests: digests) }
        #expect(error?.message.contains("hello_2.10-3.debian.tar.xz") == true, "\(String(describing: error))")
        // A .dsc that lists a file the index does not is refused by that name.
        let extra = Self.dsc.replacingOccurrences(of: " hello_2.10-3.debian.tar.xz", with: " hello_2.10-3.debian.tar.xz\n \(Self.sha256("x")) 1 patch.diff")
        source = try hello()
        source.files[0].sha256 = Self.sha256(extra)
        digests["hello_2.10-3.dsc"] = Self.sha256(extra)
        let unlisted = #expect(throws: HavelError.self) { try SourcesIndex.verify(source, dscText: extra, digests: digests) }
        #expect(unlisted?.message.contains("patch.diff") == true, "\(String(describing: unlisted))")
    }

    @Test func releaseSHA256Section() {
        let release = """
            Origin: Debian
            MD5Sum:
             d41d8cd98f00b204e9800998ecf8427e 0 main/source/Sources.xz
            SHA256:
             \(Self.sha256("a")) 1234 main/binary-arm64/Packages.xz
             \(Self.sha256("b")) 5678 main/source/Sources.xz
            """
        let entries = SourcesIndex.releaseSHA256(release)
        #expect(entries["main/source/Sources.xz"] == SourceFile(name: "main/source/Sources.xz", size: 5678, sha256: Self.sha256("b")))
        #expect(entries.count == 2)
    }

    @Test func theStatusAsksForSourcesAndBuiltUsing() {
        let status = """
            Package: bash
            Status: install ok installed
            Version: 5.2.15-2+b8
            Source: bash (5.2.15-2)

            Package: libgcc-s1
            Status: install ok installed
            Version: 12.2.0-14
            Source: gcc-12

            Package: sash
            Status: install ok installed
            Version: 3.8-5
            Built-Using: glibc (= 2.36-9), zlib (>= 1:1.2)

            Package: gone
            Status: deinstall ok config-files
            Version: 1.0

            """
        let required = SourcesIndex.requiredSources(statusText: status)
        #expect(Set(required.keys) == [SourceReference(name: "bash", version: "5.2.15-2"), SourceReference(name: "gcc-12", version: "12.2.0-14"),
                                       SourceReference(name: "sash", version: "3.8-5"), SourceReference(name: "glibc", version: "2.36-9")])
        #expect(required[SourceReference(name: "glibc", version: "2.36-9")] == ["sash (Built-Using)"])
        #expect(SourcesIndex.builtUsing("gcc-12 (= 12.2.0-14), rustc (= 1.63.0+dfsg1-2)")
                == [SourceReference(name: "gcc-12", version: "12.2.0-14"), SourceReference(name: "rustc", version: "1.63.0+dfsg1-2")])
    }
}
