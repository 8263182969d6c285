import ArgumentParser
import Build
import Debian
import Foundation
import HavelCore
import InitVM
import ProjectXML
import SystemKit

/// `havel initvm create|start|stop|status|ensure|attach|destroy`: the build VM.
struct InitVMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "initvm",
        abstract: "Make and run the initvm, the VM the Havel daemon builds in.",
        discussion: """
        The initvm is an amd64 Debian VM whose root filesystem is DIR/buildenv.img (qcow2); its kernel and initramfs \
        are kept beside it, with the API token (api-token, mode 0600), the serial console (console.sock, console.log), \
        the QMP socket and the pid file. The daemon's API is forwarded to 127.0.0.1:PORT (default 7588).
        """,
        subcommands: [Create.self, Start.self, Stop.self, Status.self, Ensure.self, Attach.self, Run.self, Destroy.self, Submit.self])

    struct Location: ParsableArguments {
        @Option(name: .long, help: ArgumentHelp("The initvm's directory.", valueName: "DIR"))
        var directory: String = InitVMDirectory.defaultPath

        var initvm: InitVMDirectory { InitVMDirectory(directory) }
    }

    /// How `start` and `ensure` run the VM.
    struct RunOptions: ParsableArguments {
        @Option(name: .long, help: ArgumentHelp("Host port on 127.0.0.1 for the daemon's API (default: as created, 7588).", valueName: "PORT"))
        var port: Int?

        @Option(name: .long, help: ArgumentHelp("Memory, such as 4GiB or 4096 (MiB) (default: as created).", valueName: "SIZE"))
        var memory: String?

        @Option(name: .long, help: ArgumentHelp("Virtual CPUs (default: as created, all of the host's).", valueName: "N"))
        var cpus: Int?

        @Option(name: .long, help: "auto: KVM if a probe boot with it works here, else TCG; kvm or tcg to force one.")
        var accel: AcceleratorChoice = .auto

        @Flag(name: .long, help: "Probe KVM again instead of using the answer remembered for this kernel.")
        var reprobe = false

        func validate() throws {
            if let port, !(1...65535).contains(port) { throw ValidationError("--port \(port): give a port between 1 and 65535") }
            if let memory, InitVMSettings.memoryMiB(parsing: memory) == nil {
                throw ValidationError("--memory \(memory): give a size of at least 256MiB, such as 4GiB or 4096")
            }
            if let cpus, cpus < 1 { throw ValidationError("--cpus \(cpus): give at least 1") }
        }

        var startOptions: StartOptions {
            StartOptions(apiPort: port, memoryMiB: memory.flatMap(InitVMSettings.memoryMiB(parsing:)), cpus: cpus,
                         accelerator: accel, reprobe: reprobe)
        }
    }

    /// The real KVM probe (the QEMU module's policy, with the initvm's own kernel).
    static let probe: KVMProbe = InitVMController.hostProbe

    static func warn(_ message: String) {
        Terminal.error("havel: warning: " + message)
    }

    static func describe(_ outcome: StartOutcome, directory: InitVMDirectory) -> String {
        switch outcome {
        case .alreadyRunning(let pid):
            return "the initvm in \(directory.path) is already running (qemu pid \(pid))"
        case .started(let pid, let launch, _):
            return "started the initvm in \(directory.path): qemu pid \(pid), \(launch.accelerator.rawValue.uppercased()), "
                + "\(launch.cpus) CPU\(launch.cpus == 1 ? "" : "s"), \(launch.memoryMiB) MiB, API on 127.0.0.1:\(launch.apiPort)\n"
                + "web page: http://127.0.0.1:\(launch.apiPort)/ (sign in with the token in \(directory.token))"
        }
    }

    // MARK: create

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make DIR/buildenv.img: Debian with a kernel, the build tools and the Havel daemon (as root).",
            discussion: """
            Without a project file: bookworm from this host's mirror, 20 GiB (sparse), 2 GiB memory, all CPUs. With one, \
            its <initvm> section counts: suite, mirror, pkg-list, size, mem, max-cpus, portforwarding and finetuning commands.
            """)

        @OptionGroup var location: Location
        @OptionGroup var read: ProjectReadOptions
        @OptionGroup var mirrorOptions: MirrorOptions

        @Option(name: .long, help: ArgumentHelp("Host port on 127.0.0.1 for the daemon's API.", valueName: "PORT"))
        var port: Int = InitVMDefaults.hostPort

        @Option(name: .long, help: ArgumentHelp(
            "The havel binary the VM runs as its daemon (default: this one); one built without --static-swift-stdlib takes its Swift runtime libraries along.",
            valueName: "PATH"))
        var havelBinary: String?

        @Option(name: .long, help: ArgumentHelp("Havel's package cache.", valueName: "DIR"))
        var cache: String = "/var/cache/havel"

        @Flag(name: .shortAndLong, help: "Print every line mmdebstrap prints.")
        var verbose = false

        @Argument(help: "A project file whose <initvm> section to follow.")
        var file: String?

        func validate() throws {
            if !(1...65535).contains(port) { throw ValidationError("--port \(port): give a port between 1 and 65535") }
        }

        func run() async throws {
            var spec: InitVMSpec?
            if let file {
                let options = read.loaderOptions()
                // The initvm's url-list keys are fetched here, as for a build.
                var loaded = try await ClientResources.resolve(try ProjectLoader.load(path: file, options: options), options: options,
                                                               packingArchivedirs: false)
                guard loaded.isValid else {
                    for error in loaded.errors { Terminal.error(error.description) }
                    Terminal.error("\(file): invalid, no initvm made (\(loaded.errors.count) error\(loaded.errors.count == 1 ? "" : "s"))")
                    throw ExitCode(1)
                }
                try mirrorOptions.apply(to: &loaded.project)
                spec = loaded.project.initvm
            } else if let mirror = mirrorOptions.mirror {
                // --mirror without a project: the initvm's mirror.
                if mirror != "host", let url = HostMirror(url: mirror) {
                    spec = InitVMSpec(mirror: Mirror(primary: PrimaryMirror(host: url.host, path: url.path, proto: url.proto)))
                }
            }
            let settings = try InitVMSettings(spec: spec, apiPort: port)
            var created = settings
            created.havelVersion = HavelVersion.current
            let running = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            // This havel by default: a build of another checkout (make static's, say) could be older than this one.
            let binary = havelBinary ?? running
            let request = CreateRequest(
                directory: location.initvm, spec: spec, settings: created,
                sourceLines: try InitVMSources.lines(spec: spec, suite: settings.suite),
                keys: InitVMSources.keys(spec: spec, suite: settings.suite),
                havelBinary: binary, packageCache: cache + "/debs")
            let report = try await InitVMCreator.create(request, log: CLILogging.steps(verbose: verbose))
            let steps = report.steps.map { "\($0.name) \(String(format: "%.1f", $0.seconds)) s" }.joined(separator: ", ")
            Terminal.out("made \(location.initvm.image) in \(String(format: "%.0f", report.total)) s (\(steps)): "
                         + "kernel \(report.kernelVersion), \(ByteCount.format(report.imageBytes)) used of \(ByteCount.format(settings.imageSize))")
            Terminal.out("API token in \(location.initvm.token); start it with havel initvm start --directory \(location.directory)")
        }
    }

    // MARK: start / ensure

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start the initvm's qemu in the background (it keeps running after havel exits).")

        @OptionGroup var location: Location
        @OptionGroup var run: RunOptions

        @Flag(name: .long, help: "Wait until the daemon answers (as ensure does).")
        var wait = false

        @Option(name: .long, help: ArgumentHelp("How long --wait waits, in seconds.", valueName: "S"))
        var timeout: Int = 300

        func run() async throws {
            let controller = InitVMController(directory: location.initvm)
            let outcome = try await controller.start(run.startOptions, probe: InitVMCommand.probe, log: CLILogging.terminal)
            Terminal.out(InitVMCommand.describe(outcome, directory: location.initvm))
            if wait {
                let clock = ContinuousClock.now
                let health = try await controller.waitUntilReady(timeout: .seconds(timeout))
                Terminal.out("ready after \(String(format: "%.1f", InitVMTime.seconds(ContinuousClock.now - clock))) s: havel \(health.havelVersion), status \(health.status)")
            }
        }
    }

    struct Ensure: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start the initvm unless it runs, and wait until its daemon answers.")

        @OptionGroup var location: Location
        @OptionGroup var run: RunOptions

        @Option(name: .long, help: ArgumentHelp("How long to wait for the daemon, in seconds.", valueName: "S"))
        var timeout: Int = 300

        func run() async throws {
            let controller = InitVMController(directory: location.initvm)
            let clock = ContinuousClock.now
            let (outcome, health) = try await controller.ensure(run.startOptions, probe: InitVMCommand.probe,
                                                                timeout: .seconds(timeout), log: CLILogging.terminal)
            if case .started = outcome { Terminal.out(InitVMCommand.describe(outcome, directory: location.initvm)) }
            Terminal.out("ready after \(String(format: "%.1f", InitVMTime.seconds(ContinuousClock.now - clock))) s: havel \(health.havelVersion), status \(health.status)")
        }
    }

    // MARK: stop / status / attach / destroy

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Power the initvm down (ACPI), and end qemu if it has not after the time-out.")

        @OptionGroup var location: Location

        @Option(name: .long, help: ArgumentHelp("Seconds to wait for the guest to power down.", valueName: "S"))
        var timeout: Int = 60

        func run() async throws {
            switch try await InitVMController(directory: location.initvm).stop(timeout: .seconds(timeout)) {
            case .notRunning: Terminal.out("the initvm in \(location.initvm.path) is not running")
            case .poweredOff(let seconds): Terminal.out("the initvm powered off in \(String(format: "%.1f", seconds)) s")
            case .killed(let seconds):
                InitVMCommand.warn("the initvm did not power off within \(timeout) s; qemu was ended after \(String(format: "%.1f", seconds)) s")
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Say whether the initvm is stopped, booting or ready (its daemon answers GET /health).",
            discussion: "Exit status: 0 ready, 3 booting, 4 stopped, 5 not created.")

        @OptionGroup var location: Location
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            let status = await InitVMController(directory: location.initvm).status()
            if json {
                Terminal.out(try StatusJSON(status).encoded())
            } else {
                Terminal.out(StatusJSON.text(status))
            }
            switch status.state {
            case .ready: return
            case .booting: throw ExitCode(3)
            case .stopped: throw ExitCode(4)
            case .notCreated: throw ExitCode(5)
            }
        }
    }

    struct Attach: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Connect this terminal to the initvm's serial console (Ctrl-] detaches).")

        @OptionGroup var location: Location

        func run() throws {
            Terminal.error("connected to the initvm's console (logged in as root); Ctrl-] detaches")
            let ending = try ConsoleAttach.attach(location.initvm)
            Terminal.error(ending == .detached ? "\r\ndetached; the initvm keeps running" : "\r\nthe console closed")
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run one shell command line inside the initvm (as root, through its serial console).",
            discussion: """
            The command's output (stdout and stderr together) is printed here and its exit status is havel's. \
            Example: havel initvm run -- havel chroot /var/lib/havel/projects/1/build -- uname -m
            """)

        @OptionGroup var location: Location

        @Option(name: .long, help: ArgumentHelp("How long the command may take, in seconds.", valueName: "S"))
        var timeout: Int = 600

        @Argument(parsing: .postTerminator, help: "After --: the command and its arguments (joined with spaces, run by the guest's shell).")
        var command: [String] = []

        func validate() throws {
            if command.isEmpty { throw ValidationError("give the command after --, e.g. havel initvm run -- uname -r") }
        }

        func run() async throws {
            let words = command
            let shell = try await GuestShell(directory: location.initvm)
            defer { shell.finish() }
            let result = try await shell.run(words.joined(separator: " "), timeout: .seconds(timeout))
            if !result.output.isEmpty { FileHandle.standardOutput.write(Data(result.output.utf8)) }
            if result.status != 0 { throw ExitCode(result.status) }
        }
    }

    struct Destroy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the initvm and remove its files (image, kernel, token, sockets).")

        @OptionGroup var location: Location

        @Option(name: .long, help: ArgumentHelp("Seconds to wait for the guest to power down before ending qemu.", valueName: "S"))
        var timeout: Int = 30

        func run() async throws {
            try await InitVMController(directory: location.initvm).destroy(timeout: .seconds(timeout))
            Terminal.out("removed the initvm in \(location.initvm.path)")
        }
    }
}

