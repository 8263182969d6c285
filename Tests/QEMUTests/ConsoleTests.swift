import Foundation
import Testing
@testable import QEMU

/// Console text cleaning and matching, fed by hand.
@Suite struct ConsoleTests {
    @Test func escapesAndCarriageReturnsAreRemovedAcrossChunks() {
        var filter = TerminalTextFilter()
        var text = filter.feed(Array("\u{1B}[0;32m  OK  \u{1B}[0m] Started\r\n# \u{1B}[".utf8))
        text += filter.feed(Array("6nls\r\n\u{1B}]0;title\u{07}done ".utf8))
        let euro = Array("€".utf8)                                  // three bytes, split over two chunks
        text += filter.feed([euro[0], euro[1]])
        text += filter.feed([euro[2]] + Array("\n".utf8))
        #expect(text == "  OK  ] Started\n# ls\ndone €\n")
    }

    @Test func elbePatternsAreLiteralOrRegularExpressions() {
        let text = "Debian GNU/Linux 12 debian ttyS0\n\ndebian login: "
        #expect(ConsolePattern.elbe(".*[Ll]ogin:.*").firstMatch(in: text[...]) != nil)
        #expect(ConsolePattern.elbe("1+1=2").firstMatch(in: "sum: 1+1=2"[...]) != nil)   // as regex it would not match
        #expect(ConsolePattern.elbe("login: (").firstMatch(in: "x login: ("[...]) != nil) // not a valid regex
        #expect(ConsolePattern.elbe("Password:").firstMatch(in: text[...]) == nil)
        #expect(ConsolePattern.isLineLocal(".*[Ll]ogin:\\.x\\d+"))
        #expect(!ConsolePattern.isLineLocal("a\\sb"))
        #expect(!ConsolePattern.isLineLocal("a[^x]b"))
    }

    @Test func expectConsumesAndTimesOut() async throws {
        let console = SerialConsole(transcriptPath: nil)
        console.receive(.standardOutput(Array("boot...\nhost lo".utf8)))
        let feeder = Task {
            try await Task.sleep(for: .milliseconds(100))
            console.receive(.standardOutput(Array("gin: ".utf8)))
        }
        // Generous: on a loaded 2-core machine the feeder task may wait for a thread.
        let first = try await console.expect([.regex("[Ll]ogin:")], timeout: .seconds(60))
        guard case .matched(0, "login:") = first else { Issue.record("got \(first)"); return }
        try await feeder.value
        // The same text is consumed: it does not match twice.
        let again = try await console.expect([.literal("login:")], timeout: .milliseconds(200))
        guard case .timedOut = again else { Issue.record("got \(again)"); return }
        console.receive(.standardOutputEnded)
        let ended = try await console.expect([.literal("never")], timeout: .seconds(60))
        guard case .ended = ended else { Issue.record("got \(ended)"); return }
    }

    /// With a silence limit the time-out is a ceiling: a guest that keeps printing is waited for past the
    /// silence limit, one that stops is given up once it has been silent that long, well before the ceiling.
    @Test func aSilenceLimitWaitsForAPrintingGuestAndNotForAQuietOne() async throws {
        let console = SerialConsole(transcriptPath: nil)
        let silence = Duration.seconds(5)
        // The guest prints from its own thread, as qemu's output arrives from outside: a feeder task on
        // the cooperative pool could itself be starved for seconds by the tests running beside this one,
        // and a starved feeder is a silent guest.
        let printed = Thread {
            for line in 0..<80 {                                    // 8 s of boot messages, one every 100 ms
                console.receive(.standardOutput(Array("[ \(line) ] probing\n".utf8)))
                usleep(100_000)
            }
            console.receive(.standardOutput(Array("board login: ".utf8)))
        }
        let started = ContinuousClock.now
        printed.start()
        let seen = try await console.expect([.literal("login:")], timeout: .seconds(300), silence: silence)
        guard case .matched = seen else { Issue.record("got \(seen)"); return }
        #expect(ContinuousClock.now - started > silence, "matched after the silence limit had passed")
        #expect(console.lastOutput != nil)
        // Now nothing more comes: the wait ends after the silence, long before its 300 s ceiling.
        let quietStart = ContinuousClock.now
        let quiet = try await console.expect([.literal("never")], timeout: .seconds(300), silence: silence)
        guard case .timedOut = quiet else { Issue.record("got \(quiet)"); return }
        let waited = ContinuousClock.now - quietStart
        #expect(waited >= silence && waited < .seconds(150), "\(waited)")
    }

    @Test func linesContainingATextAreFound() {
        let console = SerialConsole(transcriptPath: nil)
        console.receive(.standardOutput(Array("\u{1B}[0;1;31m TIME \u{1B}[0m] Timed out waiting for device /dev/disk/by-label/efi.\r\nok\n".utf8)))
        #expect(console.lines(containing: "Timed out waiting for device", limit: 4) == [" TIME ] Timed out waiting for device /dev/disk/by-label/efi."])
        #expect(console.lines(containing: "absent", limit: 4).isEmpty)
    }

    /// 10 000 lines (900 kB) of boot messages in 200 chunks that end mid-line, a look after each (as
    /// `expect` looks every 20 ms), then the prompt. Work is counted, not timed: a look reads what is new
    /// and the unfinished line before it, so the total stays linear in the output; looking again from
    /// the cursor every time would read some 90 MB.
    @Test func matchingAChattyGuestIsLinearInItsOutput() {
        let console = SerialConsole(transcriptPath: nil)
        let line = "[    1.234567] systemd[1]: Started some-service.service - A unit with a long description.\n"
        let flood = Array(String(repeating: line, count: 10_000).utf8)
        var scan = ConsoleScan(patterns: [.elbe(".*[Ll]ogin:.*")])
        var looks = 0
        for start in stride(from: 0, to: flood.count, by: 4_507) {
            console.receive(.standardOutput(Array(flood[start..<min(flood.count, start + 4_507)])))
            looks += 1
            if let early = console.look(&scan) { Issue.record("matched in the flood: \(early)") }
        }
        let prompt = Array("\nDebian GNU/Linux 12 debian ttyS0\n\ndebian login: ".utf8)
        console.receive(.standardOutput(prompt))
        looks += 1
        let result = console.look(&scan)
        guard case .matched(0, "debian login: ") = result else { Issue.record("got \(String(describing: result))"); return }
        #expect(scan.bytesScanned <= flood.count + prompt.count + looks * line.utf8.count,
                "\(scan.bytesScanned) bytes scanned for \(flood.count + prompt.count) bytes of output")
    }

    @Test func earliestOfSeveralPatternsWins() async throws {
        let console = SerialConsole(transcriptPath: nil)
        console.receive(.standardOutput(Array("Login incorrect\nhost login: ".utf8)))
        let result = try await console.expect([.literal("login:"), .regex("[Ll]ogin incorrect")], timeout: .seconds(1))
        guard case .matched(1, _) = result else { Issue.record("got \(result)"); return }
    }

    @Test func aKernelPanicIsFoundInTheText() {
        let console = SerialConsole(transcriptPath: nil)
        #expect(console.kernelPanic == nil)
        console.receive(.standardOutput(Array("[    0.05] ..... failed :(.\r\n[    0.05] Kernel panic - not syncing: IO-APIC + ".utf8)))
        console.receive(.standardOutput(Array("timer doesn't work!  Boot with apic=debug\r\n[    0.05] CPU: 0 PID: 0\r\n".utf8)))
        #expect(console.kernelPanic == "Kernel panic - not syncing: IO-APIC + timer doesn't work!  Boot with apic=debug")
    }
}
