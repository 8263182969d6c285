// DaemonSecurityTests: the daemon and its clients probed as an attacker would (issue 15): includes, bounded
// reads, output names, uploads, the data directory, and clients that do not trust the server.

import Build
import DaemonAPI
import DaemonClient
import Foundation
import HavelCore
import Hummingbird
import HummingbirdTesting
import ProjectXML
import SystemKit
import Testing
@testable import Daemon

@Suite struct DaemonSecurityTests {
    let auth: HTTPFields = [.authorization: DaemonAuth.value(token: DaemonFixture.token)]

    /// A project whose `<project>` and `<target>` get extra elements.
    static func project(name: String = "secure", project: String = "", target: String = "") -> String {
        """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" xmlns:xi="http://www.w3.org/2001/XInclude" revision="6">
          <project>
            <name>\(name)</name><version>1.0</version><buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto>\(project)</mirror>
            <suite>bookworm</suite>
          </project>
          <target>
            <hostname>secure</hostname>
            \(target)
          </target>
        </RootFileSystem>
        """
    }

    func withRouter(maximumProjectSize: Int = ProjectFile.maximumSize,
                    _ body: @Sendable (HavelDaemon, any TestClientProtocol, String) async throws -> Void) async throws {
        try await DaemonFixture.withRouter(name: "security", configure: { $0.maximumProjectSize = maximumProjectSize }, body)
    }

    func create(_ client: some TestClientProtocol) async throws -> ProjectID {
        try await client.execute(uri: DaemonRoute.projects, method: .post, headers: auth) { response in
            try DaemonJSON.decoder().decode(ProjectInfo.self, from: Data(response.body.readableBytesView)).id
        }
    }

    func upload(_ client: some TestClientProtocol, _ id: ProjectID, _ body: ByteBuffer) async throws -> (HTTPResponse.Status, String) {
        try await client.execute(uri: DaemonRoute.source(id), method: .put, headers: auth, body: body) { ($0.status, String(buffer: $0.body)) }
    }

    // MARK: - 1. Includes

    /// project/main.xml beside secret.txt (outside the project's directory), with a link to it inside.
    func includeLayout() throws -> (root: String, main: String) {
        let root = try DaemonFixture.temporaryDirectory("includes")
        try FileManager.default.createDirectory(atPath: root + "/project/parts", withIntermediateDirectories: true)
        try "SECRET-CONTENT".write(toFile: root + "/secret.txt", atomically: true, encoding: .utf8)
        try "inside-name".write(toFile: root + "/project/parts/name.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: root + "/project/parts/link.txt", withDestinationPath: "../../secret.txt")
        return (root, root + "/project/main.xml")
    }

    func loadIncluding(_ href: String, at main: String, includes: Preprocessor.IncludePolicy = .confined(to: [])) throws -> LoadedProject {
        let xml = Self.project(name: "<xi:include href=\"\(href)\" parse=\"text\"/>")
        try xml.write(toFile: main, atomically: true, encoding: .utf8)
        return try ProjectLoader.load(path: main, options: .init(preprocess: .init(hashPasswords: false, includes: includes)))
    }

    @Test func includesStayBelowTheProjectFilesDirectory() throws {
        let (root, main) = try includeLayout()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let inside = try loadIncluding("parts/name.txt", at: main)
        #expect(inside.errors.isEmpty, "\(inside.errors)")
        #expect(inside.project.name == "inside-name")
        for href in ["../secret.txt", root + "/secret.txt", "file://" + root + "/secret.txt", "parts/link.txt", "/proc/self/environ"] {
            let loaded = try loadIncluding(href, at: main)
            #expect(loaded.errors.contains { $0.message.contains("outside the project file's directory") && $0.location?.line == 3 },
                    "\(href): \(loaded.errors)")
            #expect(!loaded.project.name.contains("SECRET") && !loaded.project.name.contains("PATH="), "\(href)")
        }
    }

