import Foundation
import HavelCore
import SystemKit
import Testing
@testable import InitVM

/// The framing of console commands: the markers the shell types never contain the marker it prints,
/// and what the console adds (escapes, kernel messages) is taken out of the output.
struct GuestShellTests {
    @Test func typedMarkersDifferFromPrintedOnes() {
        #expect(GuestShell.split("HVB12X") == "HV\"\"B12X")
        #expect(!GuestShell.split("HVE3X").contains("HVE3X"))
    }

    @Test func consoleNoiseIsRemoved() {
        let raw = "\u{1B}[?2004lfirst line\n[   12.345678] loop0: detected capacity change\nsecond\u{1B}[0m line\n"
        #expect(GuestShell.cleaned(raw) == "first line\nsecond line\n")
        #expect(GuestShell.cleaned("[not a kernel line]\n") == "[not a kernel line]\n")
    }
}

/// The console conversation against a stand-in on console.sock: commands and their status, and the
/// time-outs, which hold whether the guest says nothing or never stops talking. No VM is started.
@Suite struct GuestShellConsoleTests {
    @Test func commandsRunThroughTheConsole() async throws {
        try await withConsole(.shell) { directory in
            let shell = try await GuestShell(directory: directory)
            defer { shell.finish() }
            #expect(try await shell.run("uname -r") == GuestShell.Result(status: 0, output: "ran uname -r\n"))
            #expect(try await shell.run("false") == GuestShell.Result(status: 1, output: "ran false\n"))
        }
    }

    /// The error says what the console showed last (from console.log), so a failure far away can be read.
    @Test func aSilentConsoleGivesNoShellWithinTheTimeOut() async throws {
        try await withConsole(.silent) { directory in
            try "[  OK  ] Started serial-getty@ttyS0.service\r\n\u{1B}[0mDebian GNU/Linux 12 havel-initvm ttyS0\r\n".write(
                toFile: directory.consoleLog, atomically: true, encoding: .utf8)
            let error = await #expect(throws: HavelError.self) {
                _ = try await GuestShell(directory: directory, timeout: .milliseconds(900), askAgain: .milliseconds(200))
            }
            let message = error?.message ?? ""
            #expect(message.contains("gave no shell"), "\(message)")
            #expect(message.contains("Debian GNU/Linux 12 havel-initvm ttyS0"), "\(message)")
            #expect(!message.contains("\u{1B}"), "\(message)")
        }
    }

    /// A question typed while a getty starts on the line is lost (agetty flushes its input): the next one is answered.
    @Test func aLostFirstQuestionIsAskedAgain() async throws {
        try await withConsole(.deafAtFirst) { directory in
            let shell = try await GuestShell(directory: directory, timeout: .seconds(120), askAgain: .milliseconds(300))
            defer { shell.finish() }
            #expect(try await shell.run("true") == GuestShell.Result(status: 0, output: "ran true\n"))
        }
    }

    /// The console is never quiet here, so only the deadline ends the read (the limit turns a hang into a failure).
    @Test(.timeLimit(.minutes(15))) func aGuestThatNeverStopsTalkingStillTimesOut() async throws {
        try await withConsole(.chatty) { directory in
            let shell = try await GuestShell(directory: directory)
            defer { shell.finish() }
            let error = await #expect(throws: HavelError.self) { _ = try await shell.run("true", timeout: .milliseconds(300)) }
            #expect(error?.message.contains("no answer") == true, "\(error?.description ?? "")")
        }
    }

    /// An initvm directory whose console.sock is a stand-in in `mode`; both are gone afterwards.
    func withConsole(_ mode: ConsoleStandIn.Mode, _ body: (InitVMDirectory) async throws -> Void) async throws {
        let base = try TestDirectory()
        defer { base.remove() }
        let directory = InitVMDirectory(base.path)
        let console = try ConsoleStandIn(path: directory.consoleSocket, mode: mode)
        defer { console.stop() }
        try await body(directory)
    }
}

/// A console.sock for one client that answers GuestShell's framing as a shell would (`shell`: each
/// command prints "ran COMMAND", `false` fails), answers nothing (`silent`), greets and then prints
/// kernel messages without end (`chatty`), or is a shell that drops the first question (`deafAtFirst`).
final class ConsoleStandIn: Sendable {
    enum Mode: Sendable { case shell, silent, chatty, deafAtFirst }
    private let fd: Int32

    init(path: String, mode: Mode) throws {
        let listener = try Sockets.listenUnix(path)
        fd = listener
        Thread.detachNewThread {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            defer { close(client) }
            Self.converse(client, mode: mode)
        }
    }

    private static func converse(_ client: Int32, mode: Mode) {
        let command = try! Regex(#"echo HV""B([0-9]+)X; \( (.*) \) </dev/null 2>&1; echo HV""E"#)
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var questionsToDrop = mode == .deafAtFirst ? 1 : 0
        while true {
            let count = recv(client, &buffer, buffer.count, 0)
            if count <= 0 { return }
            guard mode != .silent else { continue }
            pending += buffer[0..<count]
            while let end = pending.firstIndex(of: 13) {
                let line = String(decoding: pending[..<end], as: UTF8.self)
                pending.removeFirst(end + 1)
                if let ready = line.range(of: #"HV""READY"#) {
                    if questionsToDrop > 0 {
                        questionsToDrop -= 1
                        continue
                    }
                    let number = line[ready.upperBound...].prefix { $0.isNumber }
                    guard (try? Sockets.writeAll(client, Array("HVREADY\(number)\r\n".utf8))) != nil else { return }
                } else if let match = try? command.firstMatch(in: line), mode == .shell || mode == .deafAtFirst,
                          let counter = match.output[1].substring, let text = match.output[2].substring {
                    let answer = "HVB\(counter)X\r\nran \(text)\r\nHVE\(counter)X\(text == "false" ? 1 : 0)X\r\n"
                    guard (try? Sockets.writeAll(client, Array(answer.utf8))) != nil else { return }
                } else if mode == .chatty, line.contains("HV\"\"B") {
                    // Until the client goes: then the write fails and the thread ends.
                    while (try? Sockets.writeAll(client, Array("[    1.000000] chatter\r\n".utf8))) != nil {}
                    return
                }
            }
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
