import DaemonAPI
import Foundation
import HavelCore
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Daemon

/// The web page's checks and pages, without a browser: sessions, Host and Origin checks, CSRF, escaping,
/// and the routes through the daemon's router (the browser test drives the same page in chromium, and
/// sends another Host over the wire: the router's test client always says localhost).
@Suite struct DashboardTests {
    @Test func hostsAreAddressesOrLocalhostOnly() {
        for host in ["127.0.0.1", "127.0.0.1:7588", "localhost:7588", "LOCALHOST", "[::1]:7588", "[::1]", "10.0.2.15:80"] {
            #expect(DashboardRequestCheck.isAllowedHost(host), "\(host)")
        }
        for host in [nil, "", "evil.example", "evil.example:7588", "127.0.0.1.nip.io:7588", "localhost.evil.example", "127.0.0.1:0",
                     "127.0.0.1:99999", "127.0.0.1:x", "[::1", "[zz::1]:80", "[::1]x", "256.0.0.1", "1.2.3", "localhost:"] {
            #expect(!DashboardRequestCheck.isAllowedHost(host), "\(host ?? "nil")")
        }
    }

    @Test func onlyThePagesOwnOriginMayPost() {
        #expect(DashboardRequestCheck.isSameOrigin(host: "127.0.0.1:7588", origin: "http://127.0.0.1:7588", referer: nil))
        #expect(DashboardRequestCheck.isSameOrigin(host: "127.0.0.1:7588", origin: nil, referer: "http://127.0.0.1:7588/ui/projects/1"))
        #expect(!DashboardRequestCheck.isSameOrigin(host: "127.0.0.1:7588", origin: "http://evil.example", referer: "http://127.0.0.1:7588/ui/"))
        #expect(!DashboardRequestCheck.isSameOrigin(host: "127.0.0.1:7588", origin: "null", referer: nil))
        #expect(!DashboardRequestCheck.isSameOrigin(host: "127.0.0.1:7588", origin: "http://127.0.0.1:7589", referer: nil))
        #expect(!DashboardRequestCheck.isSameOrigin(host: "127.0.0.1:7588", origin: nil, referer: "http://127.0.0.1:75888/"))
        #expect(!DashboardRequestCheck.isSameOrigin(host: "127.0.0.1:7588", origin: nil, referer: nil))
        #expect(!DashboardRequestCheck.isSameOrigin(host: "evil.example", origin: "http://evil.example", referer: nil))
    }

    @Test func sessionsExpireAndAreBounded() async throws {
        let sessions = DashboardSessions(lifetime: .milliseconds(300))
        let (id, csrf) = sessions.create()
        #expect(id.count == 64 && csrf.count == 64 && id != csrf)
        #expect(sessions.session(cookieHeader: "a=b; \(DashboardSessions.cookieName)=\(id)")?.session.csrf == csrf)
        #expect(sessions.session(cookieHeader: "\(DashboardSessions.cookieName)=\(id)x") == nil)
        #expect(sessions.session(cookieHeader: nil) == nil)
        #expect(sessions.setCookie(id).contains("HttpOnly") && sessions.setCookie(id).contains("SameSite=Strict"))
        try await Task.sleep(for: .milliseconds(400))
        #expect(sessions.session(cookieHeader: "\(DashboardSessions.cookieName)=\(id)") == nil, "an expired session still counts")

        let many = DashboardSessions()
        let first = many.create().id
        for _ in 0..<DashboardSessions.maximumSessions { _ = many.create() }
        #expect(many.session(cookieHeader: "\(DashboardSessions.cookieName)=\(first)") == nil, "the oldest session is dropped at the bound")
    }

    @Test func formFieldsAreDecoded() {
        let form = FormFields("csrf=ab%2Bc&token=a+b%26c&csrf=second&empty=&novalue")
        #expect(form["csrf"] == "ab+c")
        #expect(form["token"] == "a b&c")
        #expect(form["empty"] == "")
        #expect(form["novalue"] == "")
        #expect(form["missing"] == nil)
    }

