import HavelCore
@testable import ProjectXML
import Testing

/// `check-image-list/check` as ELBE's UEFI examples write it.
@Suite struct CheckDecodingTests {
    @Test func interpreterFirmwareIsRead() throws {
        let text = """
            <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6"><check-image-list><check>
              <img>sda.img</img><interpreter>qemu-system-x86_64</interpreter>
              <interpreter-firmware architecture="x86_64" machine="pc-q35-7.2" interface_types="uefi !bios" features="!requires-smm"/>
              <interpreter-opts>-M q35 -drive format=raw,file=$ELBE_IMG</interpreter-opts>
              <action><login>root</login></action>
            </check></check-image-list></RootFileSystem>
            """
        let project = ProjectDecoder.decode(try XMLReader.parse(text, file: "c.xml").root)
        let check = try #require(project.checks.first)
        #expect(check.firmware == FirmwareRequest(architecture: "x86_64", machine: "pc-q35-7.2", interfaceTypes: "uefi !bios", features: "!requires-smm"))
        #expect(check.interpreterOptions == "-M q35 -drive format=raw,file=$ELBE_IMG")
    }
}
