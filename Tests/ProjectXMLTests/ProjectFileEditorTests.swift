// Tests for ProjectFileEditor: the in-place edits of ELBE's editing commands keep every byte they do not change.
import HavelCore
@testable import ProjectXML
import Testing

@Suite struct ProjectFileEditorTests {
    static let project = """
        <?xml version="1.0" encoding="UTF-8"?>
        <!-- the board's project; keep this comment -->
        <ns0:RootFileSystem xmlns:ns0="https://www.linutronix.de/projects/Elbe" xmlns="https://www.linutronix.de/projects/Elbe" created="2009-05-20T08:50:56" revision='6'>
        \t<project>
        \t\t<name>board</name>
        \t</project>
        \t<target>
        \t\t<hostname>board</hostname>
        \t\t<pkg-list>
        \t\t\t<pkg>bash</pkg>
        \t\t\t<!-- tools -->
        \t\t\t<pkg version="1.2*">busybox</pkg>
        \t\t</pkg-list>
        \t</target>
        </ns0:RootFileSystem>

        """

    func editor(_ text: String = project) throws -> ProjectFileEditor {
        try ProjectFileEditor(bytes: Array(text.utf8), file: "board.xml")
    }

    @Test func addAppendsNewPackagesAfterTheLastOneWithItsIndentation() throws {
        var edit = try editor()
        let added = try edit.addPackages(["openssh-server", "bash", "vim", "vim"])
        #expect(added == ["openssh-server", "vim"])
        let expected = Self.project.replacingOccurrences(
            of: "\t\t\t<pkg version=\"1.2*\">busybox</pkg>\n",
            with: "\t\t\t<pkg version=\"1.2*\">busybox</pkg>\n\t\t\t<pkg>openssh-server</pkg>\n\t\t\t<pkg>vim</pkg>\n")
        #expect(edit.text == expected)
    }

    @Test func addOfListedPackagesChangesNothing() throws {
        var edit = try editor()
        #expect(try edit.addPackages(["busybox"]).isEmpty)
        #expect(edit.text == Self.project)
    }

