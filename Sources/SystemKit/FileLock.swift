import Foundation
import HavelCore

/// An advisory lock on a file (flock): exclusive or shared, waited for or only tried. Each lock opens
/// the file anew, so two locks conflict even inside one process (two builds in one daemon).
public final class FileLock: @unchecked Sendable {
    public enum Mode: Sendable { case shared, exclusive }

    private let lock = NSLock()
    private var fd: Int32

    /// Waits for the lock (the file is created if needed).
    public convenience init(_ path: String, _ mode: Mode = .exclusive) throws(HavelError) {
        guard let acquired = try Self.open(path, mode, wait: true) else {
            throw HavelError(.io, "cannot lock \(path)")
        }
        self.init(fd: acquired)
    }

    /// The lock if nobody holds a conflicting one now, else nil.
    public static func attempt(_ path: String, _ mode: Mode = .exclusive) throws(HavelError) -> FileLock? {
        try open(path, mode, wait: false).map(FileLock.init(fd:))
    }

    private init(fd: Int32) {
        self.fd = fd
    }

    private static func open(_ path: String, _ mode: Mode, wait: Bool) throws(HavelError) -> Int32? {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw HavelError(.io, "cannot open \(path): \(errnoText())") }
        let operation = (mode == .exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)
        while flock(fd, operation) != 0 {
            let code = errno
            if code == EINTR { continue }
            Glibc.close(fd)
            if code == EWOULDBLOCK { return nil }
            throw HavelError(.io, "cannot lock \(path): \(errnoText(code))")
        }
        return fd
    }

    /// Lets go of the lock (also when the object goes away).
    public func release() {
        lock.lock()
        defer { lock.unlock() }
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        Glibc.close(fd)
        fd = -1
    }

    deinit { release() }
}
