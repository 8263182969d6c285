import Foundation
import HavelCore
import SystemKit

/// `elbe check_updates` for Havel: the packages a build installed (source.xml's `<fullpkgs>`) against
/// the newest version each has in the project's repositories. `compare` is the pure part (tested with a
/// small Packages fixture); `fetchIndexes` reads the repositories' Packages indices with apt itself, in a
/// private directory, so signatures are checked as a build checks them and the host's apt state is untouched.
public enum UpdateCheck {
    public struct Finding: Sendable, Hashable, CustomStringConvertible {
        public enum Kind: Sendable, Hashable {
            /// The repositories have a newer version than the one installed.
            case newer(String)
            /// A package the pkg-list asked for that no repository has any more.
            case missing
            /// A package installed as a dependency that no repository has any more.
            case goneDependency
        }

        public var name: String
        public var installed: String
        public var kind: Kind

        public var description: String {
            switch kind {
            case .newer(let version): "\(name): \(installed) -> \(version)"
            case .missing: "\(name): \(installed) is not in the repositories any more, but the pkg-list asks for it"
            case .goneDependency: "\(name): \(installed) is not in the repositories any more (installed as a dependency)"
            }
        }
    }

    /// Every installed package whose newest available version (same architecture, or `all`) is newer,
    /// and every one no repository has, in the order of `installed`.
    public static func compare(installed: [PinnedPackage], available: [IndexedPackage], architecture: String) -> [Finding] {
        var newest: [String: (version: DebianVersion, text: String)] = [:]
        for package in available {
            guard let version = DebianVersion(package.version) else { continue }
            let key = package.name + "\u{0}" + package.architecture
            if let known = newest[key], known.version >= version { continue }
            newest[key] = (version, package.version)
        }
        var findings: [Finding] = []
        for package in installed {
            let wanted = package.arch ?? architecture
            let candidates = [wanted, "all"].compactMap { newest[package.name + "\u{0}" + $0] }
            guard let best = candidates.max(by: { $0.version < $1.version }) else {
                findings.append(Finding(name: package.name, installed: package.version, kind: package.auto ? .goneDependency : .missing))
                continue
            }
            guard let installedVersion = DebianVersion(package.version), installedVersion < best.version else { continue }
            findings.append(Finding(name: package.name, installed: package.version, kind: .newer(best.text)))
        }
        return findings
    }

    /// The Packages indices of `sourcesList` for `architecture` (and the foreign architectures installed
    /// packages have, multiarch), fetched by `apt-get update` into `workDirectory` (created; the caller
    /// removes it). `keys` are armored keys the sources need besides the host's trusted ones (the
    /// project's raw keys).
    public static func fetchIndexes(sourcesList: [String], architecture: String, foreignArchitectures: [String] = [],
                                    keys: [(fileName: String, armored: String)],
                                    workDirectory: String, processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> [IndexedPackage] {
        let architectures = [architecture] + foreignArchitectures.filter { $0 != architecture && $0 != "all" }
        let etc = workDirectory + "/etc/apt"
        let lists = workDirectory + "/var/lib/apt/lists"
        let cache = workDirectory + "/var/cache/apt"
        do {
            for directory in [etc + "/sources.list.d", etc + "/trusted.gpg.d", etc + "/preferences.d", etc + "/apt.conf.d",
                              lists + "/partial", cache + "/archives/partial"] {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
        } catch {
            throw HavelError(.io, "cannot make apt's directories in \(workDirectory): \(error.localizedDescription)")
        }
        try AtomicFile.write(sourcesList.joined(separator: "\n") + "\n", to: etc + "/sources.list")
        try AtomicFile.write("", to: workDirectory + "/var/lib/dpkg-status")
        // The host's trusted keys (its Debian archive keys among them), then the project's own.
        for directory in ["/etc/apt/trusted.gpg.d", "/usr/share/keyrings"] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for name in names.sorted() where name.hasSuffix(".asc") || name.hasSuffix(".gpg") {
                guard directory == "/etc/apt/trusted.gpg.d" || name.hasPrefix("debian-archive-") else { continue }
                try? FileManager.default.copyItem(atPath: directory + "/" + name, toPath: etc + "/trusted.gpg.d/" + name)
            }
        }
        for key in keys { try AtomicFile.write(key.armored + "\n", to: etc + "/trusted.gpg.d/" + key.fileName) }
        let options = [
            "Dir::Etc=" + etc, "Dir::State=" + workDirectory + "/var/lib/apt", "Dir::State::Lists=" + lists,
            "Dir::State::status=" + workDirectory + "/var/lib/dpkg-status", "Dir::Cache=" + cache,
            "APT::Architecture=" + architecture, "APT::Architectures=" + architectures.joined(separator: ","),
            "Acquire::Languages=none", "Acquire::GzipIndexes=false", "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false",
            "Acquire::Retries=1", "Acquire::http::Timeout=30", "Debug::NoLocking=true",
        ] + (geteuid() == 0 ? ["APT::Sandbox::User=root"] : [])
        let result = try await processes.run(Command("apt-get", ["-q"] + options.flatMap { ["-o", $0] } + ["update"]))
        let problems = (result.standardError + "\n" + result.standardOutput).split(separator: "\n")
            .map { $0.trimmingWhitespace() }.filter { $0.hasPrefix("E:") || $0.hasPrefix("Err:") || $0.contains("Failed to fetch") }
        guard result.succeeded, problems.isEmpty else {
            let reason = problems.isEmpty ? result.standardError.trimmingWhitespace() : problems.joined(separator: "; ")
            throw HavelError(.notFound, "apt-get update could not read the project's repositories: \(reason)")
        }
        let packages = try PackagesIndex.readLists(root: workDirectory)
        guard !packages.isEmpty else {
            throw HavelError(.notFound, "the project's repositories list no packages for \(architecture) (sources: \(sourcesList.joined(separator: "; ")))")
        }
        return packages
    }
}
