// DaemonAPI owns the contract between the Havel daemon (inside the initvm) and its clients: the
// routes and the Codable requests and responses both sides use. It holds no logic.

/// The routes, relative to the API's base URL (`http://127.0.0.1:PORT`).
public enum DaemonRoute {
    /// GET, no token needed: `HealthResponse`. Used by `initvm status` to tell booting from ready.
    public static let health = "/health"
}

public struct HealthResponse: Codable, Sendable, Equatable {
    public var status: String
    public var havelVersion: String

    public init(status: String, havelVersion: String) {
        self.status = status
        self.havelVersion = havelVersion
    }
}

/// The header carrying the token created at `initvm create` (stored 0600 beside buildenv.img).
public enum DaemonAuth {
    public static let header = "Authorization"
    public static func value(token: String) -> String { "Bearer " + token }
    public static let tokenFileName = "api-token"
}
