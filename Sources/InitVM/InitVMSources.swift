import Debian
import Foundation
import HavelCore

/// Where the initvm's packages come from: the project's `<initvm><mirror>`, or the host's mirror.
/// The guest reaches the same mirror through qemu's user network, so the lines stay valid inside.
public enum InitVMSources {
    /// Suites with `-updates` and `-security` companions.
    static func hasCompanions(_ suite: String) -> Bool {
        !["sid", "unstable", "experimental", "rc-buggy"].contains(suite)
    }

    /// apt lines for the initvm. Without a mirror in the spec, the host's: the suite and its
    /// `-updates` from the host's primary mirror, `-security` from the host's security mirror (so
    /// the newest kernel is installed). A spec naming the host's mirror gets the same companions.
    public static func lines(spec: InitVMSpec?, suite: String, host: () throws(HavelError) -> HostMirror = { () throws(HavelError) in try HostAptSources.primaryMirror() },
                             hostSecurity: () -> HostMirror? = { hostSecurityMirror() }) throws(HavelError) -> [String] {
        let mirror = spec?.mirror ?? Mirror()
        guard let primary = mirror.primary, !primary.host.isEmpty, !primary.usesPlaceholder else {
            return hostLines(try host(), security: hostSecurity(), suite: suite)
                + AptSources.lines(for: project(mirror: Mirror(urls: mirror.urls), suite: suite))
        }
        var lines = AptSources.lines(for: project(mirror: mirror, suite: suite))
        let hostMirror = try? host()
        if let hostMirror, hostMirror.url == primary.url, hasCompanions(suite) {
            lines.insert("deb \(hostMirror.url) \(suite)-updates main", at: 1)
            if let security = hostSecurity() { lines.insert("deb \(security.url) \(suite)-security main", at: 2) }
        }
        return lines
    }

    static func hostLines(_ mirror: HostMirror, security: HostMirror?, suite: String) -> [String] {
        var lines = ["deb \(mirror.url) \(suite) main"]
        if hasCompanions(suite) {
            lines.append("deb \(mirror.url) \(suite)-updates main")
            if let security { lines.append("deb \(security.url) \(suite)-security main") }
        }
        return lines
    }

    /// The project's keys for the initvm's mirror (primary key, url-list raw keys).
    public static func keys(spec: InitVMSpec?, suite: String) -> [(fileName: String, armored: String)] {
        guard let spec else { return [] }
        return AptSources.keys(for: project(mirror: spec.mirror, suite: suite))
    }

    static func project(mirror: Mirror, suite: String) -> Project {
        var project = Project()
        project.mirror = mirror
        project.suite = suite
        return project
    }

    /// The first security mirror in the host's apt sources, if any.
    public static func hostSecurityMirror(searching paths: [String] = HostAptSources.defaultFiles) -> HostMirror? {
        var uris: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            let files = isDirectory.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
                    .filter { $0.hasSuffix(".sources") || $0.hasSuffix(".list") }.map { path + "/" + $0 }
                : [path]
            for file in files {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
                uris += file.hasSuffix(".sources") ? HostAptSources.deb822URIs(text) : HostAptSources.oneLineURIs(text)
            }
        }
        return uris.compactMap(HostMirror.init(url:)).first { $0.path.contains("security") }
    }
}
