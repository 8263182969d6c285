// Havel's one writer of signed apt repositories: .deb files laid out in a pool, their Packages index
// (plain, .gz, .xz) and a Release with hashes made by apt-ftparchive, signed (InRelease, Release.gpg)
// with a per-project key from `RepositorySigningKey`. Same inputs and key give the same bytes.

import Foundation
import HavelCore
import SystemKit

public enum AptRepository {
    /// One binary package to put into the repository.
    public struct Package: Sendable, Hashable {
        /// The .deb file on this host.
        public var path: String
        public var name: String
        public var version: String
        public var architecture: String
        /// The source package (names the pool directory).
        public var source: String
        /// The archive's priority and section, for the index (an override of the .deb's own fields); nil keeps those.
        public var priority: String?
        public var section: String?

        public init(path: String, name: String, version: String, architecture: String, source: String,
                    priority: String? = nil, section: String? = nil) {
            self.path = path
            self.name = name
            self.version = version
            self.architecture = architecture
            self.source = source
            self.priority = priority
            self.section = section
        }

        /// A package described by its own control fields (`dpkg-deb -f`).
        public static func reading(_ path: String, processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> Package {
            let result = try await processes.check(Command("dpkg-deb", ["-f", path, "Package", "Version", "Architecture", "Source"]))
            var fields: [String: String] = [:]
            for line in result.standardOutput.split(separator: "\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingWhitespace()
            }
            guard let name = fields["Package"], let version = fields["Version"], let architecture = fields["Architecture"] else {
                throw HavelError(.invalidArgument, "\(path) is not a .deb with Package, Version and Architecture fields")
            }
            let source = DpkgStatus.splitSource(fields["Source"], package: name, version: version).name
            return Package(path: path, name: name, version: version, architecture: architecture, source: source)
        }

        /// Debian's pool file name: the version without its epoch.
        public var fileName: String {
            let plain = version.firstIndex(of: ":").map { String(version[version.index(after: $0)...]) } ?? version
            return "\(name)_\(plain)_\(architecture).deb"
        }
    }

    /// What the Release file says of the repository.
    public struct Description: Sendable {
        public var suite: String
        public var component: String
        /// The binary architectures (arch `all` packages are listed under each).
        public var architectures: [String]
        public var origin: String
        public var label: String
        public var text: String
        /// Seconds since the epoch for the Release `Date:`, the signatures and every file time.
        public var epoch: Int

        public init(suite: String, component: String = "main", architectures: [String], origin: String, label: String,
                    text: String, epoch: Int) {
            self.suite = suite
            self.component = component
            self.architectures = architectures
            self.origin = origin
            self.label = label
            self.text = text
            self.epoch = epoch
        }
    }

    /// `pool/<component>/<prefix>/<source>/`, the prefix `libX` for lib* sources, else the first letter.
    public static func poolDirectory(source: String, component: String) -> String {
        let prefix = source.hasPrefix("lib") && source.count > 3 ? String(source.prefix(4)) : String(source.prefix(1))
        return "pool/\(component)/\(prefix)/\(source)"
    }

