// Debian source packages as a mirror describes them: the `Sources` index (directory and checksums of
// every file), the SHA256 list of a Release file, the Checksums-Sha256 of a .dsc, which sources a root
// filesystem's dpkg status asks for (Source: and Built-Using:), and the checks that tie downloaded files
// to the index and to their .dsc. Pure functions over text; downloading lives in the source CD stage.

import Foundation
import HavelCore

/// A source package at one version, named by a binary package (`Source:`) or by `Built-Using:`.
public struct SourceReference: Sendable, Hashable, Comparable, Codable {
    public var name: String
    public var version: String

    public init(name: String, version: String) {
        self.name = name
        self.version = version
    }

    public static func < (left: SourceReference, right: SourceReference) -> Bool {
        (left.name, left.version) < (right.name, right.version)
    }

    public var description: String { "\(name) \(version)" }
}

/// One file of a source package with the size and sha256 an index or a .dsc gives for it.
public struct SourceFile: Sendable, Hashable {
    public var name: String
    public var size: Int
    public var sha256: String

    public init(name: String, size: Int, sha256: String) {
        self.name = name
        self.size = size
        self.sha256 = sha256
    }
}

/// One stanza of a `Sources` index.
public struct IndexedSource: Sendable, Hashable {
    public var name: String
    public var version: String
    /// The pool directory relative to the archive root, e.g. `pool/main/b/bash`.
    public var directory: String
    public var files: [SourceFile]

    /// The .dsc among the files (nil when the index lists none).
    public var dsc: SourceFile? { files.first { $0.name.hasSuffix(".dsc") } }
}

public enum SourcesIndex {
    /// The stanzas of a `Sources` file that have a package, version, directory and Checksums-Sha256.
    /// Directories and file names are checked later (`checked(_:)`), so a bad stanza is reported, not dropped.
    public static func parse(_ text: String) -> [IndexedSource] {
        Deb822.parse(text, keeping: ["package", "version", "directory", "checksums-sha256"]).compactMap { stanza in
            guard let name = stanza["package"], !name.isEmpty, let version = stanza["version"], !version.isEmpty,
                  let directory = stanza["directory"], let sums = stanza["checksums-sha256"] else { return nil }
            return IndexedSource(name: name, version: version, directory: directory, files: checksumLines(sums))
        }
    }

    /// `sha256 size name` lines (a Checksums-Sha256 field or a Release's SHA256 section); malformed lines are skipped.
    static func checksumLines(_ text: String) -> [SourceFile] {
        text.split(separator: "\n").compactMap { line in
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count == 3, let size = Int(words[1]), size >= 0, words[0].count == 64,
                  words[0].allSatisfy(\.isHexDigit) else { return nil }
            return SourceFile(name: String(words[2]), size: size, sha256: words[0].lowercased())
        }
    }

