import DaemonAPI
import Build
import Foundation
import HavelCore
import Hummingbird
import HummingbirdTesting
import SystemKit
import Testing
@testable import Daemon

/// The API in-process (`app.test(.router)`): auth, validation, state rules, file confinement, restart repair.
@Suite struct RouterTests {
    let auth: HTTPFields = [.authorization: DaemonAuth.value(token: DaemonFixture.token)]

    func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
        try DaemonJSON.decoder().decode(T.self, from: Data(response.body.readableBytesView))
    }

    func withDaemon(_ body: @Sendable (HavelDaemon, any TestClientProtocol, String) async throws -> Void) async throws {
        try await DaemonFixture.withRouter(name: "router", body)
    }

    func create(_ client: some TestClientProtocol) async throws -> ProjectInfo {
        try await client.execute(uri: DaemonRoute.projects, method: .post, headers: auth) { response in
            #expect(response.status == .created)
            return try decode(ProjectInfo.self, response)
        }
    }

    @Test func healthNeedsNoTokenButEverythingElseDoes() async throws {
        try await withDaemon { _, client, _ in
            try await client.execute(uri: DaemonRoute.health, method: .get) { response in
                #expect(response.status == .ok)
                let decoded = try decode(HealthResponse.self, response)
                #expect(decoded.status == "ok" && decoded.havelVersion == "test")
                // As root on a cgroup v2 host the daemon confines builds in cgroups, elsewhere in process groups.
                #expect([HealthResponse.cgroupConfinement, HealthResponse.processGroupConfinement].contains(decoded.buildConfinement), "\(decoded)")
            }
            for (uri, method) in [(DaemonRoute.projects, HTTPRequest.Method.get), (DaemonRoute.projects, .post),
                                  (DaemonRoute.project(1), .get), (DaemonRoute.project(1), .delete), (DaemonRoute.build(1), .post), (DaemonRoute.cancel(1), .post),
                                  (DaemonRoute.log(1), .get), (DaemonRoute.file(1, path: "log.txt"), .get), (DaemonRoute.repository(1), .get),
                                  (DaemonRoute.repositoryPackage(1, name: "x.deb"), .post), ("/nothing", .get)] {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.status == .unauthorized, "\(method) \(uri)")
                    let message = try decode(ErrorResponse.self, response).error
                    #expect(message.contains("token"))
                }
            }
            try await client.execute(uri: DaemonRoute.projects, method: .get,
                                     headers: [.authorization: DaemonAuth.value(token: "wrong")]) { response in
                #expect(response.status == .unauthorized)
                let message = try decode(ErrorResponse.self, response).error
                #expect(message == "wrong API token")
            }
            try await client.execute(uri: DaemonRoute.projects, method: .get, headers: auth) { response in
                #expect(response.status == .ok)
                let decoded = try decode(ProjectList.self, response)
                #expect(decoded.projects.isEmpty)
            }
        }
    }

    @Test func projectLifecycle() async throws {
        try await withDaemon { daemon, client, data in
            let created = try await create(client)
            #expect(created.status == .empty)
            #expect(FileManager.default.fileExists(atPath: data + "/projects/\(created.id)"))
            let id = created.id
            // Nothing to build yet.
            try await client.execute(uri: DaemonRoute.build(id), method: .post, headers: auth) { response in
                #expect(response.status == .conflict)
                let message = try decode(ErrorResponse.self, response).error
                #expect(message.contains("no project file"))
            }
            // An invalid project is refused with its findings.
            try await client.execute(uri: DaemonRoute.source(id), method: .put, headers: auth,
                                     body: ByteBuffer(string: "<RootFileSystem><project/></RootFileSystem>")) { response in
                #expect(response.status == .badRequest)
                let error = try decode(ErrorResponse.self, response)
                #expect(error.error.contains("error"))
                #expect(!(error.diagnostics ?? []).isEmpty)
            }
            try await client.execute(uri: DaemonRoute.source(id), method: .put, headers: auth, body: ByteBuffer(string: "<not xml")) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(uri: DaemonRoute.source(id), method: .put, headers: auth,
                                     body: ByteBuffer(string: DaemonFixture.project(name: "lifecycle"))) { response in
                #expect(response.status == .ok)
                let info = try decode(ProjectInfo.self, response)
                #expect(info.status == .needsBuild)
                #expect(info.name == "lifecycle")
                #expect(info.version == "1.0")
            }
            #expect(FileManager.default.fileExists(atPath: data + "/projects/\(id)/source.xml"))
            // A build queued while another of the same project runs is refused; this one fails fast (no mirror).
            try await client.execute(uri: DaemonRoute.build(id), method: .post, headers: auth) { response in
                #expect(response.status == .accepted)
                let decoded = try decode(ProjectInfo.self, response)
                #expect(decoded.status == .busy)
            }
            try await client.execute(uri: DaemonRoute.build(id), method: .post, headers: auth) { response in
                // Still busy, or already over: never two builds of one project.
                #expect(response.status == .conflict || response.status == .accepted)
            }
            await daemon.queue.waitUntilIdle(id)
            let failed = try await client.execute(uri: DaemonRoute.project(id), method: .get, headers: auth) { response in
                try decode(ProjectInfo.self, response)
            }
            #expect(failed.status == .buildFailed)
            #expect(failed.reason?.isEmpty == false)
            #expect(failed.buildFinished != nil)
            try await client.execute(uri: DaemonRoute.log(id), method: .get, headers: auth) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("build FAILED"))
            }
            // The log and state of the failed build are listed and downloadable.
            let files = try await client.execute(uri: DaemonRoute.files(id), method: .get, headers: auth) { response in
                try decode(FileList.self, response).files
            }
            #expect(files.contains { $0.path == "log.txt" && $0.size > 0 })
            // Reset: back to needs_build, results gone.
            try await client.execute(uri: DaemonRoute.reset(id), method: .post, headers: auth) { response in
                #expect(response.status == .ok)
                let info = try decode(ProjectInfo.self, response)
                #expect(info.status == .needsBuild)
                #expect(info.reason == nil)
            }
            #expect(!FileManager.default.fileExists(atPath: data + "/projects/\(id)/build"))
            try await client.execute(uri: DaemonRoute.files(id), method: .get, headers: auth) { response in
                let decoded = try decode(FileList.self, response)
                #expect(decoded.files.isEmpty)
            }
            // Delete: gone from the list and from the disk.
            try await client.execute(uri: DaemonRoute.project(id), method: .delete, headers: auth) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: DaemonRoute.project(id), method: .get, headers: auth) { response in
                #expect(response.status == .notFound)
                let message = try decode(ErrorResponse.self, response).error
                #expect(message == "project \(id) does not exist")
            }
            #expect(!FileManager.default.fileExists(atPath: data + "/projects/\(id)"))
            // Ids are never reused.
            #expect(try await create(client).id == id + 1)
            try await client.execute(uri: "/projects/abc", method: .get, headers: auth) { response in
                #expect(response.status == .badRequest)
            }
        }
    }

    /// A project using an item Havel does not build that changes the output (`images/passno`) is refused when
    /// its build is asked for, naming the line, unless the request allows it (`--allow-unsupported`).
    @Test func buildsOfNotBuiltItemsAreRefusedUnlessAllowed() async throws {
        try await withDaemon { daemon, client, _ in
            let id = try await create(client).id
            let xml = DaemonFixture.project(name: "foreign").replacingOccurrences(of: "</pkg-list>", with: "</pkg-list>\n    <images><passno>1</passno></images>")
            let line = xml.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("<passno>") }! + 1
            try await client.execute(uri: DaemonRoute.source(id), method: .put, headers: auth, body: ByteBuffer(string: xml)) { response in
                #expect(response.status == .ok)
            }
            for body in ["", "{}", #"{"allowUnsupported":false}"#] {
                try await client.execute(uri: DaemonRoute.build(id), method: .post, headers: auth, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .badRequest, "body \(body)")
                    let error = try decode(ErrorResponse.self, response)
                    #expect(error.error.contains("--allow-unsupported"))
                    #expect((error.diagnostics ?? []).contains { $0.contains(":\(line):") && $0.contains("passno") }, "\(error.diagnostics ?? [])")
                }
            }
            try await client.execute(uri: DaemonRoute.build(id), method: .post, headers: auth, body: ByteBuffer(string: "{not json")) { response in
                #expect(response.status == .badRequest)
            }
            // Nothing was queued by the refusals.
            let info = try await client.execute(uri: DaemonRoute.project(id), method: .get, headers: auth) { try decode(ProjectInfo.self, $0) }
            #expect(info.status == .needsBuild)
            try await client.execute(uri: DaemonRoute.build(id), method: .post, headers: auth,
                                     body: ByteBuffer(bytes: try DaemonJSON.encoder().encode(BuildRequest(allowUnsupported: true)))) { response in
                #expect(response.status == .accepted)
            }
            await daemon.queue.waitUntilIdle(id)
            // It went past the loading (where a refusal would stop it) and failed at the unreachable mirror.
            let failed = try await client.execute(uri: DaemonRoute.project(id), method: .get, headers: auth) { try decode(ProjectInfo.self, $0) }
            #expect(failed.status == .buildFailed)
            #expect(failed.reason?.contains("Havel does not build") == false, "\(failed.reason ?? "")")
        }
    }

    /// `havel control build --cdroms` and `havel initvm submit --cdroms` ask for the binary CD; older clients' bodies do not.
    @Test func theBinaryCDIsBuiltWhenTheRequestAsksForIt() async throws {
        for (body, asked) in [("{}", false), (#"{"allowUnsupported":true}"#, false), (#"{"binaryCdrom":true}"#, true)] {
            let request = try DaemonJSON.decoder().decode(BuildRequest.self, from: Data(body.utf8))
            #expect(request.binaryCdrom == asked, "\(body)")
        }
        let encoded = try DaemonJSON.encoder().encode(BuildRequest(binaryCdrom: true))
        #expect(try DaemonJSON.decoder().decode(BuildRequest.self, from: encoded).binaryCdrom)
        try await withDaemon { daemon, client, _ in
            let id = try await create(client).id
            #expect(daemon.buildOptions(id, BuildRequest(binaryCdrom: true)).binaryCdrom)
            #expect(!daemon.buildOptions(id, BuildRequest()).binaryCdrom)
        }
    }

    /// `havel control build --cross --skip-pbuilder` and `initvm submit` pass both through; older bodies mean neither.
    @Test func crossAndSkipPbuilderReachTheBuildOptions() async throws {
        let request = try DaemonJSON.decoder().decode(BuildRequest.self, from: Data(#"{"crossBuild":true,"skipPbuilder":true}"#.utf8))
        #expect(request.crossBuild && request.skipPbuilder)
        let old = try DaemonJSON.decoder().decode(BuildRequest.self, from: Data("{}".utf8))
        #expect(!old.crossBuild && !old.skipPbuilder)
        try await withDaemon { daemon, client, _ in
            let id = try await create(client).id
            let options = daemon.buildOptions(id, request)
            #expect(options.crossBuild && options.skipOwnPackages)
            #expect(!daemon.buildOptions(id, BuildRequest()).skipOwnPackages)
        }
    }

    /// `havel control build --sdk` and `--pbuilder-only` reach the build options; only-pbuilder with anything that needs
    /// the target is refused before it is queued.
    @Test func sdkAndPbuilderOnlyReachTheBuildOptions() async throws {
        let request = try DaemonJSON.decoder().decode(BuildRequest.self, from: Data(#"{"sdk":true}"#.utf8))
        let only = try DaemonJSON.decoder().decode(BuildRequest.self, from: Data(#"{"pbuilderOnly":true,"crossBuild":true}"#.utf8))
        try await withDaemon { daemon, client, _ in
            let id = try await create(client).id
            #expect(daemon.buildOptions(id, request).sdk && !daemon.buildOptions(id, request).onlyOwnPackages)
            #expect(daemon.buildOptions(id, only).onlyOwnPackages && daemon.buildOptions(id, only).crossBuild)
            #expect(!daemon.buildOptions(id, BuildRequest()).sdk)
            try await client.execute(uri: DaemonRoute.build(id), method: .post, headers: auth,
                                     body: ByteBuffer(string: #"{"pbuilderOnly":true,"sdk":true}"#)) { response in
                #expect(response.status == .badRequest)
                let error = try decode(ErrorResponse.self, response)
                #expect(error.error.contains("pbuilderOnly builds only"))
            }
            // havel control build --pbuilder-chroot create|update: only the build chroot; anything else is refused.
            let chroot = try DaemonJSON.decoder().decode(BuildRequest.self, from: Data(#"{"pbuilderChroot":"update"}"#.utf8))
            #expect(daemon.buildOptions(id, chroot).buildChrootOnly == .update)
            #expect(daemon.buildOptions(id, BuildRequest()).buildChrootOnly == nil)
            for (body, message) in [(#"{"pbuilderChroot":"rebuild"}"#, "pbuilderChroot is create or update"),
                                    (#"{"pbuilderChroot":"create","sdk":true}"#, "pbuilderChroot makes only the build chroot")] {
                try await client.execute(uri: DaemonRoute.build(id), method: .post, headers: auth, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .badRequest)
                    let error = try decode(ErrorResponse.self, response)
                    #expect(error.error.contains(message), "\(body)")
                }
            }
        }
    }

    /// `havel control prjrepo upload|list`: a .deb of the project's architecture goes into its signed repository;
    /// anything else is refused with the reason, and names that are not plain .deb file names never reach the disk.
    @Test(.enabled(if: ["dpkg-deb", "apt-ftparchive", "gpg"].allSatisfy { ProcessRunner.which($0) != nil }, "needs dpkg-deb, apt-ftparchive and gpg"))
    func packagesUploadedToTheProjectRepositoryAreListedAndSigned() async throws {
        let scratch = NSTemporaryDirectory() + "havel-router-repo-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        func deb(_ name: String, architecture: String) async throws -> Data {
            let tree = scratch + "/" + name + "-" + architecture
            try FileManager.default.createDirectory(atPath: tree + "/DEBIAN", withIntermediateDirectories: true)
            try "Package: \(name)\nVersion: 1.0-1\nArchitecture: \(architecture)\nMaintainer: T <t@example.org>\nDescription: test\n"
                .write(toFile: tree + "/DEBIAN/control", atomically: true, encoding: .utf8)
            let built = try await ProcessRunner.run(Command("dpkg-deb", ["--root-owner-group", "-b", tree, tree + ".deb"]))
            #expect(built.succeeded, "\(built.standardError)")
            return try Data(contentsOf: URL(fileURLWithPath: tree + ".deb"))
        }
        let ours = try await deb("vendor-tool", architecture: "amd64")
        let foreign = try await deb("vendor-arm", architecture: "arm64")
        try await withDaemon { daemon, client, data in
            let id = try await create(client).id
            // Without a project file there is no suite or architecture to make the repository for.
            try await client.execute(uri: DaemonRoute.repositoryPackage(id, name: "vendor-tool.deb"), method: .post, headers: auth,
                                     body: ByteBuffer(bytes: ours)) { response in
                #expect(response.status == .conflict)
            }
            try await client.execute(uri: DaemonRoute.source(id), method: .put, headers: auth,
                                     body: ByteBuffer(string: DaemonFixture.project(name: "repo"))) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: DaemonRoute.repositoryPackage(id, name: "vendor-tool_1.0-1_amd64.deb"), method: .post, headers: auth,
                                     body: ByteBuffer(bytes: ours)) { response in
                #expect(response.status == .ok)
                let listing = try decode(ProjectRepositoryListing.self, response)
                #expect(listing.packages == [RepositoryPackage(name: "vendor-tool", version: "1.0-1", architecture: "amd64", source: "vendor-tool")])
            }
            try await client.execute(uri: DaemonRoute.repository(id), method: .get, headers: auth) { response in
                let names = try decode(ProjectRepositoryListing.self, response).packages.map(\.name)
                #expect(names == ["vendor-tool"])
            }
            let repository = data + "/projects/\(id)/build/repo"
            #expect(FileManager.default.fileExists(atPath: repository + "/dists/bookworm/InRelease"))
            for (name, body, reason) in [("vendor-arm.deb", foreign, "is for arm64"), ("notes.deb", Data("not a deb".utf8), "notes.deb")] {
                try await client.execute(uri: DaemonRoute.repositoryPackage(id, name: name), method: .post, headers: auth,
                                         body: ByteBuffer(bytes: body)) { response in
                    #expect(response.status == .badRequest, "\(name)")
                    let message = try decode(ErrorResponse.self, response).error
                    #expect(message.contains(reason), "\(name): \(message)")
                }
            }
            for name in ["..%2Fescape.deb", "tool.tar", ".deb"] {
                try await client.execute(uri: "/projects/\(id)/repo/\(name)", method: .post, headers: auth, body: ByteBuffer(bytes: ours)) { response in
                    #expect(response.status == .badRequest || response.status == .notFound, "\(name): \(response.status)")
                }
            }
            #expect(!FileManager.default.fileExists(atPath: data + "/projects/\(id)/escape.deb"))
            try await client.execute(uri: DaemonRoute.repository(id), method: .get, headers: auth) { response in
                let names = try decode(ProjectRepositoryListing.self, response).packages.map(\.name)
                #expect(names == ["vendor-tool"])
            }
            _ = daemon
        }
    }

    @Test func filesAreConfinedToTheBuildDirectory() async throws {
        try await withDaemon { _, client, data in
            let id = try await create(client).id
            let build = data + "/projects/\(id)/build"
            try FileManager.default.createDirectory(atPath: build + "/artifacts", withIntermediateDirectories: true)
            try "report\n".write(toFile: build + "/report.txt", atomically: true, encoding: .utf8)
            try "kernel".write(toFile: build + "/artifacts/my file.bin", atomically: true, encoding: .utf8)
            try "secret".write(toFile: data + "/projects/\(id)/outside.txt", atomically: true, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: build + "/escape", withDestinationPath: "/etc/passwd")
            try FileManager.default.createSymbolicLink(atPath: build + "/up", withDestinationPath: "../outside.txt")
            try FileManager.default.createSymbolicLink(atPath: build + "/inside", withDestinationPath: "report.txt")

            func get(_ uri: String) async throws -> (HTTPResponse.Status, String) {
                try await client.execute(uri: uri, method: .get, headers: auth) { ($0.status, String(buffer: $0.body)) }
            }
            #expect(try await get(DaemonRoute.file(id, path: "report.txt")) == (.ok, "report\n"))
            #expect(try await get(DaemonRoute.file(id, path: "artifacts/my file.bin")) == (.ok, "kernel"))
            #expect(try await get(DaemonRoute.file(id, path: "inside")) == (.ok, "report\n"))
            let refused = [
                "/projects/\(id)/files/../outside.txt",
                "/projects/\(id)/files/artifacts/../../outside.txt",
                "/projects/\(id)/files/%2E%2E/outside.txt",
                "/projects/\(id)/files/..%2Foutside.txt",
                "/projects/\(id)/files//etc/passwd",
                "/projects/\(id)/files/%2Fetc%2Fpasswd",
                "/projects/\(id)/files/./report.txt",
                "/projects/\(id)/files/escape",
                "/projects/\(id)/files/up",
            ]
            for uri in refused {
                let (status, body) = try await get(uri)
                #expect(status == .badRequest, "\(uri): \(status) \(body)")
                #expect(!body.contains("secret") && !body.contains("root:"))
            }
            #expect(try await get(DaemonRoute.file(id, path: "missing.txt")).0 == .notFound)
            #expect(try await get(DaemonRoute.file(id, path: "artifacts")).0 == .badRequest)
            #expect(try await get(DaemonRoute.file(id + 1, path: "report.txt")).0 == .notFound)
        }
    }

    @Test func busyProjectsBecomeFailedAfterARestart() async throws {
        let data = try DaemonFixture.temporaryDirectory("restart")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let configuration = DaemonFixture.configuration(data: data)
        var id: ProjectID = 0
        do {
            let daemon = try await HavelDaemon(configuration: configuration)
            id = try await daemon.store.create().id!
            // As a killed daemon leaves it: busy in the database, a running state.json.
            try await daemon.store.update(id) { $0.status = ProjectStatus.busy.rawValue }
            let directory = daemon.directory(id).build
            try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
            try BuildState(project: "p", version: "1", architecture: "amd64", havelVersion: "test", started: Date()).write(directory.state)
        }
        let restarted = try await HavelDaemon(configuration: configuration)
        let record = try await restarted.store.project(id)
        #expect(record.projectStatus == .buildFailed)
        #expect(record.reason == HavelDaemon.interruptedReason)
        let state = BuildState.read(restarted.directory(id).build.state)
        #expect(state?.status == .failed)
        #expect(state?.reason == HavelDaemon.interruptedReason)
        let log = try String(contentsOfFile: restarted.directory(id).build.log, encoding: .utf8)
        #expect(log.contains(HavelDaemon.interruptedReason))
    }
}
