// `<mtd>` decoded into the model, and its mistakes reported by validation at their lines.
import HavelCore
@testable import ProjectXML
import Testing

@Suite struct MtdDecodingTests {
    static func project(volumes: String, size: String = "64MiB") -> String {
        """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>flash</name><version>1.0</version><buildtype>armhf</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
          </project>
          <target>
            <hostname>board</hostname>
            <images>
              <mtd>
                <name>flash.ubi</name><nr>1</nr><size>\(size)</size>
                <ubivg>
                  <label>nand</label><miniosize>2048</miniosize><maxlogicaleraseblockcount>500</maxlogicaleraseblockcount>
                  <logicaleraseblocksize>126976</logicaleraseblocksize><physicaleraseblocksize>128KiB</physicaleraseblocksize>
        \(volumes)
                </ubivg>
              </mtd>
            </images>
            <fstab>
              <bylabel><label>rfs</label><mountpoint>/</mountpoint><fs><type>ubifs</type><mkfs>-x zlib</mkfs></fs></bylabel>
            </fstab>
          </target>
        </RootFileSystem>
        """
    }

    static let goodVolumes = """
                  <ubi><type>dynamic</type><label>rfs</label><id>0</id><size>remain</size></ubi>
                  <ubi><type>static</type><label>kernel</label><id>1</id><size>4MiB</size><binary>/boot/zImage</binary></ubi>
                  <ubi><type>dynamic</type><label>spare</label><id>2</id><size>1MiB</size><empty/></ubi>
        """

    @Test func anMtdDecodesWithItsVolumes() throws {
        let loaded = try ProjectLoader.load(text: Self.project(volumes: Self.goodVolumes), file: "flash.xml")
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        #expect(loaded.unsupported.isEmpty, "\(loaded.unsupported.map(\.item))")
        let mtd = try #require(loaded.project.target.mtdImages.first)
        #expect(mtd.name == "flash.ubi" && mtd.number == 1 && mtd.size == .bytes(64 << 20))
        let group = try #require(mtd.volumeGroup)
        #expect(group.physicalEraseBlockSize == "128KiB" && group.subpageSize == nil)
        #expect(group.volumes.map(\.label) == ["rfs", "kernel", "spare"])
        #expect(group.volumes.map(\.kind) == [.dynamic, .static, .dynamic])
        #expect(group.volumes.map(\.size) == [.remain, .bytes(4 << 20), .bytes(1 << 20)])
        #expect(group.volumes[1].binary == "/boot/zImage" && group.volumes[2].empty)
        #expect(group.volumes[0].location?.line == 15)
        let rfs = try #require(loaded.project.target.fstab.first)
        #expect(loaded.project.target.fstabLine(rfs) == "ubi1:rfs / ubifs defaults 0 0")
    }

    @Test func mistakesAreReportedAtTheirLines() throws {
        let duplicate = try ProjectLoader.load(text: Self.project(volumes: """
                  <ubi><type>dynamic</type><label>rfs</label><id>0</id><size>remain</size></ubi>
                  <ubi><type>static</type><label>kernel</label><id>0</id><size>4MiB</size></ubi>
        """), file: "flash.xml")
        let error = try #require(duplicate.errors.first { $0.message.contains("id 0 is already used") }, "\(duplicate.errors)")
        #expect(error.location?.line == 16)

        let tooLarge = try ProjectLoader.load(text: Self.project(volumes: Self.goodVolumes, size: "4MiB"), file: "flash.xml")
        let size = try #require(tooLarge.errors.first { $0.message.contains("do not fit the 4 MiB mtd") }, "\(tooLarge.errors)")
        #expect(size.location?.line == 10)
    }
}
