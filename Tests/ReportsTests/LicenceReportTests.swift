import Debian
import Foundation
import ProjectXML
@testable import Reports
import Testing

private let zlibCopyright = """
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: zlib
Source: http://zlib.net/

Files: *
Copyright: 1995-2013 Jean-loup Gailly and Mark Adler
License: Zlib

Files: contrib/minizip/*
Copyright: 1998-2010 Gilles Vollant
           2007-2008 Even Rouault
License: Zlib

License: Zlib
 This software is provided 'as-is', without any express or implied
 warranty.  In no event will the authors be held liable for any damages
 arising from the use of this software.
"""

private let freeForm = """
This is the Debian prepackaged version of the GNU C Library.

    The GNU C Library is free software; you can redistribute it and/or
    modify it under the terms of the GNU Lesser General Public
    License as published by the Free Software Foundation; either
    version 2.1 of the License, or (at your option) any later version.
"""

/// A scratch root filesystem removed at the end of a test.
private final class ScratchRoot {
    let base: String
    let root: String

    init() throws {
        base = FileManager.default.temporaryDirectory.appendingPathComponent("havel-licences-\(UUID().uuidString)").path
        root = base + "/rootfs"
        try FileManager.default.createDirectory(atPath: root + "/usr/share/doc", withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: base) }

    func write(_ path: String, _ data: Data) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: path))
    }

    func copyright(_ package: String, _ text: String) throws {
        try write(root + "/usr/share/doc/\(package)/copyright", Data(text.utf8))
    }

    func link(_ path: String, to target: String) throws {
        try FileManager.default.createSymbolicLink(atPath: root + "/" + path, withDestinationPath: target)
    }
}

@Suite struct LicenceReportTests {
    @Test func textConcatenatesSortedWithHeaders() {
        let entries = [
            LicenceEntry(package: "zlib1g", copyright: CopyrightParser.parse(zlibCopyright)),
            LicenceEntry(package: "libfoo", copyright: nil),
            LicenceEntry(package: "libc6", copyright: CopyrightParser.parse(freeForm)),
        ]
        let text = LicenceReport.text(entries)
        let rule = String(repeating: "=", count: 69)
        #expect(text.hasPrefix("\nlibc6:\n\(rule)\n\(freeForm)\n\n"))
        #expect(text.contains("\nlibfoo:\n\(rule)\nno copyright file found\n\n"))
        #expect(text.hasSuffix("\nzlib1g:\n\(rule)\n\(zlibCopyright)\n\n"))
        let order = ["libc6:", "libfoo:", "zlib1g:"].map { text.range(of: "\n" + $0 + "\n")!.lowerBound }
        #expect(order == order.sorted())
    }

    @Test func xmlLayoutMatchesELBE() throws {
        let entries = [
            LicenceEntry(package: "zlib1g", copyright: CopyrightParser.parse(zlibCopyright)),
            LicenceEntry(package: "libc6", copyright: CopyrightParser.parse(freeForm)),
            LicenceEntry(package: "libfoo", copyright: nil),
            LicenceEntry(package: "nolicence", copyright: CopyrightParser.parse("Written by someone.\n")),
        ]
        let xml = LicenceReport.xml(entries)
        #expect(xml.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<pkglicenses>\n"))
        let document = try XMLReader.parse(xml, file: "licence.xml")
        #expect(document.root.name.local == "pkglicenses")
        let packages = document.root.elements(named: "pkglicense")
        #expect(packages.compactMap { $0.attributeValue("name") } == ["libc6", "libfoo", "nolicence", "zlib1g"])

        let libc = packages[0]
        #expect(libc.elements.map(\.name.local) == ["text", "heuristics", "debian_licenses"])
        #expect(libc.firstElement(named: "text")?.text == freeForm)
        #expect(libc.firstElement(named: "debian_licenses")?.elements(named: "license").map(\.text) == ["LGPL-2.1"])

        #expect(packages[1].elements.map(\.name.local) == ["text"])
        #expect(packages[1].firstElement(named: "text")?.text == "no copyright file found")
        #expect(packages[2].elements.map(\.name.local) == ["text"])

        let zlib = packages[3]
        #expect(zlib.elements.map(\.name.local) == ["text", "machinereadable", "debian_licenses", "detailed"])
        #expect(zlib.firstElement(named: "text")?.text == zlibCopyright)
        #expect(zlib.firstElement(named: "debian_licenses")?.elements(named: "license").map(\.text) == ["Zlib"])
        let files = zlib.firstElement(named: "detailed")?.elements(named: "files") ?? []
        #expect(files.count == 2)
        #expect(files.first?.elements.map(\.name.local) == ["glob", "license", "copyright"])
        #expect(files.last?.elements(named: "glob").map(\.text) == ["contrib/minizip/*"])
        #expect(files.last?.firstElement(named: "license")?.text == "Zlib")
        #expect(files.last?.firstElement(named: "copyright")?.text == "1998-2010 Gilles Vollant\n2007-2008 Even Rouault")
    }

