import Foundation
import HavelCore

/// apt's view of a project: sources.list lines and preferences, as the target gets them.
public enum AptSources {
    /// `deb [opts] proto://host/path suite main` for the primary mirror (ELBE's primary contributes
    /// only `main`), then every url-list entry's binary line and, with `includeSource`, its source line.
    public static func lines(for project: Project, includeSource: Bool = false) -> [String] {
        var lines: [String] = []
        if let primary = project.mirror.primary {
            lines.append(line("deb", options: project.mirror.options, "\(primary.url) \(project.suite) main"))
            if includeSource {
                lines.append(line("deb-src", options: project.mirror.options, "\(primary.url) \(project.suite) main"))
            }
        }
        for url in project.mirror.urls {
            if let binary = url.binary, !binary.isEmpty { lines.append(line("deb", options: url.options, binary)) }
            if includeSource, let source = url.source, !source.isEmpty { lines.append(line("deb-src", options: url.options, source)) }
        }
        return lines
    }

    static func line(_ type: String, options: [String], _ rest: String) -> String {
        let words = rest.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).joined(separator: " ")
        return options.isEmpty ? "\(type) \(words)" : "\(type) [\(options.joined(separator: " "))] \(words)"
    }

    /// The repositories a project reads from, as `(uri, suite)` for fetching their Release files.
    public static func repositories(for project: Project) -> [(uri: String, suite: String)] {
        lines(for: project).compactMap { line in
            guard let entry = entry(line), entry.type == "deb" else { return nil }
            return (entry.uri, entry.suite)
        }
    }

    /// One one-line-style sources entry split into its type (`deb`, `deb-src`), URI, suite and components
    /// (empty for a flat repository); options in `[…]` are skipped. Nil for a line that is not an entry.
    public static func entry(_ line: String) -> (type: String, uri: String, suite: String, components: [String])? {
        var words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let type = words.first, type == "deb" || type == "deb-src" else { return nil }
        words.removeFirst()
        if words.first?.hasPrefix("[") == true {
            while let word = words.first, !word.hasSuffix("]") { words.removeFirst() }
            if !words.isEmpty { words.removeFirst() }
        }
        guard words.count >= 2 else { return nil }
        return (type, words[0], words[1], Array(words[2...]))
    }

    /// apt preferences: each pinned pkg-list entry (priority 1001, as ELBE writes them), the project's
    /// `preference` elements, then `raw-preference` verbatim.
    public static func preferences(for project: Project) -> String {
        preferences(packages: project.target.packages, preferences: project.preferences, raw: project.rawPreference,
                    repositories: project.mirror.urls)
    }

    /// apt preferences: a 1001 pin per pinned package, then `<preference>` entries, then one per url-list
    /// repository with `<binary pin="…">` (its host as the origin, as ELBE pins it), then raw text.
    public static func preferences(packages: [PackageSpec], preferences: [AptPreference], raw: String?,
                                   repositories: [MirrorURL] = []) -> String {
        var stanzas: [String] = []
        for package in packages {
            guard let pin = package.pin else { continue }
            let pinLine: String
            switch pin {
            case .version(let glob): pinLine = "version \(glob)"
            case .origin(let origin): pinLine = "origin \"\(origin)\""
            case .release(let fields):
                let keys = ["name": "n", "archive": "a", "version": "v", "component": "c", "origin": "o", "label": "l"]
                pinLine = "release " + fields.sorted { $0.key < $1.key }.map { "\(keys[$0.key] ?? $0.key)=\($0.value)" }.joined(separator: ",")
            }
            stanzas.append("Package: \(package.name)\nPin: \(pinLine)\nPin-Priority: 1001")
        }
        for preference in preferences {
            let pin = preference.pin.contains(" ") ? preference.pin : "release o=\(preference.pin)"
            stanzas.append("Package: *\nPin: \(pin)\nPin-Priority: \(preference.priority)")
        }
        for repository in repositories {
            guard let pin = repository.pin, !pin.isEmpty, let host = repository.binary.flatMap(originHost) else { continue }
            let packages = repository.pinnedPackages.flatMap { $0.isEmpty ? nil : $0 } ?? "*"
            stanzas.append("Package: \(packages)\nPin: origin \(host)\nPin-Priority: \(pin)")
        }
        if let raw = raw?.trimmingWhitespace(), !raw.isEmpty {
            stanzas.append(raw.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingWhitespace() }.joined(separator: "\n"))
        }
        return stanzas.isEmpty ? "" : stanzas.joined(separator: "\n\n") + "\n"
    }

    /// The host of a url-list line's repository (`[options] http://host/path suite components`): what apt
    /// matches `Pin: origin` against.
    static func originHost(_ line: String) -> String? {
        for word in line.split(whereSeparator: \.isWhitespace) where word.contains("://") {
            return URLComponents(string: String(word))?.host
        }
        return nil
    }

    /// Armored keys the target must trust: the primary mirror's key and each url-list raw-key, named
    /// as apt expects files in `trusted.gpg.d`.
    public static func keys(for project: Project) -> [(fileName: String, armored: String)] {
        var keys: [(String, String)] = []
        if let key = project.mirror.primary?.key?.trimmingWhitespace(), !key.isEmpty {
            keys.append(("havel-primary-key.asc", dedent(key)))
        }
        for (i, url) in project.mirror.urls.enumerated() {
            if let key = url.rawKey?.trimmingWhitespace(), !key.isEmpty {
                keys.append(("havel-url-\(i + 1)-key.asc", dedent(key)))
            }
        }
        return keys
    }

    /// Keys in XML are indented with the document; gpg needs the armor lines at column 1.
    static func dedent(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingWhitespace() }.joined(separator: "\n") + "\n"
    }
}
