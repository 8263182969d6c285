import DaemonAPI
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

    static func connectLoopback(port: Int, timeout: Double) throws(Failure) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket", errno: errno) }
        // SO_SNDTIMEO bounds connect() on Linux as well.
        setTimeout(fd, seconds: timeout)
        var address = loopbackAddress(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw Failure("cannot connect to 127.0.0.1:\(port)", errno: code)
        }
        return fd
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

    /// Reads until end-of-file, `limit` bytes or `deadline`.
    static func readAll(_ fd: Int32, limit: Int = 1 << 20, deadline: ContinuousClock.Instant) throws(Failure) -> [UInt8] {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while data.count < limit {
            guard ContinuousClock.now < deadline else { throw Failure("no complete answer in time") }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw Failure("no complete answer in time") }
                throw Failure("read", errno: errno)
            }
            data += buffer[0..<count]
        }
        return data
    }
}

/// `GET /health` on the forwarded API port: how `status` tells booting from ready.
public enum HealthCheck {
    public enum Answer: Sendable, Equatable {
        case healthy(HealthResponse)
        /// Why not: refused, reset (qemu accepts on the host while nothing listens in the guest), a bad answer.
        case noAnswer(String)
    }

    public static func check(port: Int, timeout: Duration = .seconds(2)) async -> Answer {
        let seconds = max(0.1, InitVMTime.seconds(timeout))
        return await Sockets.offload { checkNow(port: port, timeout: seconds) }
    }

    static func checkNow(port: Int, timeout: Double) -> Answer {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        let fd: Int32
        do {
            fd = try Sockets.connectLoopback(port: port, timeout: timeout)
        } catch {
            return .noAnswer(error.description)
        }
        defer { close(fd) }
        let request = "GET \(DaemonRoute.health) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        do {
            try Sockets.writeAll(fd, Array(request.utf8))
            let response = try Sockets.readAll(fd, deadline: deadline)
            return parse(response)
        } catch {
            return .noAnswer(error.description)
        }
    }

    /// An HTTP/1.x response: status 200 and a `HealthResponse` body (plain or chunked).
    static func parse(_ response: [UInt8]) -> Answer {
        guard !response.isEmpty else { return .noAnswer("the connection closed without an answer") }
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = response.indices.dropLast(3).first(where: { Array(response[$0..<$0 + 4]) == separator }) else {
            return .noAnswer("an incomplete HTTP answer")
        }
        let head = String(decoding: response[..<end], as: UTF8.self)
        var body = Array(response[(end + 4)...])
        let lines = head.components(separatedBy: "\r\n")
        let statusWords = lines[0].split(separator: " ")
        guard statusWords.count >= 2, statusWords[0].hasPrefix("HTTP/") else { return .noAnswer("not an HTTP answer") }
        guard statusWords[1] == "200" else { return .noAnswer("GET /health answered \(statusWords.dropFirst().joined(separator: " "))") }
        let chunked = lines.dropFirst().contains { $0.lowercased().hasPrefix("transfer-encoding:") && $0.lowercased().contains("chunked") }
        if chunked { body = dechunk(body) }
        do {
            return .healthy(try JSONDecoder().decode(HealthResponse.self, from: Data(body)))
        } catch {
            return .noAnswer("GET /health answered something that is not a health response")
        }
    }

    static func dechunk(_ body: [UInt8]) -> [UInt8] {
        var result: [UInt8] = []
        var index = 0
        while index < body.count {
            guard let lineEnd = body[index...].firstIndex(of: 13) else { break }
            let sizeText = String(decoding: body[index..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingWhitespace(), radix: 16), size > 0 else { break }
            let start = lineEnd + 2
            guard start + size <= body.count else { break }
            result += body[start..<start + size]
            index = start + size + 2
        }
        return result
    }
}

/// Durations as seconds (for messages and measurements).
public enum InitVMTime {
    public static func seconds(_ duration: Duration) -> Double {
        duration.inSeconds
    }
}