    @Test func xmlEscapesAndDropsIllegalCharacters() throws {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            + "Files: a<b>&c\nCopyright: \"Q\" & <A> \u{1}\u{8}\u{C}Inc.\r\nLicense: GPL-2+ or Artistic\n"
        let entries = [LicenceEntry(package: "odd\"&<name>", copyright: CopyrightParser.parse(text))]
        let xml = LicenceReport.xml(entries)
        #expect(xml.contains("<pkglicense name=\"odd&quot;&amp;&lt;name&gt;\">"))
        #expect(xml.contains("<glob>a&lt;b&gt;&amp;c</glob>"))
        #expect(!xml.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" })
        let document = try XMLReader.parse(xml, file: "licence.xml")
        let package = try #require(document.root.firstElement(named: "pkglicense"))
        #expect(package.attributeValue("name") == "odd\"&<name>")
        #expect(package.firstElement(named: "debian_licenses")?.elements.map(\.text) == ["GPL-2+", "Artistic"])
        #expect(package.firstElement(named: "detailed")?.firstElement(named: "files")?.firstElement(named: "license")?.text
            == "GPL-2+ or Artistic")
        #expect(package.firstElement(named: "detailed")?.firstElement(named: "files")?.firstElement(named: "copyright")?.text
            == "\"Q\" & <A> Inc.")
        #expect(LicenceReport.escape("a\r\nb") == "a&#13;\nb")
    }

    @Test func emptyReports() {
        #expect(LicenceReport.text([]) == "")
        #expect(LicenceReport.xml([]) == "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<pkglicenses>\n</pkglicenses>\n")
    }

    @Test func collectReadsCopyrightFilesAndFollowsDocLinks() throws {
        let scratch = try ScratchRoot()
        try scratch.copyright("zlib1g", zlibCopyright)
        try scratch.copyright("cpp", freeForm)
        try scratch.link("usr/share/doc/gcc", to: "cpp")                   // relative doc-dir link, as Debian ships
        try scratch.link("usr/share/doc/libz-alias", to: "/usr/share/doc/zlib1g")  // absolute: inside the tree
        try FileManager.default.createDirectory(atPath: scratch.root + "/usr/share/doc/empty", withIntermediateDirectories: true)
        try scratch.write(scratch.root + "/usr/share/doc/latin1/copyright", Data([0x43, 0x6F, 0x70, 0x79, 0x72, 0x69, 0x67, 0x68, 0x74, 0x20, 0xA9, 0x20, 0x4A, 0xFC, 0x72, 0x67, 0x65, 0x6E]))

        let entries = LicenceReport.collect(root: scratch.root, packages: ["zlib1g", "gcc", "libz-alias", "empty",
                                                                            "missing", "latin1", "zlib1g:arm64"])
        #expect(entries.map(\.package) == ["zlib1g", "gcc", "libz-alias", "empty", "missing", "latin1", "zlib1g:arm64"])
        #expect(entries[0].copyright?.machineReadable == true)
        #expect(entries[0].copyright?.text == zlibCopyright)
        #expect(entries[1].copyright?.text == freeForm)
        #expect(entries[1].copyright?.licenses == ["LGPL-2.1"])
        #expect(entries[2].copyright?.text == zlibCopyright)
        #expect(entries[3].copyright == nil)
        #expect(entries[4].copyright == nil)
        #expect(entries[5].copyright?.text == "Copyright © Jürgen")
        #expect(entries[6].copyright?.text == zlibCopyright)
    }

    @Test func collectNeverReadsOutsideTheRoot() throws {
        let scratch = try ScratchRoot()
        // A file next to the root filesystem that must never be read.
        try scratch.write(scratch.base + "/secret/copyright", Data("host secret".utf8))
        try scratch.link("usr/share/doc/up", to: "../../../../secret")               // climbs above the root
        try scratch.link("usr/share/doc/abs", to: scratch.base + "/secret")          // host path: re-rooted
        try FileManager.default.createDirectory(atPath: scratch.root + "/usr/share/doc/file-link", withIntermediateDirectories: true)
        try scratch.link("usr/share/doc/file-link/copyright", to: "../../../../../secret/copyright")
        try scratch.link("usr/share/doc/loop", to: "loop")

        let entries = LicenceReport.collect(root: scratch.root, packages: ["up", "abs", "file-link", "loop", "..", "../..", ""])
        #expect(entries.allSatisfy { $0.copyright == nil })

        // The same link inside the root resolves there, as in a chroot.
        try FileManager.default.createDirectory(atPath: scratch.root + "/secret", withIntermediateDirectories: true)
        try scratch.write(scratch.root + "/secret/copyright", Data("chroot view".utf8))
        let again = LicenceReport.collect(root: scratch.root, packages: ["up", "file-link"])
        #expect(again.map { $0.copyright?.text } == ["chroot view", "chroot view"])
    }
}
