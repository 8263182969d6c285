import ArgumentParser
import Build
import DaemonAPI
import DaemonClient
import Debian
import Foundation
import HavelCore
import InitVM
import ProjectXML

extension InitVMCommand {
    /// `havel initvm submit PROJECT.xml`: the project built inside the initvm, its results downloaded here.
    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build a project inside the initvm and download every result.",
            discussion: """
            Starts the initvm if needed, preprocesses the project here, uploads it, builds it in the VM while its log \
            streams to this terminal, downloads the results into havel-build-<timestamp>/ (or --output), prints the \
            validation summary and deletes the project in the VM unless --keep. A failed build exits 1 with the log's tail.
            """)

        @OptionGroup var location: Location
        @OptionGroup var run: RunOptions
        @OptionGroup var read: ProjectReadOptions

        @Option(name: .long, help: ArgumentHelp("Where the results go (default: havel-build-<timestamp>).", valueName: "DIR"))
        var output: String?

        @Flag(name: .long, help: "Keep the project in the initvm after downloading (havel control can reach it).")
        var keep = false

        @Option(name: .long, help: ArgumentHelp("Use the daemon at this URL instead of the initvm (with --token-file).", valueName: "URL"))
        var url: String?

        @Option(name: .long, help: ArgumentHelp("The API token file for --url.", valueName: "FILE"))
        var tokenFile: String?

        @Flag(name: .long, help: "Also write bin-cdrom.iso, the binary CD (ELBE's submit does unless --skip-build-bin).")
        var cdroms = false

        @Flag(name: .long, help: "Cross-build the <pbuilder> packages of a foreign target in a host chroot (default: under qemu-user).")
        var cross = false

        @Flag(name: .long, help: "Do not build the <pbuilder> packages (as ELBE's submit --skip-pbuilder); the install then needs them in the project repository, so a fresh project fails and says so.")
        var skipPbuilder = false

        @Flag(name: [.customLong("sdk"), .customLong("build-sdk")], help: "Also make the SDK installer (setup-havel-sdk-*.sh), downloaded with the other results (ELBE's --build-sdk).")
        var sdk = false

        @Option(name: .long, help: ArgumentHelp("How a foreign target's packages are installed: fast (the host's dpkg unpacks natively) or emulated (all under qemu-user).", valueName: "MODE"))
        var installMode: InstallMode = .fast

        @OptionGroup var follow: LogFollowOptions

        @Argument(help: "The project file.")
        var file: String

        func run() async throws {
            // Preprocessed here, so that includes, variants, archivedirs and keys are resolved with this machine's files.
            let options = read.loaderOptions(hashPasswords: true)
            let loaded = try await ClientResources.resolve(try ProjectLoader.load(path: file, options: options), options: options)
            guard loaded.isValid else {
                for error in loaded.errors { Terminal.error(error.description) }
                throw ExitCode(1)
            }
            // Refused here, before the VM starts, as havel build refuses it; the daemon is told the same.
            do throws(HavelError) {
                BuildCommand.printWarnings(try ValidatedProject(loaded, allowUnsupported: read.allowUnsupported), all: false)
            } catch {
                try BuildCommand.refuse(error)
            }
            let xml = XMLWriter.write(loaded.document)

            let client: DaemonClient
            if let url {
                client = DaemonClient(baseURL: url, token: try tokenFile.map { path throws(HavelError) in try APIToken.read(at: path) })
            } else {
                let controller = InitVMController(directory: location.initvm)
                let (_, health) = try await controller.ensure(run.startOptions, probe: InitVMCommand.probe, timeout: .seconds(600),
                                                              log: CLILogging.terminal)
                Terminal.out("initvm ready: havel \(health.havelVersion)")
                client = DaemonClient(baseURL: controller.apiURL, token: try APIToken.read(at: location.initvm.token))
            }

            let project = try await client.createProject()
            Terminal.out("project \(project.id) created; uploading \(file)")
            _ = try await client.upload(project.id, xml: xml)
            _ = try await client.build(project.id, BuildRequest(allowUnsupported: read.allowUnsupported, binaryCdrom: cdroms,
                                                                crossBuild: cross, skipPbuilder: skipPbuilder, sdk: sdk,
                                                                installMode: installMode.rawValue))
            let done = try await follow.followUntilDone(client, project.id)

            let formatter = DateFormatter()
            formatter.dateFormat = "yyyyMMdd-HHmmss"
            let destination = output ?? "havel-build-\(formatter.string(from: Date()))"
            try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
            var bytes: UInt64 = 0
            for entry in try await client.files(project.id) {
                bytes += try await client.download(project.id, path: entry.path, into: destination).size
            }
            Terminal.out("results in \(destination) (\(ByteCount.format(bytes)))")
            if let validation = try? String(contentsOfFile: destination + "/validation.txt", encoding: .utf8) {
                Terminal.out(validation.split(separator: "\n").last.map(String.init) ?? "")
            }
            if !keep { try await client.deleteProject(project.id) } else { Terminal.out("kept as project \(project.id)") }
            guard done.status == .buildDone else {
                if let log = try? String(contentsOfFile: destination + "/log.txt", encoding: .utf8) {
                    Terminal.error("the last lines of \(destination)/log.txt:")
                    for line in log.split(separator: "\n", omittingEmptySubsequences: false).suffix(20) { Terminal.error("  " + line) }
                }
                Terminal.error("havel: the build in the initvm failed: \(done.reason ?? "see \(destination)/log.txt")")
                throw ExitCode(1)
            }
        }
    }
}
