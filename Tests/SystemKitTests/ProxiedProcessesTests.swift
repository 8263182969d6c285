// ProxiedProcesses: every command gets the proxy variables, LOCALMACHINE means the machine the build
// was started on, and a command's own values win.
import HavelCore
import SystemKit
import Testing

@Suite struct ProxiedProcessesTests {
    @Test func everyCommandGoesThroughTheProxy() async throws {
        let recording = RecordingProcesses()
        let proxied = ProxiedProcesses(recording, proxy: " http://LOCALMACHINE:3142 ")
        _ = try await proxied.run(Command("apt-get", ["update"], environment: ["DEBIAN_FRONTEND": "noninteractive"]))
        _ = try await proxied.stream(Command("mmdebstrap", ["bookworm"], environment: ["no_proxy": "repo.local"])) { _ in }
        let commands = recording.commands
        #expect(commands.count == 2)
        #expect(commands[0].environment["DEBIAN_FRONTEND"] == "noninteractive")
        #expect(commands[0].environment["http_proxy"] == "http://localhost:3142")
        #expect(commands[0].environment["https_proxy"] == "http://localhost:3142")
        #expect(commands[0].environment["no_proxy"] == "localhost,127.0.0.1,::1")
        #expect(commands[1].environment["http_proxy"] == "http://localhost:3142")
        #expect(commands[1].environment["no_proxy"] == "repo.local")
    }

    /// In the initvm the daemon's LOCALMACHINE is the host qemu's user network shows the guest, reached directly.
    @Test func localMachineIsWhereTheBuildWasStarted() {
        let proxied = ProxiedProcesses(RecordingProcesses(), proxy: "http://LOCALMACHINE:3142", localMachine: "10.0.2.2")
        #expect(proxied.environment == ["http_proxy": "http://10.0.2.2:3142", "https_proxy": "http://10.0.2.2:3142",
                                        "no_proxy": "10.0.2.2,localhost,127.0.0.1,::1"])
    }
}
