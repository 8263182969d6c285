// DashboardRoutes owns the daemon's web page under /ui: sign-in, the project list with the queue and the
// machine's load, a project's stages, live log, checks, packages and files, and its build, cancel, reset
// and delete buttons. Every action goes through the same code as the API's routes.

import Build
import DaemonAPI
import Foundation
import HavelCore
import Hummingbird
import ProjectXML
import SystemKit

/// What a dashboard request gets instead of its page: a redirect (to sign in) or a refusal shown as a page.
struct DashboardRefusal: Error {
    var status: HTTPResponse.Status
    var message: String
    var location: String?

    static func signIn() -> DashboardRefusal { DashboardRefusal(status: .seeOther, message: "sign in first", location: "/ui/signin") }
}

/// Every dashboard request: the Host check first (DNS rebinding), then the page, with the headers that keep
/// it from being framed, sniffed or cached, and with errors shown as a page instead of the API's JSON.
struct DashboardMiddleware<Context: RequestContext>: RouterMiddleware {
    let version: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        if !DashboardRequestCheck.isAllowedHost(DashboardRequestCheck.host(request)) {
            response = Self.problem(.misdirectedRequest, "This page answers only to an IP address or localhost, not to "
                                    + "\(String((DashboardRequestCheck.host(request) ?? "(no host)").prefix(80))): open it as http://127.0.0.1:PORT/.",
                                    version: version, back: "/ui/")
        } else {
            do {
                response = try await next(request, context)
            } catch let refusal as DashboardRefusal {
                if let location = refusal.location {
                    response = Response(status: refusal.status, headers: [.location: location])
                } else {
                    response = Self.problem(refusal.status, refusal.message, version: version, back: "/ui/")
                }
            } catch let error as APIError {
                response = Self.problem(error.status, error.message, version: version, back: Self.back(request))
            } catch let error as HavelError {
                let api = APIError(error)
                response = Self.problem(api.status, api.message, version: version, back: Self.back(request))
            } catch let error as any HTTPResponseError {
                response = Self.problem(error.status, error.status == .notFound ? "There is no such page." : error.status.reasonPhrase,
                                        version: version, back: "/ui/")
            }
        }
        response.headers[.contentSecurityPolicy] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            + "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        response.headers[.xFrameOptionsHeader] = "DENY"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.referrerPolicyHeader] = "same-origin"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }

    /// The project's page for an error on one of its pages, else the list.
    static func back(_ request: Request) -> String {
        let parts = request.uri.path.split(separator: "/")
        if parts.count >= 3, parts[1] == "projects", let id = ProjectID(parts[2]), id > 0 { return "/ui/projects/\(id)" }
        return "/ui/"
    }

    static func problem(_ status: HTTPResponse.Status, _ message: String, version: String, back: String) -> Response {
        let body = DashboardPages.render(DashboardPages.Problem(title: "\(status.code) \(status.reasonPhrase)", message: message, back: back), "problem")
        return .html(DashboardPages.page(title: status.reasonPhrase, body: body, version: version, csrf: nil), status: status)
    }
}

extension Response {
    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

extension HavelDaemon {
    /// The actions a project's page offers, each confirmed on a page of its own before it is posted.
    enum DashboardAction: String, CaseIterable {
        case build, cancel, reset, delete

        var verb: String { rawValue.prefix(1).uppercased() + rawValue.dropFirst() }

        var explanation: String {
            switch self {
            case .build: "Queues a build of the uploaded project file. The last build's results are replaced."
            case .cancel: "Stops the running build (every process it started) or takes the waiting one off the queue."
            case .reset: "Deletes the build directory with all results and the log; the project file stays."
            case .delete: "Deletes the project: its project file, build directory, results and log. This cannot be undone."
            }
        }
    }

