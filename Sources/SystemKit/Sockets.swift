import Foundation

/// Socket I/O with time-outs: unix-socket connections (qemu's console and QMP), loopback port checks,
/// and reads and writes that an async caller awaits through `Readiness` instead of holding a thread.
public enum Sockets {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String
        public init(_ what: String, errno code: Int32? = nil) {
            description = code.map { "\(what): \(errnoText($0))" } ?? what
        }
    }

    /// What a read found.
    public enum Received: Sendable, Equatable {
        case bytes([UInt8])
        /// The other side closed the connection.
        case closed
        case timedOut
        case cancelled
    }

    /// Bounds blocking sends, receives and a unix-socket connect (0: no bound).
    public static func setTimeout(_ fd: Int32, seconds: Double) {
        var value = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    /// A connected unix stream socket whose blocking calls, the connect included, end after `timeout`
    /// seconds (0: they block).
    public static func connectUnix(_ path: String, timeout: Double) throws(Failure) -> Int32 {
        let (fd, address) = try unixSocket(path)
        // Before the connect: a listener whose backlog is full (qemu's console with someone attached
        // and another waiting) makes it block.
        setTimeout(fd, seconds: timeout)
        guard withUnsafePointer(to: address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        } }) == 0 else {
            let code = errno
            close(fd)
            throw Failure("cannot connect to \(path)", errno: code)
        }
        return fd
    }

    /// A unix stream socket listening at `path` (for stand-ins of qemu's sockets in tests).
    public static func listenUnix(_ path: String, backlog: Int32 = 1) throws(Failure) -> Int32 {
        let (fd, address) = try unixSocket(path)
        guard withUnsafePointer(to: address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        } }) == 0, listen(fd, backlog) == 0 else {
            let code = errno
            close(fd)
            throw Failure("cannot listen at \(path)", errno: code)
        }
        return fd
    }

    private static func unixSocket(_ path: String) throws(Failure) -> (Int32, sockaddr_un) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw Failure("\(path): path too long for a unix socket")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (i, byte) in bytes.enumerated() { buffer[i] = byte }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket", errno: errno) }
        return (fd, address)
    }

    public static func loopbackAddress(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
        return address
    }

    /// Whether a TCP or UDP port on 127.0.0.1 can be bound now (qemu's forward needs it free).
    public static func isFree(port: Int, udp: Bool = false) -> Bool {
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

    /// Writes everything, blocking as the socket does (bounded by `setTimeout`).
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(Failure) {
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

    /// Writes everything by `deadline`, waiting for room without holding a thread; cancellation stops it.
    public static func sendAll(_ fd: Int32, _ bytes: [UInt8], until deadline: ContinuousClock.Instant) async throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            if Task.isCancelled { throw Failure("write: cancelled") }
            let written = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if written >= 0 {
                offset += written
                continue
            }
            let code = errno
            if code == EINTR { continue }
            guard code == EAGAIN || code == EWOULDBLOCK else { throw Failure("write", errno: code) }
            switch await Readiness.shared.wait(fd, for: .writable, until: deadline) {
            case .ready: continue
            case .timedOut: throw Failure("write: no room in time")
            case .cancelled: throw Failure("write: cancelled")
            }
        }
    }

    /// Reads what has arrived (up to `limit` bytes), waiting until `deadline` without holding a thread
    /// if nothing has yet. What has arrived is read even past the deadline (a task that ran late on a
    /// busy machine still gets the answer that came in time); a caller reading in a loop ends it at its
    /// deadline itself, so that a peer that never stops talking cannot keep it (`pastDeadline`).
    public static func receive(_ fd: Int32, limit: Int = 65536, until deadline: ContinuousClock.Instant) async throws(Failure) -> Received {
        var buffer = [UInt8](repeating: 0, count: limit)
        while true {
            if Task.isCancelled { return .cancelled }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count > 0 { return .bytes(Array(buffer[0..<count])) }
            if count == 0 { return .closed }
            let code = errno
            if code == EINTR { continue }
            guard code == EAGAIN || code == EWOULDBLOCK else { throw Failure("read", errno: code) }
            if ContinuousClock.now >= deadline { return .timedOut }
            switch await Readiness.shared.wait(fd, for: .readable, until: deadline) {
            case .ready: continue
            case .timedOut: return .timedOut
            case .cancelled: return .cancelled
            }
        }
    }
}
