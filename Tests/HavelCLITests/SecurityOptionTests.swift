// SecurityOptionTests: the command-line side of issue 15 (DaemonSecurityTests holds the rest): --include-dir
// the warning for a daemon listening on every address, and the daemon's idle timeout.

import Foundation
@testable import HavelCLI
import Testing

@Suite struct SecurityOptionTests {
    @Test func includesReachOutsideTheProjectsDirectoryOnlyWithIncludeDir() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("havel-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/project", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/shared", withIntermediateDirectories: true)
        try "<pkg-list><pkg>netbase</pkg></pkg-list>".write(toFile: root + "/shared/packages.xml", atomically: true, encoding: .utf8)
        try """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" xmlns:xi="http://www.w3.org/2001/XInclude" revision="6">
          <project>
            <name>shared</name><version>1.0</version><buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
          </project>
          <target>
            <hostname>shared</hostname>
            <xi:include href="../shared/packages.xml"/>
          </target>
        </RootFileSystem>
        """.write(toFile: root + "/project/main.xml", atomically: true, encoding: .utf8)
        #expect(await HavelMain.run(["validate", root + "/project/main.xml"]) != 0)
        #expect(await HavelMain.run(["validate", "--include-dir", root + "/shared", root + "/project/main.xml"]) == 0)
    }

    @Test func listeningOnEveryAddressWarns() {
        #expect(DaemonCommand.exposureWarning(host: "0.0.0.0")?.contains("reachable from the network") == true)
        #expect(DaemonCommand.exposureWarning(host: "::") != nil)
        #expect(DaemonCommand.exposureWarning(host: "127.0.0.1") == nil)
    }

    @Test func theIdleTimeoutReachesTheDaemon() throws {
        let command = try DaemonCommand.parse(["--idle-timeout", "5"])
        #expect(command.daemonConfiguration(host: "127.0.0.1", port: 0, token: "t").connectionIdleTimeout == .seconds(5))
        #expect(try DaemonCommand.parse([]).daemonConfiguration(host: "127.0.0.1", port: 0, token: "t").connectionIdleTimeout == .seconds(60))
        #expect(throws: (any Error).self) { try DaemonCommand.parse(["--idle-timeout", "0"]) }
    }
}
