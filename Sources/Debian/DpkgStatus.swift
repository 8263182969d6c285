import Foundation
import HavelCore
import SystemKit

/// One package dpkg lists as installed in a root filesystem.
public struct InstalledPackage: Sendable, Hashable, Codable {
    public var name: String
    public var version: String
    /// e.g. `arm64`, or `all` for architecture-independent packages.
    public var architecture: String
    /// From `Source: foo` or `Source: foo (1.2-3)`; the package name when there is no `Source:` field.
    public var sourceName: String
    /// The version in parentheses of `Source:`; the package version when there is none.
    public var sourceVersion: String
    public var essential: Bool
    /// Whether apt installed it only as a dependency (`Auto-Installed: 1` in `extended_states`).
    public var autoInstalled: Bool

    public init(name: String, version: String, architecture: String, sourceName: String? = nil,
                sourceVersion: String? = nil, essential: Bool = false, autoInstalled: Bool = false) {
        self.name = name
        self.version = version
        self.architecture = architecture
        self.sourceName = sourceName ?? name
        self.sourceVersion = sourceVersion ?? version
        self.essential = essential
        self.autoInstalled = autoInstalled
    }
}

/// dpkg's database of installed packages (`var/lib/dpkg/status`) and apt's auto-installed marks.
public enum DpkgStatus {
    /// Packages whose `Status:` says they are installed ("install ok installed", and also packages on hold or
    /// selected for removal, "hold ok installed" / "deinstall ok installed", since their files are still there),
    /// sorted by name, then architecture. Handles continuation lines and `#` comments; stanzas without
    /// `Package:` or `Version:` are skipped.
    public static func parse(_ text: String) -> [InstalledPackage] {
        let fields: Set<String> = ["package", "status", "version", "architecture", "source", "essential"]
        var packages: [InstalledPackage] = []
        for stanza in Deb822.parse(text, keeping: fields) {
            guard let name = stanza["package"], !name.isEmpty,
                  let version = stanza["version"], !version.isEmpty,
                  isInstalled(status: stanza["status"]) else { continue }
            let source = splitSource(stanza["source"], package: name, version: version)
            packages.append(InstalledPackage(
                name: name, version: version, architecture: stanza["architecture"] ?? "",
                sourceName: source.name, sourceVersion: source.version,
                essential: stanza["essential"]?.lowercased() == "yes"))
        }
        return packages.sorted { ($0.name, $0.architecture) < ($1.name, $1.architecture) }
    }

    /// The stanzas of a dpkg status text whose `Package:` is one of `names`, in their order, each ended by a
    /// blank line: the record of what a minimised target keeps once its dpkg database is gone.
    public static func stanzas(of text: String, packages names: Set<String>) -> String {
        var kept = ""
        for stanza in text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n\n") {
            let lines = stanza.split(separator: "\n", omittingEmptySubsequences: true)
            guard let line = lines.first(where: { $0.lowercased().hasPrefix("package:") }) else { continue }
            let name = line.dropFirst("package:".count).trimmingCharacters(in: .whitespaces)
            if names.contains(name) { kept += lines.joined(separator: "\n") + "\n\n" }
        }
        return kept
    }

    /// Reads `<root>/var/lib/dpkg/status` and marks the packages that `<root>/var/lib/apt/extended_states`
    /// lists with `Auto-Installed: 1`. A missing `extended_states` means nothing is auto-installed.
    public static func read(root: String) throws(HavelError) -> [InstalledPackage] {
        let tree = try RootedFileSystem(root: root)
        let statusPath = "/var/lib/dpkg/status"
        guard tree.exists(statusPath) else {
            throw HavelError(.notFound, "dpkg status \(root)\(statusPath) not found; is \(root) a Debian root filesystem?")
        }
        var packages = parse(String(decoding: try tree.readFile(statusPath), as: UTF8.self))
        let statesPath = "/var/lib/apt/extended_states"
        if tree.exists(statesPath) {
            let marks = AutoInstalledMarks(String(decoding: try tree.readFile(statesPath), as: UTF8.self))
            for index in packages.indices where marks.contains(packages[index]) {
                packages[index].autoInstalled = true
            }
        }
        return packages
    }

    /// The want/flag/status triple says the package's files are on disk and configured.
    static func isInstalled(status: String?) -> Bool {
        guard let words = status?.split(whereSeparator: { $0 == " " || $0 == "\t" }), words.count == 3 else {
            return false
        }
        return words[1] == "ok" && words[2] == "installed"
    }

    /// Splits `Source: foo (1.2-3)` into name and version, defaulting to the binary package's own.
    static func splitSource(_ field: String?, package: String, version: String) -> (name: String, version: String) {
        guard let field = field?.trimmingWhitespace(), !field.isEmpty else { return (package, version) }
        guard let open = field.firstIndex(of: "(") else { return (field, version) }
        let name = field[..<open].trimmingWhitespace()
        var inner = field[field.index(after: open)...]
        if let close = inner.firstIndex(of: ")") { inner = inner[..<close] }
        let sourceVersion = inner.trimmingWhitespace()
        return (name.isEmpty ? package : name, sourceVersion.isEmpty ? version : sourceVersion)
    }
}

