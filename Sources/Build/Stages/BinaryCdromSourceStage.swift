// The rebuild from a binary CD (`havel build --from-cdrom bin-cdrom.iso FILE`): the CD is read with xorriso
// (never mounted), its signature and every .deb are checked against the source.xml it carries, and it becomes
// the install's only package source, so the build reads no mirror and installs exactly what the build that
// wrote the CD installed. The target keeps the project's apt sources and keys.

import Debian
import Foundation
import HavelCore
import ProjectXML
import SystemKit

/// A checked binary CD, extracted into the build's work directory.
struct BinaryCdromSource: Sendable {
    static let originName = "binary CD (--from-cdrom)"
    /// The extracted CD: dists/, pool/, archive-key.asc, source.xml.
    let directory: String
    let suite: String
    /// The original build's source.xml entries, keyed `name version arch`.
    let pinnedByKey: [String: PinnedPackage]

    /// The apt source of the install: the CD, checked with its own key.
    var sourceLine: String {
        "deb [signed-by=\(directory)/\(BinaryCdromStage.publicKeyFile)] copy://\(directory) \(suite) main"
    }

    func pinned(name: String, version: String, architecture: String) -> PinnedPackage? {
        pinnedByKey["\(name) \(version) \(architecture)"]
    }
}

struct BinaryCdromSourceStage: BuildStage {
    let name = "read binary CD"

    func describe(_ plan: BuildPlan) -> StageDescription {
        StageDescription(reason: "--from-cdrom: the CD's packages, checked against its signature and its source.xml, are the only package source; no mirror is read",
                         inputs: [plan.options.fromCdrom ?? "the binary CD"],
                         outputs: ["the CD's InRelease sha256 (in the log; it keys the install)"])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        guard let iso = context.options.fromCdrom else { throw HavelError(.internalError, "the CD stage runs only with --from-cdrom") }
        let project = context.project.project
        guard project.target.ownPackages.isEmpty else {
            throw HavelError(.unsupported, "--from-cdrom does not build <pbuilder> packages again; build without --from-cdrom, or remove <pbuilder>")
        }
        guard FileManager.default.isReadableFile(atPath: iso) else { throw HavelError(.notFound, "--from-cdrom \(iso): no such readable file") }
        let directory = context.directory.work + "/from-cdrom"
        try? FileManager.default.removeItem(atPath: directory)
        let processes = context.processes
        try await BinaryCdromVerification.extract(iso, into: directory, what: "--from-cdrom", processes: processes)
        let checked = try await BinaryCdromVerification.verify(directory, project: project, architecture: context.architecture.debianName,
                                                               what: "--from-cdrom \(iso)", work: context.directory.work, processes: processes)
        let suite = project.suite, what = "--from-cdrom \(iso)", release = checked.inReleaseSHA256
        products.releases = [RepositoryProbe.Release(url: "cdrom:\(project.name) \(suite)", sha256: release)]
        products.cdrom = BinaryCdromSource(directory: directory, suite: suite, pinnedByKey: checked.pinned)
        context.log.info("\(what): \(checked.packageCount) packages, each as its source.xml pins it; the install reads no mirror (InRelease sha256 \(release.prefix(12)))")
        if context.options.binaryCdrom || project.sourceCdrom {
            context.log.warning("\(what): no CDs are written by a rebuild from a CD (--cdroms and <src-cdrom> are left out)")
        }
    }
}

/// What makes an extracted binary CD trustworthy for its project: the files it must have, its InRelease
/// verifying with the key it carries, the same project in its source.xml, and every .deb on it being exactly
/// one that source.xml pins, with every pinned package there. `--from-cdrom` and `havel check-build` check
/// through this.
enum BinaryCdromVerification {
    struct Checked: Sendable {
        /// source.xml's entries keyed `name version arch`.
        var pinned: [String: PinnedPackage]
        var packageCount: Int
        var inReleaseSHA256: String
    }

