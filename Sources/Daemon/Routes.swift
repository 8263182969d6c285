import Build
import Debian
import DaemonAPI
import Foundation
import HavelCore
import SystemKit
import Hummingbird
import ProjectXML

extension HavelDaemon {
    /// The API (see `DaemonRoute`): /health without a token, everything else behind it; the web page
    /// (`/` and `/ui/`) signs in with the same token and keeps a session cookie instead.
    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        let version = configuration.havelVersion
        let confinement = cgroups.confinement
        router.get(RouterPath(DaemonRoute.health)) { _, _ in
            Response.json(HealthResponse(status: "ok", havelVersion: version, buildConfinement: confinement))
        }
        addDashboard(to: router)
        router.add(middleware: TokenMiddleware(token: configuration.token))

        router.get("/projects") { _, _ in try await self.listProjects() }
        router.post("/projects") { _, _ in try await self.createProject() }
        router.get("/projects/{id}") { _, context in try await self.info(try Self.id(context)) }
        router.delete("/projects/{id}") { _, context in try await self.deleteProject(try Self.id(context)) }
        router.put("/projects/{id}/source") { request, context in
            try await self.upload(try Self.id(context), request.body)
        }
        router.post("/projects/{id}/build") { request, context in
            var request = request
            let body = try await request.collectBody(upTo: 64 << 10)
            let build: BuildRequest
            do {
                build = body.readableBytes == 0 ? BuildRequest() : try DaemonJSON.decoder().decode(BuildRequest.self, from: Data(body.readableBytesView))
            } catch {
                throw APIError(.badRequest, "the body is not a build request: \(error)")
            }
            if build.pbuilderOnly, build.skipPbuilder || build.sdk || build.binaryCdrom {
                throw APIError(.badRequest, "pbuilderOnly builds only the <pbuilder> packages: it goes with neither skipPbuilder, sdk nor binaryCdrom")
            }
            if let mode = build.installMode, InstallMode(rawValue: mode) == nil {
                throw APIError(.badRequest, "installMode is fast or emulated, not \(mode.prefix(40))")
            }
            if let chroot = build.pbuilderChroot {
                guard BuildChrootAction(rawValue: chroot) != nil else {
                    throw APIError(.badRequest, "pbuilderChroot is create or update, not \(chroot.prefix(40))")
                }
                if build.pbuilderOnly || build.skipPbuilder || build.sdk || build.binaryCdrom {
                    throw APIError(.badRequest, "pbuilderChroot makes only the build chroot: it goes with neither pbuilderOnly, skipPbuilder, sdk nor binaryCdrom")
                }
            }
            return try await self.build(try Self.id(context), build)
        }
        router.post("/projects/{id}/cancel") { request, context in
            var request = request
            let body = try await request.collectBody(upTo: 16 << 10)
            let cancel: CancelRequest
            do {
                cancel = body.readableBytes == 0 ? CancelRequest() : try DaemonJSON.decoder().decode(CancelRequest.self, from: Data(body.readableBytesView))
            } catch {
                throw APIError(.badRequest, "the body is not a cancel request: \(error)")
            }
            return try await self.cancel(try Self.id(context), cancel)
        }
        router.post("/projects/{id}/reset") { _, context in try await self.reset(try Self.id(context)) }
        router.get("/projects/{id}/log") { request, context in
            let follow = ["true", "1", "yes"].contains(request.uri.queryParameters.get("follow") ?? "")
            let events = follow && (request.headers[.accept] ?? "").contains(LogEvents.contentType)
            let offsetText = request.uri.queryParameters.get("offset")
                ?? (events ? request.headers.first { $0.name.canonicalName == LogEvents.lastEventIDHeader.lowercased() }?.value : nil)
            var offset: UInt64 = 0
            if let offsetText {
                guard let value = UInt64(offsetText) else { throw APIError(.badRequest, "offset \(offsetText) is not a byte offset") }
                offset = value
            }
            let id = try Self.id(context)
            return try await events ? self.logEvents(id, from: offset) : self.log(id, follow: follow, from: offset)
        }
        router.get("/projects/{id}/repo") { _, context in try await self.repositoryListing(try Self.id(context)) }
        router.post("/projects/{id}/repo/{name}") { request, context in
            try await self.uploadPackage(try Self.id(context), name: context.parameters.get("name") ?? "", request.body)
        }
        router.get("/projects/{id}/files") { _, context in
            let id = try Self.id(context)
            _ = try await self.store.project(id)
            return Response.json(FileList(files: try await self.store.files(id)))
        }
        router.get("/projects/{id}/files/**") { request, context in
            try await self.download(request, context, under: "/projects/")
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
        var info = record.info(queuePosition: await queue.position(of: record.id ?? 0))
        info.progress = progress.progress(info.id)
        return info
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
        uploads.projectDeleted(id)
        progress.forget(id)
        emptyTrash()
        return Response(status: .noContent)
    }