    @Test func includeDirectoriesWidenTheConfinement() throws {
        let (root, main) = try includeLayout()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let loaded = try loadIncluding("../secret.txt", at: main, includes: .confined(to: [root]))
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        #expect(loaded.project.name == "SECRET-CONTENT")
    }

    @Test func uploadedProjectsIncludeNothing() throws {
        let (root, main) = try includeLayout()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let loaded = try loadIncluding("parts/name.txt", at: main, includes: .refused)
        #expect(loaded.errors.contains { $0.message.contains("may not include files") })
        #expect(loaded.project.name != "inside-name")
    }

    @Test func theDaemonRefusesAnUploadWithIncludesOrFileMirrors() async throws {
        try await withRouter { _, client, data in
            let id = try await create(client)
            for xml in [Self.project(name: "<xi:include href=\"/proc/self/environ\" parse=\"text\"/>"),
                        Self.project(name: "<xi:include href=\"source.xml\" parse=\"text\"><xi:fallback>x</xi:fallback></xi:include>"),
                        Self.project(project: "<url-list><url><binary>file:///etc/apt bookworm main</binary></url></url-list>")] {
                let (status, body) = try await upload(client, id, ByteBuffer(string: xml))
                #expect(status == .badRequest, "\(body)")
                #expect(body.contains("may not include files") || body.contains("file: repository"), "\(body)")
                #expect(!body.contains("PATH="))
            }
            #expect(!FileManager.default.fileExists(atPath: data + "/projects/\(id)/source.xml"))
        }
    }

    @Test func theDaemonRefusesAnUploadWithArchivedirOrKeyAndSaysToPreprocess() async throws {
        try await withRouter { _, client, data in
            let id = try await create(client)
            let archivedir = Self.project().replacingOccurrences(of: "</RootFileSystem>", with: "<archivedir>/etc</archivedir></RootFileSystem>")
            let key = Self.project(project: "<url-list><url><binary>http://MIRROR_HOST/extra bookworm main</binary><key>http://LOCALMACHINE/key.asc</key></url></url-list>")
            for (xml, element) in [(archivedir, "<archivedir>"), (key, "<key>")] {
                let (status, body) = try await upload(client, id, ByteBuffer(string: xml))
                #expect(status == .badRequest, "\(body)")
                #expect(body.contains(element) && body.contains("preprocess"), "\(body)")
            }
            #expect(!FileManager.default.fileExists(atPath: data + "/projects/\(id)/source.xml"))
        }
    }

    // MARK: - 2. Bounded reads

    @Test(.timeLimit(.minutes(15))) func readsStopAtTheLimitWhileReading() throws {
        // /proc reports size 0 for a file of hundreds of gigabytes.
        do {
            let bytes = try ProjectFile.readBytes("/proc/self/pagemap", limit: 1 << 20)
            Issue.record("read \(bytes.count) bytes of /proc/self/pagemap past a 1 MiB limit")
        } catch {
            #expect(error.code == .invalidProject)
            #expect(error.message.contains("larger than"), "\(error.message)")
        }
        #expect(throws: HavelError.self) { try ProjectFile.readBytes("/dev/zero", limit: 1 << 20) }
    }

    @Test func manyIncludesOfOneFileAreBoundedTogether() throws {
        let root = try DaemonFixture.temporaryDirectory("include-total")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try String(repeating: "x", count: 10_000).write(toFile: root + "/big.txt", atomically: true, encoding: .utf8)
        let includes = String(repeating: "<xi:include href=\"big.txt\" parse=\"text\"/>", count: 20)
        try Self.project(target: "<finetuning><command>\(includes)</command></finetuning>").write(toFile: root + "/main.xml", atomically: true, encoding: .utf8)
        let options = ProjectLoader.Options(preprocess: .init(hashPasswords: false, maximumSize: 64 << 10))
        let loaded = try ProjectLoader.load(path: root + "/main.xml", options: options)
        #expect(loaded.errors.contains { $0.message.contains("together") }, "\(loaded.errors)")
        let generous = try ProjectLoader.load(path: root + "/main.xml", options: .init(preprocess: .init(hashPasswords: false)))
        #expect(!generous.errors.contains { $0.message.contains("together") })
    }