/// apt's `extended_states`: stanzas of `Package`, `Architecture`, `Auto-Installed: 1`.
struct AutoInstalledMarks {
    private var byNameAndArch: Set<String> = []
    private var byName: Set<String> = []
    private var byNameWithoutArch: Set<String> = []

    init(_ text: String) {
        for stanza in Deb822.parse(text, keeping: ["package", "architecture", "auto-installed"]) {
            guard let name = stanza["package"], stanza["auto-installed"] == "1" else { continue }
            byName.insert(name)
            if let arch = stanza["architecture"], !arch.isEmpty {
                byNameAndArch.insert(name + " " + arch)
            } else {
                byNameWithoutArch.insert(name)
            }
        }
    }

    /// apt records architecture-independent packages under the native architecture, and old apt
    /// versions record no architecture at all, so both fall back to the name.
    func contains(_ package: InstalledPackage) -> Bool {
        if byNameAndArch.contains(package.name + " " + package.architecture) { return true }
        if byNameWithoutArch.contains(package.name) { return true }
        return package.architecture == "all" && byName.contains(package.name)
    }
}

/// One deb822 stanza: field names lowercased, values with continuation lines joined by `\n`.
public struct Deb822Stanza: Sendable {
    public var fields: [(name: String, value: String)] = []

    /// The value of a field (name in lowercase), or nil.
    public subscript(_ name: String) -> String? {
        fields.first(where: { $0.name == name })?.value
    }
}

/// A fast, lenient reader for deb822 text (dpkg status, apt lists, extended_states, copyright files).
public enum Deb822 {
    /// Stanzas are separated by blank (or whitespace-only) lines; lines starting with `#` are comments;
    /// lines starting with a space or tab continue the previous field. A continuation's leading and
    /// trailing whitespace is dropped, and a lone `.` stands for an empty line. Only the fields in
    /// `keeping` (lowercase names) are kept when it is given, which makes large `Packages` files cheap.
    /// A trailing `\r` on a line is ignored.
    public static func parse(_ text: String, keeping: Set<String>? = nil) -> [Deb822Stanza] {
        var text = text
        text.makeContiguousUTF8()
        if let stanzas = text.utf8.withContiguousStorageIfAvailable({ parse(bytes: $0, keeping: keeping) }) {
            return stanzas
        }
        return Array(text.utf8).withUnsafeBufferPointer { parse(bytes: $0, keeping: keeping) }
    }

    private static func parse(bytes: UnsafeBufferPointer<UInt8>, keeping: Set<String>?) -> [Deb822Stanza] {
        let newline = UInt8(ascii: "\n"), space = UInt8(ascii: " "), tab = UInt8(ascii: "\t")
        let colon = UInt8(ascii: ":"), hash = UInt8(ascii: "#"), cr = UInt8(ascii: "\r")
        func isBlank(_ byte: UInt8) -> Bool { byte == space || byte == tab || byte == cr }
        func string(_ start: Int, _ end: Int) -> String {
            var start = start, end = end
            while start < end, isBlank(bytes[start]) { start += 1 }
            while end > start, isBlank(bytes[end - 1]) { end -= 1 }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        }

        var stanzas: [Deb822Stanza] = []
        var current = Deb822Stanza()
        var keepingCurrentField = false
        var lineStart = 0
        while lineStart < bytes.count {
            var lineEnd = lineStart
            while lineEnd < bytes.count, bytes[lineEnd] != newline { lineEnd += 1 }
            defer { lineStart = lineEnd + 1 }
            var end = lineEnd
            if end > lineStart, bytes[end - 1] == cr { end -= 1 }

            var firstNonBlank = lineStart
            while firstNonBlank < end, bytes[firstNonBlank] == space || bytes[firstNonBlank] == tab { firstNonBlank += 1 }
            if firstNonBlank == end {
                if !current.fields.isEmpty { stanzas.append(current) }
                current = Deb822Stanza()
                keepingCurrentField = false
                continue
            }
            let first = bytes[lineStart]
            if first == hash { continue }
            if first == space || first == tab {
                guard keepingCurrentField, !current.fields.isEmpty else { continue }
                let piece = string(lineStart, end)
                current.fields[current.fields.count - 1].value += "\n" + (piece == "." ? "" : piece)
                continue
            }
            guard let colonIndex = (lineStart..<end).first(where: { bytes[$0] == colon }) else {
                keepingCurrentField = false
                continue
            }
            let name = string(lineStart, colonIndex).lowercased()
            keepingCurrentField = keeping?.contains(name) ?? true
            if keepingCurrentField {
                current.fields.append((name, string(colonIndex + 1, end)))
            }
        }
        if !current.fields.isEmpty { stanzas.append(current) }
        return stanzas
    }
}
