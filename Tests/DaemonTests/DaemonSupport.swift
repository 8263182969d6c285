import Build
import DaemonAPI
import DaemonClient
import Debian
import Foundation
import HavelCore
import SystemKit
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Daemon

/// A daemon on a temporary data directory, and the things the tests share.
enum DaemonFixture {
    static let token = "test-token-0123456789"

    static func temporaryDirectory(_ name: String) throws -> String {
        let path = "/var/tmp/havel-daemon-\(name)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func configuration(data: String, jobs: Int = 2, cache: String? = nil, mirror: String? = nil) -> DaemonConfiguration {
        DaemonConfiguration(dataDirectory: data, token: token, host: "127.0.0.1", port: 0, jobs: jobs,
                            cache: cache ?? data + "/cache", mirror: mirror, havelVersion: "test")
    }

    /// A minimal amd64 project; the mirror is the MIRROR_HOST placeholder (this host's mirror at build time).
    static func project(name: String, packages: [String] = ["netbase"], finetuning: String = "") -> String {
        """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>\(name)</name><version>1.0</version><buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
          </project>
          <target>
            <hostname>\(name)</hostname>
            <debootstrap><variant>minbase</variant></debootstrap>
            <pkg-list>\(packages.map { "<pkg>\($0)</pkg>" }.joined())</pkg-list>
            \(finetuning.isEmpty ? "" : "<finetuning>\(finetuning)</finetuning>")
          </target>
        </RootFileSystem>
        """
    }

    /// Serves `daemon` on 127.0.0.1 (a free port) while `body` runs, then shuts it down as SIGTERM would.
    static func withLiveDaemon<T: Sendable>(_ daemon: HavelDaemon, _ body: @Sendable (DaemonClient, Int) async throws -> T) async throws -> T {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let server = Task { try await daemon.serve(handlingSignals: false) { port in continuation.yield(port) } }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw HavelError(.internalError, "the daemon did not start") }
        do {
            // Tests share two cores with hundreds of others: an answer may wait minutes for a thread on a busy machine.
            var client = DaemonClient(baseURL: "http://127.0.0.1:\(port)", token: token)
            client.timeout = .seconds(300)
            let result = try await body(client, port)
            await daemon.shutdown()
            try await server.value
            return result
        } catch {
            await daemon.shutdown()
            _ = try? await server.value
            throw error
        }
    }

    /// The daemon in-process (`app.test(.router)`, no socket) on a temporary data directory removed afterwards,
    /// with an unreachable mirror: a build started there fails at once instead of downloading.
    static func withRouter(name: String, configure: (inout DaemonConfiguration) -> Void = { _ in },
                           _ body: @Sendable (HavelDaemon, any TestClientProtocol, String) async throws -> Void) async throws {
        let data = try temporaryDirectory(name)
        do {
            var configuration = configuration(data: data, mirror: "http://127.0.0.1:9/debian")
            configure(&configuration)
            let daemon = try await HavelDaemon(configuration: configuration)
            try await daemon.makeApplication().test(.router) { client in try await body(daemon, client, data) }
            await daemon.stop()
        } catch {
            await remove(data)
            throw error
        }
        await remove(data)
    }

    /// Removes a test's directory, with whatever a build left mounted in it.
    static func remove(_ path: String) async {
        _ = try? await Mounts.unmountAll(under: path)
        _ = try? await ProcessRunner.run(Command("rm", ["-rf", "--one-file-system", "--", path]))
    }
}

/// Real builds need root, mmdebstrap and a Debian mirror in this host's apt sources.
enum BuildHost {
    static let missingReason: String? = {
        if geteuid() != 0 { return "needs root (builds bootstrap a root filesystem)" }
        for tool in ["mmdebstrap", "zstd", "unshare"] where ProcessRunner.which(tool) == nil {
            return "needs \(tool) (scripts/setup-host.sh installs it)"
        }
        guard (try? HostAptSources.primaryMirror()) != nil else { return "needs a Debian mirror in the host's apt sources" }
        guard HostArchitecture.current == .amd64 else { return "the build fixture is amd64, built natively" }
        return nil
    }()

    static var available: Bool { missingReason == nil }
    static var skipReason: Comment { Comment(rawValue: missingReason ?? "") }
}
