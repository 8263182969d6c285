// `<pkg arch>`: read into the package list, checked against the architectures Havel knows and the list it is in.
import HavelCore
@testable import ProjectXML
import Testing

@Suite struct PackageArchitectureTests {
    static func project(buildtype: String = "aarch64", pkgList: String, buildimage: String = "", target: String = "") -> String {
        """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>arch</name><version>1</version><buildtype>\(buildtype)</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
            \(buildimage)
          </project>
          <target>
            <hostname>arch</hostname>
            \(target)
            <pkg-list>\(pkgList)</pkg-list>
          </target>
        </RootFileSystem>
        """
    }

    @Test func theTargetsAllAndAForeignArchitectureAreReadAndBuilt() throws {
        let loaded = try ProjectLoader.load(text: Self.project(pkgList: """
            <pkg arch="arm64">zlib1g</pkg><pkg arch="all">netbase</pkg><pkg arch="armhf">libc6</pkg><pkg>less</pkg>
            """), file: "arch.xml", options: .init(strict: true))
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        #expect(loaded.unsupported.isEmpty, "pkg/@arch is built: \(loaded.unsupported)")
        let packages = loaded.project.target.packages
        #expect(packages.map(\.architecture) == ["arm64", "all", "armhf", nil])
        #expect(packages.map { $0.aptName(target: .arm64) } == ["zlib1g", "netbase", "libc6:armhf", "less"])
        #expect(PackageSpec.foreignArchitectures(packages, target: .arm64) == ["armhf"])
    }

    @Test func anUnknownArchitectureIsAnErrorAtItsLine() throws {
        let loaded = try ProjectLoader.load(text: Self.project(pkgList: "<pkg arch=\"x86-64\">zlib1g</pkg>"), file: "arch.xml")
        let error = try #require(loaded.errors.first)
        #expect(error.message.contains("arch \"x86-64\" of package zlib1g is not a Debian architecture Havel knows"), "\(error.message)")
        #expect(error.location?.line == 11, "the <pkg-list> line")
    }

    @Test func aForeignArchitectureOutsideTheTargetsListIsRefused() throws {
        let loaded = try ProjectLoader.load(text: Self.project(
            pkgList: "<pkg>netbase</pkg>", buildimage: "<buildimage><pkg-list><pkg arch=\"amd64\">bzip2</pkg><pkg arch=\"arm64\">xz-utils</pkg></pkg-list></buildimage>"),
                                            file: "arch.xml")
        #expect(loaded.errors.count == 1, "\(loaded.errors)")
        #expect(loaded.errors.first?.message.contains("package bzip2 for amd64 in a list that is installed for arm64") == true, "\(loaded.errors)")
    }

    @Test func multiarchWithAMinimisedTargetIsRefused() throws {
        let loaded = try ProjectLoader.load(text: Self.project(pkgList: "<pkg arch=\"armhf\">libc6</pkg>", target: "<tighten/>"), file: "arch.xml")
        #expect(loaded.errors.first?.message.contains("(multiarch) and <tighten/>") == true, "\(loaded.errors)")
    }
}