    @Test func addMakesAPkgListAtTheEndOfTheTarget() throws {
        let without = """
            <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
              <target>
                <hostname>board</hostname>
              </target>
            </RootFileSystem>
            """
        var edit = try editor(without)
        try edit.addPackages(["less"])
        #expect(edit.text == """
            <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
              <target>
                <hostname>board</hostname>
                <pkg-list>
                  <pkg>less</pkg>
                </pkg-list>
              </target>
            </RootFileSystem>
            """)
    }

    @Test func addFillsAnEmptyOrSelfClosedPkgList() throws {
        for list in ["<pkg-list/>", "<pkg-list >\n    </pkg-list>", "<pkg-list><!-- none yet --></pkg-list>"] {
            let text = "<RootFileSystem xmlns=\"https://www.linutronix.de/projects/Elbe\">\n  <target>\n    \(list)\n  </target>\n</RootFileSystem>\n"
            var edit = try editor(text)
            try edit.addPackages(["less"])
            #expect(edit.document.root.firstElement(named: "target")?.firstElement(named: "pkg-list")?.elements.map(\.text) == ["less"])
            #expect(edit.text.contains("\n      <pkg>less</pkg>\n    </pkg-list>\n  </target>"), "\(list) became \(edit.text)")
        }
    }

    @Test func addKeepsWindowsLineEnds() throws {
        let crlf = Self.project.replacingOccurrences(of: "\n", with: "\r\n")
        var edit = try editor(crlf)
        try edit.addPackages(["vim"])
        #expect(edit.text == crlf.replacingOccurrences(of: "busybox</pkg>\r\n", with: "busybox</pkg>\r\n\t\t\t<pkg>vim</pkg>\r\n"))
    }

    @Test func addKeepsThePrefixOfThePkgList() throws {
        let prefixed = "<e:RootFileSystem xmlns:e=\"https://www.linutronix.de/projects/Elbe\"><e:target><e:pkg-list><e:pkg>bash</e:pkg></e:pkg-list></e:target></e:RootFileSystem>"
        var edit = try editor(prefixed)
        try edit.addPackages(["less"])
        let pkgs = edit.document.root.firstElement(named: "target")?.firstElement(named: "pkg-list")?.elements ?? []
        #expect(pkgs.map(\.name.namespace) == [XMLNamespace.elbe, XMLNamespace.elbe])
        #expect(pkgs.map(\.text) == ["bash", "less"])
    }

    @Test func addRefusesWhatItCannotDo() throws {
        var edit = try editor()
        #expect(throws: HavelError.self) { try edit.addPackages(["Bad Name"]) }
        #expect(throws: HavelError.self) { try edit.addPackages(["x\"><evil/>"]) }
        let initvmOnly = "<RootFileSystem xmlns=\"https://www.linutronix.de/projects/Elbe\">\n  <initvm/>\n</RootFileSystem>"
        var vm = try editor(initvmOnly)
        let error = #expect(throws: HavelError.self) { try vm.addPackages(["less"]) }
        #expect(error?.location?.line == 1)
        #expect(error?.message.contains("has no <target>") == true)
        let included = """
            <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" xmlns:xi="http://www.w3.org/2003/XInclude">
              <target>
                <xi:include href="pkgs.xml"/>
              </target>
            </RootFileSystem>
            """
        var withInclude = try editor(included)
        let includeError = #expect(throws: HavelError.self) { try withInclude.addPackages(["less"]) }
        #expect(includeError?.location?.line == 3)
        #expect(withInclude.text == included)
        #expect(throws: HavelError.self) { _ = try ProjectFileEditor(bytes: Array("<project/>".utf8), file: "x.xml") }
    }

    @Test func pinReplacesThePkgListWithExactVersions() throws {
        var edit = try editor()
        try edit.pinPackages([(name: "bash", version: "5.2.15-2+b7"), (name: "libc6", version: "2.36-9+deb12u4")])
        let expected = Self.project.replacingOccurrences(
            of: "\t\t\t<pkg>bash</pkg>\n\t\t\t<!-- tools -->\n\t\t\t<pkg version=\"1.2*\">busybox</pkg>\n",
            with: "\t\t\t<pkg version=\"5.2.15-2+b7\">bash</pkg>\n\t\t\t<pkg version=\"2.36-9+deb12u4\">libc6</pkg>\n")
        #expect(edit.text == expected)
    }

    @Test func pinMakesAPkgListWhenThereIsNone() throws {
        let without = "<RootFileSystem xmlns=\"https://www.linutronix.de/projects/Elbe\">\n  <target>\n    <hostname>b</hostname>\n  </target>\n</RootFileSystem>\n"
        var edit = try editor(without)
        try edit.pinPackages([(name: "bash", version: "1:5.2-1")])
        #expect(edit.text == "<RootFileSystem xmlns=\"https://www.linutronix.de/projects/Elbe\">\n  <target>\n    <hostname>b</hostname>\n    <pkg-list>\n      <pkg version=\"1:5.2-1\">bash</pkg>\n    </pkg-list>\n  </target>\n</RootFileSystem>\n")
    }

    @Test func pinRefusesTwoPkgLists() throws {
        let two = "<RootFileSystem xmlns=\"https://www.linutronix.de/projects/Elbe\">\n<target>\n<pkg-list><pkg>a1</pkg></pkg-list>\n<pkg-list><pkg>b1</pkg></pkg-list>\n</target>\n</RootFileSystem>"
        var edit = try editor(two)
        let error = #expect(throws: HavelError.self) { try edit.pinPackages([(name: "bash", version: "1")]) }
        #expect(error?.location?.line == 4)
        #expect(edit.text == two)
    }

    @Test func pinRefusesATargetWithAnInclude() throws {
        let included = """
            <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" xmlns:xi="http://www.w3.org/2003/XInclude">
              <target>
                <pkg-list><pkg>bash</pkg></pkg-list>
                <xi:include href="more-packages.xml"/>
              </target>
            </RootFileSystem>
            """
        var edit = try editor(included)
        let error = #expect(throws: HavelError.self) { try edit.pinPackages([(name: "bash", version: "1")]) }
        #expect(error?.location?.line == 4)
        #expect(error?.message.contains("more-packages.xml") == true)
        #expect(edit.text == included)
    }

    @Test func archiveIsReplacedInPlaceOrMadeAfterTheTarget() throws {
        var edit = try editor()
        #expect(edit.archiveText == nil)
        let long = String(repeating: "QUJD", count: 30)  // 120 characters: two lines
        try edit.setArchive(base64: long)
        #expect(edit.archiveText?.filter { !$0.isWhitespace } == long)
        #expect(edit.text.contains("\t</target>\n\t<archive>\n\(long.prefix(76))\n\(long.dropFirst(76))\n\t</archive>\n</ns0:RootFileSystem>"))
        let once = edit.text
        try edit.setArchive(base64: "WFla")
        #expect(edit.archiveText == "WFla")
        #expect(edit.text == once.replacingOccurrences(of: "\(long.prefix(76))\n\(long.dropFirst(76))", with: "WFla"))
    }
}