    @Test func everyTemplateParsesAndValuesAreEscaped() throws {
        _ = try DashboardPages.library.get()
        var page = DashboardPages.ProjectPage(
            id: 3, name: "<script>alert(1)</script>", version: "1\"", status: "build_done", statusText: "built", reason: "a & b",
            created: "", started: "", finished: "", took: "", running: false,
            stages: [.init(name: "install", seconds: "12.00", took: "12 s", maximum: "12.00", finished: true, cached: false, note: nil)],
            detail: nil, warnings: ["<b>w</b>"], logEvents: "/ui/projects/3/events?offset=0", logCut: nil, hasLog: true,
            checks: [.init(name: "boot", passed: true)], validation: "<ok>", filter: "\"><x", packageSummary: "1 packages installed",
            packages: [.init(name: "netbase", version: "6.4", architecture: "all", source: "")],
            files: [.init(path: "source.xml", href: "source.xml", size: "1 KiB")])
        let html = DashboardPages.render(page, "project")
        #expect(!html.contains("<script>alert"), "the project name is not escaped")
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!html.contains("<b>w</b>") && !html.contains("<ok>") && !html.contains("\"><x"))
        #expect(html.contains("<meter min=\"0\" max=\"12.00\" value=\"12.00\""))
        #expect(html.contains("href=\"/ui/projects/3/files/source.xml\""))
        #expect(html.contains("<section id=\"stages\" data-refresh=\"/ui/projects/3/stages\">\n<h2>Stages</h2>"), "\(html)")
        let part = DashboardPages.render(DashboardPages.StageSection(stages: page.stages, detail: "unpacking <x>", warnings: []), "stages")
        #expect(part.contains("<meter min=\"0\" max=\"12.00\" value=\"12.00\"") && part.contains("Now: unpacking &lt;x&gt;"))
        page.stages = []
        page.hasLog = false
        let empty = DashboardPages.render(page, "project")
        #expect(empty.contains("No stages recorded") && empty.contains("No build log yet"))
    }

    // MARK: through the router

    static let cookie = HTTPFields.Element.Name("Cookie")!

    func signIn(_ client: some TestClientProtocol) async throws -> (cookie: String, csrf: String) {
        let cookie = try await client.execute(uri: "/ui/signin", method: .post,
                                              headers: [.origin: "http://localhost",
                                                        .contentType: "application/x-www-form-urlencoded"],
                                              body: ByteBuffer(string: "token=" + DaemonFixture.token)) { response in
            #expect(response.status == .seeOther)
            #expect(response.headers[.location] == "/ui/")
            let setCookie = try #require(response.headers[.setCookie])
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict") && setCookie.contains("Max-Age="))
            return String(setCookie.prefix { $0 != ";" })
        }
        let csrf = try await client.execute(uri: "/ui/", method: .get, headers: [Self.cookie: cookie]) { response in
            #expect(response.status == .ok)
            let html = String(buffer: response.body)
            let marker = try #require(html.range(of: "name=\"csrf\" value=\""))
            return String(html[marker.upperBound...].prefix { $0 != "\"" })
        }
        return (cookie, csrf)
    }

    @Test func theRoutesNeedASessionTheRightOriginAndTheCSRFToken() async throws {
        try await DaemonFixture.withRouter(name: "dashboard") { daemon, client, _ in
            let local: HTTPFields = [:]
            // Not signed in: pages lead to the sign-in page; the log's events and downloads are refused.
            try await client.execute(uri: "/", method: .get, headers: local) { #expect($0.status == .seeOther) }
            try await client.execute(uri: "/ui/", method: .get, headers: local) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/ui/signin")
            }
            try await client.execute(uri: "/ui/signin", method: .get, headers: local) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
                #expect(response.headers[.xFrameOptionsHeader] == "DENY")
                #expect(String(buffer: response.body).contains("name=\"token\""))
            }
            for uri in ["/ui/projects/1/events", "/ui/projects/1/stages", "/ui/projects/1/files/log.txt"] {
                try await client.execute(uri: uri, method: .get, headers: local) { #expect($0.status == .unauthorized, "\(uri)") }
            }
            // A wrong token, and a sign-in posted from another page.
            try await client.execute(uri: "/ui/signin", method: .post,
                                     headers: [.origin: "http://localhost", .contentType: "application/x-www-form-urlencoded"],
                                     body: ByteBuffer(string: "token=wrong")) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.setCookie] == nil)
            }
            try await client.execute(uri: "/ui/signin", method: .post,
                                     headers: [.origin: "http://evil.example", .contentType: "application/x-www-form-urlencoded"],
                                     body: ByteBuffer(string: "token=" + DaemonFixture.token)) { response in
                #expect(response.status == .forbidden)
                #expect(response.headers[.setCookie] == nil)
            }
            let (cookie, csrf) = try await signIn(client)
            #expect(csrf.count == 64)
            let created = try await daemon.store.create()
            let id = try #require(created.id)
            try await client.execute(uri: "/ui/", method: .get, headers: [Self.cookie: cookie]) { response in
                let html = String(buffer: response.body)
                #expect(html.contains("href=\"/ui/projects/\(id)\""))
                #expect(html.contains("Build machine"))
            }
            try await client.execute(uri: "/ui/projects/\(id)", method: .get, headers: [Self.cookie: cookie]) { response in
                #expect(response.status == .ok)
                let html = String(buffer: response.body)
                #expect(html.contains("no project file"))
                #expect(html.contains("/ui/projects/\(id)/confirm/delete"))
            }
            // The stages part on its own, as the page's script fetches it while a build runs.
            try await client.execute(uri: "/ui/projects/\(id)/stages", method: .get, headers: [Self.cookie: cookie]) { response in
                #expect(response.status == .ok)
                let html = String(buffer: response.body)
                #expect(html.contains("<h2>Stages</h2>") && html.contains("No stages recorded"))
                #expect(!html.contains("<html"), "a part of the page, not a page")
            }
            try await client.execute(uri: "/ui/projects/\(id)/confirm/delete", method: .get, headers: [Self.cookie: cookie]) { response in
                #expect(String(buffer: response.body).contains("action=\"/ui/projects/\(id)/delete\""))
            }
            // State changes: a forged or missing CSRF token, a foreign Origin, no cookie: all refused, the project stays.
            let form: HTTPFields = [.origin: "http://localhost", Self.cookie: cookie,
                                    .contentType: "application/x-www-form-urlencoded"]
            for (headers, body) in [(form, "csrf=" + String(repeating: "0", count: 64)), (form, ""),
                                    (form.replacing(.origin, "http://evil.example"), "csrf=" + csrf),
                                    (form.replacing(Self.cookie, "havel_session=forged"), "csrf=" + csrf)] {
                try await client.execute(uri: "/ui/projects/\(id)/delete", method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .forbidden, "\(headers) \(body)")
                    #expect(String(buffer: response.body).contains("Refused"))
                }
            }
            _ = try await daemon.store.project(id)
            // An action the project cannot take is shown as a page with the daemon's reason.
            try await client.execute(uri: "/ui/projects/\(id)/build", method: .post, headers: form, body: ByteBuffer(string: "csrf=" + csrf)) { response in
                #expect(response.status == .conflict)
                #expect(String(buffer: response.body).contains("has no project file"))
            }
            try await client.execute(uri: "/ui/projects/\(id)/delete", method: .post, headers: form, body: ByteBuffer(string: "csrf=" + csrf)) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/ui/")
            }
            await #expect(throws: HavelError.self) { try await daemon.store.project(id) }
            // Signing out ends the session.
            try await client.execute(uri: "/ui/signout", method: .post, headers: form, body: ByteBuffer(string: "csrf=" + csrf)) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.setCookie]?.contains("Max-Age=0") == true)
            }
            try await client.execute(uri: "/ui/", method: .get, headers: [Self.cookie: cookie]) { response in
                #expect(response.status == .seeOther)
            }
            // The API is unchanged: the session cookie is no token.
            try await client.execute(uri: DaemonRoute.projects, method: .get, headers: [Self.cookie: cookie]) { #expect($0.status == .unauthorized) }
        }
    }
}

extension HTTPFields {
    func replacing(_ name: HTTPFields.Element.Name, _ value: String) -> HTTPFields {
        var copy = self
        copy[name] = value
        return copy
    }
}
