import Foundation
import HavelCore
import SystemKit

/// One binary package as an apt `Packages` index lists it.
public struct IndexedPackage: Sendable, Hashable, Codable {
    public var name: String
    public var version: String
    public var architecture: String
    /// Pool path relative to the archive root, e.g. `pool/main/b/bash/bash_5.2.15-2+b8_arm64.deb`.
    public var filename: String
    /// Size of the `.deb` in bytes, when the index gives one.
    public var size: Int?
    /// SHA-256 of the `.deb` (lowercase hex), when the index gives one.
    public var sha256: String?
    /// From `Source: foo` or `Source: foo (1.2-3)`; the package name when there is no `Source:` field.
    public var sourceName: String
    /// The version in parentheses of `Source:`; the package version when there is none.
    public var sourceVersion: String
    /// Where the index came from, e.g. `mirror.example/debian bookworm main`.
    public var origin: String
    /// MD5 of the `.deb` (lowercase hex), when the index gives one.
    public var md5: String?
    /// The `Origin:` and `Codename:` of the Release the index came with (apt's lists), when known.
    public var releaseOrigin: String?
    public var releaseName: String?
    /// The archive's `Priority:` and `Section:` (its override, which may differ from the .deb's control file).
    public var priority: String?
    public var section: String?

    public init(name: String, version: String, architecture: String, filename: String = "", size: Int? = nil,
                sha256: String? = nil, sourceName: String? = nil, sourceVersion: String? = nil, origin: String = "") {
        self.name = name
        self.version = version
        self.architecture = architecture
        self.filename = filename
        self.size = size
        self.sha256 = sha256
        self.sourceName = sourceName ?? name
        self.sourceVersion = sourceVersion ?? version
        self.origin = origin
    }
}

/// apt's `Packages` index files, as `apt-get update` leaves them in `var/lib/apt/lists`.
public enum PackagesIndex {
    /// The packages of one `Packages` file; stanzas without `Package:` or `Version:` are skipped.
    public static func parse(_ text: String, origin: String) -> [IndexedPackage] {
        let fields: Set<String> = ["package", "version", "architecture", "filename", "size", "sha256", "md5sum", "source", "priority", "section"]
        var packages: [IndexedPackage] = []
        for stanza in Deb822.parse(text, keeping: fields) {
            guard let name = stanza["package"], !name.isEmpty,
                  let version = stanza["version"], !version.isEmpty else { continue }
            let source = DpkgStatus.splitSource(stanza["source"], package: name, version: version)
            let sha256 = stanza["sha256"].flatMap { $0.isEmpty ? nil : $0.lowercased() }
            var package = IndexedPackage(
                name: name, version: version, architecture: stanza["architecture"] ?? "",
                filename: stanza["filename"] ?? "", size: stanza["size"].flatMap { Int($0) }, sha256: sha256,
                sourceName: source.name, sourceVersion: source.version, origin: origin)
            package.md5 = stanza["md5sum"].flatMap { $0.isEmpty ? nil : $0.lowercased() }
            package.priority = stanza["priority"].flatMap { $0.isEmpty ? nil : $0 }
            package.section = stanza["section"].flatMap { $0.isEmpty ? nil : $0 }
            packages.append(package)
        }
        return packages
    }

    /// Every uncompressed `<root>/var/lib/apt/lists/*_Packages` file, in file-name order, with the origin
    /// taken from the file name (see `origin(listFileName:)`).
    ///
    /// Compressed lists (`*_Packages.lz4`, `.gz`, `.xz`, `.zst`, which apt keeps when
    /// `Acquire::GzipIndexes` is set, as in many container images) are skipped: a root filesystem built
    /// by debootstrap or mmdebstrap has uncompressed lists. A missing lists directory yields no packages
    /// (lists may have been cleaned out of the tree); an unreadable list file is an error.
    ///
    /// With `names`, only the stanzas of those packages are parsed (any stanza that does not begin with its
    /// `Package:` field is parsed too): a build that looks up a hundred packages need not parse all of a
    /// 50 MB index, which took 3.3 s of a debug build here.
    public static func readLists(root: String, names: Set<String>? = nil) throws(HavelError) -> [IndexedPackage] {
        let tree = try RootedFileSystem(root: root)
        var packages: [IndexedPackage] = []
        for path in try tree.glob("/var/lib/apt/lists/*_Packages") {
            let bytes = try tree.readFile(path)
            let text = names.map { stanzas(of: bytes, named: $0) } ?? String(decoding: bytes, as: UTF8.self)
            var parsed = parse(text, origin: origin(listFileName: path))
            if let release = try releaseFields(listPath: path, in: tree) {
                for index in parsed.indices {
                    parsed[index].releaseOrigin = release.origin
                    parsed[index].releaseName = release.codename
                }
            }
            packages += parsed
        }
        return packages
    }

