// ProxiedProcesses: a process runner that sends every program's HTTP through a proxy (a project's
import HavelCore
// <primary_proxy>), by the environment apt, mmdebstrap, debootstrap and their children read.

/// Runs every command through `base` with `http_proxy`, `https_proxy` and `no_proxy` set, as ELBE sets
/// them for its bootstrap and apt: the bootstrap tools, apt in the target (the chroot wrapper passes its
/// environment on) and maintainer scripts that fetch all see it. Nothing is written into the tree.
public struct ProxiedProcesses: ProcessRunning {
    public let base: any ProcessRunning
    public let proxy: String

    /// Hosts reached directly: loopback (local repositories) and the machine the build runs for.
    public let direct: String

    /// `proxy` as the project writes it: ELBE's `LOCALMACHINE` stands for `localMachine`, the machine
    /// Havel was started on as seen from where the build runs (localhost; 10.0.2.2 inside the initvm).
    public init(_ base: any ProcessRunning, proxy: String, localMachine: String = "localhost") {
        self.base = base
        self.proxy = proxy.trimmingWhitespace().replacingOccurrences(of: "LOCALMACHINE", with: localMachine)
        self.direct = (localMachine == "localhost" ? "" : localMachine + ",") + "localhost,127.0.0.1,::1"
    }

    /// The variables added to each command; a command's own values win.
    public var environment: [String: String] {
        ["http_proxy": proxy, "https_proxy": proxy, "no_proxy": direct]
    }

    func proxied(_ command: Command) -> Command {
        var command = command
        command.environment = environment.merging(command.environment) { _, own in own }
        return command
    }

    public func which(_ name: String) -> String? { base.which(name) }

    public func ensureBinfmtHandler(qemuName: String) async throws(HavelError) -> Bool {
        try await base.ensureBinfmtHandler(qemuName: qemuName)
    }

    public func run(_ command: Command, input: [UInt8], outputLimit: Int) async throws(HavelError) -> ProcessResult {
        try await base.run(proxied(command), input: input, outputLimit: outputLimit)
    }

    public func stream(_ command: Command, onLine: @escaping @Sendable (String) -> Void) async throws(HavelError) -> ProcessResult.Termination {
        try await base.stream(proxied(command), onLine: onLine)
    }
}
