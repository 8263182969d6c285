import ArgumentParser
import Build
import Daemon
import DaemonAPI
import Foundation
import HavelCore
import ProjectXML

/// `havel daemon`: the build API (inside the initvm; on any Debian host for tests).
struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Serve the build API: projects, a build queue, logs and result files (inside the initvm).",
        discussion: """
        Every call but GET /health needs the token in --token-file (made there, mode 0600, if missing). \
        Projects live in --data (havel.sqlite and projects/<id>/). Builds run as havel build runs them, \
        up to --jobs at once, with the MIRROR_HOST placeholder taken from this machine's apt sources. \
        Each build runs in a cgroup v2 group of its own below the daemon's (root and a writable cgroup2; \
        Delegate=yes under systemd), so that cancelling it (havel control cancel) kills every process it started. \
        SIGTERM or SIGINT stops the builds (they are marked failed) and then the server.         The same listener serves a web page at http://HOST:PORT/ (sign in with the token): projects, queue,         live logs, stage times, packages, downloads and build, cancel, reset and delete buttons; it answers         only to an IP address or localhost as host name.
        """)

    @Option(name: .long, help: ArgumentHelp("Address to listen on: HOST:PORT, or PORT for 127.0.0.1.", valueName: "HOST:PORT"))
    var listen: String = "127.0.0.1:\(DaemonConfiguration.defaultPort)"

    @Option(name: .long, help: ArgumentHelp("The project database and project directories.", valueName: "DIR"))
    var data: String = DaemonConfiguration.defaultDataDirectory

    @Option(name: .long, help: ArgumentHelp("The API token (created, mode 0600, if missing; default: DIR/\(DaemonAuth.tokenFileName)).", valueName: "FILE"))
    var tokenFile: String?

    @Option(name: .long, help: "Builds running at once (default: the number of CPUs).")
    var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: .long, help: ArgumentHelp("Havel's cache of packages and stages.", valueName: "DIR"))
    var cache: String = HavelCache.defaultPath

    @Flag(name: .long, help: "Neither reuse nor store stages (packages still come from the verified package cache).")
    var noCache = false

    @Option(name: .long, help: ArgumentHelp("Seconds between keep-alives on a followed log while the build prints nothing.", valueName: "SECONDS"))
    var logKeepalive: Double = Double(LogEvents.defaultKeepAlive.components.seconds)

    @Option(name: .long, help: ArgumentHelp("The largest project file accepted, in MiB: the upload limit and the limit for reading it to build.", valueName: "MIB"))
    var maxProjectSize: Int = ProjectFile.maximumSize >> 20

    @Option(name: .long, help: ArgumentHelp("Seconds a connection may send nothing while the daemon waits for it (unfinished headers, an upload's body, or between requests) before it is closed; an upload cut off stores nothing.", valueName: "SECONDS"))
    var idleTimeout: Double = 60

    @OptionGroup var mirrorOptions: MirrorOptions

    @Option(name: .long, help: ArgumentHelp("What LOCALMACHINE in a project's <primary_proxy> means: the machine that started the daemon, as seen from here (the initvm passes 10.0.2.2).", valueName: "HOST"))
    var localMachine = "localhost"

    func validate() throws {
        guard Self.parseListen(listen) != nil else {
            throw ValidationError("--listen \(listen) is not HOST:PORT (such as 127.0.0.1:\(DaemonConfiguration.defaultPort)) or a port")
        }
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1") }
        guard logKeepalive >= 0.1 else { throw ValidationError("--log-keepalive must be at least 0.1 seconds") }
        guard idleTimeout >= 1 && idleTimeout <= 86_400 else { throw ValidationError("--idle-timeout must be between 1 and 86400 seconds") }
        guard (1...4096).contains(maxProjectSize) else { throw ValidationError("--max-project-size must be between 1 and 4096 MiB") }
    }

    /// A warning when the API listens on every address, so the network (not only this machine) can reach it.
    static func exposureWarning(host: String) -> String? {
        guard ["0.0.0.0", "::", "*"].contains(host) else { return nil }
        return "havel daemon: warning: listening on \(host) makes the build API reachable from the network; anyone with the token can "
            + "run builds as root here. Listen on 127.0.0.1 unless the network is trusted."
    }

    static func parseListen(_ text: String) -> (host: String, port: Int)? {
        if let port = Int(text), (0...65535).contains(port) { return ("127.0.0.1", port) }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }

    /// What the options say, as the daemon's configuration.
    func daemonConfiguration(host: String, port: Int, token: String) -> DaemonConfiguration {
        DaemonConfiguration(dataDirectory: data, token: token, host: host, port: port, jobs: jobs, cache: cache,
                            useStageCache: !noCache, mirror: mirrorOptions.mirror, havelVersion: HavelVersion.current,
                            logKeepAlive: .milliseconds(Int(logKeepalive * 1000)), maximumProjectSize: maxProjectSize << 20,
                            connectionIdleTimeout: .milliseconds(Int(idleTimeout * 1000)), localMachine: localMachine)
    }

    func run() async throws {
        let (host, port) = Self.parseListen(listen)!
        if let warning = Self.exposureWarning(host: host) { Terminal.error(warning) }
        do {
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        } catch {
            throw HavelError(.io, "cannot create the data directory \(data): \(error.localizedDescription)")
        }
        let tokenPath = tokenFile ?? data + "/" + DaemonAuth.tokenFileName
        let token = try APIToken.loadOrCreate(at: tokenPath)
        let configuration = daemonConfiguration(host: host, port: port, token: token)
        let daemon = try await HavelDaemon(configuration: configuration)
        let jobs = self.jobs
        let data = self.data
        try await daemon.run { boundPort in
            Terminal.out("havel daemon \(HavelVersion.current): listening on http://\(host.contains(":") ? "[\(host)]" : host):\(boundPort) (data \(data), \(jobs) build\(jobs == 1 ? "" : "s") at once, token in \(tokenPath))")
        }
        Terminal.out("havel daemon: stopped")
    }
}
