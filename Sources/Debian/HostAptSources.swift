// Debian owns Havel's knowledge of Debian: the host's apt sources, bootstrap tool drivers (debootstrap's
// second stage included), sources.list and apt preferences, dpkg status, .deb verification against the
// mirror's index, and copyright files.

import Foundation
import HavelCore

/// The Debian mirror this machine's apt uses, read from deb822 `.sources` files or one-line
/// `sources.list` entries. Havel builds from it when a project says `MIRROR_HOST` or `--mirror host`.
public struct HostMirror: Sendable, Hashable {
    /// e.g. `http`.
    public var proto: String
    /// host[:port], without any path.
    public var host: String
    /// e.g. `/debian` (may be empty).
    public var path: String

    public init(proto: String, host: String, path: String) {
        self.proto = proto
        self.host = host
        self.path = path
    }

    public var url: String { "\(proto)://\(host)\(path)" }

    /// Splits `http://host/path/` into its parts; nil for anything that is not a network URL.
    public init?(url: String) {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let proto = String(url[..<schemeEnd.lowerBound])
        guard ["http", "https", "ftp"].contains(proto) else { return nil }
        let rest = url[schemeEnd.upperBound...]
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let host = String(rest[..<slash])
        guard !host.isEmpty else { return nil }
        var path = String(rest[slash...])
        while path.hasSuffix("/") { path.removeLast() }
        self.init(proto: proto, host: host, path: path)
    }
}

public enum HostAptSources {
    public static let defaultFiles = ["/etc/apt/sources.list.d", "/etc/apt/sources.list"]

    /// The first Debian (not security) mirror the host's apt sources name.
    public static func primaryMirror(searching paths: [String] = defaultFiles) throws(HavelError) -> HostMirror {
        var candidates: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path))?.sorted() ?? []
                for name in names where name.hasSuffix(".sources") || name.hasSuffix(".list") {
                    candidates += uris(inFile: path + "/" + name)
                }
            } else {
                candidates += uris(inFile: path)
            }
        }
        let mirrors = candidates.compactMap(HostMirror.init(url:))
        if let main = mirrors.first(where: { !$0.path.contains("security") }) ?? mirrors.first {
            return main
        }
        throw HavelError(.notFound, "no Debian mirror found in the host's apt sources (\(paths.joined(separator: ", "))); pass --mirror URL")
    }

    static func uris(inFile path: String) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return path.hasSuffix(".sources") ? deb822URIs(text) : oneLineURIs(text)
    }

    /// `URIs:` of stanzas whose `Types:` include `deb` and that are not `Enabled: no`.
    public static func deb822URIs(_ text: String) -> [String] {
        var result: [String] = []
        for stanza in text.components(separatedBy: "\n\n") {
            var fields: [String: String] = [:]
            var lastKey: String?
            for line in stanza.split(separator: "\n", omittingEmptySubsequences: true) {
                if line.hasPrefix("#") { continue }
                if line.first == " " || line.first == "\t", let key = lastKey {
                    fields[key, default: ""] += " " + line.trimmingWhitespace()
                    continue
                }
                guard let colon = line.firstIndex(of: ":") else { continue }
                let key = line[..<colon].trimmingWhitespace().lowercased()
                fields[key] = line[line.index(after: colon)...].trimmingWhitespace()
                lastKey = key
            }
            guard let types = fields["types"], types.split(separator: " ").contains("deb"),
                  fields["enabled"]?.lowercased() != "no", let uris = fields["uris"] else { continue }
            result += uris.split(separator: " ").map(String.init)
        }
        return result
    }

    /// `deb [options] URI suite components` lines.
    public static func oneLineURIs(_ text: String) -> [String] {
        var result: [String] = []
        for rawLine in text.split(separator: "\n") {
            var line = rawLine.trimmingWhitespace()
            guard line.hasPrefix("deb ") || line.hasPrefix("deb\t") else { continue }
            line = String(line.dropFirst(4)).trimmingWhitespace()
            if line.hasPrefix("["), let close = line.firstIndex(of: "]") {
                line = String(line[line.index(after: close)...]).trimmingWhitespace()
            }
            if let uri = line.split(separator: " ").first { result.append(String(uri)) }
        }
        return result
    }
}
