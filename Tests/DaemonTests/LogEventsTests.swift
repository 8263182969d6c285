import DaemonAPI
import Foundation
import Testing
@testable import Daemon

/// The followed log's framing: offsets, resumption, partial lines, keep-alives and the end event.
@Suite struct LogEventsTests {
    func temporaryLog(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "havel-log-\(UUID().uuidString).txt"
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    @Test func linesCarryTheOffsetAfterThemAndPartialLinesWait() {
        var splitter = LogLineSplitter()
        let first = splitter.feed(Array("one\ntw".utf8), at: 0)
        #expect(first.map(\.0) == ["one"])
        #expect(first.map(\.1) == [4])
        let second = splitter.feed(Array("o\n\nthree".utf8), at: 6)
        #expect(second.map(\.0) == ["two", ""])
        #expect(second.map(\.1) == [8, 9])
        let rest = splitter.flush()
        #expect(rest?.0 == "three")
        #expect(rest?.1 == 14)
        #expect(splitter.flush() == nil)
    }

    @Test func aRestartedLogDropsThePendingPartOfTheOldOne() {
        var splitter = LogLineSplitter()
        #expect(splitter.feed(Array("old partial".utf8), at: 0).isEmpty)
        let lines = splitter.feed(Array("new\n".utf8), at: 0)
        #expect(lines.map(\.0) == ["new"])
        #expect(lines.map(\.1) == [4])
    }

    @Test func anEndlessLineGoesOutInBoundedPieces() {
        var splitter = LogLineSplitter()
        let lines = splitter.feed([UInt8](repeating: UInt8(ascii: "x"), count: LogLineSplitter.maximumLine * 2 + 5), at: 0)
        #expect(lines.count == 2)
        #expect(lines.allSatisfy { $0.0.utf8.count == LogLineSplitter.maximumLine })
        #expect(splitter.flush()?.0.utf8.count == 5)
    }

    @Test func theReaderResumesAtAnOffsetAndStartsOverOnAShorterLog() throws {
        let path = try temporaryLog("alpha\nbeta\n")
        defer { unlink(path) }
        var reader = LogReader(path: path, offset: 6)
        #expect(reader.next() == Array("beta\n".utf8))
        #expect(reader.next() == nil)
        // Replaced by a shorter log (a new build): from its start.
        try "new\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(reader.next() == Array("new\n".utf8))
        var beyond = LogReader(path: path, offset: 1000)
        #expect(beyond.next() == Array("new\n".utf8))
    }

    @Test func eventsRoundTripThroughTheClientsParser() throws {
        let stream = LogEvents.line("first", endOffset: 6) + LogEvents.keepAlive + LogEvents.line("", endOffset: 7)
            + LogEvents.line("with\rreturn", endOffset: 19) + LogEvents.end(status: "build_done")
        var reader = LogEvents.Reader()
        var events: [LogEvents.Event] = []
        // Byte by byte: events split anywhere still come out whole.
        for byte in Array(stream.utf8) { events += try reader.feed([byte]) }
        #expect(events == [.line("first", endOffset: 6), .keepAlive, .line("", endOffset: 7),
                           .line("with\nreturn", endOffset: 19), .end(status: "build_done")])
    }

    @Test func malformedEventsAreRefused() {
        var reader = LogEvents.Reader()
        #expect(throws: LogEvents.Reader.Malformed.self) { _ = try reader.feed(Array("data: no id\n\n".utf8)) }
        var other = LogEvents.Reader()
        #expect(throws: LogEvents.Reader.Malformed.self) { _ = try other.feed(Array("id: -3\n".utf8)) }
        var endless = LogEvents.Reader()
        #expect(throws: LogEvents.Reader.Malformed.self) {
            _ = try endless.feed([UInt8](repeating: UInt8(ascii: "d"), count: LogEvents.Reader.maximumLine + 1))
        }
    }
}
