// source.xml's fullpkgs entries carry ELBE's fields where the apt lists give them: md5, release-origin,
// release-name and the .deb's uri, made from the project's deb lines and the list's origin.

@testable import Build
import Debian
import Foundation
import HavelCore
import ProjectXML
import Testing

@Suite struct SourceDocumentFieldsTests {
    @Test func debLinesGiveTheBaseURLOfEachListOrigin() {
        let urls = ReportWriter.repositoryURLs([
            "deb [signed-by=/k.asc arch=arm64] http://mirror.example/debian/ bookworm main contrib",
            "deb-src http://mirror.example/debian bookworm main",
            "deb https://other.example:8443/debian-security bookworm-security main",
        ])
        #expect(urls["mirror.example/debian bookworm main"] == "http://mirror.example/debian")
        #expect(urls["mirror.example/debian bookworm contrib"] == "http://mirror.example/debian")
        #expect(urls["other.example:8443/debian-security bookworm-security main"] == "https://other.example:8443/debian-security")
        #expect(urls.count == 3)
    }

    @Test func pinnedEntriesWriteTheFieldsTheyHave() throws {
        let loaded = try ProjectLoader.load(text: """
            <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
              <project><name>p</name><version>1</version><buildtype>aarch64</buildtype>
                <mirror><primary_host>mirror.example</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
                <suite>bookworm</suite></project>
              <target><hostname>h</hostname></target>
            </RootFileSystem>
            """, file: "p.xml")
        var bash = PinnedPackage(name: "bash", version: "5.2.15-2+b8", arch: "arm64", sha256: "ab", auto: false,
                                 sourceName: "bash", sourceVersion: "5.2.15-2")
        bash.md5 = "cd"
        bash.releaseOrigin = "Debian"
        bash.releaseName = "bookworm"
        bash.uri = "http://mirror.example/debian/pool/main/b/bash/bash_5.2.15-2+b8_arm64.deb"
        let plain = PinnedPackage(name: "netbase", version: "6.4", arch: "all")
        let text = XMLWriter.write(SourceDocument.pinned(loaded.document, packages: [bash, plain], sourcesList: "", aptPreferences: "", havelVersion: "t"))
        #expect(text.contains(#"md5="cd" sha256="ab" release-origin="Debian" release-name="bookworm" uri="http://mirror.example/debian/pool/main/b/bash/bash_5.2.15-2+b8_arm64.deb""#), "\(text)")
        let netbase = try #require(text.split(separator: "\n").first { $0.contains(">netbase<") })
        #expect(!netbase.contains("md5") && !netbase.contains("uri="), "\(netbase)")
        // Read back as a project, the entries keep what pin-versions and check-updates use.
        let again = try ProjectLoader.load(text: text, file: "source.xml")
        #expect(again.isValid, "\(again.errors)")
        #expect(again.project.fullPackages.map(\.name) == ["bash", "netbase"])
        #expect(again.project.fullPackages.first?.sha256 == "ab")
    }
}
