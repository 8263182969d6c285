// DaemonClient owns the client side of the daemon API, used by `havel initvm submit` and `havel control`.

import AsyncHTTPClient
import DaemonAPI
import Foundation
import HavelCore
import Logging
import NIOCore
import NIOHTTP1
import SystemKit

/// Talks to a Havel daemon: one async method per route (see `DaemonRoute`). Every failure is a
/// `HavelError`; an error answer of the daemon keeps its message (and a project's findings as diagnostics),
/// with the code telling its kind: `.unauthorized` (401), `.invalidArgument` (400), `.notFound` (404),
/// `.conflict` (409), `.io` (anything else, or no connection).
public struct DaemonClient: Sendable {
    public let baseURL: String
    public let token: String?
    let http: HTTPClient
    /// For calls that answer at once: the deadline for the whole answer, its body included.
    public var timeout: TimeAmount = .seconds(60)

    /// How long a read may wait for the next bytes before the connection counts as dead (per read, not a
    /// deadline: a large download or a followed log may take as long as it takes while bytes keep coming).
    public static let idleTimeout: TimeAmount = .seconds(120)

    /// The HTTP client every DaemonClient shares unless given another: connect and idle timeouts.
    public static let idleTimingOutClient = makeHTTPClient(connectTimeout: .seconds(30))