    /// Writes the repository into `root` (created; must not hold another repository) and signs it with `key`.
    /// Pool files are hard links to the given .debs where the file system allows, else copies.
    /// The key's public half is written as `publicKeyFile` in the root.
    public static func write(_ packages: [Package], to root: String, description: Description, key: RepositorySigningKey,
                             publicKeyFile: String = "archive-key.asc",
                             processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) {
        try checkTools(processes)
        try checkWords([description.suite, description.component] + description.architectures + packages.flatMap({ [$0.name, $0.source, $0.architecture] }))
        for package in packages { try checkVersion(package.version, of: package.name) }
        try linkIntoPool(packages.map { (poolDirectory(source: $0.source, component: description.component) + "/" + $0.fileName, $0.path) }, root: root)

        // The archive's priorities and sections where known, as an apt-ftparchive override file beside the root:
        // mmdebstrap's variants pick packages by the index's Priority, which the .debs' own fields often understate.
        let plain: (String) -> Bool = { word in !word.isEmpty && word.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+-._/".contains($0)) } }
        let overrides = packages.compactMap { package -> String? in
            guard let priority = package.priority, let section = package.section, plain(priority), plain(section) else { return nil }
            return "\(package.name) \(priority) \(section)\n"
        }
        let overrideFile = root + ".override"
        unlink(overrideFile)
        defer { unlink(overrideFile) }
        if !overrides.isEmpty {
            try AtomicFile.write(Set(overrides).sorted().joined(), to: overrideFile)
        }
        // One index for every package, split by architecture (arch all under each), stanzas sorted.
        let stanzas = try await ftparchive("packages", root: root, component: description.component, keeping: ["filename", "architecture"],
                                           override: overrides.isEmpty ? nil : overrideFile, processes)
            .sorted { ($0.fields["filename"] ?? "") < ($1.fields["filename"] ?? "") }
        let suiteDirectory = root + "/dists/" + description.suite
        for architecture in description.architectures {
            let directory = "\(suiteDirectory)/\(description.component)/binary-\(architecture)"
            try makeDirectory(directory)
            let chosen = stanzas.filter { [architecture, "all"].contains($0.fields["architecture"] ?? "") }.map(\.text)
            try AtomicFile.write(chosen.map { $0 + "\n" }.joined(separator: "\n"), to: directory + "/Packages")
            try await compress(directory + "/Packages", with: "gzip -9 -n -c", suffix: ".gz", processes)
            try await compress(directory + "/Packages", with: "xz -6 --threads=1 -c", suffix: ".xz", processes)
        }

        try await publish(root, description: description, key: key, publicKeyFile: publicKeyFile, processes: processes)
    }

    /// Writes a source repository into `root` (created; must not hold another repository): every source's
    /// files in its pool directory, `dists/<suite>/<component>/source/Sources` (plain, .gz, .xz) made by
    /// apt-ftparchive from the .dsc files, and a Release signed with `key`, so that `apt-get source` reads it.
    /// Pool files are hard links to the given files where the file system allows, else copies.
    public static func writeSources(_ sources: [SourcePackage], to root: String, description: Description, key: RepositorySigningKey,
                                    publicKeyFile: String = "archive-key.asc",
                                    processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) {
        try checkTools(processes)
        try checkWords([description.suite, description.component] + sources.map(\.name))
        for source in sources {
            try checkVersion(source.version, of: source.name)
            for file in source.files where !file.name.allSatisfy({ $0.isLetter || $0.isNumber || "+-._~".contains($0) }) || file.name.hasPrefix(".") {
                throw HavelError(.invalidArgument, "\"\(file.name)\" of source \(source.name) cannot name a file of an apt repository")
            }
        }
        try linkIntoPool(sources.flatMap { source in
            source.files.map { (poolDirectory(source: source.name, component: description.component) + "/" + $0.name, $0.path) }
        }, root: root)
        let stanzas = try await ftparchive("sources", root: root, component: description.component, keeping: ["package", "version"], processes)
            .sorted { ($0.fields["package"] ?? "", $0.fields["version"] ?? "") < ($1.fields["package"] ?? "", $1.fields["version"] ?? "") }
        let directory = "\(root)/dists/\(description.suite)/\(description.component)/source"
        try makeDirectory(directory)
        try AtomicFile.write(stanzas.map { $0.text + "\n" }.joined(separator: "\n"), to: directory + "/Sources")
        try await compress(directory + "/Sources", with: "gzip -9 -n -c", suffix: ".gz", processes)
        try await compress(directory + "/Sources", with: "xz -6 --threads=1 -c", suffix: ".xz", processes)
        try await publish(root, description: description, key: key, publicKeyFile: publicKeyFile, processes: processes)
    }

    /// One source package to put into a source repository: its .dsc and every file the .dsc lists.
    public struct SourcePackage: Sendable, Hashable {
        public struct File: Sendable, Hashable {
            /// The file on this host (any name, e.g. a cache entry named by its sha256).
            public var path: String
            /// Its name in the pool.
            public var name: String

            public init(path: String, name: String) {
                self.path = path
                self.name = name
            }
        }

        public var name: String
        public var version: String
        public var files: [File]

        public init(name: String, version: String, files: [File]) {
            self.name = name
            self.version = version
            self.files = files
        }
    }

    /// The stanzas `apt-ftparchive packages|sources pool/<component>` prints, each with the fields in `keeping`.
    static func ftparchive(_ kind: String, root: String, component: String, keeping: Set<String>, override: String? = nil,
                           _ processes: any ProcessRunning) async throws(HavelError) -> [(text: String, fields: Deb822Stanza)] {
        let listing = try await processes.run(Command("apt-ftparchive", [kind, "pool/" + component] + (override.map { [$0] } ?? []), workingDirectory: root),
                                              input: [], outputLimit: 512 << 20)
        guard listing.succeeded else {
            throw HavelError(.processFailed, "apt-ftparchive could not index the \(kind) in \(root)/pool: \(listing.standardError.trimmingWhitespace())")
        }
        return listing.standardOutput.components(separatedBy: "\n\n")
            .map { $0.trimmingCharacters(in: .newlines) }.filter { !$0.isEmpty }
            .map { stanza in (text: stanza, fields: Deb822.parse(stanza, keeping: keeping).first ?? Deb822Stanza()) }
    }

    static func checkTools(_ processes: any ProcessRunning) throws(HavelError) {
        for tool in ["apt-ftparchive", "gzip", "xz"] where processes.which(tool) == nil {
            throw HavelError(.hostNotReady, "writing an apt repository needs \(tool); run scripts/setup-host.sh (apt-get install apt-utils gzip xz-utils)")
        }
    }

    static func checkWords(_ words: [String]) throws(HavelError) {
        for word in words {
            guard !word.isEmpty, word.allSatisfy({ $0.isLetter || $0.isNumber || "+-._~".contains($0) }), !word.hasPrefix(".") else {
                throw HavelError(.invalidArgument, "\"\(word)\" cannot name a suite, component, architecture or package of an apt repository")
            }
        }
    }

    static func checkVersion(_ version: String, of package: String) throws(HavelError) {
        guard !version.isEmpty, version.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.~:".contains($0)) }) else {
            throw HavelError(.invalidArgument, "package \(package) has the version \"\(version)\", which is not a Debian version")
        }
    }

