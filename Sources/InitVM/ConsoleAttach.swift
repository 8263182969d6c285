import Foundation
import HavelCore
import SystemKit

/// Connects a person's terminal to the initvm's serial console (console.sock): the terminal in raw
/// mode, bytes relayed both ways until the escape byte (Ctrl-] by default) or the VM ends.
public enum ConsoleAttach {
    /// Ctrl-]
    public static let escape: UInt8 = 0x1d

    public enum Ending: Sendable, Equatable {
        /// The person typed the escape byte.
        case detached
        /// The console closed (the VM stopped) or the input ended.
        case closed
    }

    /// Attaches standard input and output to the console of `directory`'s running VM.
    public static func attach(_ directory: InitVMDirectory) throws(HavelError) -> Ending {
        guard !QemuProcesses.find(directory).isEmpty else {
            throw HavelError(.notFound, "the initvm in \(directory.path) is not running; start it with havel initvm start")
        }
        let socket: Int32
        do {
            socket = try Sockets.connectUnix(directory.consoleSocket, timeout: 0)
        } catch {
            throw HavelError(.io, "cannot open the initvm's console (\(error.description)); is someone else attached?")
        }
        defer { close(socket) }
        let terminal = RawTerminal(fd: STDIN_FILENO)
        defer { terminal.restore() }
        // A carriage return makes the shell or getty print its prompt again.
        _ = try? Sockets.writeAll(socket, [13])
        return relay(input: STDIN_FILENO, output: STDOUT_FILENO, console: socket)
    }

    /// Copies `input` → `console` and `console` → `output` until the escape byte, or either side ends.
    public static func relay(input: Int32, output: Int32, console: Int32, escape: UInt8 = ConsoleAttach.escape) -> Ending {
        var fds = [pollfd(fd: input, events: Int16(POLLIN), revents: 0), pollfd(fd: console, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return .closed
            }
            if fds[1].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(console, $0.baseAddress, $0.count) }
                if count <= 0 { return .closed }
                writeAll(output, Array(buffer[0..<count]))
            }
            if fds[0].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
                if count <= 0 { return .closed }
                let chunk = buffer[0..<count]
                if let index = chunk.firstIndex(of: escape) {
                    writeAll(console, Array(chunk[..<index]))
                    linger(console: console, output: output)
                    return .detached
                }
                writeAll(console, Array(chunk))
            }
        }
    }

    /// qemu drops what the guest has not read yet when the socket closes: give it a moment, and
    /// show what the guest answers meanwhile.
    static func linger(console: Int32, output: Int32, milliseconds: Int32 = 500) {
        var fds = [pollfd(fd: console, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = ContinuousClock.now + .milliseconds(Int(milliseconds))
        while ContinuousClock.now < deadline {
            let left = Int32(max(1, InitVMTime.seconds(deadline - ContinuousClock.now) * 1000))
            guard poll(&fds, 1, left) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(console, $0.baseAddress, $0.count) }
            if count <= 0 { return }
            writeAll(output, Array(buffer[0..<count]))
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }
}

/// A terminal switched to raw mode for the life of the value (no-op when not a terminal).
final class RawTerminal {
    private let fd: Int32
    private var saved: termios?

    init(fd: Int32) {
        self.fd = fd
        guard isatty(fd) == 1 else { return }
        var original = termios()
        guard tcgetattr(fd, &original) == 0 else { return }
        saved = original
        var raw = original
        cfmakeraw(&raw)
        tcsetattr(fd, TCSAFLUSH, &raw)
    }

    func restore() {
        guard var saved else { return }
        tcsetattr(fd, TCSAFLUSH, &saved)
        self.saved = nil
    }
}
