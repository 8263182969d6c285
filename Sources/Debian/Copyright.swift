import HavelCore

/// What a package's `/usr/share/doc/<pkg>/copyright` says about its licences.
public struct CopyrightInfo: Sendable, Hashable, Codable {
    /// One `Files:` paragraph of a machine-readable (DEP-5) copyright file.
    public struct FilesParagraph: Sendable, Hashable, Codable {
        /// The whitespace-separated patterns of `Files:`.
        public var globs: [String]
        /// The first line of `License:`, the licence expression as written (e.g. `GPL-2+ or Artistic`).
        public var license: String
        /// The `Copyright:` lines, joined by newlines.
        public var copyright: String

        public init(globs: [String], license: String, copyright: String) {
            self.globs = globs
            self.license = license
            self.copyright = copyright
        }
    }

    /// The whole file as read.
    public var text: String
    /// The file follows the copyright-format (DEP-5): its first paragraph has `Format:` naming it.
    public var machineReadable: Bool
    /// Unique short licence names in order of appearance: for DEP-5 files from `License:` first lines
    /// (expressions such as `GPL-2+ or Artistic` split into names); otherwise heuristic matches on the text.
    public var licenses: [String]
    /// The `Files:` paragraphs; empty for files that are not machine-readable.
    public var files: [FilesParagraph]

    public init(text: String, machineReadable: Bool, licenses: [String], files: [FilesParagraph]) {
        self.text = text
        self.machineReadable = machineReadable
        self.licenses = licenses
        self.files = files
    }
}

/// Reads Debian copyright files: machine-readable ones (DEP-5) exactly, free-form ones by heuristics.
public enum CopyrightParser {
    public static func parse(_ text: String) -> CopyrightInfo {
        let stanzas = Deb822.parse(text)
        guard let header = stanzas.first, isCopyrightFormat(header) else {
            return CopyrightInfo(text: text, machineReadable: false, licenses: heuristicLicenses(text), files: [])
        }
        var names: [String] = []
        var files: [CopyrightInfo.FilesParagraph] = []
        for (index, stanza) in stanzas.enumerated() {
            let synopsis = stanza["license"].map(firstLine) ?? ""
            if index > 0, let globs = stanza["files"] {
                let copyright = stanza["copyright"]?.trimmingWhitespace() ?? ""
                files.append(.init(globs: globs.split(whereSeparator: \.isWhitespace).map(String.init),
                                   license: synopsis, copyright: copyright))
            }
            names += licenseNames(synopsis)
        }
        return CopyrightInfo(text: text, machineReadable: true, licenses: unique(names), files: files)
    }

    /// `Format:` (or the draft's `Format-Specification:`) pointing at the copyright-format or DEP-5.
    static func isCopyrightFormat(_ header: Deb822Stanza) -> Bool {
        guard let format = (header["format"] ?? header["format-specification"])?.lowercased() else { return false }
        return format.contains("copyright-format") || format.contains("dep5")
    }

    static func firstLine(_ value: String) -> String {
        (value.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "").trimmingWhitespace()
    }

    /// The short names in a licence expression: `GPL-2+ or Artistic` → `GPL-2+`, `Artistic`. `and`, `or`
    /// and `and/or` separate names, commas and parentheses are dropped, and an exception stays with its
    /// licence (`GPL-2+ with OpenSSL exception`).
    public static func licenseNames(_ expression: String) -> [String] {
        var names: [String] = []
        var current: [String] = []
        func flush() {
            if !current.isEmpty { names.append(current.joined(separator: " ")) }
            current = []
        }
        for rawToken in expression.split(whereSeparator: \.isWhitespace) {
            let token = rawToken.filter { $0 != "(" && $0 != ")" && $0 != "," }
            if token.isEmpty { continue }
            if ["and", "or", "and/or"].contains(token.lowercased()) {
                flush()
            } else {
                current.append(token)
            }
        }
        flush()
        return unique(names)
    }

    // MARK: Heuristics for free-form copyright files

    /// Licences a free-form copyright file appears to use, in order of appearance:
    /// * `License:` lines (ELBE's own heuristic), when their values are short names and not prose;
    /// * references to `/usr/share/common-licenses/<NAME>`;
    /// * "GNU General Public License", "GNU Lesser/Library General Public License" and "GNU Affero General
    ///   Public License" with a "version N" in the same sentence (before or after) → `GPL-N`, `LGPL-N`,
    ///   `AGPL-N` (only versions that exist: a nearby "version 3.1" of the GCC Runtime Library Exception is
    ///   not a GPL version); without a version, the bare family name, dropped when a versioned one is found;
    /// * "Apache License" (with "Version 2.0" → `Apache-2.0`), the MIT/Expat grant → `Expat`, the BSD
    ///   redistribution clause → `BSD`, the zlib "provided 'as-is'" notice → `Zlib`, "public domain" →
    ///   `public-domain`.
    public static func heuristicLicenses(_ text: String) -> [String] {
        var names: [String] = []
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) where line.hasPrefix("License:") {
            let lineNames = licenseNames(String(line.dropFirst("License:".count)))
            if lineNames.allSatisfy(isShortName) { names += lineNames }
        }
        let scan = TextScan(text)
        var found: [(position: Int, name: String)] = []