extension AcceleratorChoice: ExpressibleByArgument {}

/// `initvm status --json`.
struct StatusJSON: Encodable {
    var directory: String
    var state: String
    var pid: Int32?
    var apiPort: Int?
    var accelerator: String?
    var started: Date?
    var health: HealthJSON?
    var waitingFor: String?
    var console: String?

    struct HealthJSON: Encodable {
        var status: String
        var havelVersion: String
    }

    init(_ status: InitVMStatus) {
        directory = status.directory.path
        state = status.state.word
        apiPort = status.runtime?.apiPort
        accelerator = status.runtime?.accelerator.rawValue
        started = status.runtime?.started
        console = status.lastConsoleLine
        switch status.state {
        case .ready(let pid, let health):
            self.pid = pid
            self.health = HealthJSON(status: health.status, havelVersion: health.havelVersion)
        case .booting(let pid, let why):
            self.pid = pid
            waitingFor = why
        case .stopped, .notCreated:
            break
        }
    }

    func encoded() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    static func text(_ status: InitVMStatus) -> String {
        let path = status.directory.path
        let runtime = status.runtime.map { " (\($0.accelerator.rawValue.uppercased()), API on 127.0.0.1:\($0.apiPort), web page http://127.0.0.1:\($0.apiPort)/)" } ?? ""
        switch status.state {
        case .notCreated: return "not created: \(path) has no buildenv.img (havel initvm create)"
        case .stopped: return "stopped: \(path)"
        case .booting(let pid, let why):
            return "booting: qemu pid \(pid)\(runtime); the daemon does not answer yet (\(why))"
                + (status.lastConsoleLine.map { "\nconsole: " + $0 } ?? "")
        case .ready(let pid, let health):
            return "ready: qemu pid \(pid)\(runtime); GET /health: status \(health.status), havel \(health.havelVersion)"
        }
    }
}