    /// Links (or copies) each file to its pool path below `root`; two files for one pool path are refused.
    static func linkIntoPool(_ entries: [(relative: String, path: String)], root: String) throws(HavelError) {
        let files = FileManager.default
        var seen: [String: String] = [:]
        for (relative, path) in entries.sorted(by: { $0.path < $1.path }) {
            if let other = seen[relative] {
                throw HavelError(.invalidArgument, "\(path) and \(other) both are \((relative as NSString).lastPathComponent); give each package once")
            }
            seen[relative] = path
            try makeDirectory(root + "/" + (relative as NSString).deletingLastPathComponent)
            let destination = root + "/" + relative
            unlink(destination)
            if link(path, destination) != 0 {
                do { try files.copyItem(atPath: path, toPath: destination) } catch {
                    throw HavelError(.io, "cannot copy \(path) into the repository \(root): \(error.localizedDescription)")
                }
            }
        }
    }

    /// The Release of `dists/<suite>` with hashes, signed (InRelease, Release.gpg), the public key beside it,
    /// and every file time set to the epoch except pool files hard-linked to the caller's files.
    static func publish(_ root: String, description: Description, key: RepositorySigningKey, publicKeyFile: String,
                        processes: any ProcessRunning) async throws(HavelError) {
        let suiteDirectory = root + "/dists/" + description.suite
        let options: [(String, String)] = [
            ("Origin", description.origin), ("Label", description.label), ("Suite", description.suite), ("Codename", description.suite),
            ("Date", releaseDate(description.epoch)), ("Architectures", description.architectures.joined(separator: " ")),
            ("Components", description.component), ("Description", description.text),
        ]
        var arguments: [String] = []
        for (field, value) in options {
            arguments += ["-o", "APT::FTPArchive::Release::\(field)=" + value.replacingOccurrences(of: "\n", with: " ")]
        }
        let release = try await processes.check(Command("apt-ftparchive", arguments + ["release", "."], workingDirectory: suiteDirectory))
        try AtomicFile.write(release.standardOutput, to: suiteDirectory + "/Release")
        try await key.sign(suiteDirectory + "/Release", inRelease: suiteDirectory + "/InRelease", detached: suiteDirectory + "/Release.gpg",
                           epoch: description.epoch, processes: processes)
        try AtomicFile.write(key.publicKey, to: root + "/" + publicKeyFile)
        // Every file time is the epoch, except pool files hard-linked to the caller's .debs (left as they are).
        try await processes.check(Command("find", [root, "(", "-type", "d", "-o", "!", "-path", root + "/pool/*", "-o", "-links", "1", ")",
                                                   "-exec", "touch", "-h", "-d", "@\(description.epoch)", "{}", "+"]))
    }

    /// RFC 2822 in UTC, as Debian's Release files give it.
    public static func releaseDate(_ epoch: Int) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'UTC'"
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(epoch)))
    }

    /// `file` compressed by `compressor` (a fixed command line that writes to stdout) into `file` + `suffix`.
    static func compress(_ file: String, with compressor: String, suffix: String, _ processes: any ProcessRunning) async throws(HavelError) {
        let temporary = file + suffix + ".partial"
        let result = try await processes.run(Command("sh", ["-c", compressor + " -- \"$1\" > \"$2\"", "sh", file, temporary]))
        guard result.succeeded else {
            unlink(temporary)
            throw HavelError(.processFailed, "\(compressor) \(file) failed: \(result.standardError.trimmingWhitespace())")
        }
        try AtomicFile.publish(temporary, as: file + suffix)
    }

    static func makeDirectory(_ path: String) throws(HavelError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw HavelError(.io, "cannot create \(path): \(error.localizedDescription)")
        }
    }
}