    /// The stanzas of `bytes` (a Packages index) whose first line is `Package: <one of names>`, and those that do
    /// not begin with `Package:`, joined by blank lines. Lines are found with memchr, so skipping the rest costs
    /// little even in a debug build.
    static func stanzas(of bytes: [UInt8], named names: Set<String>) -> String {
        let wanted = Set(names.map { Array($0.utf8) })
        let prefix = Array("Package:".utf8)
        var kept: [UInt8] = []
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            let count = buffer.count
            /// The index of the next newline at or after `from`, or `count`.
            func nextNewline(_ from: Int) -> Int {
                guard from < count, let found = memchr(base + from, 0x0A, count - from) else { return count }
                return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
            }
            var start = 0
            while start < count {
                while start < count, base[start] == 0x0A { start += 1 }
                guard start < count else { break }
                // The stanza's first line decides; its end is the first empty line after it.
                let firstLineEnd = nextNewline(start)
                var end = firstLineEnd
                while end < count, end + 1 < count, base[end + 1] != 0x0A { end = nextNewline(end + 1) }
                var keep = true
                if firstLineEnd - start > prefix.count, memcmp(base + start, prefix, prefix.count) == 0 {
                    var low = start + prefix.count, high = firstLineEnd
                    while low < high, base[low] == 0x20 || base[low] == 0x09 { low += 1 }
                    while high > low, base[high - 1] == 0x20 || base[high - 1] == 0x09 || base[high - 1] == 0x0D { high -= 1 }
                    keep = wanted.contains(Array(buffer[low..<high]))
                }
                if keep {
                    kept += buffer[start..<min(end + 1, count)]
                    kept.append(0x0A)
                }
                start = end + 1
            }
        }
        return String(decoding: kept, as: UTF8.self)
    }

    /// `Origin:` and `Codename:` of the (In)Release apt keeps beside a `…_dists_SUITE_…_Packages` list, or nil.
    static func releaseFields(listPath: String, in tree: RootedFileSystem) throws(HavelError) -> (origin: String?, codename: String?)? {
        guard let dists = listPath.range(of: "_dists_") else { return nil }
        let rest = listPath[dists.upperBound...]
        guard let suiteEnd = rest.firstIndex(of: "_") else { return nil }
        let prefix = String(listPath[..<suiteEnd]) + "_"
        for name in ["InRelease", "Release"] where tree.exists(prefix + name) {
            let text = String(decoding: try tree.readFile(prefix + name), as: UTF8.self)
            let stanza = Deb822.parse(text, keeping: ["origin", "codename"]).first { $0["origin"] != nil || $0["codename"] != nil }
            return stanza.map { ($0["origin"], $0["codename"]) }
        }
        return nil
    }

    /// Best-effort origin of a list file: apt names lists after their URI with `/` turned into `_` and
    /// `_` itself escaped as `%5f`, so `mirror.example_debian_dists_bookworm_main_binary-arm64_Packages`
    /// becomes `mirror.example/debian bookworm main`. A suite containing `/` (`bookworm/updates`) cannot be
    /// told apart from a component and ends up as `bookworm updates/main`. Flat repositories (no `_dists_`)
    /// give just the decoded URI part.
    public static func origin(listFileName: String) -> String {
        var name = Substring(listFileName)
        if let slash = name.lastIndex(of: "/") { name = name[name.index(after: slash)...] }
        if name.hasSuffix("_Packages") { name = name.dropLast("_Packages".count) }

        func decode(_ tokens: some Sequence<Substring>) -> String {
            tokens.map { String($0).removingPercentEncoding ?? String($0) }.joined(separator: "/")
        }

        guard let dists = name.range(of: "_dists_") else {
            var tokens = name.split(separator: "_", omittingEmptySubsequences: false)
            if tokens.count > 1, tokens.last == "." { tokens.removeLast() }
            return decode(tokens)
        }
        let base = decode(name[..<dists.lowerBound].split(separator: "_", omittingEmptySubsequences: false))
        var rest = name[dists.upperBound...].split(separator: "_", omittingEmptySubsequences: false)
        if let last = rest.last, last.hasPrefix("binary-") { rest.removeLast() }
        guard let suite = rest.first else { return base }
        let component = decode(rest.dropFirst())
        return [base, decode([suite]), component].filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// `"name version arch"`, the key of `index(_:)` and of build hash tables.
    public static func key(name: String, version: String, architecture: String) -> String {
        name + " " + version + " " + architecture
    }

    /// Packages keyed `"name version arch"`; architecture-independent packages are keyed with `all`, as dpkg
    /// reports them. When several lists carry the same key, the first one wins.
    public static func index(_ packages: [IndexedPackage]) -> [String: IndexedPackage] {
        var result: [String: IndexedPackage] = [:]
        for package in packages {
            let key = key(name: package.name, version: package.version, architecture: package.architecture)
            if result[key] == nil { result[key] = package }
        }
        return result
    }

    /// The indexed package for an installed one: the exact architecture, or else an `all` package of that
    /// name and version (so a lookup with the native architecture finds architecture-independent packages).
    public static func lookup(_ index: [String: IndexedPackage], name: String, version: String,
                              architecture: String) -> IndexedPackage? {
        index[key(name: name, version: version, architecture: architecture)]
            ?? index[key(name: name, version: version, architecture: "all")]
    }
}