        for position in scan.occurrences(of: "/usr/share/common-licenses/") {
            var name = scan.word(at: position + "/usr/share/common-licenses/".count)
            while name.hasSuffix(".") { name.removeLast() }
            if !name.isEmpty { found.append((position, name)) }
        }
        let gpl = ["1", "2", "3"], lgpl = ["2", "2.1", "3"], agpl = ["1", "3"], apache = ["1.0", "1.1", "2.0"]
        let families = [("gnu general public license", "GPL", gpl), ("gnu lesser general public license", "LGPL", lgpl),
                        ("gnu library general public license", "LGPL", lgpl),
                        ("gnu affero general public license", "AGPL", agpl), ("apache license", "Apache", apache)]
        for (phrase, family, known) in families {
            for position in scan.occurrences(of: phrase) {
                let normalise = { (version: String) -> String in
                    family != "Apache" && version.hasSuffix(".0") ? String(version.dropLast(2)) : version
                }
                if let version = scan.version(near: position, phraseLength: phrase.count,
                                              where: { known.contains(normalise($0)) }) {
                    found.append((position, family + "-" + normalise(version)))
                } else {
                    found.append((position, family))
                }
            }
        }
        let notices = [("permission is hereby granted, free of charge", "Expat"),
                       ("redistribution and use in source and binary forms", "BSD"),
                       ("provided 'as-is', without any express or implied warranty", "Zlib"),
                       ("public domain", "public-domain")]
        for (phrase, name) in notices {
            if let position = scan.occurrences(of: phrase).first { found.append((position, name)) }
        }

        names += found.sorted { $0.position < $1.position }.map(\.name)
        let result = unique(names)
        let bareFamilies: Set<String> = ["GPL", "LGPL", "AGPL", "Apache"]
        return result.filter { name in
            !bareFamilies.contains(name) || !result.contains(where: { $0.hasPrefix(name + "-") })
        }
    }

    /// A DEP-5 style short name (`GPL-2+`, `BSD-3-clause`, `GPL-2+ with OpenSSL exception`) rather than prose.
    static func isShortName(_ name: String) -> Bool {
        let words = name.split(separator: " ")
        guard let first = words.first, first.count <= 40,
              first.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._+-".contains($0)) }) else { return false }
        return words.count == 1 || (words.count >= 3 && words[1] == "with" && words.last == "exception")
    }

    static func unique(_ names: [String]) -> [String] {
        var seen: Set<String> = []
        return names.filter { seen.insert($0).inserted }
    }
}

/// The text as bytes with whitespace runs collapsed to one space, plus an ASCII-lowercased copy for
/// case-insensitive searching at the same offsets.
private struct TextScan {
    let bytes: [UInt8]
    let lower: [UInt8]

    init(_ text: String) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var lastWasSpace = false
        for byte in text.utf8 {
            // space, \t, \n, \v, \f, \r
            if byte == 32 || (byte >= 9 && byte <= 13) {
                if !lastWasSpace { bytes.append(32) }
                lastWasSpace = true
            } else {
                bytes.append(byte)
                lastWasSpace = false
            }
        }
        self.bytes = bytes
        self.lower = bytes.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
    }

    /// Start offsets of every occurrence of an ASCII lowercase phrase.
    func occurrences(of phrase: String) -> [Int] {
        let needle = Array(phrase.utf8)
        guard !needle.isEmpty, lower.count >= needle.count else { return [] }
        var result: [Int] = []
        var i = 0
        while i <= lower.count - needle.count {
            if lower[i] == needle[0], lower[i..<i + needle.count].elementsEqual(needle) {
                result.append(i)
                i += needle.count
            } else {
                i += 1
            }
        }
        return result
    }

    /// The run of licence-name characters (letters, digits, `.`, `+`, `-`) starting at `offset`, as written.
    func word(at offset: Int) -> String {
        var end = offset
        while end < bytes.count, isNameByte(bytes[end]) { end += 1 }
        return String(decoding: bytes[offset..<end], as: UTF8.self)
    }

    private func isNameByte(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 46 || b == 43 || b == 45
    }

    /// The first acceptable number after "version " in the same sentence as the phrase at `position`: first
    /// looking up to 120 bytes after it, then up to 40 bytes before it (as in "version 2 of the GNU General
    /// Public License").
    func version(near position: Int, phraseLength: Int, where acceptable: (String) -> Bool) -> String? {
        let after = position + phraseLength
        let afterEnd = sentenceEnd(from: after, limit: 120)
        if let version = versions(in: after..<afterEnd).first(where: acceptable) { return version }
        let beforeStart = sentenceStart(before: position, limit: 40)
        return versions(in: beforeStart..<position).last(where: acceptable)
    }

    private func sentenceEnd(from start: Int, limit: Int) -> Int {
        let end = min(lower.count, start + limit)
        var i = start
        while i < end {
            if lower[i] == 46, i + 1 < lower.count, lower[i + 1] == 32 { return i }  // ". "
            i += 1
        }
        return end
    }

    private func sentenceStart(before position: Int, limit: Int) -> Int {
        let start = max(0, position - limit)
        var i = position - 1
        while i > start {
            if lower[i] == 32, lower[i - 1] == 46 { return i }
            i -= 1
        }
        return start
    }

    private func versions(in range: Range<Int>) -> [String] {
        let keyword = Array("version ".utf8)
        var result: [String] = []
        var i = range.lowerBound
        while i + keyword.count < range.upperBound {
            guard lower[i..<i + keyword.count].elementsEqual(keyword) else { i += 1; continue }
            var j = i + keyword.count
            let digitsStart = j
            func isDigit(_ k: Int) -> Bool { k < lower.count && lower[k] >= 48 && lower[k] <= 57 }
            while isDigit(j) { j += 1 }
            while j < lower.count, lower[j] == 46, isDigit(j + 1) {
                j += 1
                while isDigit(j) { j += 1 }
            }
            if j > digitsStart { result.append(String(decoding: lower[digitsStart..<j], as: UTF8.self)) }
            i = max(j, i + 1)
        }
        return result
    }

}
