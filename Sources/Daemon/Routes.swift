import Build
import DaemonAPI
import Foundation
import HavelCore
import Hummingbird
import ProjectXML

extension HavelDaemon {
    /// The largest project file accepted (archives come base64-encoded inside it).
    static let maximumSourceSize = 256 << 20

    /// The API (see `DaemonRoute`): /health without a token, everything else behind it.
    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        let version = configuration.havelVersion
        router.get(RouterPath(DaemonRoute.health)) { _, _ in
            Response.json(HealthResponse(status: "ok", havelVersion: version))
        }
        router.add(middleware: TokenMiddleware(token: configuration.token))

        router.get("/projects") { _, _ in try await self.listProjects() }
        router.post("/projects") { _, _ in try await self.createProject() }
        router.get("/projects/{id}") { _, context in try await self.info(try Self.id(context)) }
        router.delete("/projects/{id}") { _, context in try await self.deleteProject(try Self.id(context)) }
        router.put("/projects/{id}/source") { request, context in
            var request = request
            let body = try await request.collectBody(upTo: Self.maximumSourceSize)
            return try await self.upload(try Self.id(context), String(buffer: body))
        }
        router.post("/projects/{id}/build") { _, context in try await self.build(try Self.id(context)) }
        router.post("/projects/{id}/reset") { _, context in try await self.reset(try Self.id(context)) }
        router.get("/projects/{id}/log") { request, context in
            let follow = ["true", "1", "yes"].contains(request.uri.queryParameters.get("follow") ?? "")
            return try await self.log(try Self.id(context), follow: follow)
        }
        router.get("/projects/{id}/files") { _, context in
            let id = try Self.id(context)
            _ = try await self.store.project(id)
            return Response.json(FileList(files: try await self.store.files(id)))
        }
        router.get("/projects/{id}/files/**") { request, context in
            let id = try Self.id(context)
            // The raw rest of the path: the router drops empty components, which would hide an absolute path.
            let prefix = "/projects/\(context.parameters.get("id") ?? "")/files/"
            let path = request.uri.path
            guard path.hasPrefix(prefix) else { throw APIError(.badRequest, "cannot read the file path of \(path)") }
            return try await self.download(id, path.dropFirst(prefix.count))
        }
        return router
    }

    static func id(_ context: BasicRequestContext) throws(APIError) -> ProjectID {
        guard let text = context.parameters.get("id"), let id = ProjectID(text), id > 0 else {
            throw APIError(.badRequest, "project id \(context.parameters.get("id") ?? "") is not a positive number")
        }
        return id
    }

    func projectInfo(_ record: ProjectRecord) async -> ProjectInfo {
        record.info(queuePosition: await queue.position(of: record.id ?? 0))
    }

    func listProjects() async throws -> Response {
        var projects: [ProjectInfo] = []
        for record in try await store.all() { projects.append(await projectInfo(record)) }
        return .json(ProjectList(projects: projects))
    }

    func createProject() async throws -> Response {
        let record = try await store.create()
        let directory = directory(record.id ?? 0)
        do {
            try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        } catch {
            throw HavelError(.io, "cannot create \(directory.path): \(error.localizedDescription)")
        }
        return .json(await projectInfo(record), status: .created)
    }

    func info(_ id: ProjectID) async throws -> Response {
        .json(await projectInfo(try await store.project(id)))
    }

    func deleteProject(_ id: ProjectID) async throws -> Response {
        let path = directory(id).path
        try await store.delete(id) { record throws(HavelError) in
            guard record.projectStatus != .busy else {
                throw HavelError(.conflict, "project \(id) is busy building; wait for it to end")
            }
            try self.discard(path)
        }
        emptyTrash()
        return Response(status: .noContent)
    }

    func upload(_ id: ProjectID, _ text: String) async throws -> Response {
        guard !text.isEmpty else { throw APIError(.badRequest, "the body is empty; send the project XML") }
        let loaded = try ProjectLoader.load(text: text, file: "source.xml", options: .init(preprocess: .init(hashPasswords: false)))
        guard loaded.isValid else {
            throw APIError(.badRequest, "the project has \(loaded.errors.count) error\(loaded.errors.count == 1 ? "" : "s"); nothing stored",
                           diagnostics: loaded.errors.map(\.description))
        }
        let directory = directory(id)
        let temporary = directory.source + ".upload-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)) else {
            throw HavelError(.io, "cannot write \(temporary)")
        }
        let name = loaded.project.name
        let version = loaded.project.version
        let record: ProjectRecord
        do {
            record = try await store.update(id) { record throws(HavelError) in
                guard record.projectStatus != .busy else {
                    throw HavelError(.conflict, "project \(id) is busy building; upload after it ends")
                }
                guard rename(temporary, directory.source) == 0 else {
                    throw HavelError(.io, "cannot store \(directory.source): \(String(cString: strerror(errno)))")
                }
                record.name = name
                record.version = version
                record.status = ProjectStatus.needsBuild.rawValue
                record.reason = nil
            }
        } catch {
            unlink(temporary)
            throw error
        }
        return .json(await projectInfo(record))
    }

    func build(_ id: ProjectID) async throws -> Response {
        let directory = directory(id)
        let record = try await store.update(id) { record throws(HavelError) in
            switch record.projectStatus {
            case .busy: throw HavelError(.conflict, "project \(id) is already building")
            case .empty: throw HavelError(.conflict, "project \(id) has no project file; upload one first")
            default: break
            }
            record.status = ProjectStatus.busy.rawValue
            record.reason = nil
            record.buildStarted = nil
            record.buildFinished = nil
        }
        try await store.setFiles(id, [])
        // A fresh log: a follower sees this build's lines only.
        try? FileManager.default.createDirectory(atPath: directory.build.path, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: directory.build.log, contents: Data("queued at \(Date())\n".utf8))
        guard await queue.enqueue(id) else {
            await finish(id, .buildFailed, reason: "the daemon is stopping")
            throw APIError(.serviceUnavailable, "the daemon is stopping; build project \(id) after it restarts")
        }
        return .json(await projectInfo(record), status: .accepted)
    }

    func reset(_ id: ProjectID) async throws -> Response {
        let directory = directory(id)
        let record = try await store.update(id) { record throws(HavelError) in
            guard record.projectStatus != .busy else {
                throw HavelError(.conflict, "project \(id) is busy building; reset it after the build ends")
            }
            try self.discard(directory.build.path)
            let hasSource = FileManager.default.fileExists(atPath: directory.source)
            record.status = (hasSource ? ProjectStatus.needsBuild : .empty).rawValue
            record.reason = nil
            record.buildStarted = nil
            record.buildFinished = nil
        }
        try await store.setFiles(id, [])
        emptyTrash()
        return .json(await projectInfo(record))
    }

    /// The build log; following, new lines are sent as they are written until the build ends.
    func log(_ id: ProjectID, follow: Bool) async throws -> Response {
        _ = try await store.project(id)
        let path = directory(id).build.log
        let queue = self.queue
        let stopping = self.stopping
        let body = ResponseBody { writer in
            var reader = LogReader(path: path)
            while true {
                let active = follow && !stopping.value ? await queue.isActive(id) : false
                while let chunk = reader.next() {
                    try await writer.write(ByteBuffer(bytes: chunk))
                }
                if !active { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: body)
    }

    func download(_ id: ProjectID, _ requested: Substring) async throws -> Response {
        _ = try await store.project(id)
        let file = try directory(id).openResult(requested)
        let fd = file.fd
        let body = ResponseBody(contentLength: file.size) { writer in
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                try await writer.write(ByteBuffer(bytes: buffer[0..<count]))
            }
            try await writer.finish(nil)
        }
        let name = (file.path as NSString).lastPathComponent.replacingOccurrences(of: "\"", with: "")
        return Response(status: .ok, headers: [.contentType: "application/octet-stream",
                                               .contentDisposition: "attachment; filename=\"\(name)\""], body: body)
    }
}

/// Reads what was appended to a log file since the last call; starts over when the file is replaced
/// (a new build) or truncated.
struct LogReader {
    let path: String
    var offset: off_t = 0
    var inode: ino_t?

    init(path: String) {
        self.path = path
    }

    mutating func next() -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { return nil }
        if inode != status.st_ino || status.st_size < offset {
            inode = status.st_ino
            offset = 0
        }
        guard status.st_size > offset else { return nil }
        let count = Int(min(status.st_size - offset, 1 << 20))
        var buffer = [UInt8](repeating: 0, count: count)
        let read = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, offset) }
        guard read > 0 else { return nil }
        offset += off_t(read)
        return Array(buffer[0..<read])
    }
}
