import DaemonAPI
import DaemonClient
import Foundation
import HavelCore

/// `GET /health` on the forwarded API port, through `DaemonClient`: how `status` tells booting from ready.
public enum HealthCheck {
    public enum Answer: Sendable, Equatable {
        case healthy(HealthResponse)
        /// Why not: refused, reset (qemu accepts on the host while nothing listens in the guest), a bad answer.
        case noAnswer(String)
    }

    /// One call, over within `timeout` whatever the other side does (it may accept and never answer).
    public static func check(port: Int, timeout: Duration = .seconds(2)) async -> Answer {
        var client = DaemonClient(baseURL: "http://127.0.0.1:\(port)", token: nil)
        client.timeout = .milliseconds(Int64(max(0.1, InitVMTime.seconds(timeout)) * 1000))
        do {
            return .healthy(try await client.health())
        } catch {
            return .noAnswer(error.message)
        }
    }
}

/// Durations as seconds (for messages and measurements).
public enum InitVMTime {
    public static func seconds(_ duration: Duration) -> Double {
        duration.inSeconds
    }
}
