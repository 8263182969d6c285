import HavelCore

/// A Debian package version `[epoch:]upstream[-revision]`, ordered exactly as dpkg orders versions
/// (`dpkg --compare-versions`).
///
/// Equality is dpkg's: `1.0`, `0:1.0`, `1.0-0` and `01.0` are all equal, so the type is `Equatable`
/// but deliberately not `Hashable`; `description` keeps the text as written.
public struct DebianVersion: Sendable, Comparable, CustomStringConvertible {
    public let epoch: Int
    public let upstream: String
    /// Empty when the version has no `-revision`.
    public let revision: String
    private let text: String

    /// Parses a version the way dpkg does, failing where dpkg reports an error: an empty version,
    /// embedded whitespace, an epoch that is not a non-negative number, nothing after the epoch's colon,
    /// or an empty upstream version or revision. Odd characters and a non-digit start, which dpkg only
    /// warns about, are accepted.
    public init?(_ text: String) {
        let trimmed = text.trimmingWhitespace()
        guard !trimmed.isEmpty, !trimmed.contains(where: { $0 == " " || $0 == "\t" || $0.isNewline }) else {
            return nil
        }
        var rest = Substring(trimmed)
        var epoch = 0
        if let colon = rest.firstIndex(of: ":") {
            let digits = rest[..<colon]
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int32(digits) else {
                return nil
            }
            epoch = Int(value)
            rest = rest[rest.index(after: colon)...]
            guard !rest.isEmpty else { return nil }
        }
        var revision = ""
        if let hyphen = rest.lastIndex(of: "-") {
            revision = String(rest[rest.index(after: hyphen)...])
            rest = rest[..<hyphen]
            guard !revision.isEmpty else { return nil }
        }
        guard !rest.isEmpty else { return nil }
        self.epoch = epoch
        self.upstream = String(rest)
        self.revision = revision
        self.text = trimmed
    }

    public var description: String { text }

    public static func == (a: DebianVersion, b: DebianVersion) -> Bool { compare(a, b) == 0 }
    public static func < (a: DebianVersion, b: DebianVersion) -> Bool { compare(a, b) < 0 }

    /// Negative, zero or positive as `a` sorts before, equal to or after `b`.
    public static func compare(_ a: DebianVersion, _ b: DebianVersion) -> Int {
        if a.epoch != b.epoch { return a.epoch < b.epoch ? -1 : 1 }
        let upstream = compareFragment(a.upstream, b.upstream)
        if upstream != 0 { return upstream }
        return compareFragment(a.revision, b.revision)
    }

    /// dpkg's `verrevcmp`: alternating runs of non-digits (compared character by character, where `~`
    /// sorts before everything including the end of the string, and letters sort before other
    /// characters) and digits (compared numerically).
    static func compareFragment(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        var i = 0, j = 0
        func isDigit(_ c: Int) -> Bool { c >= 48 && c <= 57 }
        func at(_ bytes: [UInt8], _ index: Int) -> Int { index < bytes.count ? Int(bytes[index]) : 0 }
        func order(_ c: Int) -> Int {
            if isDigit(c) { return 0 }
            if (c >= 65 && c <= 90) || (c >= 97 && c <= 122) { return c }
            if c == 126 { return -1 }  // ~
            if c != 0 { return c + 256 }
            return 0
        }
        while i < a.count || j < b.count {
            while (i < a.count && !isDigit(at(a, i))) || (j < b.count && !isDigit(at(b, j))) {
                let ac = order(at(a, i)), bc = order(at(b, j))
                if ac != bc { return ac - bc }
                i += 1
                j += 1
            }
            while at(a, i) == 48 { i += 1 }
            while at(b, j) == 48 { j += 1 }
            var firstDifference = 0
            while isDigit(at(a, i)) && isDigit(at(b, j)) {
                if firstDifference == 0 { firstDifference = at(a, i) - at(b, j) }
                i += 1
                j += 1
            }
            if isDigit(at(a, i)) { return 1 }
            if isDigit(at(b, j)) { return -1 }
            if firstDifference != 0 { return firstDifference }
        }
        return 0
    }

    /// Whether the whole `version` string matches an fnmatch-style `glob` (`*`, `?`, `[abc]`, `[a-z]`,
    /// `[!abc]`), case-sensitively, as ELBE matches a pkg-list `version="2.*"` against the installed version
    /// (Python's `fnmatchcase`). A `[` without a closing `]` is an ordinary character.
    public static func matches(_ version: String, glob: String) -> Bool {
        GlobPattern(glob).matches(version)
    }
}