    // MARK: - 3. Output names

    @Test func everyOutputNameIsAPlainFileName() throws {
        let bad = [
            ("tar", "<package><tar><name>../../victim.txt</name></tar></package>"),
            ("cpio", "<package><cpio><name>a/b.cpio</name></cpio></package>"),
            ("squashfs", "<package><squashfs><name>..</name></squashfs></package>"),
            ("gpthd", "<images><gpthd><name>.</name><size>64MiB</size><partition><size>remain</size><label>rfs</label></partition></gpthd></images>"),
            ("msdoshd", "<images><msdoshd><name>/etc/passwd</name><size>64MiB</size><partition><size>remain</size><label>rfs</label></partition></msdoshd></images>"),
        ]
        for (parent, target) in bad {
            let loaded = try ProjectLoader.load(text: Self.project(target: target), file: "p.xml")
            let problems = ValidatedProject.outputNameProblems(loaded)
            #expect(problems.contains { $0.elementPath?.hasSuffix("/\(parent)/name") == true }, "\(parent): \(problems)")
        }
        for name in ["a/b", "..", "tab\there"] {
            let loaded = try ProjectLoader.load(text: Self.project(name: name), file: "p.xml")
            #expect(!ValidatedProject.outputNameProblems(loaded).isEmpty, "\(name)")
        }
        #expect(!ValidatedProject.isPlainFileName("") && !ValidatedProject.isPlainFileName("a\u{0}b"))
        #expect(ValidatedProject.isPlainFileName("rootfs.tar.gz"))
    }

    @Test func theDaemonRefusesOutputNamesLeavingTheBuildDirectoryAtUpload() async throws {
        try await withRouter { _, client, data in
            let id = try await create(client)
            let xml = Self.project(target: "<package><tar><name>../../../../victim.txt</name></tar></package>")
            let (status, body) = try await upload(client, id, ByteBuffer(string: xml))
            #expect(status == .badRequest)
            #expect(body.contains("not a plain file name"), "\(body)")
            #expect(!FileManager.default.fileExists(atPath: data + "/projects/\(id)/source.xml"))
        }
    }

    // MARK: - 4. Uploads: UTF-8 and the one limit

    @Test func uploadsMustBeUTF8() async throws {
        try await withRouter { _, client, data in
            let id = try await create(client)
            var bytes = Array(Self.project(name: "bad-NAME").utf8)
            let index = try #require(bytes.firstIndex(of: UInt8(ascii: "N")))
            bytes[index] = 0xFF
            let (status, body) = try await upload(client, id, ByteBuffer(bytes: bytes))
            #expect(status == .badRequest)
            #expect(body.contains("UTF-8"), "\(body)")
            #expect(!FileManager.default.fileExists(atPath: data + "/projects/\(id)/source.xml"))
        }
    }

    @Test func theUploadLimitIsTheLoadersAndOneSetting() async throws {
        #expect(DaemonFixture.configuration(data: "/nonexistent").maximumProjectSize == ProjectFile.maximumSize)
        try await withRouter(maximumProjectSize: 16 << 10) { _, client, data in
            let id = try await create(client)
            let padding = "<!--" + String(repeating: "x", count: 20 << 10) + "-->"
            let (status, body) = try await upload(client, id, ByteBuffer(string: Self.project() + padding))
            #expect(status == .contentTooLarge, "\(body)")
            #expect(body.contains("limit"))
            #expect(!FileManager.default.fileExists(atPath: data + "/projects/\(id)/source.xml"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: data + "/uploads").isEmpty)
            let (small, smallBody) = try await upload(client, id, ByteBuffer(string: Self.project()))
            #expect(small == .ok, "\(smallBody)")
        }
    }

