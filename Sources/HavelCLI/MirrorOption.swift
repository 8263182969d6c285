import ArgumentParser
import Debian
import Foundation
import HavelCore

/// `--mirror URL|host`: where Debian packages come from, overriding the project's primary mirror.
/// `host` reads the mirror from this machine's apt sources; it is also what a `MIRROR_HOST`
/// placeholder in a project file means.
struct MirrorOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Debian mirror to use instead of the project's primary mirror: a URL such as http://deb.example.org/debian, or 'host' for the mirror in this machine's apt sources.",
        valueName: "URL|host"))
    var mirror: String?

    func validate() throws {
        if let mirror, mirror != "host", HostMirror(url: mirror) == nil {
            throw ValidationError("--mirror \(mirror) is neither 'host' nor an http(s)/ftp URL like http://deb.example.org/debian")
        }
    }

    /// Applies the option (and the MIRROR_HOST placeholder) to a project's primary mirrors.
    func apply(to project: inout Project) throws(HavelError) {
        let replacement: HostMirror?
        switch mirror {
        case nil:
            replacement = project.mirror.primary?.usesPlaceholder == true || project.initvm?.mirror.primary?.usesPlaceholder == true
                ? try HostAptSources.primaryMirror() : nil
        case "host"?:
            replacement = try HostAptSources.primaryMirror()
        case let url?:
            replacement = HostMirror(url: url)
        }
        guard let replacement else { return }
        let forceAll = mirror != nil
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
