import Foundation
import HavelCore

/// Where a build's Debian packages come from: the project's primary mirror, unless it says `MIRROR_HOST`
/// (this machine's apt mirror) or an override replaces it. Shared by `havel build` and the daemon.
public enum MirrorResolution {
    /// Applies `override` (nil: only the MIRROR_HOST placeholder is replaced; "host": this machine's mirror;
    /// otherwise a URL such as http://deb.example.org/debian) to a project's primary mirrors and to the
    /// url-list lines that name the placeholder.
    public static func apply(_ override: String?, to project: inout Project) throws(HavelError) {
        let replacement: HostMirror?
        switch override {
        case nil:
            replacement = project.mirror.primary?.usesPlaceholder == true || project.initvm?.mirror.primary?.usesPlaceholder == true
                ? try HostAptSources.primaryMirror() : nil
        case "host"?:
            replacement = try HostAptSources.primaryMirror()
        case let url?:
            guard let mirror = HostMirror(url: url) else {
                throw HavelError(.invalidArgument, "mirror \(url) is neither 'host' nor an http(s)/ftp URL like http://deb.example.org/debian")
            }
            replacement = mirror
        }
        guard let replacement else { return }
        let forceAll = override != nil
        func replace(_ primary: inout PrimaryMirror?) {
            guard forceAll || primary?.usesPlaceholder == true else { return }
            var value = primary ?? PrimaryMirror(host: "", path: "", proto: "http")
            value.host = replacement.host
            value.path = replacement.path
            value.proto = replacement.proto
            primary = value
        }
        replace(&project.mirror.primary)
        if project.initvm != nil { replace(&project.initvm!.mirror.primary) }
        // url-list lines that name the placeholder point at the same mirror.
        let placeholderPrefixes = ["http://" + Mirror.placeholderHost, "https://" + Mirror.placeholderHost]
        func fix(_ line: String?) -> String? {
            guard let line else { return nil }
            for prefix in placeholderPrefixes where line.contains(prefix) {
                return line.replacingOccurrences(of: prefix, with: "\(replacement.proto)://\(replacement.host)")
            }
            return line
        }
        for i in project.mirror.urls.indices {
            project.mirror.urls[i].binary = fix(project.mirror.urls[i].binary)
            project.mirror.urls[i].source = fix(project.mirror.urls[i].source)
        }
    }
}
