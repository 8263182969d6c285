// DashboardSecurity owns who may use the daemon's web page: sign-in sessions (cookie and CSRF token),
// and the Host and Origin checks that keep other web pages from reaching the daemon through the browser.

import Foundation
import Hummingbird
import Synchronization

/// Signed-in browsers: a session is a random id in an HttpOnly, SameSite=Strict cookie, with a CSRF token of
/// its own that every state-changing form carries. Sessions live in memory only (a restarted daemon asks
/// again), expire after `lifetime`, and are bounded in number: the oldest go first.
final class DashboardSessions: Sendable {
    static let cookieName = "havel_session"
    static let maximumSessions = 64

    struct Session: Sendable, Equatable {
        let csrf: String
        let expires: ContinuousClock.Instant
    }

    let lifetime: Duration
    private let sessions = Mutex<[String: Session]>([:])

    init(lifetime: Duration = .seconds(12 * 3600)) {
        self.lifetime = lifetime
    }

    /// A new session: its id (the cookie's value) and its CSRF token.
    func create() -> (id: String, csrf: String) {
        let id = Self.randomToken(), csrf = Self.randomToken()
        let now = ContinuousClock.now
        sessions.withLock { sessions in
            sessions = sessions.filter { $0.value.expires > now }
            while sessions.count >= Self.maximumSessions, let oldest = sessions.min(by: { $0.value.expires < $1.value.expires }) {
                sessions.removeValue(forKey: oldest.key)
            }
            sessions[id] = Session(csrf: csrf, expires: now + lifetime)
        }
        return (id, csrf)
    }

    /// The live session a request's Cookie header names, if any.
    func session(cookieHeader: String?) -> (id: String, session: Session)? {
        guard let id = Self.cookieValue(cookieHeader, name: Self.cookieName), !id.isEmpty else { return nil }
        let now = ContinuousClock.now
        return sessions.withLock { sessions in
            // Compared by lookup: the id is 256 random bits, so the timing of a dictionary lookup tells nothing useful.
            guard let session = sessions[id] else { return nil }
            guard session.expires > now else {
                sessions.removeValue(forKey: id)
                return nil
            }
            return (id, session)
        }
    }

    func remove(_ id: String) {
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    /// The Set-Cookie header for a new session (Max-Age as the server-side expiry) and for signing out.
    func setCookie(_ id: String) -> String {
        "\(Self.cookieName)=\(id); Path=/; Max-Age=\(Int(lifetime.components.seconds)); HttpOnly; SameSite=Strict"
    }

    static let clearCookie = "\(cookieName)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"

    /// 32 random bytes, hexadecimal.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }.joined()
    }

    /// The value of cookie `name` in a Cookie header (`a=1; b=2`); the first one counts.
    static func cookieValue(_ header: String?, name: String) -> String? {
        guard let header, header.utf8.count <= 8192 else { return nil }
        for part in header.split(separator: ";") {
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces) == name else { continue }
            return pair[1].trimmingCharacters(in: .whitespaces)
        }
        return nil
    }
}

/// The checks every dashboard request passes before anything else.
enum DashboardRequestCheck {
    /// The host the request was sent to: HTTP/1's Host header, which Hummingbird carries as the authority.
    static func host(_ request: Request) -> String? {
        request.head.authority ?? request.headers[.host]
    }

    /// A Host header the page answers to: an IP address or `localhost`, with or without a port. A name that
    /// resolves here only through someone's DNS (rebinding) is refused, so a page elsewhere cannot read ours.
    static func isAllowedHost(_ host: String?) -> Bool {
        guard let host, !host.isEmpty, host.utf8.count <= 300 else { return false }
        let name: Substring
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            name = host[host.index(after: host.startIndex)..<close]
            let rest = host[host.index(after: close)...]
            guard rest.isEmpty || isPort(rest.dropFirst()) && rest.first == ":" else { return false }
            return isIPv6(name)
        }
        let parts = host.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        name = parts[0]
        if parts.count == 2, !isPort(parts[1]) { return false }
        return name.lowercased() == "localhost" || isIPv4(name)
    }

    static func isPort(_ text: Substring) -> Bool {
        guard !text.isEmpty, text.count <= 5, let port = Int(text) else { return false }
        return (1...65535).contains(port)
    }

    static func isIPv4(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCIIDigit) && Int($0)! <= 255 }
    }

    static func isIPv6(_ text: Substring) -> Bool {
        var address = in6_addr()
        return !text.isEmpty && text.count <= 45 && inet_pton(AF_INET6, String(text), &address) == 1
    }

    /// A state-changing request comes from the dashboard itself: its Origin (or, where a browser sends none,
    /// its Referer) is this very host over http.
    static func isSameOrigin(host: String?, origin: String?, referer: String?) -> Bool {
        guard let host, isAllowedHost(host) else { return false }
        let own = "http://" + host.lowercased()
        if let origin { return origin.lowercased() == own }
        if let referer { return referer.lowercased() == own || referer.lowercased().hasPrefix(own + "/") }
        return false
    }

    /// Compares two tokens in time independent of where they differ.
    static func tokensMatch(_ given: String?, _ expected: String) -> Bool {
        guard let given else { return false }
        return ConstantTime.equal(Array(given.utf8), Array(expected.utf8))
    }
}

/// Header names HTTPTypes does not name (HTTPField itself is not exported by Hummingbird).
extension HTTPFields.Element.Name {
    static let host = Self("Host")!
    static let xFrameOptionsHeader = Self("X-Frame-Options")!
    static let referrerPolicyHeader = Self("Referrer-Policy")!
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

/// An application/x-www-form-urlencoded body: the fields by name (the first of a repeated name counts).
struct FormFields: Sendable, Equatable {
    static let maximumSize = 16 << 10
    private(set) var values: [String: String] = [:]

    init(_ body: String) {
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]) else { continue }
            let value = parts.count == 2 ? Self.decode(parts[1]) : ""
            if values[name] == nil, let value { values[name] = value }
        }
    }

    subscript(name: String) -> String? { values[name] }

    static func decode(_ text: Substring) -> String? {
        String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
