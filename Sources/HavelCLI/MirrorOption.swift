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
        try MirrorResolution.apply(mirror, to: &project)
    }
}
