// A real build through a real HTTP proxy (tinyproxy, run by the test on a free loopback port): every
// download of the bootstrap goes through it, and a proxy that does not answer fails the build.
import Foundation
@testable import Build
import HavelCore
import SystemKit
import Testing

@Suite(.serialized) struct ProxyBuildTests {
    static let missingReason: String? = Integration.missingReason
        ?? (ProcessRunner.which("tinyproxy") == nil ? "needs tinyproxy (scripts/setup-host.sh installs tinyproxy-bin)" : nil)

    static func project(proxy: String) -> String {
        """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>proxied</name><version>1.0</version><buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto>
              <primary_proxy>\(proxy)</primary_proxy></mirror>
            <suite>bookworm</suite>
          </project>
          <target><hostname>proxied</hostname><debootstrap><variant>minbase</variant></debootstrap><pkg-list><pkg>netbase</pkg></pkg-list></target>
        </RootFileSystem>
        """
    }

    /// A TCP socket and the address 127.0.0.1:`port` (port 0: whichever port the system gives to a bind).
    static func loopback(port: Int) -> (fd: Int32, address: sockaddr_in) {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return (socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0), address)
    }

    static func freePort() throws -> Int {
        var (fd, address) = loopback(port: 0)
        defer { close(fd) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw HavelError(.io, "cannot find a free port: \(errnoText())") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(port: Int) -> Bool {
        var (fd, address) = loopback(port: port)
        defer { close(fd) }
        return withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    @Test(.enabled(if: missingReason == nil, Comment(rawValue: missingReason ?? "")), .timeLimit(.minutes(20)))
    func theBootstrapGoesThroughTheProxy() async throws {
        let base = try Integration.temporaryDirectory("proxy")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let port = try Self.freePort()
        let log = base + "/tinyproxy.log"
        try """
            Port \(port)
            Listen 127.0.0.1
            Timeout 120
            LogFile "\(log)"
            LogLevel Info
            MaxClients 50
            Allow 127.0.0.1

            """.write(toFile: base + "/tinyproxy.conf", atomically: true, encoding: .utf8)
        let proxy = Process()
        proxy.executableURL = URL(fileURLWithPath: ProcessRunner.which("tinyproxy")!)
        proxy.arguments = ["-d", "-c", base + "/tinyproxy.conf"]
        proxy.standardOutput = FileHandle.nullDevice
        proxy.standardError = FileHandle.nullDevice
        try proxy.run()
        // tinyproxy in the foreground ignores SIGTERM: it is killed.
        func stop() {
            guard proxy.isRunning else { return }
            kill(proxy.processIdentifier, SIGKILL)
            proxy.waitUntilExit()
        }
        defer { stop() }
        // Ready once it accepts a connection (with a generous bound).
        let deadline = Date().addingTimeInterval(60)
        while !Self.accepts(port: port) {
            try #require(proxy.isRunning && Date() < deadline, "tinyproxy did not start listening on 127.0.0.1:\(port)")
            try await Task.sleep(for: .milliseconds(100))
        }

        let loaded = try Integration.load(Self.project(proxy: "http://LOCALMACHINE:\(port)"))
        let state = try await Integration.build(loaded, in: base + "/build", cache: base + "/cache", useStageCache: false)
        #expect(state.status == .done)
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("/dists/bookworm/InRelease"), "the Release file did not go through the proxy: \(text.suffix(2000))")
        #expect(text.contains("/pool/main/n/netbase/"), "netbase was not downloaded through the proxy")
        let installed = (try? String(contentsOfFile: base + "/build/rootfs/etc/apt/apt.conf.d/99mmdebstrap", encoding: .utf8)) ?? ""
        #expect(!installed.contains("\(port)"), "the proxy was written into the image's apt configuration")

        // Nothing listens there any more: the build fails instead of going to the mirror directly.
        stop()
        let refused = try Integration.load(Self.project(proxy: "http://127.0.0.1:\(port)"))
        await #expect(throws: HavelError.self) {
            _ = try await Integration.build(refused, in: base + "/refused", cache: base + "/cache2", useStageCache: false)
        }
    }
}
