import DaemonAPI
import DaemonClient
import Foundation
import HavelCore
import SystemKit

/// Blocking socket I/O with time-outs, run on its own thread so the async callers' pool is never held.
enum Sockets {
    static func offload<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: body()) }
        }
    }

    struct Failure: Error, Sendable, CustomStringConvertible {
        var description: String
        init(_ what: String, errno code: Int32? = nil) {
            description = code.map { "\(what): \(errnoText($0))" } ?? what
        }
    }

    static func setTimeout(_ fd: Int32, seconds: Double) {
        var value = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    static func connectUnix(_ path: String, timeout: Double) throws(Failure) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket", errno: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw Failure("\(path): path too long for a unix socket")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (i, byte) in bytes.enumerated() { buffer[i] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw Failure("cannot connect to \(path)", errno: code)
        }
        setTimeout(fd, seconds: timeout)
        return fd
    }

    static func loopbackAddress(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
        return address
    }

    /// Whether a TCP or UDP port on 127.0.0.1 can be bound now (qemu's forward needs it free).
    static func isFree(port: Int, udp: Bool = false) -> Bool {
        let fd = socket(AF_INET, Int32(udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = loopbackAddress(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written < 0 {
                if errno == EINTR { continue }
                throw Failure("write", errno: errno)
            }
            offset += written
        }
    }
}

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