    /// The project repository's upload route (`havel control prjrepo upload`) takes only a plain .deb file
    /// name, decoded once, and leaves nothing staged whatever it refuses.
    @Test func packageUploadsTakeOnlyPlainDebNamesAndLeaveNothingStaged() async throws {
        try await withRouter { _, client, data in
            let id = try await create(client)
            let (status, body) = try await upload(client, id, ByteBuffer(string: Self.project()))
            #expect(status == .ok, "\(body)")
            for name in ["..%2F..%2Fescape.deb", "%2Fetc%2Fescape.deb", "escape.deb%00", "%2E%2E", "escape"] {
                try await client.execute(uri: "/projects/\(id)/repo/\(name)", method: .post, headers: auth, body: ByteBuffer(string: "x")) { response in
                    #expect(response.status == .badRequest || response.status == .notFound, "\(name): \(response.status)")
                }
            }
            // A body that is no .deb is refused after staging, and the staged file goes.
            try await client.execute(uri: DaemonRoute.repositoryPackage(id, name: "broken.deb"), method: .post, headers: auth,
                                     body: ByteBuffer(string: "not a debian package")) { response in
                #expect(response.status == .badRequest)
            }
            #expect(!FileManager.default.fileExists(atPath: data + "/escape.deb") && !FileManager.default.fileExists(atPath: "/etc/escape.deb"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: data + "/uploads").isEmpty)
            #expect(!FileManager.default.fileExists(atPath: data + "/projects/\(id)/build/repo"))
            // Without the token nothing is read or written.
            try await client.execute(uri: DaemonRoute.repositoryPackage(id, name: "x.deb"), method: .post, body: ByteBuffer(string: "x")) { response in
                #expect(response.status == .unauthorized)
            }
        }
    }

    // MARK: - 5. Project directories and the log

    @Test func uploadToAMissingProjectLeavesNoDirectory() async throws {
        try await withRouter { _, client, data in
            let (status, _) = try await upload(client, 42, ByteBuffer(string: Self.project()))
            #expect(status == .notFound)
            #expect(!FileManager.default.fileExists(atPath: data + "/projects/42"))
        }
    }

    @Test func theLogIsNotReadThroughASymbolicLink() async throws {
        try await withRouter { _, client, data in
            let id = try await create(client)
            try "SECRET-CONTENT\n".write(toFile: data + "/secret.txt", atomically: true, encoding: .utf8)
            let build = data + "/projects/\(id)/build"
            try FileManager.default.createDirectory(atPath: build, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: build + "/log.txt", withDestinationPath: data + "/secret.txt")
            let body = try await client.execute(uri: DaemonRoute.log(id), method: .get, headers: auth) { String(buffer: $0.body) }
            #expect(!body.contains("SECRET"))
        }
    }

    // MARK: - 6. Clients

    @Test func clientsTakeOnlyPlainRelativeNamesFromTheFileList() throws {
        for path in ["../x", "../../x", "/etc/passwd", "a/../b", "a//b", "./a", "", "a/", "a\u{0}b"] {
            #expect(throws: HavelError.self, "\(path.debugDescription)") { try DaemonClient.plainRelativeComponents(path) }
        }
        #expect(try DaemonClient.plainRelativeComponents("artifacts/my file.bin") == ["artifacts", "my file.bin"])
    }

