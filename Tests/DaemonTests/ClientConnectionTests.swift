import AsyncHTTPClient
import DaemonClient
import Foundation
import HavelCore
import Testing

/// How the client meets a daemon that is not there.
@Suite struct ClientConnectionTests {
    /// AsyncHTTPClient retries a refused connection until its connect timeout; the client does not, so a
    /// down daemon is said at once. The connect timeout here is ten minutes: an answer well before it shows
    /// the refusal was not retried.
    @Test func aRefusedConnectionIsSaidAtOnce() async throws {
        let port = try DaemonSecurityTests.freePort()
        let http = DaemonClient.makeHTTPClient(connectTimeout: .minutes(10))
        let client = DaemonClient(baseURL: "http://127.0.0.1:\(port)", token: "t", httpClient: http)
        let started = ContinuousClock.now
        do {
            _ = try await client.projects()
            Issue.record("a call to a closed port succeeded")
        } catch {
            #expect(error.message == "cannot connect to the daemon at 127.0.0.1:\(port): connection refused")
        }
        #expect(ContinuousClock.now - started < .seconds(300), "took \(ContinuousClock.now - started)")
        try await http.shutdown()
    }
}