    /// Stores an uploaded project file: streamed to disk up to the configured limit (a delete of the project
    /// ends it), then read and checked on a dispatch thread (a large file must not hold up other requests)
    /// with includes refused, since the client preprocesses. Checked as a build would check it (output
    /// names), and no file: mirror.
    func upload(_ id: ProjectID, _ body: RequestBody) async throws -> Response {
        let limit = configuration.maximumProjectSize
        let temporary = data + "/uploads/\(id)-\(UUID().uuidString.prefix(8)).xml"
        defer { unlink(temporary) }
        _ = try await uploads.run(for: id) { [store] in
            _ = try await store.project(id)
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw HavelError(.io, "cannot write \(temporary): \(errnoText())") }
            defer { close(fd) }
            return try await Self.stage(body, into: fd, path: temporary, limit: limit)
        }
        let loaded = try await BlockingWork.run { () throws(HavelError) -> LoadedProject in
            let bytes = try ProjectFile.readBytes(temporary, limit: limit)
            var loaded = try ProjectLoader.load(bytes: bytes, file: "source.xml", options: Self.daemonLoaderOptions(limit: limit))
            loaded.diagnostics += Self.uploadProblems(loaded)
            return loaded
        }
        guard loaded.isValid else {
            throw APIError(.badRequest, "the project has \(loaded.errors.count) error\(loaded.errors.count == 1 ? "" : "s"); nothing stored",
                           diagnostics: loaded.errors.map(\.description))
        }
        return .json(await projectInfo(try await storeUpload(id, temporary, name: loaded.project.name, version: loaded.project.version)))
    }

    /// Moves a checked upload into place as the project's source, unless the project is building or was deleted meanwhile.
    func storeUpload(_ id: ProjectID, _ temporary: String, name: String, version: String?) async throws(HavelError) -> ProjectRecord {
        let directory = directory(id)
        do {
            return try await store.update(id) { record throws(HavelError) in
                guard record.projectStatus != .busy else {
                    throw HavelError(.conflict, "project \(id) is busy building; upload after it ends")
                }
                try? FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
                guard rename(temporary, directory.source) == 0 else {
                    throw HavelError(.io, "cannot store \(directory.source): \(errnoText())")
                }
                record.name = name
                record.version = version
                record.status = ProjectStatus.needsBuild.rawValue
                record.reason = nil
            }
        } catch where error.code == .notFound {
            throw UploadsInFlight.deletedError(id)
        }
    }

    /// How the daemon reads a project file (upload and build): no includes, the configured size limit.
    static func daemonLoaderOptions(limit: Int, hashPasswords: Bool = false) -> ProjectLoader.Options {
        var preprocess = Preprocessor.Options(hashPasswords: hashPasswords, includes: .refused, maximumSize: limit)
        // A stored project names no files of this machine: check scripts come inlined by the client.
        preprocess.readsCheckScripts = false
        return .init(preprocess: preprocess)
    }

    /// What an upload may not hold beyond what validation checks: output names that are not plain file
    /// names, and file: mirrors (the daemon fetches only from the network, never its own files).
    static func uploadProblems(_ loaded: LoadedProject) -> [Diagnostic] {
        var problems = ValidatedProject.outputNameProblems(loaded)
        let mirror = loaded.project.mirror
        if let cdrom = mirror.cdrom {
            problems.append(Diagnostic(.error, at: nil, path: "/RootFileSystem/project/mirror/cdrom",
                                       "<cdrom>\(cdrom)</cdrom> is refused by the daemon: it names a path on the daemon's machine; build such a project with havel build"))
        }
        if let primary = mirror.primary, primary.proto.lowercased() == "file" {
            problems.append(Diagnostic(.error, at: nil, path: "/RootFileSystem/project/mirror/primary_proto",
                                       "primary_proto file is refused by the daemon: it would read the daemon's own files; use http or https"))
        }
        for url in mirror.urls {
            for line in [url.binary, url.source].compactMap({ $0 }) where line.trimmingWhitespace().lowercased().hasPrefix("file:") {
                problems.append(Diagnostic(.error, at: url.location, path: "/RootFileSystem/project/mirror/url-list/url",
                                           "\(line.trimmingWhitespace()) is refused by the daemon: a file: repository would read the daemon's own files; use http or https"))
            }
        }
        return problems
    }

    func build(_ id: ProjectID, _ request: BuildRequest = BuildRequest()) async throws -> Response {
        let directory = directory(id)
        var loading = Self.daemonLoaderOptions(limit: configuration.maximumProjectSize)
        loading.allowUnsupported = request.allowUnsupported
        try await Self.checkBuildable(directory.source, loading)
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
        guard await queue.enqueue(id, request) else {
            await finish(id, .buildFailed, reason: "the daemon is stopping")
            throw APIError(.serviceUnavailable, "the daemon is stopping; build project \(id) after it restarts")
        }
        return .json(await projectInfo(record), status: .accepted)
    }

    /// Cancels the project's build: a waiting one leaves the queue and is recorded cancelled at once; a
    /// running one is cancelled through its task (the stage runner kills its processes and cleans up), and
    /// the answer waits a while for it to end.
    func cancel(_ id: ProjectID, _ request: CancelRequest) async throws -> Response {
        _ = try await store.project(id)
        let requester = Self.requesterName(request.requester)
        let build = directory(id).build
        cancellations.set(id, by: requester)
        guard let cancellation = await queue.cancel(id) else {
            _ = cancellations.take(id)
            throw APIError(.conflict, "project \(id) has no build queued or running; nothing to cancel")
        }
        switch cancellation {
        case .removedFromQueue:
            _ = cancellations.take(id)
            let reason = "cancelled by \(requester)"
            Self.appendLog(build, "build CANCELLED by \(requester) while queued; it never started")
            await finish(id, .cancelled, reason: reason)
            let project = await projectInfo(try await store.project(id))
            return .json(CancelResponse(outcome: .removedFromQueue, message: "project \(id): removed the waiting build from the queue", project: project))
        case .cancelledRunning:
            Self.appendLog(build, "cancel requested by \(requester): ending \(cgroups.cancellationReach)")
            let wait = min(max(request.waitSeconds ?? CancelRequest.maximumWaitSeconds, 0), CancelRequest.maximumWaitSeconds)
            let deadline = ContinuousClock.now + .seconds(wait)
            while await queue.isActive(id), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            let project = await projectInfo(try await store.project(id))
            guard project.status != .busy else {
                return .json(CancelResponse(outcome: .cancelling, message: "project \(id): the running build is cancelled but has not ended yet; "
                                            + "it stops \(cgroups.cancellationReach)", project: project), status: .accepted)
            }
            let message = project.status == .cancelled
                ? "project \(id): cancelled the running build; stopped \(cgroups.cancellationReach)"
                : "project \(id): the build ended (\(project.status.rawValue)) before the cancellation took effect"
            return .json(CancelResponse(outcome: .cancelledRunning, message: message, project: project))
        }
    }

    /// Who cancels, as the log records it: the client's name for them, one line of printable characters, bounded.
    static func requesterName(_ requested: String?) -> String {
        let printable = (requested ?? "").unicodeScalars.filter { $0.properties.generalCategory != .control && $0 != "\u{2028}" && $0 != "\u{2029}" }
        let name = String(String.UnicodeScalarView(printable)).trimmingWhitespace()
        guard !name.isEmpty else { return "an API client" }
        return String(name.prefix(CancelRequest.maximumRequesterLength)) + " (over the API)"
    }

    /// Refuses at once, before anything is queued, a build that `runBuild` would refuse when it loads the
    /// project: one using items Havel does not build that change the output, unless the request allows them.
    /// Parsed off the server's event loop. A missing source is left to the status check.
    static func checkBuildable(_ source: String, _ options: ProjectLoader.Options) async throws {
        guard FileManager.default.fileExists(atPath: source) else { return }
        let refusal: HavelError? = await Task.detached {
            do throws(HavelError) {
                let loaded = try ProjectLoader.load(path: source, options: options)
                if loaded.isValid { _ = try ValidatedProject(loaded, allowUnsupported: options.allowUnsupported) }
                return nil
            } catch {
                return error
            }
        }.value
        if let refusal { throw refusal }
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
        progress.forget(id)
        emptyTrash()
        return .json(await projectInfo(record))
    }

    /// The build log from byte `offset`; following, new bytes are sent as they are written until the build ends.
    func log(_ id: ProjectID, follow: Bool, from offset: UInt64) async throws -> Response {
        _ = try await store.project(id)
        let path = directory(id).build.log
        let queue = self.queue
        let stopping = self.stopping
        let body = ResponseBody { writer in
            var reader = LogReader(path: path, offset: offset)
            while true {
                let active = follow && !stopping.value ? await queue.isActive(id) : false
                while let chunk = reader.next() {
                    try await writer.write(ByteBuffer(bytes: chunk))
                }
                if !active { break }
                try await Task.sleep(for: Self.logPollInterval)
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: body)
    }

    static let logPollInterval: Duration = .milliseconds(200)

    /// The followed log as `LogEvents`: a line an event, a keep-alive whenever nothing was sent for the
    /// configured interval (so quiet stretches of a build never look like a dead connection), and the
    /// end event with the project's status once the build has ended.
    func logEvents(_ id: ProjectID, from offset: UInt64) async throws -> Response {
        _ = try await store.project(id)
        let path = directory(id).build.log
        let queue = self.queue
        let stopping = self.stopping
        let store = self.store
        let keepAlive = configuration.logKeepAlive
        let body = ResponseBody { writer in
            var reader = LogReader(path: path, offset: offset)
            var lines = LogLineSplitter()
            let clock = ContinuousClock()
            var lastWrite = clock.now
            while true {
                // Asked before reading, so that the last read after the build ended sees all it wrote.
                let active = !stopping.value ? await queue.isActive(id) : false
                var events = ""
                while let chunk = reader.next() {
                    for (line, end) in lines.feed(chunk, at: reader.offset - UInt64(chunk.count)) { events += LogEvents.line(line[...], endOffset: end) }
                }
                if !active, let (line, end) = lines.flush() { events += LogEvents.line(line[...], endOffset: end) }
                if !events.isEmpty {
                    try await writer.write(ByteBuffer(string: events))
                    lastWrite = clock.now
                }
                if !active {
                    let status = (try? await store.project(id).status) ?? ProjectStatus.buildFailed.rawValue
                    try await writer.write(ByteBuffer(string: LogEvents.end(status: status)))
                    break
                }
                if clock.now - lastWrite >= keepAlive {
                    try await writer.write(ByteBuffer(string: LogEvents.keepAlive))
                    lastWrite = clock.now
                }
                try await Task.sleep(for: Self.logPollInterval)
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: LogEvents.contentType, .cacheControl: "no-store"], body: body)
    }

    /// The project repository's packages.
    func repositoryListing(_ id: ProjectID) async throws -> Response {
        _ = try await store.project(id)
        let packages = try await ProjectRepository.packages(in: directory(id).build.projectRepository)
        return .json(Self.listing(packages))
    }

    static func listing(_ packages: [AptRepository.Package]) -> ProjectRepositoryListing {
        ProjectRepositoryListing(packages: packages.map {
            RepositoryPackage(name: $0.name, version: $0.version, architecture: $0.architecture, source: $0.source)
        })
    }

    /// Adds an uploaded .deb to the project's repository (`havel control prjrepo upload`): streamed to disk up
    /// to its limit, read as a .deb of the project's architecture, and the repository written and signed again.
    func uploadPackage(_ id: ProjectID, name encoded: String, _ body: RequestBody) async throws -> Response {
        guard let name = encoded.removingPercentEncoding, ValidatedProject.isPlainFileName(name), name.hasSuffix(".deb"), name.count > 4 else {
            throw APIError(.badRequest, "name the package upload with a plain file name ending in .deb, not \(encoded)")
        }
        let directory = directory(id)
        guard try await store.project(id).projectStatus != .busy else {
            throw APIError(.conflict, "project \(id) is busy building; upload packages after it ends")
        }
        guard FileManager.default.fileExists(atPath: directory.source) else {
            throw APIError(.conflict, "project \(id) has no project file; upload one first (its suite and architecture make the repository)")
        }
        guard repositoryWriters.withLock({ $0.insert(id).inserted }) else {
            throw APIError(.conflict, "another package is being added to project \(id)'s repository; upload again when it is done")
        }
        defer { repositoryWriters.withLock { _ = $0.remove(id) } }
        let temporary = data + "/uploads/\(id)-\(UUID().uuidString.prefix(8))-" + name
        defer { unlink(temporary) }
        _ = try await uploads.run(for: id) {
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw HavelError(.io, "cannot write \(temporary): \(errnoText())") }
            defer { close(fd) }
            return try await Self.stage(body, into: fd, path: temporary, limit: DaemonRoute.maximumPackageUpload)
        }
        let limit = configuration.maximumProjectSize
        let project = try await BlockingWork.run { () throws(HavelError) -> ValidatedProject in
            let loaded = try ProjectLoader.load(bytes: try ProjectFile.readBytes(directory.source, limit: limit), file: "source.xml",
                                                options: Self.daemonLoaderOptions(limit: limit))
            return try ValidatedProject(loaded, allowUnsupported: true)
        }
        let outcome = await Self.addPackage(temporary, name: name, to: directory.build.projectRepository, project: project,
                                            keys: HavelCache(path: configuration.cache).keys)
        switch outcome {
        case .success(let written): return .json(Self.listing(written.packages))
        case .failure(let error) where error.code == .invalidArgument || error.code == .processFailed:
            throw APIError(.badRequest, "\(name): \(error.message)")
        case .failure(let error): throw error
        }
    }

    static func addPackage(_ file: String, name: String, to repository: String, project: ValidatedProject,
                           keys: String) async -> Result<ProjectRepository.Written, HavelError> {
        do throws(HavelError) {
            return .success(try await ProjectRepository.add([file], to: repository, project: project.project, architecture: project.architecture.debianName,
                                                            keys: keys, epoch: Int(Date().timeIntervalSince1970)))
        } catch {
            return .failure(error)
        }
    }

    /// A download route (`<base><id>/files/<path>`): the raw rest of the path after `files/`, since the router
    /// drops empty components, which would hide an absolute path.
    func download(_ request: Request, _ context: BasicRequestContext, under base: String) async throws -> Response {
        let id = try Self.id(context)
        let prefix = base + "\(context.parameters.get("id") ?? "")/files/"
        let path = request.uri.path
        guard path.hasPrefix(prefix) else { throw APIError(.badRequest, "cannot read the file path of \(path)") }
        return try await download(id, path.dropFirst(prefix.count))
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

/// Reads what was appended to a log file since the last call, from a starting offset on; starts over
/// when the file is replaced (a new build) or is shorter than the offset. A log that is a symbolic link
/// or not a regular file reads as empty.
struct LogReader {
    let path: String
    private(set) var offset: UInt64
    private var inode: ino_t?

    init(path: String, offset: UInt64 = 0) {
        self.path = path
        self.offset = offset
    }

    mutating func next() -> [UInt8]? {
        // Never through a symbolic link, nor from a FIFO or device: only the build's own log file.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return nil }
        let size = UInt64(max(0, status.st_size))
        if (inode != nil && inode != status.st_ino) || size < offset { offset = 0 }
        inode = status.st_ino
        guard size > offset else { return nil }
        let count = Int(min(size - offset, 1 << 20))
        var buffer = [UInt8](repeating: 0, count: count)
        let read = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        guard read > 0 else { return nil }
        offset += UInt64(read)
        return Array(buffer[0..<read])
    }
}

/// Cuts a log's bytes into complete lines, each with the byte offset just after it; a partial line waits
/// for more (or for `flush` once the build has ended). Bounded: a "line" over 1 MiB goes out in pieces.
struct LogLineSplitter {
    static let maximumLine = 1 << 20
    private var pending: [UInt8] = []
    /// The log offset of `pending`'s first byte.
    private var pendingStart: UInt64 = 0

    /// `bytes` start at log offset `offset`; bytes that do not continue the pending ones (the reader
    /// started over on a new log) drop them.
    mutating func feed(_ bytes: [UInt8], at offset: UInt64) -> [(String, UInt64)] {
        if pending.isEmpty || pendingStart + UInt64(pending.count) != offset {
            pending.removeAll()
            pendingStart = offset
        }
        pending += bytes
        var lines: [(String, UInt64)] = []
        var start = 0
        while start < pending.count {
            let end: Int
            let next: Int
            if let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")), newline - start <= Self.maximumLine {
                (end, next) = (newline, newline + 1)
            } else if pending.count - start > Self.maximumLine {
                (end, next) = (start + Self.maximumLine, start + Self.maximumLine)
            } else {
                break
            }
            let text = String(decoding: pending[start..<end], as: UTF8.self)
            start = next
            lines.append((text, pendingStart + UInt64(start)))
        }
        pending.removeFirst(start)
        pendingStart += UInt64(start)
        return lines
    }

    /// The partial last line, once nothing more will come.
    mutating func flush() -> (String, UInt64)? {
        guard !pending.isEmpty else { return nil }
        let line = (String(decoding: pending, as: UTF8.self), pendingStart + UInt64(pending.count))
        pendingStart += UInt64(pending.count)
        pending.removeAll()
        return line
    }
}
