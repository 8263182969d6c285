import DaemonAPI
import Foundation
import HavelCore
import SystemKit
import Testing
@testable import InitVM

/// Status, stop and the console relay against stand-ins: a process that looks like the initvm's
/// qemu to the host, a tiny HTTP responder on 127.0.0.1. No VM is started (QMP is tested in QEMUTests).
@Suite(.serialized)
struct InitVMControllerTests {
    @Test func notCreatedThenStopped() async throws {
        let base = try TestDirectory()
        defer { base.remove() }
        let directory = InitVMDirectory(base.path + "/vm")
        let controller = InitVMController(directory: directory)
        #expect(await controller.status().state == .notCreated)
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: directory.image, contents: Data()))
        #expect(await controller.status().state == .stopped)
        #expect(try await controller.stop() == .notRunning)
        await #expect(throws: HavelError.self) {
            _ = try await controller.start(probe: { _, _ in (false, "") })   // no kernel: incomplete
        }
    }

    /// start through the process seam: qemu's command line is recorded instead of run, and the pid
    /// file the stand-in leaves is what start reports and remembers.
    @Test func startRunsQemuThroughTheProcessSeam() async throws {
        let base = try TestDirectory()
        defer { base.remove() }
        let directory = InitVMDirectory(base.path + "/vm")
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        for file in [directory.image, directory.kernel, directory.initrd] {
            #expect(FileManager.default.createFile(atPath: file, contents: Data()))
        }
        try InitVMSettings(apiPort: BootEnvironment.freePort()).write(directory.settings)
        let fake = RecordingProcesses()
        fake.on(program: QemuCommandLine.qemu) { _ in
            _ = FileManager.default.createFile(atPath: directory.pidFile, contents: Data("4242\n".utf8))
            return .success
        }
        let controller = InitVMController(directory: directory, processes: fake)
        let outcome = try await controller.start(StartOptions(accelerator: .tcg), probe: { _, _ in (false, "not asked") })
        guard case .started(pid: 4242, let launch, _) = outcome else {
            Issue.record("expected started, got \(outcome)")
            return
        }
        #expect(launch.accelerator == .tcg)
        #expect(fake.commands.map(\.executable) == [QemuCommandLine.qemu])
        #expect(fake.commands.first?.arguments.contains("-daemonize") == true)
        #expect(JSONFile.read(InitVMRuntime.self, from: directory.runtime)?.processIdentifier == 4242)
    }

    @Test func bootingThenReadyThenKilled() async throws {
        let base = try TestDirectory()
        defer { base.remove() }
        let directory = InitVMDirectory(base.path + "/vm")
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: directory.image, contents: Data()))
        try "[    0.000000] Linux version 6.1.0\r\nWelcome to Debian GNU/Linux 12 (bookworm)!\r\n\u{1b}[0m\r\n"
            .write(toFile: directory.consoleLog, atomically: true, encoding: .utf8)

        let server = try HTTPStandIn()
        defer { server.stop() }
        let fakeQemu = try FakeQemu(directory)
        defer { fakeQemu.kill() }
        let runtime = InitVMRuntime(processIdentifier: fakeQemu.pid, apiPort: server.port, accelerator: .tcg,
                                    memoryMiB: 2048, cpus: 2, started: Date())
        try JSONFile.write(runtime, to: directory.runtime)
        let controller = InitVMController(directory: directory)

        server.answer = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
        let booting = await controller.status()
        guard case .booting(let pid, let why) = booting.state else {
            Issue.record("expected booting, got \(booting.state)")
            return
        }
        #expect(pid == fakeQemu.pid)
        #expect(why.contains("503"))
        #expect(booting.lastConsoleLine == "Welcome to Debian GNU/Linux 12 (bookworm)!")

        // A second start never makes a second qemu.
        let again = try await controller.start(probe: { _, _ in (false, "") })
        guard case .alreadyRunning(let running) = again else {
            Issue.record("expected alreadyRunning, got \(again)")
            return
        }
        #expect(running == fakeQemu.pid)

        server.answer = HTTPStandIn.healthy(chunked: true)
        let ready = try await controller.waitUntilReady(timeout: .seconds(10), poll: .milliseconds(50))
        #expect(ready == HealthResponse(status: "ok", havelVersion: "9.9"))
        #expect(await controller.status().state == .ready(pid: fakeQemu.pid, health: ready))

        // No QMP socket answers: stop ends the process after the time-out.
        let outcome = try await controller.stop(timeout: .milliseconds(200))
        guard case .killed = outcome else {
            Issue.record("expected killed, got \(outcome)")
            return
        }
        #expect(!QemuProcesses.isAlive(fakeQemu.pid))
        #expect(!FileManager.default.fileExists(atPath: directory.runtime))
        #expect(await controller.status().state == .stopped)
    }

    @Test func healthAnswers() async throws {
        let server = try HTTPStandIn()
        defer { server.stop() }
        server.answer = HTTPStandIn.healthy(chunked: false)
        #expect(await HealthCheck.check(port: server.port) == .healthy(HealthResponse(status: "ok", havelVersion: "9.9")))
        server.answer = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        guard case .noAnswer = await HealthCheck.check(port: server.port) else {
            Issue.record("a body that is not a HealthResponse is not ready")
            return
        }
        server.answer = ""    // accept and close, as qemu's forward does while the guest does not listen
        guard case .noAnswer = await HealthCheck.check(port: server.port) else {
            Issue.record("a closed connection is not ready")
            return
        }
        server.stop()
        guard case .noAnswer = await HealthCheck.check(port: server.port, timeout: .milliseconds(500)) else {
            Issue.record("nothing listening is not ready")
            return
        }
    }

    @Test func consoleRelayAndEscape() throws {
        var input: [Int32] = [0, 0]
        var output: [Int32] = [0, 0]
        var console: [Int32] = [0, 0]
        #expect(pipe(&input) == 0)
        #expect(pipe(&output) == 0)
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &console) == 0)
        defer { for fd in input + output + console { close(fd) } }

        // The guest says something; the person types a command, then Ctrl-] and more.
        ConsoleAttach.writeAll(console[1], Array("login: ".utf8))
        ConsoleAttach.writeAll(input[1], Array("ls\r".utf8) + [ConsoleAttach.escape] + Array("ignored".utf8))
        let ending = ConsoleAttach.relay(input: input[0], output: output[1], console: console[0])
        #expect(ending == .detached)
        var buffer = [UInt8](repeating: 0, count: 64)
        let shown = read(output[0], &buffer, 64)
        #expect(String(decoding: buffer[0..<max(0, shown)], as: UTF8.self) == "login: ")
        let typed = read(console[1], &buffer, 64)
        #expect(String(decoding: buffer[0..<max(0, typed)], as: UTF8.self) == "ls\r")

        // The VM going away closes the console: the relay ends too.
        close(console[1])
        console[1] = -1
        #expect(ConsoleAttach.relay(input: input[0], output: output[1], console: console[0]) == .closed)
    }
}