    /// An HTTP client with the idle timeout and no retried connection attempts: a refused connection is
    /// said at once instead of after the whole connect timeout (callers that wait for a daemon to come up
    /// poll, as `waitForBuild` and the initvm's health check do).
    public static func makeHTTPClient(connectTimeout: TimeAmount) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: connectTimeout, read: idleTimeout)
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public init(baseURL: String, token: String?, httpClient: HTTPClient = DaemonClient.idleTimingOutClient) {
        var url = baseURL
        while url.hasSuffix("/") { url.removeLast() }
        self.baseURL = url
        self.token = token?.trimmingCharacters(in: .whitespacesAndNewlines)
        self.http = httpClient
    }

    // MARK: - Routes

    public func health() async throws(HavelError) -> HealthResponse {
        try await decode(HealthResponse.self, .GET, DaemonRoute.health)
    }

    public func projects() async throws(HavelError) -> [ProjectInfo] {
        try await decode(ProjectList.self, .GET, DaemonRoute.projects).projects
    }

    public func createProject() async throws(HavelError) -> ProjectInfo {
        let body = try encode(CreateProjectRequest())
        return try await decode(ProjectInfo.self, .POST, DaemonRoute.projects, body: body, contentType: "application/json")
    }

    public func project(_ id: ProjectID) async throws(HavelError) -> ProjectInfo {
        try await decode(ProjectInfo.self, .GET, DaemonRoute.project(id))
    }

    public func deleteProject(_ id: ProjectID) async throws(HavelError) {
        _ = try await call(.DELETE, DaemonRoute.project(id))
    }

    /// Uploads the project XML (preprocessed: includes and variants resolved); the status becomes needs_build.
    public func upload(_ id: ProjectID, xml: String) async throws(HavelError) -> ProjectInfo {
        try await decode(ProjectInfo.self, .PUT, DaemonRoute.source(id), body: ByteBuffer(string: xml), contentType: "application/xml")
    }

    /// Queues a build; the status becomes busy.
    public func build(_ id: ProjectID, _ request: BuildRequest = BuildRequest()) async throws(HavelError) -> ProjectInfo {
        try await decode(ProjectInfo.self, .POST, DaemonRoute.build(id), body: try encode(request), contentType: "application/json")
    }

    /// Cancels the project's queued or running build (`.conflict` when it has none); says what happened.
    public func cancel(_ id: ProjectID, requester: String? = nil, waitSeconds: Int? = nil) async throws(HavelError) -> CancelResponse {
        try await decode(CancelResponse.self, .POST, DaemonRoute.cancel(id),
                         body: try encode(CancelRequest(requester: requester, waitSeconds: waitSeconds)),
                         contentType: "application/json")
    }

    public func reset(_ id: ProjectID) async throws(HavelError) -> ProjectInfo {
        try await decode(ProjectInfo.self, .POST, DaemonRoute.reset(id))
    }

    /// The build log as it is now.
    public func log(_ id: ProjectID) async throws(HavelError) -> String {
        String(buffer: try await call(.GET, DaemonRoute.log(id)))
    }

    /// The build log line by line, following it until the build has ended (see `LogFollower`).
    public func followLog(_ id: ProjectID, idleTimeout: Duration = LogEvents.defaultIdleTimeout,
                          logger: Logger = .discarding) -> AsyncThrowingStream<String, any Error> {
        LogFollower(client: self, id: id, idleTimeout: idleTimeout, logger: logger).lines()
    }

    /// The log from byte `offset` to its current end (no following).
    public func log(_ id: ProjectID, from offset: UInt64) async throws(HavelError) -> [UInt8] {
        Array(try await call(.GET, DaemonRoute.log(id, offset: offset)).readableBytesView)
    }

    /// The packages of the project's repository.
    public func repository(_ id: ProjectID) async throws(HavelError) -> ProjectRepositoryListing {
        try await decode(ProjectRepositoryListing.self, .GET, DaemonRoute.repository(id))
    }

    /// Adds a .deb file to the project's repository (the daemon signs it again).
    public func uploadPackage(_ id: ProjectID, file: String) async throws(HavelError) -> ProjectRepositoryListing {
        let name = (file as NSString).lastPathComponent
        guard name.hasSuffix(".deb") else { throw HavelError(.invalidArgument, "\(file) is not a .deb file") }
        let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? nil
        guard let size, size <= DaemonRoute.maximumPackageUpload, let data = FileManager.default.contents(atPath: file), data.count == size else {
            throw HavelError(.invalidArgument, "\(file) is not a readable file of at most \(DaemonRoute.maximumPackageUpload >> 20) MiB")
        }
        return try await decode(ProjectRepositoryListing.self, .POST, DaemonRoute.repositoryPackage(id, name: name),
                                body: ByteBuffer(bytes: data), contentType: "application/vnd.debian.binary-package")
    }

    /// The result files of the last build, relative to its build directory.
    public func files(_ id: ProjectID) async throws(HavelError) -> [FileEntry] {
        try await decode(FileList.self, .GET, DaemonRoute.files(id)).files
    }

    /// Downloads a result file to `destination` (written beside it, then renamed). Returns its size.
    @discardableResult
    public func download(_ id: ProjectID, path: String, to destination: String) async throws(HavelError) -> UInt64 {
        let temporary = destination + ".havel-download-\(getpid())"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw HavelError(.io, "cannot create \(temporary): \(errnoText())")
        }
        var written: UInt64 = 0
        do throws(HavelError) {
            try await stream(.GET, DaemonRoute.file(id, path: path)) { chunk throws(HavelError) in
                let ok = chunk.readableBytesView.withUnsafeBytes { bytes -> Bool in
                    var offset = 0
                    while offset < bytes.count {
                        let count = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                        if count < 0 && errno == EINTR { continue }
                        guard count > 0 else { return false }
                        offset += count
                    }
                    return true
                }
                guard ok else { throw HavelError(.io, "cannot write \(temporary): \(errnoText())") }
                written += UInt64(chunk.readableBytes)
            }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        guard fsync(fd) == 0 || errno == EINVAL, close(fd) == 0, rename(temporary, destination) == 0 else {
            unlink(temporary)
            throw HavelError(.io, "cannot write \(destination): \(errnoText())")
        }
        return written
    }

    /// Polls until the project is no longer busy and returns it. The daemon being out of reach for a while
    /// (a busy VM, a dropped connection) is waited out for up to `patience`; refusals end the wait at once.
    public func waitForBuild(_ id: ProjectID, every interval: Duration = .seconds(1),
                             patience: Duration = .seconds(300)) async throws(HavelError) -> ProjectInfo {
        let clock = ContinuousClock()
        var unreachableSince: ContinuousClock.Instant?
        while true {
            do throws(HavelError) {
                let info = try await project(id)
                unreachableSince = nil
                if info.status != .busy { return info }
            } catch where error.code == .io {
                let since = unreachableSince ?? clock.now
                unreachableSince = since
                guard clock.now - since < patience else {
                    throw HavelError(.io, "waited \(patience) for the daemon to answer about project \(id): \(error.message)")
                }
            }
            do {
                try await Task.sleep(for: interval)
            } catch {
                throw HavelError(.cancelled, "stopped waiting for project \(id)")
            }
        }
    }

    // MARK: - HTTP

    func request(_ method: HTTPMethod, _ route: String, body: ByteBuffer? = nil, contentType: String? = nil) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL + route)
        request.method = method
        if let token { request.headers.add(name: DaemonAuth.header, value: DaemonAuth.value(token: token)) }
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        if let body { request.body = .bytes(body) }
        return request
    }

    func call(_ method: HTTPMethod, _ route: String, body: ByteBuffer? = nil, contentType: String? = nil) async throws(HavelError) -> ByteBuffer {
        let what = "\(method) \(route)"
        let request = request(method, route, body: body, contentType: contentType)
        let http = self.http
        let timeout = self.timeout
        do {
            // The deadline covers the body too: a daemon that trickles its answer is cut off as one that is silent.
            return try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
                group.addTask {
                    let response = try await http.execute(request, timeout: timeout)
                    let bytes = try await response.body.collect(upTo: 64 << 20)
                    guard (200..<300).contains(response.status.code) else { throw Self.failure(response.status, bytes, what: what) }
                    return bytes
                }
                group.addTask {
                    try await Task.sleep(for: .nanoseconds(timeout.nanoseconds))
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let bytes = first else {
                    throw HavelError(.io, "\(what) at \(baseURL): no complete answer within \(timeout.nanoseconds / 1_000_000_000) s")
                }
                return bytes
            }
        } catch let error as HavelError {
            throw error
        } catch {
            throw failure(error, what: what)
        }
    }

    /// A failure to talk to the daemon in plain words: "cannot connect to the daemon at HOST:PORT: connection refused".
    func failure(_ error: any Error, what: String) -> HavelError {
        let address = baseURL.components(separatedBy: "://").last ?? baseURL
        if let io = error as? IOError {
            let words = errnoText(io.errnoCode)
            let reason = words.prefix(1).lowercased() + words.dropFirst()
            if [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ETIMEDOUT, ECONNRESET].contains(io.errnoCode) {
                return HavelError(.io, "cannot connect to the daemon at \(address): \(reason)")
            }
            return HavelError(.io, "\(what) at \(address) failed: \(reason)")
        }
        if let client = error as? HTTPClientError {
            switch client {
            case .connectTimeout: return HavelError(.io, "cannot connect to the daemon at \(address): timed out")
            case .readTimeout: return HavelError(.io, "\(what) at \(address): the daemon sent nothing for \(Self.idleTimeout.nanoseconds / 1_000_000_000) s")
            case .remoteConnectionClosed: return HavelError(.io, "\(what) at \(address): the daemon closed the connection")
            default: break
            }
        }
        return HavelError(.io, "\(what) at \(address) failed: \(error)")
    }

    /// Streams a response body, chunk by chunk, to `onChunk`. The HTTP client's read timeout bounds each
    /// wait for a chunk; there is no deadline for the whole body.
    func stream(_ method: HTTPMethod, _ route: String, headers: [(String, String)] = [], using client: HTTPClient? = nil,
                onChunk: (ByteBuffer) throws(HavelError) -> Void) async throws(HavelError) {
        let what = "\(method) \(route)"
        do {
            var request = request(method, route)
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            let response = try await (client ?? http).execute(request, deadline: .now() + .hours(24 * 7))
            guard (200..<300).contains(response.status.code) else {
                throw Self.failure(response.status, try await response.body.collect(upTo: 1 << 20), what: what)
            }
            for try await chunk in response.body { try onChunk(chunk) }
        } catch let error as HavelError {
            throw error
        } catch is CancellationError {
            throw HavelError(.cancelled, "\(what) was cancelled")
        } catch let error as HTTPClientError where error == .cancelled {
            throw HavelError(.cancelled, "\(what) was cancelled")
        } catch {
            throw failure(error, what: what)
        }
    }

    func decode<T: Decodable>(_ type: T.Type, _ method: HTTPMethod, _ route: String, body: ByteBuffer? = nil,
                              contentType: String? = nil) async throws(HavelError) -> T {
        let bytes = try await call(method, route, body: body, contentType: contentType)
        do {
            return try DaemonJSON.decoder().decode(T.self, from: Data(bytes.readableBytesView))
        } catch {
            throw HavelError(.io, "\(method) \(route): the daemon's answer is not a \(T.self): \(error)")
        }
    }

    func encode(_ value: some Encodable) throws(HavelError) -> ByteBuffer {
        do {
            return ByteBuffer(bytes: try DaemonJSON.encoder().encode(value))
        } catch {
            throw HavelError(.internalError, "cannot encode \(type(of: value)): \(error)")
        }
    }

    /// The daemon's error answer as a HavelError with its message.
    static func failure(_ status: HTTPResponseStatus, _ body: ByteBuffer, what: String) -> HavelError {
        let code: HavelError.Code = switch status.code {
        case 401: .unauthorized
        case 400: .invalidArgument
        case 404: .notFound
        case 409: .conflict
        default: .io
        }
        if let answer = try? DaemonJSON.decoder().decode(ErrorResponse.self, from: Data(body.readableBytesView)) {
            let diagnostics = (answer.diagnostics ?? []).map { Diagnostic(.error, at: nil, path: nil, $0) }
            return HavelError(code, answer.error, diagnostics: diagnostics)
        }
        let text = String(buffer: body).trimmingCharacters(in: .whitespacesAndNewlines)
        return HavelError(code, "\(what): \(status.code) \(status.reasonPhrase)" + (text.isEmpty ? "" : ": " + text))
    }
}
