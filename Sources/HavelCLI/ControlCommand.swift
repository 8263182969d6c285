import ArgumentParser
import Build
import DaemonAPI
import DaemonClient
import Debian
import Foundation
import HavelCore
import InitVM
import ProjectXML

/// `havel control ...`: the daemon's API for scripts and CI.
struct ControlCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control",
        abstract: "Talk to a Havel daemon: create, upload, build, wait, fetch logs and results (for scripts and CI).",
        discussion: "Exit status: 0 success, 1 the daemon refused or a build failed (wait), 2 usage.",
        subcommands: [List.self, Create.self, Upload.self, Build.self, Cancel.self, Wait.self, Log.self, Files.self, Get.self, ProjectRepository.self,
                      Reset.self, Delete.self, Status.self])

    /// Where the daemon is and how to prove who we are; how to print.
    struct Connection: ParsableArguments {
        @Option(name: .long, help: ArgumentHelp("The daemon's base URL.", valueName: "URL"))
        var url: String = DaemonDefaults.url

        @Option(name: .long, help: ArgumentHelp("File holding the API token (default: $HAVEL_TOKEN_FILE).", valueName: "FILE"))
        var tokenFile: String?

        @Option(name: .long, help: ArgumentHelp("Talk to this initvm's daemon: its forwarded port and its token (instead of --url, --token-file).",
                                                valueName: "DIR"))
        var initvm: String?

        @Flag(name: .long, help: "Print JSON.")
        var json = false

        func validate() throws {
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw ValidationError("--url \(url) is not an http(s) URL such as \(DaemonDefaults.url)")
            }
        }

        func client() throws(HavelError) -> DaemonClient {
            if let initvm {
                let directory = InitVMDirectory(initvm)
                guard directory.exists else { throw HavelError(.notFound, "\(directory.image) does not exist; make it with havel initvm create --directory \(initvm)") }
                return DaemonClient(baseURL: InitVMController(directory: directory).apiURL, token: try APIToken.read(at: directory.token))
            }
            let path = tokenFile ?? ProcessInfo.processInfo.environment["HAVEL_TOKEN_FILE"]
            return DaemonClient(baseURL: url, token: try path.map { path throws(HavelError) in try APIToken.read(at: path) })
        }

        func print<T: Encodable>(_ value: T, text: () -> String) throws {
            if json {
                let encoder = DaemonJSON.encoder()
                encoder.outputFormatting.insert(.prettyPrinted)
                Terminal.out(String(decoding: try encoder.encode(value), as: UTF8.self))
            } else {
                let line = text()
                if !line.isEmpty { Terminal.out(line) }
            }
        }
    }

    static func describe(_ project: ProjectInfo) -> String {
        var line = "\(project.id)  \(project.status.rawValue)"
        if let name = project.name { line += "  \(name) \(project.version ?? "")" }
        if project.status == .busy, let position = project.queuePosition {
            let stage = project.progress?.runningStage.map { ": \($0)" } ?? ""
            line += position == 0 ? "  (running\(stage))" : "  (queued, \(position) ahead)"
        }
        if let reason = project.reason { line += "  \(reason)" }
        return line
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the projects: id, status, name, version.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let projects = try await connection.client().projects()
            try connection.print(ProjectList(projects: projects)) {
                projects.map(ControlCommand.describe).joined(separator: "\n")
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an empty project and print its id.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let project = try await connection.client().createProject()
            try connection.print(project) { "\(project.id)" }
        }
    }

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload a project file (preprocessed here: includes, variants, passwords, archivedirs, keys); the project then needs a build.")
        @OptionGroup var connection: Connection
        @OptionGroup var read: ProjectReadOptions
        @Argument(help: "The project id.") var id: ProjectID
        @Argument(help: "The project file.") var file: String

        func run() async throws {
            let options = read.loaderOptions(hashPasswords: true)
            let loaded = try await ClientResources.resolve(try ProjectLoader.load(path: file, options: options), options: options)
            guard loaded.isValid else {
                for error in loaded.errors { Terminal.error(error.description) }
                Terminal.error("\(file): invalid, not uploaded (\(loaded.errors.count) error\(loaded.errors.count == 1 ? "" : "s"))")
                throw ExitCode(1)
            }
            let project = try await connection.client().upload(id, xml: XMLWriter.write(loaded.document))
            try connection.print(project) { ControlCommand.describe(project) }
        }
    }

    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queue a build of the project.")
        @OptionGroup var connection: Connection
        @Argument(help: "The project id.") var id: ProjectID
        @Flag(name: .long, help: "Wait for the build to end (exit 1 if it failed).") var wait = false
        @Flag(name: .long, help: "Build although the project uses items Havel does not build that change the output.")
        var allowUnsupported = false
        @Flag(name: .long, help: "Also write bin-cdrom.iso, the binary CD (ELBE's --build-bin).") var cdroms = false
        @Flag(name: .long, help: "Cross-build the <pbuilder> packages of a foreign target in a host chroot.") var cross = false
        @Flag(name: .long, help: "Do not build the <pbuilder> packages; install from the project repository as it is.") var skipPbuilder = false
        @Flag(name: .long, help: "Also make the SDK installer (setup-havel-sdk-*.sh) among the results.") var sdk = false
        @Option(name: .long, help: ArgumentHelp("How a foreign target's packages are installed: fast or emulated.", valueName: "MODE"))
        var installMode: InstallMode = .fast
        @Flag(name: .long, help: "Build only the <pbuilder> packages into the project repository (havel pbuilder build in the build VM).")
        var pbuilderOnly = false
        @Option(name: .long, help: ArgumentHelp("Only the <pbuilder> packages' build chroot: create (from the stage cache when it holds it) or update (made afresh), as havel pbuilder create|update.",
                                                valueName: "create|update"))
        var pbuilderChroot: String?
        @Option(name: .long, help: ArgumentHelp("How long the daemon may be out of reach while waiting.", valueName: "SECONDS"))
        var patience: Int = 300

        func validate() throws {
            if pbuilderOnly && (skipPbuilder || sdk || cdroms) {
                throw ValidationError("--pbuilder-only builds only the <pbuilder> packages: leave out --skip-pbuilder, --sdk and --cdroms")
            }
            if let pbuilderChroot {
                guard BuildChrootAction(rawValue: pbuilderChroot) != nil else { throw ValidationError("--pbuilder-chroot is create or update") }
                if pbuilderOnly || skipPbuilder || sdk || cdroms {
                    throw ValidationError("--pbuilder-chroot makes only the build chroot: leave out --pbuilder-only, --skip-pbuilder, --sdk and --cdroms")
                }
            }
        }

        func run() async throws {
            let client = try connection.client()
            let project = try await client.build(id, BuildRequest(allowUnsupported: allowUnsupported, binaryCdrom: cdroms,
                                                                  crossBuild: cross, skipPbuilder: skipPbuilder, sdk: sdk,
                                                                  pbuilderOnly: pbuilderOnly, pbuilderChroot: pbuilderChroot,
                                                                  installMode: installMode.rawValue))
            guard wait else {
                try connection.print(project) { ControlCommand.describe(project) }
                return
            }
            try await Wait.finish(try await client.waitForBuild(id, patience: .seconds(patience)), connection: connection)
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel the project's build: a queued one leaves the queue, a running one is stopped with every process it started.")
        @OptionGroup var connection: Connection
        @Argument(help: "The project id.") var id: ProjectID

        func run() async throws {
            let user = ProcessInfo.processInfo.environment["USER"] ?? NSUserName()
            let answer = try await connection.client().cancel(id, requester: "\(user)@\(ProcessInfo.processInfo.hostName)")
            try connection.print(answer) { answer.message + "\n" + ControlCommand.describe(answer.project) }
        }
    }

    struct Wait: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Wait until the project is no longer busy; exit 1 if its build failed or was cancelled.")
        @OptionGroup var connection: Connection
        @Argument(help: "The project id.") var id: ProjectID
        @Option(name: .long, help: "Seconds between polls.") var interval: Double = 2
        @Option(name: .long, help: ArgumentHelp("How long the daemon may be out of reach before waiting gives up.", valueName: "SECONDS"))
        var patience: Int = 300

        func run() async throws {
            let project = try await connection.client().waitForBuild(id, every: .milliseconds(Int(max(0.1, interval) * 1000)),
                                                                     patience: .seconds(patience))
            try await Self.finish(project, connection: connection)
        }

        static func finish(_ project: ProjectInfo, connection: Connection) async throws {
            try connection.print(project) { ControlCommand.describe(project) }
            if project.status == .buildFailed || project.status == .cancelled { throw ExitCode(1) }
        }
    }

    struct Log: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the build log (with --follow, until the build ends).")
        @OptionGroup var connection: Connection
        @Argument(help: "The project id.") var id: ProjectID
        @Flag(name: .shortAndLong, help: "Keep printing new lines while the build runs.") var follow = false
        @OptionGroup var following: LogFollowOptions

        func run() async throws {
            let client = try connection.client()
            if follow {
                try await following.printLog(client, id)
            } else {
                try FileHandle.standardOutput.write(contentsOf: Data(try await client.log(id).utf8))
            }
        }
    }

    struct Files: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the result files of the last build, with sizes.")
        @OptionGroup var connection: Connection
        @Argument(help: "The project id.") var id: ProjectID

        func run() async throws {
            let files = try await connection.client().files(id)
            try connection.print(FileList(files: files)) {
                files.map { String($0.size).padding(toLength: max(12, String($0.size).count + 2), withPad: " ", startingAt: 0) + $0.path }
                    .joined(separator: "\n")
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download result files (all of them without a path).")
        @OptionGroup var connection: Connection
        @Option(name: .shortAndLong, help: ArgumentHelp("Directory to write into.", valueName: "DIR")) var output: String = "."
        @Argument(help: "The project id.") var id: ProjectID
        @Argument(help: "Files as `files` lists them (relative to the build directory).") var paths: [String] = []

        func run() async throws {
            let client = try connection.client()
            let paths = self.paths.isEmpty ? try await client.files(id).map(\.path) : self.paths
            var fetched: [FileEntry] = []
            do {
                try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            } catch {
                throw HavelError(.io, "cannot create \(output): \(error.localizedDescription)")
            }
            for path in paths {
                let (destination, size) = try await client.download(id, path: path, into: output)
                fetched.append(FileEntry(path: destination, size: size))
                if !connection.json { Terminal.out("\(destination)  \(ByteCount.format(size))") }
            }
            if connection.json { try connection.print(FileList(files: fetched)) { "" } }
        }
    }

    /// `havel control prjrepo list|upload|download ID`: the project repository in the daemon.
    struct ProjectRepository: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "prjrepo", abstract: "The project's repository of own packages in the daemon.",
                                                        subcommands: [List.self, Upload.self, Download.self])

        static func describe(_ listing: ProjectRepositoryListing) -> String {
            listing.packages.map { "\($0.name) \($0.version) \($0.architecture) (source \($0.source))" }.joined(separator: "\n")
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the packages of the project's repository.")
            @OptionGroup var connection: Connection
            @Argument(help: "The project id.") var id: ProjectID

            func run() async throws {
                let listing = try await connection.client().repository(id)
                try connection.print(listing) { ProjectRepository.describe(listing) }
            }
        }

        struct Upload: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Add .deb files to the project's repository (signed again by the daemon).")
            @OptionGroup var connection: Connection
            @Argument(help: "The project id.") var id: ProjectID
            @Argument(help: "The .deb files.") var debs: [String]

            func run() async throws {
                let client = try connection.client()
                var listing = ProjectRepositoryListing(packages: [])
                for deb in debs { listing = try await client.uploadPackage(id, file: deb) }
                try connection.print(listing) { ProjectRepository.describe(listing) }
            }
        }

        struct Download: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Download the project's repository (repo/, signed) into a directory.")
            @OptionGroup var connection: Connection
            @Option(name: .shortAndLong, help: ArgumentHelp("Directory to write into (repo/ goes below it).", valueName: "DIR")) var output: String = "."
            @Argument(help: "The project id.") var id: ProjectID

            func run() async throws {
                let client = try connection.client()
                let paths = try await client.files(id).map(\.path).filter { $0.hasPrefix("repo/") }
                guard !paths.isEmpty else { throw HavelError(.notFound, "project \(id) has no project repository") }
                do {
                    try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
                } catch {
                    throw HavelError(.io, "cannot create \(output): \(error.localizedDescription)")
                }
                for path in paths {
                    let (destination, size) = try await client.download(id, path: path, into: output)
                    if !connection.json { Terminal.out("\(destination)  \(ByteCount.format(size))") }
                }
            }
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove the project's build results; it needs a build again.")
        @OptionGroup var connection: Connection
        @Argument(help: "The project id.") var id: ProjectID

        func run() async throws {
            let project = try await connection.client().reset(id)
            try connection.print(project) { ControlCommand.describe(project) }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete the project and everything it built.")
        @OptionGroup var connection: Connection
        @Argument(help: "The project id.") var id: ProjectID

        func run() async throws {
            try await connection.client().deleteProject(id)
            struct Deleted: Encodable { var deleted: ProjectID }
            try connection.print(Deleted(deleted: id)) { "deleted project \(id)" }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one project, or without an id whether the daemon is up.")
        @OptionGroup var connection: Connection
        @Argument(help: "The project id.") var id: ProjectID?

        func run() async throws {
            let client = try connection.client()
            if let id {
                let project = try await client.project(id)
                try connection.print(project) { ControlCommand.describe(project) }
            } else {
                let health = try await client.health()
                try connection.print(health) { "daemon at \(client.baseURL): \(health.status), havel \(health.havelVersion)" }
            }
        }
    }
}