    static func verify(_ directory: String, project: Project, architecture: String, what: String, work: String,
                       processes: any ProcessRunning) async throws(HavelError) -> Checked {
        let cd = try RootedFileSystem(root: directory)
        let suite = project.suite
        for needed in ["/" + BinaryCdromStage.publicKeyFile, "/source.xml", "/dists/\(suite)/InRelease"] where !cd.exists(needed) {
            throw HavelError(.invalidArgument, "\(what): the CD has no \(needed); give a bin-cdrom.iso that havel build --cdroms wrote for suite \(suite)")
        }

        // The signature, with the key the CD carries: the CD is what the user vouches for; this shows it is whole.
        let keyring = work + "/cdrom-key-\(UUID().uuidString.prefix(8)).gpg"
        try? FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { unlink(keyring) }
        try await processes.check(Command("gpg", ["--batch", "--dearmor", "-o", keyring, directory + "/" + BinaryCdromStage.publicKeyFile]))
        let verified = try await processes.run(Command("gpgv", ["--keyring", keyring, directory + "/dists/\(suite)/InRelease"]))
        guard verified.succeeded else {
            throw HavelError(.invalidArgument, "\(what): dists/\(suite)/InRelease does not verify with the CD's \(BinaryCdromStage.publicKeyFile): \(verified.standardError.trimmingWhitespace().suffix(400))")
        }

        // The original build's record: the same project, every package pinned with its sha256.
        let original = try ProjectLoader.load(path: directory + "/source.xml").project
        guard original.name == project.name, original.suite == project.suite else {
            throw HavelError(.invalidArgument, "\(what): the CD is of project \(original.name) (\(original.suite)), not \(project.name) (\(project.suite))")
        }
        var pinned: [String: PinnedPackage] = [:]
        // The build environment's packages (debootstrappkgs) ride along, as on ELBE's CD.
        for package in original.fullPackages + original.buildEnvironmentPackages { pinned["\(package.name) \(package.version) \(package.arch ?? architecture)"] = package }
        guard !pinned.isEmpty else { throw HavelError(.invalidArgument, "\(what): its source.xml pins no package (<fullpkgs>)") }

        // Every .deb on the CD is the one source.xml pins, and every pinned package is on the CD.
        let index = "/dists/\(suite)/main/binary-\(architecture)/Packages"
        guard cd.exists(index) else { throw HavelError(.invalidArgument, "\(what): the CD has no \(index) for \(architecture)") }
        let packages = PackagesIndex.parse(String(decoding: try cd.readFile(index, limit: 256 << 20), as: UTF8.self), origin: "cdrom")
        var files: [String: String] = [:]
        for package in packages {
            let key = "\(package.name) \(package.version) \(package.architecture)"
            guard let pin = pinned[key] else { throw HavelError(.invalidArgument, "\(what): \(key) is on the CD but not in its source.xml") }
            guard !package.filename.hasPrefix("/"), !package.filename.split(separator: "/").contains(".."), cd.exists("/" + package.filename) else {
                throw HavelError(.invalidArgument, "\(what): \(key) names the file \(package.filename), which is not on the CD")
            }
            guard let sha256 = pin.sha256 else { throw HavelError(.invalidArgument, "\(what): source.xml has no sha256 for \(key)") }
            var status = stat()
            let resolved = URL(fileURLWithPath: directory + "/" + package.filename).resolvingSymlinksInPath().path
            guard resolved == URL(fileURLWithPath: directory).resolvingSymlinksInPath().path + "/" + package.filename,
                  lstat(resolved, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
                throw HavelError(.invalidArgument, "\(what): \(package.filename) is not a plain file on the CD (a link is never followed)")
            }
            files[directory + "/" + package.filename] = sha256
        }
        let onCD = Set(packages.map { "\($0.name) \($0.version) \($0.architecture)" })
        let absent = pinned.keys.filter { !onCD.contains($0) }.sorted()
        guard absent.isEmpty else {
            throw HavelError(.invalidArgument, "\(what): \(absent.count) package(s) of its source.xml are not on it: \(absent.prefix(10).joined(separator: ", "))")
        }
        let digests = try await Digest.sha256(files: Array(files.keys), processes: processes)
        let wrong = files.filter { digests[$0.key] != $0.value }.keys.map { ($0 as NSString).lastPathComponent }.sorted()
        guard wrong.isEmpty else {
            throw HavelError(.invalidArgument, "\(what): \(wrong.count) .deb(s) differ from the sha256 its source.xml pins: \(wrong.prefix(10).joined(separator: ", "))")
        }
        let release = try await Digest.sha256(try cd.readFile("/dists/\(suite)/InRelease", limit: 16 << 20), processes: processes)
        return Checked(pinned: pinned, packageCount: packages.count, inReleaseSHA256: release)
    }

    /// Extracts an ISO image with xorriso into `directory` (which must not exist), never mounting it.
    static func extract(_ iso: String, into directory: String, what: String, processes: any ProcessRunning) async throws(HavelError) {
        let extracted = try await processes.run(Command("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", "/", directory]))
        guard extracted.succeeded else {
            throw HavelError(.processFailed, "\(what): xorriso cannot read \(iso): \(extracted.standardError.trimmingWhitespace().suffix(400))")
        }
    }
}
