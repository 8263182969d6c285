import Foundation
import HavelCore
import QEMU
import SystemKit

/// Runs shell commands in the initvm through its serial console (console.sock, where root is logged
/// in): for `havel initvm run`, for tests and for benchmarks. The console is one line for everybody,
/// so a session takes it for itself and gives it back with echo switched on again.
///
/// Each command is framed by two markers the shell prints; they are written split by an empty
/// quote (`HV""B`) so that the typed command line never contains them, even if echo is on.
public final class GuestShell {
    public struct Result: Sendable, Equatable {
        public var status: Int32
        public var output: String
    }

    private var fd: Int32
    private let directory: InitVMDirectory
    private var pending: [UInt8] = []
    private var counter = 0

    /// Connects to the console and waits until the shell answers. The question is asked again every
    /// `askAgain`: typed input is dropped while a getty (re)starts on the line (agetty flushes it), and a
    /// guest under software emulation on a busy host can take long to get there. The error names what
    /// the console showed last.
    public init(directory: InitVMDirectory, timeout: Duration = .seconds(300),
                askAgain: Duration = .seconds(20)) async throws(HavelError) {
        self.directory = directory
        do {
            fd = try Sockets.connectUnix(directory.consoleSocket, timeout: 1)
        } catch {
            throw HavelError(.notFound, "\(error.description); is the initvm running? (havel initvm status --directory \(directory.path))")
        }
        let ready = "HVREADY\(getpid())"
        let deadline = ContinuousClock.now + timeout
        while true {
            // Ctrl-U drops whatever a person left typed; echo off keeps our commands out of the output.
            try await send("\u{15}\r")
            try await send("stty -echo; echo \(Self.split(ready))\r")
            let wait = min(askAgain, deadline - ContinuousClock.now)
            do {
                _ = try await read(until: ready, timeout: wait)
                return
            } catch where error.code == .processFailed && ContinuousClock.now < deadline {
                continue
            } catch where error.code == .processFailed {
                // Fully initialised by now: deinit closes the socket.
                let shown = InitVMController.lastLines(of: directory.consoleLog, count: 8)
                throw HavelError(.processFailed, "the initvm's console (\(directory.consoleSocket)) gave no shell within \(timeout): "
                                 + "is someone attached (havel initvm attach), or is it still booting? "
                                 + (shown.isEmpty ? "The console has shown nothing (\(directory.consoleLog))."
                                    : "The console's last lines (\(directory.consoleLog)):\n" + shown.joined(separator: "\n")))
            }
        }
    }

    deinit { disconnect() }

    /// Runs one line of shell (stdin is /dev/null; stderr is merged into the output).
    public func run(_ command: String, timeout: Duration = .seconds(600)) async throws(HavelError) -> Result {
        guard fd >= 0 else { throw HavelError(.invalidArgument, "the console session has finished") }
        guard !command.contains("\n"), !command.contains("\r") else {
            throw HavelError(.invalidArgument, "a console command is one line: \(command)")
        }
        counter += 1
        let begin = "HVB\(counter)X", end = "HVE\(counter)X"
        try await send("echo \(Self.split(begin)); ( \(command) ) </dev/null 2>&1; echo \(Self.split(end))$?X\r")
        let text = try await read(until: end, timeout: timeout, trailer: true)
        guard let start = text.range(of: begin + "\n"), let stop = text.range(of: end, options: .backwards) else {
            throw HavelError(.processFailed, "the initvm's console answered out of order for: \(command)")
        }
        let statusText = text[stop.upperBound...].prefix { $0.isNumber }
        let output = text[start.upperBound..<stop.lowerBound]
        return Result(status: Int32(statusText) ?? -1, output: Self.cleaned(String(output)))
    }

    /// Gives the console back as a person expects it (echo on) and lets go of it. A connection nobody
    /// reads would stall the guest's console output once qemu's buffer is full, shutdown messages included.
    public func finish() {
        guard fd >= 0 else { return }
        // Blocking, bounded by the socket's one-second time-out: finish runs in a defer.
        try? Sockets.writeAll(fd, Array("stty echo\r".utf8))
        disconnect()
    }

    private func disconnect() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    // MARK: - the line

    private func send(_ text: String) async throws(HavelError) {
        do {
            try await Sockets.sendAll(fd, Array(text.utf8), until: .now + .seconds(1))
        } catch {
            throw HavelError(.io, "cannot write to \(directory.consoleSocket): \(error.description)")
        }
    }

    /// Reads until `marker` (and, with `trailer`, the exit status and the closing X after it) has arrived;
    /// returns everything up to there with carriage returns removed.
    private func read(until marker: String, timeout: Duration, trailer: Bool = false) async throws(HavelError) -> String {
        let deadline = ContinuousClock.now + timeout
        // Set once a read returned after the deadline: the output then read is looked at, then it ends.
        var overdue = false
        while true {
            let text = String(decoding: pending, as: UTF8.self).replacingOccurrences(of: "\r", with: "")
            if let found = text.range(of: marker) {
                let rest = text[found.upperBound...]
                if !trailer {
                    pending = []
                    return text
                }
                if let close = rest.firstIndex(of: "X"), rest[rest.startIndex..<close].allSatisfy(\.isNumber), close > rest.startIndex {
                    pending = []
                    return String(text[..<text.index(after: close)])
                }
            }
            if overdue { throw HavelError(.processFailed, "no answer on the initvm's console within \(timeout)") }
            let received: Sockets.Received
            do {
                // Returns as soon as output arrives, at the deadline, or when the task is cancelled.
                received = try await Sockets.receive(fd, until: deadline)
            } catch {
                throw HavelError(.io, "cannot read from \(directory.consoleSocket): \(error.description)")
            }
            switch received {
            case .bytes(let chunk):
                pending += chunk
                overdue = ContinuousClock.now >= deadline
            case .closed: throw HavelError(.io, "the initvm's console closed (did qemu stop?)")
            case .timedOut: throw HavelError(.processFailed, "no answer on the initvm's console within \(timeout)")
            case .cancelled: throw HavelError(.cancelled, "interrupted while waiting for the initvm's console")
            }
        }
    }

    /// `HVB1X` as the shell should type it: `HV""B1X`, so that only the shell's output contains the marker.
    static func split(_ marker: String) -> String {
        String(marker.prefix(2)) + "\"\"" + String(marker.dropFirst(2))
    }

    /// Output without terminal escapes and without kernel messages that landed on the console meanwhile.
    static func cleaned(_ text: String) -> String {
        TerminalTextFilter.strip(text).split(separator: "\n", omittingEmptySubsequences: false)
            .filter { $0.range(of: #"^\[\s*[0-9]+\.[0-9]+\] "#, options: .regularExpression) == nil }
            .joined(separator: "\n")
    }
}
