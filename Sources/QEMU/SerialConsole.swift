import Foundation
import HavelCore
import Synchronization
import SystemKit

/// Turns a terminal byte stream into text to match against: drops carriage returns, NULs and ANSI
/// escape sequences (colours, cursor queries, titles), and decodes UTF-8 across chunk boundaries.
/// The one escape stripper: for a console read as it arrives and for text already read.
public struct TerminalTextFilter: Sendable {
    private enum State { case text, escape, csi(Int), osc(Int), oscEscape, charset }
    private var state = State.text
    private var pendingUTF8: [UInt8] = []

    public init() {}

    /// `text` without escape sequences, carriage returns and NULs.
    public static func strip(_ text: String) -> String {
        var filter = TerminalTextFilter()
        return filter.feed(Array(text.utf8)) + String(decoding: filter.pendingUTF8, as: UTF8.self)
    }

    public mutating func feed(_ bytes: [UInt8]) -> String {
        var out = pendingUTF8
        pendingUTF8 = []
        out.reserveCapacity(out.count + bytes.count)
        for byte in bytes {
            switch state {
            case .text:
                switch byte {
                case 0x1B: state = .escape
                case 0x0D, 0x00: break
                default: out.append(byte)
                }
            case .escape:
                switch byte {
                case UInt8(ascii: "["): state = .csi(0)
                case UInt8(ascii: "]"): state = .osc(0)
                case UInt8(ascii: "("), UInt8(ascii: ")"): state = .charset
                default: state = .text                      // a two-byte sequence such as ESC 7
                }
            case .csi(let length):
                if (0x40...0x7E).contains(byte) {
                    state = .text                           // the final byte
                } else if (0x20...0x3F).contains(byte) && length < 64 {
                    state = .csi(length + 1)
                } else {                                    // not a sequence after all
                    state = byte == 0x1B ? .escape : .text
                    if byte != 0x0D && byte != 0x1B && byte != 0x00 { out.append(byte) }
                }
            case .osc(let length):                          // ends with BEL or ESC \
                switch byte {
                case 0x07: state = .text
                case 0x1B: state = .oscEscape
                default: state = length < 256 ? .osc(length + 1) : .text
                }
            case .oscEscape:
                state = .text
            case .charset:
                state = .text
            }
        }
        // Keep an incomplete UTF-8 sequence at the end for the next chunk.
        var lead = out.count - 1
        while lead >= 0 && lead >= out.count - 4 && out[lead] & 0xC0 == 0x80 { lead -= 1 }
        if lead >= 0 && lead >= out.count - 4 {
            let first = out[lead]
            let needed = first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : first >= 0xC0 ? 2 : 1
            if out.count - lead < needed {
                pendingUTF8 = Array(out[lead...])
                out.removeSubrange(lead...)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Text to wait for on the console.
///
/// ELBE hands `expect` texts to pexpect, which reads them as Python regular expressions (its own
/// login action waits for `.*[Ll]ogin:.*`). Havel accepts both readings: an expectation is met
/// when the text occurs literally or, if it is a valid regular expression, when it matches.
public struct ConsolePattern: CustomStringConvertible {
    public let text: String
    let literal: String?
    let regex: Regex<AnyRegexOutput>?
    /// Cannot match across a line break, so a rescan can start at the last line seen.
    let lineLocal: Bool
    /// How messages name it; the quoted text unless given.
    var shown: String?
    /// For `.*X`: X alone, a cheap test that must pass before the (backtracking) whole is tried.
    var prefilter: Regex<AnyRegexOutput>?

    public var description: String { shown ?? "\"\(text)\"" }

    /// Exactly this text.
    public static func literal(_ text: String) -> ConsolePattern {
        ConsolePattern(text: text, literal: text, regex: nil, lineLocal: !text.contains("\n"))
    }

    /// A regular expression (Havel's own prompts), named `shown` in messages; an invalid one is a
    /// programming error.
    public static func regex(_ pattern: String, shown: String? = nil) -> ConsolePattern {
        ConsolePattern(text: pattern, literal: nil, regex: try! Regex(pattern), lineLocal: isLineLocal(pattern), shown: shown)
    }

    /// An ELBE `expect` text: literal or regular expression, whichever matches first.
    public static func elbe(_ text: String) -> ConsolePattern {
        let regex = try? Regex(text)
        var pattern = ConsolePattern(text: text, literal: text, regex: regex,
                                     lineLocal: !text.contains("\n") && (regex == nil || isLineLocal(text)))
        if regex != nil, text.hasPrefix(".*"), text.count > 2 { pattern.prefilter = try? Regex(String(text.dropFirst(2))) }
        return pattern
    }

    /// True when a regular expression can only match within one line: no negated classes, no
    /// inline options, and only escapes that cannot stand for a line break.
    static func isLineLocal(_ pattern: String) -> Bool {
        if pattern.contains("\n") || pattern.contains("[^") || pattern.contains("(?") { return false }
        var chars = pattern.makeIterator()
        while let c = chars.next() {
            guard c == "\\" else { continue }
            guard let e = chars.next() else { break }
            if e.isPunctuation || e.isSymbol || "dwbBtSA".contains(e) { continue }
            return false
        }
        return true
    }

    func firstMatch(in text: Substring) -> Range<String.Index>? {
        var best: Range<String.Index>?
        if let literal, let range = text.firstRange(of: literal) { best = range }
        if let regex, prefilter.map({ (try? $0.firstMatch(in: text)) != nil }) ?? true,
           let match = try? regex.firstMatch(in: text),
           best == nil || match.range.lowerBound < best!.lowerBound {
            best = match.range
        }
        return best
    }
}

/// The guest's serial console as seen from the host: everything qemu printed on stdout (cleaned for
/// matching, raw in the transcript), what it printed on stderr, and a cursor that expectations
/// consume, as with expect(1).
public final class SerialConsole: Sendable {
    public enum ExpectResult: Sendable {
        case matched(index: Int, text: String)
        /// qemu closed its output (it exited) before any pattern matched.
        case ended
        case timedOut
    }

    private struct State: ~Copyable {
        var filter = TerminalTextFilter()
        var text = ""
        /// Offsets count UTF-8 bytes since the start, including text dropped from the front.
        var dropped = 0
        var cursor = 0
        var version = 0
        var ended = false
        /// When the guest last printed anything on the console.
        var lastOutput: ContinuousClock.Instant?
        var standardError: [UInt8] = []
        var transcript: FileHandle?
    }

    /// Past this much text the oldest half is dropped (a guest printing without end).
    static let textLimit = 8 << 20
    private let state: Mutex<State>

    public init(transcriptPath: String?) {
        var handle: FileHandle?
        if let transcriptPath {
            let url = URL(fileURLWithPath: transcriptPath)
            try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            if FileManager.default.createFile(atPath: transcriptPath, contents: nil) {
                handle = FileHandle(forWritingAtPath: transcriptPath)
            }
        }
        var initial = State()
        initial.transcript = handle
        state = Mutex(initial)
    }

    /// Takes qemu's output as it arrives (called from the reader tasks).
    public func receive(_ output: ProcessOutput) {
        state.withLock { s in
            switch output {
            case .standardOutput(let bytes):
                if !bytes.isEmpty { s.lastOutput = .now }
                try? s.transcript?.write(contentsOf: bytes)
                s.text += s.filter.feed(bytes)
                s.version += 1
                if s.text.utf8.count > Self.textLimit {
                    let utf8 = s.text.utf8
                    let half = utf8.index(utf8.startIndex, offsetBy: utf8.count / 2)
                    let cut = utf8[half...].firstIndex(of: 10).map { utf8.index(after: $0) } ?? half
                    s.dropped += utf8.distance(from: utf8.startIndex, to: cut)
                    s.text.removeSubrange(..<cut)
                }
            case .standardOutputEnded:
                s.ended = true
                s.version += 1
            case .standardError(let bytes):
                if s.standardError.count < 1 << 20 { s.standardError += bytes }
            case .standardErrorEnded:
                break
            }
        }
    }

    public var hasEnded: Bool { state.withLock { $0.ended } }

    /// When the guest last printed on the console; nil while it has printed nothing.
    public var lastOutput: ContinuousClock.Instant? { state.withLock { $0.lastOutput } }

    /// What qemu printed on stderr (its own errors and warnings).
    public var standardError: String {
        state.withLock { String(decoding: $0.standardError, as: UTF8.self) }
    }

    /// The last `lines` lines of console text, at most `maxBytes` long.
    public func tail(lines: Int, maxBytes: Int = 8192) -> String {
        state.withLock { s in
            var collected = s.text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines)
                .joined(separator: "\n")
            if collected.utf8.count > maxBytes {
                collected = String(decoding: collected.utf8.suffix(maxBytes), as: UTF8.self)
            }
            return collected.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// Up to `limit` lines of the console text kept (escape sequences removed) that contain `text`, the first ones.
    public func lines(containing text: String, limit: Int) -> [String] {
        state.withLock { s in
            Array(s.text.split(separator: "\n").lazy.filter { $0.contains(text) }.prefix(limit).map { String($0.prefix(300)) })
        }
    }

    /// The guest kernel's panic line ("Kernel panic - not syncing: ..."), when the text kept holds one.
    public var kernelPanic: String? {
        state.withLock { s in
            guard let range = s.text.range(of: "Kernel panic - not syncing:") else { return nil }
            let end = s.text[range.lowerBound...].firstIndex(where: { $0 == "\n" || $0 == "\r" }) ?? s.text.endIndex
            return String(s.text[range.lowerBound..<end].prefix(300))
        }
    }

    /// Closes the transcript, adding qemu's stderr at the end when there was any.
    public func closeTranscript() {
        state.withLock { s in
            guard let handle = s.transcript else { return }
            if !s.standardError.isEmpty {
                try? handle.write(contentsOf: Array("\n--- qemu standard error ---\n".utf8) + s.standardError)
            }
            try? handle.close()
            s.transcript = nil
        }
    }

    /// Waits until one of `patterns` appears after the cursor and moves the cursor past it.
    /// Looks every 20 ms; cancellation of the calling task ends the wait.
    ///
    /// Without `silence` the wait ends after `timeout`. With it, `timeout` is only the ceiling: the wait
    /// ends earlier once the guest has printed nothing for `silence` (counted from the start of the wait
    /// when it printed nothing since), so a guest that is slow but still booting is waited for, and one that
    /// has stopped is not.
    public func expect(_ patterns: [ConsolePattern], timeout: Duration,
                       silence: Duration? = nil) async throws(CancellationError) -> ExpectResult {
        let start = ContinuousClock.now
        let ceiling = start.advanced(by: timeout)
        var scan = ConsoleScan(patterns: patterns)
        while true {
            if let result = look(&scan) { return result }
            let now = ContinuousClock.now
            if now >= ceiling { return .timedOut }
            if let silence, now - max(start, lastOutput ?? start) >= silence { return .timedOut }
            do {
                try await Task.sleep(for: .milliseconds(20))
            } catch {
                throw CancellationError()
            }
        }
    }

    /// One look for `scan`'s patterns in what arrived since its last look.
    func look(_ scan: inout ConsoleScan) -> ExpectResult? {
        state.withLock { s -> ExpectResult? in
            guard s.version != scan.seenVersion else { return nil }
            scan.seenVersion = s.version
            let text = s.text
            let utf8 = text.utf8
            let cursor = utf8.index(utf8.startIndex, offsetBy: max(0, s.cursor - s.dropped))
            // Text already scanned cannot hold a line-local match except on its last, unfinished line.
            var lineStart = cursor
            if scan.scannedEnd >= 0 {
                let scanned = utf8.index(utf8.startIndex, offsetBy: min(utf8.count, max(0, scan.scannedEnd - s.dropped)))
                if scanned > cursor {
                    lineStart = utf8[cursor..<scanned].lastIndex(of: 10).map { utf8.index(after: $0) } ?? cursor
                }
            }
            var best: (index: Int, range: Range<String.Index>)?
            for (index, pattern) in scan.patterns.enumerated() {
                let from = pattern.lineLocal ? lineStart : cursor
                scan.bytesScanned += utf8.distance(from: from, to: utf8.endIndex)
                if let range = pattern.firstMatch(in: text[from...]),
                   best == nil || range.lowerBound < best!.range.lowerBound {
                    best = (index, range)
                }
            }
            if let best {
                s.cursor = s.dropped + utf8.distance(from: utf8.startIndex, to: best.range.upperBound)
                return .matched(index: best.index, text: String(text[best.range]))
            }
            scan.scannedEnd = s.dropped + utf8.count
            return s.ended ? .ended : nil
        }
    }
}

/// One wait's progress through the console text, so that each look reads only what is new (and, for
/// line-local patterns, the unfinished line before it): a guest printing megabytes of boot messages
/// costs work in proportion to what it printed, not to that times the number of looks.
struct ConsoleScan {
    let patterns: [ConsolePattern]
    var seenVersion = -1
    /// The console offset up to which the patterns have been tried.
    var scannedEnd = -1
    /// UTF-8 bytes handed to the patterns so far: the matcher's work, which tests hold to linear.
    var bytesScanned = 0

    init(patterns: [ConsolePattern]) {
        self.patterns = patterns
    }
}