    /// Adds the dashboard's routes: `/` leads to it, everything else lives under `/ui/`.
    func addDashboard(to router: Router<BasicRequestContext>) {
        let version = configuration.havelVersion
        router.get("/") { _, _ in Response(status: .seeOther, headers: [.location: "/ui/"]) }
        let ui = router.group("ui").add(middleware: DashboardMiddleware(version: version))
        ui.get("static/style.css") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "max-age=300"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: DashboardPages.styleSheet)))
        }
        ui.get("static/log.js") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8", .cacheControl: "max-age=300"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: DashboardPages.logScript)))
        }
        ui.get("signin") { request, _ in
            if self.dashboardSessions.session(cookieHeader: request.headers[.cookie]) != nil {
                return Response(status: .seeOther, headers: [.location: "/ui/"])
            }
            return Response.html(DashboardPages.page(title: "Sign in", body: DashboardPages.render(DashboardPages.SignIn(), "signin"),
                                             version: version, csrf: nil))
        }
        ui.post("signin") { request, _ in try await self.dashboardSignIn(request) }
        ui.post("signout") { request, _ in
            let (session, _) = try await self.dashboardForm(request)
            self.dashboardSessions.remove(session.id)
            return Response(status: .seeOther, headers: [.location: "/ui/signin", .setCookie: DashboardSessions.clearCookie])
        }
        ui.get("") { request, _ in
            let session = try self.dashboardSession(request)
            return Response.html(DashboardPages.page(title: "Projects", body: try await self.dashboardProjectList(), version: version, csrf: session.session.csrf))
        }
        ui.get("projects/{id}") { request, context in
            let session = try self.dashboardSession(request)
            let id = try Self.id(context)
            let filter = String((request.uri.queryParameters.get("filter") ?? "").prefix(100))
            let (title, body) = try await self.dashboardProjectPage(id, filter: filter)
            return Response.html(DashboardPages.page(title: title, body: body, version: version, csrf: session.session.csrf, followsLog: true))
        }
        ui.get("projects/{id}/confirm/{action}") { request, context in
            let session = try self.dashboardSession(request)
            let id = try Self.id(context)
            guard let action = DashboardAction(rawValue: context.parameters.get("action") ?? "") else {
                throw DashboardRefusal(status: .notFound, message: "There is no such action.")
            }
            let record = try await self.store.project(id)
            let confirm = DashboardPages.Confirm(id: id, name: record.name ?? "project \(id)", action: action.rawValue, verb: action.verb,
                                                 explanation: action.explanation, csrf: session.session.csrf, danger: action == .delete)
            return Response.html(DashboardPages.page(title: "\(action.verb) project \(id)", body: DashboardPages.render(confirm, "confirm"),
                                             version: version, csrf: session.session.csrf))
        }
        for action in DashboardAction.allCases {
            ui.post("projects/{id}/\(action.rawValue)") { request, context in
                _ = try await self.dashboardForm(request)
                let id = try Self.id(context)
                switch action {
                case .build: _ = try await self.build(id)
                case .cancel: _ = try await self.cancel(id, CancelRequest(requester: "the web page", waitSeconds: 10))
                case .reset: _ = try await self.reset(id)
                case .delete:
                    _ = try await self.deleteProject(id)
                    return Response(status: .seeOther, headers: [.location: "/ui/"])
                }
                return Response(status: .seeOther, headers: [.location: "/ui/projects/\(id)"])
            }
        }
        ui.get("projects/{id}/events") { request, context in
            _ = try self.dashboardSession(request, redirect: false)
            let id = try Self.id(context)
            // A reconnecting EventSource resumes where it was; the page's own offset counts only at first.
            let resume = request.headers.first { $0.name.canonicalName == LogEvents.lastEventIDHeader.lowercased() }?.value
            let offset = UInt64(resume ?? request.uri.queryParameters.get("offset") ?? "0") ?? 0
            return try await self.logEvents(id, from: offset)
        }
        ui.get("projects/{id}/stages") { request, context in
            _ = try self.dashboardSession(request, redirect: false)
            let id = try Self.id(context)
            let info = await self.projectInfo(try await self.store.project(id))
            let section = Self.dashboardStages(info, state: BuildState.read(self.directory(id).build.state))
            return Response.html(DashboardPages.render(section, "stages"))
        }
        ui.get("projects/{id}/files/**") { request, context in
            _ = try self.dashboardSession(request, redirect: false)
            return try await self.download(request, context, under: "/ui/projects/")
        }
    }

    /// The signed-in session of a request; without one, a page redirects to the sign-in page and anything
    /// else (the log's events, downloads) is refused.
    func dashboardSession(_ request: Request, redirect: Bool = true) throws(DashboardRefusal) -> (id: String, session: DashboardSessions.Session) {
        guard let session = dashboardSessions.session(cookieHeader: request.headers[.cookie]) else {
            throw redirect ? .signIn() : DashboardRefusal(status: .unauthorized, message: "Sign in first: this needs the dashboard's session cookie.")
        }
        return session
    }

    /// A state-changing form post: from this page's own origin, with a live session and its CSRF token.
    func dashboardForm(_ request: Request) async throws -> ((id: String, session: DashboardSessions.Session), FormFields) {
        let form = try await Self.formFields(request)
        guard DashboardRequestCheck.isSameOrigin(host: DashboardRequestCheck.host(request), origin: request.headers[.origin], referer: request.headers[.referer]) else {
            throw DashboardRefusal(status: .forbidden, message: "Refused: the request did not come from this page (its Origin is not this host).")
        }
        guard let session = dashboardSessions.session(cookieHeader: request.headers[.cookie]) else {
            throw DashboardRefusal(status: .forbidden, message: "Refused: not signed in (no valid session cookie). Sign in and try again.")
        }
        guard DashboardRequestCheck.tokensMatch(form["csrf"], session.session.csrf) else {
            throw DashboardRefusal(status: .forbidden, message: "Refused: the form's CSRF token is missing or wrong. Load the page again and retry.")
        }
        return (session, form)
    }

    static func formFields(_ request: Request) async throws -> FormFields {
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: FormFields.maximumSize)
        } catch {
            throw DashboardRefusal(status: .contentTooLarge, message: "The form is larger than \(FormFields.maximumSize) bytes.")
        }
        return FormFields(String(decoding: body.readableBytesView, as: UTF8.self))
    }

    /// Signs in with the API token: a new session and its cookie. A wrong token waits a second before the
    /// answer, so guessing is slow.
    func dashboardSignIn(_ request: Request) async throws -> Response {
        let form = try await Self.formFields(request)
        guard DashboardRequestCheck.isSameOrigin(host: DashboardRequestCheck.host(request), origin: request.headers[.origin], referer: request.headers[.referer]) else {
            throw DashboardRefusal(status: .forbidden, message: "Refused: the sign-in did not come from this page (its Origin is not this host).")
        }
        guard DashboardRequestCheck.tokensMatch(form["token"], configuration.token) else {
            try await Task.sleep(for: .seconds(1))
            let body = DashboardPages.render(DashboardPages.SignIn(message: "That is not the daemon's API token."), "signin")
            return Response.html(DashboardPages.page(title: "Sign in", body: body, version: configuration.havelVersion, csrf: nil), status: .unauthorized)
        }
        let session = dashboardSessions.create()
        return Response(status: .seeOther, headers: [.location: "/ui/", .setCookie: dashboardSessions.setCookie(session.id)])
    }

    func dashboardProjectList() async throws -> String {
        var rows: [DashboardPages.ProjectList.Row] = []
        var waiting: [(Int, DashboardPages.ProjectList.Row)] = []
        for record in try await store.all() {
            let info = await projectInfo(record)
            let row = DashboardPages.ProjectList.Row(
                id: info.id, name: info.name ?? "project \(info.id)", version: info.version ?? "", status: info.status.rawValue,
                statusText: Self.statusText(info.status), queue: info.queuePosition.map { $0 == 0 ? "running" : "waiting, \($0) ahead" } ?? "",
                started: Self.dashboardDate(info.buildStarted), took: Self.took(info.buildStarted, info.buildFinished),
                updated: Self.dashboardDate(info.updated))
            rows.append(row)
            if let position = info.queuePosition, position > 0 { waiting.append((position, row)) }
        }
        let running = await queue.runningCount
        let machine = MachineLoad.read()
        let list = DashboardPages.ProjectList(projects: rows, running: running, jobs: configuration.jobs,
                                              waiting: waiting.sorted { $0.0 < $1.0 }.map(\.1), load: machine.load,
                                              memory: machine.memory, cpus: ProcessInfo.processInfo.activeProcessorCount)
        return DashboardPages.render(list, "projects")
    }

    /// The stages: live ones while this daemon runs the build, else what state.json recorded.
    static func dashboardStages(_ info: ProjectInfo, state: BuildState?) -> DashboardPages.StageSection {
        var stages: [(name: String, seconds: Double?, cached: Bool, note: String?)] = []
        if let progress = info.progress, !progress.stages.isEmpty {
            stages = progress.stages.map { ($0.name, $0.seconds, $0.cached, nil) }
        } else if let state {
            stages = state.stages.map { ($0.name, $0.seconds, $0.cached, $0.note) }
        }
        let longest = max(stages.compactMap(\.seconds).max() ?? 1, 0.01)
        let rows = stages.map {
            DashboardPages.ProjectPage.Stage(name: $0.name, seconds: String(format: "%.2f", $0.seconds ?? 0), took: $0.seconds.map(Self.duration) ?? "",
                                             maximum: String(format: "%.2f", longest), finished: $0.seconds != nil, cached: $0.cached, note: $0.note)
        }
        return DashboardPages.StageSection(stages: rows, detail: info.status == .busy ? info.progress?.detail : nil,
                                           warnings: info.progress?.warnings ?? [])
    }

    /// The most of the log the page starts with; the whole log is a download.
    static let dashboardLogTail: UInt64 = 512 << 10
    static let dashboardPackageRows = 3000

    func dashboardProjectPage(_ id: ProjectID, filter: String) async throws -> (title: String, body: String) {
        let info = await projectInfo(try await store.project(id))
        let directory = directory(id)
        let build = directory.build
        let state = BuildState.read(build.state)
        let limit = configuration.maximumProjectSize
        let stageSection = Self.dashboardStages(info, state: state)
        let (packages, packageCount, packageError) = await Self.pinnedPackages(build.sourceXML, limit: limit, filter: filter)
        var summary: String?
        if let packageError { summary = packageError }
        else if packageCount > 0 || !filter.isEmpty {
            let shown = packages.count < packageCount ? " (the first \(packages.count) shown)" : ""
            summary = filter.isEmpty ? "\(packageCount) packages installed\(shown)"
                : "\(packageCount) package\(packageCount == 1 ? "" : "s") match \u{201C}\(filter)\u{201D}\(shown)"
        } else {
            summary = "No package list yet (source.xml is written when a build ends)."
        }
        var logSize: UInt64 = 0
        var status = stat()
        let hasLog = lstat(build.log, &status) == 0 && status.st_mode & S_IFMT == S_IFREG
        if hasLog { logSize = UInt64(status.st_size) }
        let logStart = logSize > Self.dashboardLogTail ? logSize - Self.dashboardLogTail : 0
        let files = ((try? await store.files(id)) ?? []).map {
            DashboardPages.ProjectPage.File(path: $0.path, href: $0.path.split(separator: "/").map {
                String($0).addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#"))) ?? ""
            }.joined(separator: "/"), size: Self.size($0.size))
        }
        let validation = Self.readBounded(build.validation, limit: 64 << 10)
        let page = DashboardPages.ProjectPage(
            id: id, name: info.name ?? "project \(id)", version: info.version ?? "", status: info.status.rawValue,
            statusText: Self.statusText(info.status) + (info.queuePosition.map { $0 == 0 ? " (running)" : " (waiting, \($0) ahead)" } ?? ""),
            reason: info.reason, created: Self.dashboardDate(info.created), started: Self.dashboardDate(info.buildStarted),
            finished: Self.dashboardDate(info.buildFinished), took: Self.took(info.buildStarted, info.buildFinished),
            running: info.status == .busy, stages: stageSection.stages, detail: stageSection.detail,
            warnings: stageSection.warnings, logEvents: "/ui/projects/\(id)/events?offset=\(logStart)",
            logCut: logStart > 0 ? "The first \(Self.size(logStart)) of the log are not shown here; log.txt has them all." : nil,
            hasLog: hasLog, checks: (state?.checks ?? [:]).sorted { $0.key < $1.key }.map { .init(name: $0.key, passed: $0.value) },
            validation: validation, filter: filter, packageSummary: summary, packages: packages, files: files)
        return ("\(page.name) (\(id))", DashboardPages.render(page, "project"))
    }

    /// source.xml's `<fullpkgs>`, filtered by a part of the name or source, at most `dashboardPackageRows` rows.
    static func pinnedPackages(_ path: String, limit: Int, filter: String) async -> ([DashboardPages.ProjectPage.Package], Int, String?) {
        guard FileManager.default.fileExists(atPath: path) else { return ([], 0, nil) }
        do {
            let all = try await BlockingWork.run { () throws(HavelError) -> [PinnedPackage] in
                let loaded = try ProjectLoader.load(bytes: try ProjectFile.readBytes(path, limit: limit), file: "source.xml",
                                                    options: Self.daemonLoaderOptions(limit: limit))
                return loaded.project.fullPackages
            }
            let needle = filter.lowercased()
            let matching = needle.isEmpty ? all : all.filter {
                $0.name.lowercased().contains(needle) || ($0.sourceName ?? "").lowercased().contains(needle)
            }
            let rows = matching.prefix(dashboardPackageRows).map {
                DashboardPages.ProjectPage.Package(name: $0.name, version: $0.version, architecture: $0.arch ?? "",
                                                   source: [$0.sourceName, $0.sourceVersion].compactMap { $0 }.joined(separator: " "))
            }
            return (Array(rows), matching.count, nil)
        } catch {
            return ([], 0, "source.xml cannot be read: \(error.message)")
        }
    }

    static func readBounded(_ path: String, limit: Int) -> String? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return nil }
        var buffer = [UInt8](repeating: 0, count: limit)
        var filled = 0
        while filled < limit {
            let count = buffer[filled...].withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            filled += count
        }
        var text = String(decoding: buffer[..<filled], as: UTF8.self)
        if Int(status.st_size) > filled { text += "\n[... \(Int(status.st_size) - filled) more bytes in the file]" }
        return text
    }

    static func statusText(_ status: ProjectStatus) -> String {
        switch status {
        case .empty: "no project file"
        case .needsBuild: "not built"
        case .busy: "building"
        case .buildDone: "built"
        case .buildFailed: "failed"
        case .cancelled: "cancelled"
        }
    }

    static func dashboardDate(_ date: Date?) -> String {
        guard let date else { return "" }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        return formatter.string(from: date)
    }

    static func took(_ started: Date?, _ finished: Date?) -> String {
        guard let started else { return "" }
        return duration((finished ?? Date()).timeIntervalSince(started)) + (finished == nil ? " so far" : "")
    }

    static func duration(_ seconds: Double) -> String {
        if seconds < 10 { return String(format: "%.1f s", seconds) }
        let whole = Int(seconds.rounded())
        if whole < 60 { return "\(whole) s" }
        if whole < 3600 { return "\(whole / 60) min \(whole % 60) s" }
        return "\(whole / 3600) h \(whole / 60 % 60) min"
    }

    static func size(_ bytes: UInt64) -> String {
        ByteCountFormatter.string(fromByteCount: Int64(clamping: bytes), countStyle: .binary)
    }
}

/// The machine's load for the page: /proc/loadavg and MemAvailable of /proc/meminfo.
enum MachineLoad {
    static func read() -> (load: String, memory: String) {
        let loadText = HavelDaemon.readBounded("/proc/loadavg", limit: 256) ?? ""
        let load = loadText.split(separator: " ").prefix(3).joined(separator: ", ")
        var available: UInt64?, total: UInt64?
        for line in (HavelDaemon.readBounded("/proc/meminfo", limit: 16 << 10) ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kib = UInt64(fields[1]) else { continue }
            if fields[0] == "MemAvailable:" { available = kib * 1024 }
            if fields[0] == "MemTotal:" { total = kib * 1024 }
        }
        let memory = available.map { HavelDaemon.size($0) + (total.map { " of " + HavelDaemon.size($0) } ?? "") } ?? "unknown"
        return (load.isEmpty ? "unknown" : load, memory)
    }
}
