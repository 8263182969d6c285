import HavelCore
@testable import ProjectXML
import Testing

/// `<preseed>` of the project and of the initvm, and the initvm's own settings: decoded, and checked
/// with the file's line and element path.
struct PreseedTests {
    static func file(projectPreseed: String, initvm: String = "") -> String {
        """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          \(initvm)
          <project>
            <name>p</name><version>1</version><buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
            \(projectPreseed)
          </project>
          <target><hostname>h</hostname></target>
        </RootFileSystem>
        """
    }

    static let initvm = """
        <initvm>
            <buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <preference pin="release n=bookworm-backports">500</preference>
            <suite>bookworm</suite>
            <preseed><conf owner="pbuilder" key="pbuilder/mirrorsite" type="string" value="http://MIRROR_HOST/debian"/></preseed>
            <swap-size>2GiB</swap-size>
            <img>raw</img>
          </initvm>
        """

    @Test func answersAreDecodedInOrderForTheTargetAndTheInitVM() throws {
        let text = Self.file(projectPreseed: """
            <preseed>
              <conf owner="tzdata" key="tzdata/Areas" type="select" value="Europe"/>
              <conf owner="locales" key="locales/default_environment_locale" type="select" value="C.UTF-8"/>
            </preseed>
            """, initvm: Self.initvm)
        let loaded = try ProjectLoader.load(text: text, file: "p.xml")
        let firstConfLine = try #require(text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("tzdata/Areas") }) + 1
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        #expect(loaded.project.preseed.map(\.line) == ["tzdata tzdata/Areas select Europe",
                                                       "locales locales/default_environment_locale select C.UTF-8"])
        #expect(DebconfSelection.selections(loaded.project.preseed)
                == "tzdata tzdata/Areas select Europe\nlocales locales/default_environment_locale select C.UTF-8\n")
        #expect(loaded.project.preseed.first?.location?.line == firstConfLine)
        let spec = try #require(loaded.project.initvm)
        #expect(spec.preseed.map(\.line) == ["pbuilder pbuilder/mirrorsite string http://MIRROR_HOST/debian"])
        #expect(spec.preferences == [AptPreference(pin: "release n=bookworm-backports", priority: 500)])
        #expect(spec.swapSize == "2GiB")
        #expect(spec.imageFormat == "raw")
    }

    @Test(arguments: [
        (#"<conf owner="tzdata" key="tzdata/Areas" type="choice" value="Europe"/>"#, "unknown debconf type \"choice\""),
        (#"<conf owner="tz data" key="tzdata/Areas" type="select" value="Europe"/>"#, "the owner \"tz data\" must be one word"),
        (#"<conf owner="tzdata" key="" type="select" value="Europe"/>"#, "the key \"\" must be one word"),
        ("<conf owner=\"tzdata\" key=\"tzdata/Areas\" type=\"string\" value=\"a&#10;b\"/>", "spans lines"),
    ])
    func aBrokenAnswerIsNamedWithItsLine(conf: String, message: String) throws {
        let loaded = try ProjectLoader.load(text: Self.file(projectPreseed: "<preseed>\n" + conf + "\n</preseed>"), file: "p.xml")
        let error = try #require(loaded.errors.first { $0.message.contains(message) }, "\(loaded.errors)")
        #expect(error.location?.line == 8)
        #expect(error.elementPath == "/RootFileSystem/project/preseed/conf[1]")
    }

    @Test(arguments: [
        ("<img>vmdk</img>", "/RootFileSystem/initvm/img", "Havel makes qcow2 or raw"),
        ("<swap-size>lots</swap-size>", "/RootFileSystem/initvm/swap-size", "is not a size"),
        ("<buildtype>vax</buildtype>", "/RootFileSystem/initvm/buildtype", "not an architecture Havel knows"),
    ])
    func aBrokenInitVMSettingIsNamed(element: String, path: String, message: String) throws {
        let initvm = """
            <initvm>
                <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
                <suite>bookworm</suite>
                \(element)
              </initvm>
            """
        let loaded = try ProjectLoader.load(text: Self.file(projectPreseed: "", initvm: initvm), file: "p.xml")
        let error = try #require(loaded.errors.first { $0.message.contains(message) }, "\(loaded.errors)")
        #expect(error.elementPath == path)
        #expect(error.location?.line == 5)
    }
}