    /// The SHA256 section of a Release or InRelease file, keyed by path (`main/source/Sources.xz`).
    public static func releaseSHA256(_ text: String) -> [String: SourceFile] {
        var result: [String: SourceFile] = [:]
        var inSection = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.first == " " || line.first == "\t" {
                guard inSection else { continue }
                for file in checksumLines(String(line)) where result[file.name] == nil { result[file.name] = file }
            } else {
                inSection = line.trimmingWhitespace() == "SHA256:"
            }
        }
        return result
    }

    /// The Checksums-Sha256 of a .dsc, signed (clearsigned OpenPGP) or not. Empty when it has none.
    public static func dscFiles(_ text: String) -> [SourceFile] {
        var body = Substring(text)
        if body.hasPrefix("-----BEGIN PGP SIGNED MESSAGE-----") {
            // The armour header ends at the first blank line; the signature starts the trailer.
            if let blank = body.range(of: "\n\n") { body = body[blank.upperBound...] }
            if let signature = body.range(of: "\n-----BEGIN PGP SIGNATURE-----") { body = body[..<signature.lowerBound] }
        }
        guard let stanza = Deb822.parse(String(body), keeping: ["checksums-sha256"]).first,
              let sums = stanza["checksums-sha256"] else { return [] }
        return checksumLines(sums)
    }

    /// The sources a dpkg status asks for: each installed package's `Source:` (its version when the
    /// field gives none) and every `Built-Using:` entry, with the binary packages that name each.
    public static func requiredSources(statusText: String) -> [SourceReference: [String]] {
        var result: [SourceReference: [String]] = [:]
        for stanza in Deb822.parse(statusText, keeping: ["package", "status", "version", "source", "built-using"]) {
            guard let name = stanza["package"], !name.isEmpty, let version = stanza["version"], !version.isEmpty,
                  DpkgStatus.isInstalled(status: stanza["status"]) else { continue }
            let source = DpkgStatus.splitSource(stanza["source"], package: name, version: version)
            result[SourceReference(name: source.name, version: source.version), default: []].append(name)
            for reference in builtUsing(stanza["built-using"] ?? "") {
                result[reference, default: []].append("\(name) (Built-Using)")
            }
        }
        return result
    }

    /// `Built-Using: gcc-12 (= 12.2.0-14), glibc (= 2.36-9)`; entries without an exact version are skipped.
    public static func builtUsing(_ field: String) -> [SourceReference] {
        field.split(separator: ",").compactMap { entry in
            guard let open = entry.firstIndex(of: "("), let close = entry.lastIndex(of: ")"), open < close else { return nil }
            let name = entry[..<open].trimmingWhitespace()
            var relation = entry[entry.index(after: open)..<close].trimmingWhitespace()
            guard relation.hasPrefix("=") else { return nil }
            relation = String(relation.dropFirst()).trimmingWhitespace()
            guard !name.isEmpty, !relation.isEmpty else { return nil }
            return SourceReference(name: name, version: relation)
        }
    }

    /// A name taken from an index that may be used as a file name: no `/`, not `.` or `..`, no NUL or newline.
    public static func isPlainFileName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\0") && !name.contains("\n")
            && !name.hasPrefix("-")
    }

    /// A pool directory from an index: relative, made of plain names.
    public static func isPoolDirectory(_ directory: String) -> Bool {
        !directory.hasPrefix("/") && !directory.isEmpty && directory.split(separator: "/", omittingEmptySubsequences: false)
            .allSatisfy { isPlainFileName(String($0)) }
    }

    /// The stanza with its names checked: a directory or file name that could leave the pool is refused.
    public static func checked(_ source: IndexedSource) throws(HavelError) -> IndexedSource {
        guard isPoolDirectory(source.directory) else {
            throw HavelError(.invalidArgument, "the Sources index gives source \(source.name) \(source.version) the directory \"\(source.directory)\", which is not a relative pool path; check the mirror")
        }
        for file in source.files where !isPlainFileName(file.name) {
            throw HavelError(.invalidArgument, "the Sources index lists \"\(file.name)\" for source \(source.name) \(source.version), which is not a plain file name; check the mirror")
        }
        guard source.dsc != nil else {
            throw HavelError(.invalidArgument, "the Sources index lists no .dsc for source \(source.name) \(source.version); check the mirror")
        }
        return source
    }

    /// Checks a downloaded source package: every file's sha256 (`digests`, by file name) is the one the index
    /// gives, and the .dsc's Checksums-Sha256 lists exactly the other files, with those same digests and sizes.
    /// A file that differs is refused by name.
    public static func verify(_ source: IndexedSource, dscText: String, digests: [String: String]) throws(HavelError) {
        let what = "source \(source.name) \(source.version)"
        for file in source.files where digests[file.name] != file.sha256 {
            throw HavelError(.processFailed, "\(file.name) of \(what) does not have the sha256 the mirror's Sources index gives (\(file.sha256), got \(digests[file.name] ?? "no file")); the mirror or the cache was tampered with: run havel cache prune --all and build again")
        }
        let listed = dscFiles(dscText)
        guard !listed.isEmpty else {
            throw HavelError(.invalidArgument, "the .dsc of \(what) has no Checksums-Sha256; check the mirror")
        }
        let indexed = Dictionary(source.files.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for file in listed {
            guard isPlainFileName(file.name) else {
                throw HavelError(.invalidArgument, "the .dsc of \(what) lists \"\(file.name)\", which is not a plain file name")
            }
            guard let entry = indexed[file.name] else {
                throw HavelError(.invalidArgument, "the .dsc of \(what) lists \(file.name), which the Sources index does not; check the mirror")
            }
            guard entry.sha256 == file.sha256, entry.size == file.size, digests[file.name] == file.sha256 else {
                throw HavelError(.processFailed, "\(file.name) of \(what) does not match its .dsc's Checksums-Sha256 (\(file.sha256)); refusing it")
            }
        }
        let inDsc = Set(listed.map(\.name))
        for file in source.files where !file.name.hasSuffix(".dsc") && !inDsc.contains(file.name) {
            throw HavelError(.invalidArgument, "the Sources index lists \(file.name) for \(what), which its .dsc does not; check the mirror")
        }
    }
}