    @Test func clientsWriteNoFileThroughASymbolicLink() async throws {
        let data = try DaemonFixture.temporaryDirectory("client-links")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let daemon = try await HavelDaemon(configuration: DaemonFixture.configuration(data: data))
        try await DaemonFixture.withLiveDaemon(daemon) { client, _ in
            let id = try await client.createProject().id
            let build = data + "/projects/\(id)/build"
            try FileManager.default.createDirectory(atPath: build + "/sub", withIntermediateDirectories: true)
            try "result".write(toFile: build + "/sub/file.txt", atomically: true, encoding: .utf8)
            try "result".write(toFile: build + "/top.txt", atomically: true, encoding: .utf8)
            let output = data + "/output"
            let elsewhere = data + "/elsewhere"
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: output + "/sub", withDestinationPath: elsewhere)
            try FileManager.default.createSymbolicLink(atPath: output + "/top.txt", withDestinationPath: elsewhere + "/top.txt")
            await #expect(throws: HavelError.self) { try await client.download(id, path: "sub/file.txt", into: output) }
            await #expect(throws: HavelError.self) { try await client.download(id, path: "top.txt", into: output) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere).isEmpty)
            try FileManager.default.removeItem(atPath: output + "/sub")
            let written = try await client.download(id, path: "sub/file.txt", into: output)
            #expect(written.path == output + "/sub/file.txt" && written.size == 6)
        }
    }

    @Test func aDownDaemonIsSaidPlainly() async throws {
        let port = try Self.freePort()
        let client = DaemonClient(baseURL: "http://127.0.0.1:\(port)", token: "t")
        do {
            _ = try await client.projects()
            Issue.record("a call to a closed port succeeded")
        } catch {
            #expect(error.message == "cannot connect to the daemon at 127.0.0.1:\(port): connection refused")
        }
    }

    @Test(.timeLimit(.minutes(15))) func aTricklingDaemonIsCutOff() async throws {
        let server = try TricklingServer()
        defer { server.stop() }
        var client = DaemonClient(baseURL: "http://127.0.0.1:\(server.port)", token: "t")
        client.timeout = .seconds(3)
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await client.project(1)
            Issue.record("a trickled answer that never ends was accepted")
        } catch {
            #expect(error.message.contains("no complete answer within 3 s"), "\(error.message)")
        }
        #expect(clock.now - start < .seconds(240), "the trickle would go on for ever: this is a bound for a busy machine")
    }

    @Test(.timeLimit(.minutes(15))) func connectionsThatNeverFinishTheirHeadersAreClosed() async throws {
        try await Self.withLiveDaemon("headers", idleTimeout: .seconds(10)) { client, port, _ in
            let fd = try Self.connect(port: port)
            defer { close(fd) }
            try Sockets.writeAll(fd, Array("GET /health HTTP/1.1\r\nHost: 127".utf8))
            // Generous: the server closes after 10 s (room for the health check below on a busy machine);
            // a server without a header timeout never does.
            let received = try await Sockets.receive(fd, until: .now + .seconds(45))
            #expect(received == .closed)
            #expect(try await client.health().status == "ok")
        }
    }

    // MARK: - 7. The data directory

    @Test func aSecondDaemonOnTheSameDataIsRefused() async throws {
        let data = try DaemonFixture.temporaryDirectory("lock")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let first = try await HavelDaemon(configuration: DaemonFixture.configuration(data: data))
        do {
            _ = try await HavelDaemon(configuration: DaemonFixture.configuration(data: data))
            Issue.record("a second daemon started on the same data directory")
        } catch {
            #expect(error.code == .conflict)
            #expect(error.message.contains("another havel daemon is using the data directory"))
        }
        await first.stop()
        withExtendedLifetime(first) {}
    }

    @Test func aMissingDatabaseWithProjectsOnDiskIsAnError() async throws {
        let data = try DaemonFixture.temporaryDirectory("no-database")
        defer { try? FileManager.default.removeItem(atPath: data) }
        try FileManager.default.createDirectory(atPath: data + "/projects/1", withIntermediateDirectories: true)
        do {
            _ = try await HavelDaemon(configuration: DaemonFixture.configuration(data: data))
            Issue.record("a daemon started afresh over existing projects")
        } catch {
            #expect(error.message.contains("is missing"), "\(error.message)")
        }
        #expect(!FileManager.default.fileExists(atPath: data + "/havel.sqlite"))
    }

    @Test(.timeLimit(.minutes(15))) func aDeletedDatabaseStopsTheDaemon() async throws {
        try await Self.expectDaemonStops(name: "deleted-database", saying: "was deleted while the daemon ran") { database in
            #expect(unlink(database) == 0)
        }
    }

    @Test(.timeLimit(.minutes(15))) func aReplacedDatabaseStopsTheDaemon() async throws {
        try await Self.expectDaemonStops(name: "replaced-database", saying: "was replaced while the daemon ran") { database in
            // Another database file moved into the path, as a restore from a backup would.
            let other = try ProjectStore(path: database + ".other")
            _ = try await other.create()
            #expect(rename(database + ".other", database) == 0)
        }
    }

    /// A daemon serving on a fresh data directory, whose database `change` deletes or replaces: the daemon
    /// ends by itself (one that does not notice serves until the time limit) with an error naming the file.
    static func expectDaemonStops(name: String, saying problem: String, _ change: (String) async throws -> Void) async throws {
        let data = try DaemonFixture.temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: data) }
        let daemon = try await HavelDaemon(configuration: DaemonFixture.configuration(data: data))
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let server = Task { try await daemon.serve(handlingSignals: false) { port in continuation.yield(port) } }
        var iterator = ports.makeAsyncIterator()
        _ = await iterator.next()
        try await change(data + "/havel.sqlite")
        do {
            try await server.value
            Issue.record("the daemon stopped without saying why")
        } catch let error as HavelError {
            #expect(error.message.contains("the project database \(data)/havel.sqlite \(problem)"), "\(error.message)")
        }
    }

    @Test func writesIntoAReplacedDatabaseAreRefused() async throws {
        let data = try DaemonFixture.temporaryDirectory("replaced-store")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let store = try ProjectStore(path: data + "/havel.sqlite")
        _ = try await store.create()
        try Data("not the opened database".utf8).write(to: URL(fileURLWithPath: data + "/other"))
        #expect(rename(data + "/other", data + "/havel.sqlite") == 0)
        do {
            _ = try await store.create()
            Issue.record("a write went into the replaced database")
        } catch {
            #expect(error.message.contains("the project database \(data)/havel.sqlite was replaced"), "\(error.message)")
        }
    }

    // MARK: - 8. Uploads that stall, race a delete, or crowd the server

    @Test(.timeLimit(.minutes(15))) func aStalledUploadIsCutOffAndLeavesNothing() async throws {
        // The idle time-out also covers the ordinary requests below, so it is generous for a busy machine
        // (2 s cut off the test's own upload under CI load); the stalled upload never sends the rest.
        try await Self.withLiveDaemon("stalled-upload", idleTimeout: .seconds(20)) { client, port, data in
            let id = try await client.createProject().id
            let original = Self.project(name: "original")
            _ = try await client.upload(id, xml: original)
            // A whole project, but announced longer: what arrived must not be taken for the upload.
            let stalled = Array(Self.project(name: "stalled").utf8)
            let fd = try await Self.startUpload(port: port, id: id, sending: stalled, of: stalled.count + 1000)
            defer { close(fd) }
            // Generous: the daemon cuts the body off after 20 s; one without a body timeout never does.
            let answer = try await Self.answer(fd, until: .now + .seconds(90))
            #expect(answer.closed, "the stalled upload's connection is still open; it received \(answer.text)")
            try await Self.waitForStagedUploads(data, count: 0)
            #expect(try String(contentsOfFile: data + "/projects/\(id)/source.xml", encoding: .utf8) == original)
            let info = try await client.project(id)
            #expect(info.name == "original" && info.status == .needsBuild)
        }
    }

    @Test func uploadsAKilledDaemonStagedAreRemovedAtStart() async throws {
        let data = try DaemonFixture.temporaryDirectory("staged-uploads")
        defer { try? FileManager.default.removeItem(atPath: data) }
        try FileManager.default.createDirectory(atPath: data + "/uploads", withIntermediateDirectories: true)
        try Data("<RootFileSystem".utf8).write(to: URL(fileURLWithPath: data + "/uploads/1-0123abcd.xml"))
        let daemon = try await HavelDaemon(configuration: DaemonFixture.configuration(data: data))
        #expect(try FileManager.default.contentsOfDirectory(atPath: data + "/uploads").isEmpty)
        await daemon.stop()
    }

    @Test(.timeLimit(.minutes(15))) func deletingAProjectEndsItsUploadAndLeavesNothing() async throws {
        try await Self.withLiveDaemon("delete-upload", idleTimeout: .seconds(600)) { client, port, data in
            let id = try await client.createProject().id
            let fd = try await Self.startUpload(port: port, id: id, sending: Array(Self.project().utf8.prefix(200)), of: 1 << 20)
            defer { close(fd) }
            try await Self.waitForStagedUploads(data, count: 1)
            try await client.deleteProject(id)
            // Generous: the delete ends the upload at once; without that it waits for the rest of the body.
            let answer = try await Self.answer(fd, until: .now + .seconds(90))
            #expect(answer.text.hasPrefix("HTTP/1.1 404"), "\(answer.text)")
            #expect(answer.text.contains("project \(id) was deleted during its upload; nothing stored"), "\(answer.text)")
            try await Self.waitForStagedUploads(data, count: 0)
            #expect(!FileManager.default.fileExists(atPath: data + "/projects/\(id)"))
        }
    }

    @Test(.timeLimit(.minutes(15))) func theDaemonAnswersWhileLargeUploadsAreInFlight() async throws {
        try await Self.withLiveDaemon("busy-uploads", idleTimeout: .seconds(600)) { client, port, data in
            let size = 10 << 20
            let xml = Self.project()
            let body = Array((xml + "<!--" + String(repeating: "x", count: size - xml.utf8.count - 8) + "-->\n").utf8)
            #expect(body.count == size)
            var uploads: [Int32] = []
            defer { uploads.forEach { close($0) } }
            for _ in 0..<2 {
                let id = try await client.createProject().id
                uploads.append(try await Self.startUpload(port: port, id: id, sending: Array(body[..<(1 << 20)]), of: size))
            }
            try await Self.waitForStagedUploads(data, count: 2)
            #expect(try await client.health().status == "ok")
            #expect(try await client.projects().count == 2)
            // Both uploads still run: the rest of their bodies was never sent, nor did they answer.
            for fd in uploads {
                let early = try await Self.answer(fd, until: .now)
                #expect(early.text.isEmpty && !early.closed, "\(early.text)")
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: data + "/uploads").count == 2)
            for fd in uploads {
                for start in stride(from: 1 << 20, to: size, by: 1 << 20) {
                    try await Sockets.sendAll(fd, Array(body[start..<min(size, start + (1 << 20))]), until: .now + .seconds(120))
                }
            }
            // A hang guard: the daemon checks each 10 MiB project file before it answers, which on a busy
            // machine (a CI run at full load) took longer than 180 s once.
            for fd in uploads {
                let answer = try await Self.answer(fd, until: .now + .seconds(600))
                #expect(answer.text.hasPrefix("HTTP/1.1 200"), "\(answer.text.prefix(500))")
            }
        }
    }

    // MARK: - Helpers

    /// A live daemon on a fresh data directory (removed afterwards) whose connections idle out after `idleTimeout`.
    static func withLiveDaemon(_ name: String, idleTimeout: Duration, _ body: @Sendable (DaemonClient, Int, String) async throws -> Void) async throws {
        let data = try DaemonFixture.temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: data) }
        var configuration = DaemonFixture.configuration(data: data)
        configuration.connectionIdleTimeout = idleTimeout
        let daemon = try await HavelDaemon(configuration: configuration)
        try await DaemonFixture.withLiveDaemon(daemon) { client, port in try await body(client, port, data) }
    }

    /// A raw `PUT` of project `id`'s source announcing `length` bytes, of which `sending` are sent.
    static func startUpload(port: Int, id: ProjectID, sending: [UInt8], of length: Int) async throws -> Int32 {
        let fd = try connect(port: port)
        let head = "PUT \(DaemonRoute.source(id)) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(DaemonAuth.header): \(DaemonAuth.value(token: DaemonFixture.token))\r\n"
            + "Content-Type: application/xml\r\nContent-Length: \(length)\r\n\r\n"
        do {
            try await Sockets.sendAll(fd, Array(head.utf8) + sending, until: .now + .seconds(120))
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// What the daemon answered on `fd` by `deadline`: stops at a complete answer (its head and as much body
    /// as its Content-Length says) or when the daemon closed the connection.
    static func answer(_ fd: Int32, until deadline: ContinuousClock.Instant) async throws -> (text: String, closed: Bool) {
        var bytes: [UInt8] = []
        while true {
            let received: Sockets.Received
            do {
                received = try await Sockets.receive(fd, until: deadline)
            } catch {
                return (String(decoding: bytes, as: UTF8.self), true)  // reset: closed with our bytes unread
            }
            switch received {
            case .bytes(let more): bytes += more
            case .closed: return (String(decoding: bytes, as: UTF8.self), true)
            case .timedOut, .cancelled: return (String(decoding: bytes, as: UTF8.self), false)
            }
            let text = String(decoding: bytes, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n") {
                let length = text[..<end.lowerBound].split(separator: "\r\n")
                    .first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                if text[end.upperBound...].utf8.count >= length { return (text, false) }
            }
            if ContinuousClock.now >= deadline { return (text, false) }
        }
    }

    /// Waits (generously) until `<data>/uploads` holds `count` staged files.
    static func waitForStagedUploads(_ data: String, count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(120)
        while (try FileManager.default.contentsOfDirectory(atPath: data + "/uploads")).count != count {
            guard ContinuousClock.now < deadline else {
                Issue.record("\(data)/uploads never held \(count) files")
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// A TCP connection to 127.0.0.1:`port`.
    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Sockets.loopbackAddress(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw HavelError(.io, "cannot connect to 127.0.0.1:\(port): \(errnoText())")
        }
        return fd
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = Sockets.loopbackAddress(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw HavelError(.io, "bind: \(errnoText())") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A server on 127.0.0.1 that answers every connection with a header and then one body byte a second,
/// forever: a client with only a header timeout would wait for ever.
final class TricklingServer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let stopped = StopSignal()

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Sockets.loopbackAddress(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { close(fd); throw HavelError(.io, "cannot listen: \(errnoText())") }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let listener = fd
        let stopped = self.stopped
        Thread.detachNewThread {
            while !stopped.isSet {
                let connection = accept(listener, nil, nil)
                guard connection >= 0 else { return }
                Thread.detachNewThread {
                    defer { close(connection) }
                    let head = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n".utf8)
                    // The request first: an answer that came before it would be taken for no answer to it,
                    // and the first trickled byte for a malformed next answer.
                    Sockets.setTimeout(connection, seconds: 30)
                    var request: [UInt8] = []
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    while !request.suffix(4).elementsEqual("\r\n\r\n".utf8), request.count < 65536 {
                        let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
                        guard count > 0 else { return }
                        request += buffer[0..<count]
                    }
                    guard (try? Sockets.writeAll(connection, head)) != nil else { return }
                    while !stopped.isSet, (try? Sockets.writeAll(connection, [UInt8(ascii: " ")])) != nil {
                        Thread.sleep(forTimeInterval: 1)
                    }
                }
            }
        }
    }

    func stop() {
        stopped.set()
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}

final class StopSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