/// A process the host takes for the initvm's qemu: its command line names the QMP socket.
struct FakeQemu {
    let process: Process
    var pid: Int32 { process.processIdentifier }

    init(_ directory: InitVMDirectory) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // The shell stays (no exec), so its command line keeps the marker.
        process.arguments = ["-c", "while :; do sleep 1; done", "-qmp", "unix:\(directory.qmpSocket),server=on,wait=off"]
        try process.run()
        for _ in 0..<50 where QemuProcesses.find(directory).isEmpty { usleep(20_000) }
    }

    func kill() {
        if process.isRunning { process.terminate() }
    }
}

/// A one-thread HTTP responder on 127.0.0.1 that answers every connection with `answer`.
final class HTTPStandIn: @unchecked Sendable {
    let port: Int
    private let fd: Int32
    private let lock = NSLock()
    private var _answer = ""
    private var stopped = false

    var answer: String {
        get { lock.lock(); defer { lock.unlock() }; return _answer }
        set { lock.lock(); _answer = newValue; lock.unlock() }
    }

    static func healthy(chunked: Bool) -> String {
        let body = #"{"status":"ok","havelVersion":"9.9"}"#
        if chunked {
            return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                + String(body.utf8.count, radix: 16) + "\r\n" + body + "\r\n0\r\n\r\n"
        }
        return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
    }

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Sockets.loopbackAddress(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 8) == 0 else { throw Sockets.Failure("bind", errno: errno) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            _ = $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        fd = listener
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 { return }
                var buffer = [UInt8](repeating: 0, count: 2048)
                _ = recv(client, &buffer, buffer.count, 0)
                try? Sockets.writeAll(client, Array(self.answer.utf8))
                close(client)
            }
        }
    }

    func stop() {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
