// The binary CD (`havel build --cdroms`, ELBE's bin-cdrom.iso): every package installed in the target, at
// its installed version, taken from the package cache, checked against the mirror's sha256, laid out as
// a signed apt repository and written as an ISO image.

import Debian
import Foundation
import HavelCore
import Images
import SystemKit

struct BinaryCdromStage: BuildStage {
    let name = "binary CD"

    func describe(_ plan: BuildPlan) -> StageDescription {
        StageDescription(reason: "--cdroms: every installed package at its version as a signed apt repository, for exact reproduction",
                         inputs: ["rootfs/ (dpkg status)", "source.xml", "the install record and the apt package lists", "package cache \(plan.options.cache.debs)",
                                  "the project's signing key in \(plan.options.cache.keys)"],
                         outputs: [(plan.options.directory.binaryCdrom as NSString).lastPathComponent])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        guard let record = products.install else { throw HavelError(.internalError, "the binary CD needs the install stage's record") }
        let directory = context.directory
        let project = context.project.project
        let cache = context.options.cache
        let inUse = try cache.usingDebs()
        defer { inUse.release() }
        let installed = try products.installed(in: directory)
        let packages = try await collect(record, installed: installed + Self.buildEnvironmentOnly(directory, target: installed), context)

        let repository = directory.work + "/bin-cdrom"
        try? FileManager.default.removeItem(atPath: repository)
        do { try FileManager.default.createDirectory(atPath: repository, withIntermediateDirectories: true) } catch {
            throw HavelError(.io, "cannot create \(repository): \(error.localizedDescription)")
        }
        try AtomicFile.write(Self.readme(project, architecture: context.architecture.debianName, count: packages.count), to: repository + "/README.txt")
        // The build's source.xml goes along, as on ELBE's CD: with it the image is built again from the CD's packages.
        do { try FileManager.default.copyItem(atPath: directory.sourceXML, toPath: repository + "/source.xml") } catch {
            throw HavelError(.io, "cannot copy source.xml onto the binary CD: \(error.localizedDescription)")
        }
        let key = try await RepositorySigningKey.forProject(project.name, directory: cache.keys, processes: context.processes)
        // The target's architecture, and those of packages installed through multiarch (<pkg arch>).
        let foreign = Set(installed.map(\.architecture)).subtracting(["all", context.architecture.debianName]).sorted()
        let description = AptRepository.Description(
            suite: project.suite, architectures: [context.architecture.debianName] + foreign, origin: "Havel", label: project.name,
            text: "\(project.name) \(project.version): the packages of its root filesystem", epoch: products.epoch)
        try await AptRepository.write(packages, to: repository, description: description, key: key, publicKeyFile: Self.publicKeyFile,
                                      processes: context.processes)
        try await IsoImage.write(repository, to: directory.binaryCdrom, volumeID: project.name, epoch: products.epoch, processes: context.processes)
        try? FileManager.default.removeItem(atPath: repository)
        products.outputs.append((directory.binaryCdrom as NSString).lastPathComponent)
        context.log.info("bin-cdrom.iso: \(packages.count) packages, signed with \(key.secretKeyFile)")
    }

    static let publicKeyFile = "archive-key.asc"

    /// The build environment's packages that the target does not have (buildimage/pkg-list and what they
    /// pulled in), when the build made one: ELBE's binary CD carries its build chroot's packages too.
    static func buildEnvironmentOnly(_ directory: BuildDirectory, target installed: [InstalledPackage]) throws(HavelError) -> [InstalledPackage] {
        guard FileManager.default.fileExists(atPath: directory.buildenv + "/var/lib/dpkg/status") else { return [] }
        let target = Set(installed.map { "\($0.name) \($0.version) \($0.architecture)" })
        return try DpkgStatus.read(root: directory.buildenv).filter { !target.contains("\($0.name) \($0.version) \($0.architecture)") }
    }

    /// The .deb of every installed package from the package cache, each with the sha256 the mirror's index
    /// gave (the kept lists when this build installed; else the install record, checked against them when
    /// it was made). A missing or mismatching file fails the stage with the list of them.
    func collect(_ record: InstallRecord, installed: [InstalledPackage], _ context: BuildContext) async throws(HavelError) -> [AptRepository.Package] {
        var lists = FileManager.default.fileExists(atPath: context.directory.aptLists) ? try PackagesIndex.readLists(root: context.directory.aptLists) : []
        // The build environment's own lists vouch for the packages it added.
        if FileManager.default.fileExists(atPath: context.directory.buildenv + "/var/lib/apt/lists") {
            lists += try PackagesIndex.readLists(root: context.directory.buildenv)
        }
        let index = PackagesIndex.index(lists)
        let debs = context.options.cache.debs
        var missing: [String] = [], unverifiable: [String] = []
        var expected: [String: String] = [:]
        var packages: [AptRepository.Package] = []
        for package in installed {
            let what = "\(package.name) \(package.version) \(package.architecture)"
            let file = debs + "/" + DebVerification.debFileName(package)
            guard FileManager.default.fileExists(atPath: file) else { missing.append(what); continue }
            guard let sha256 = PackagesIndex.lookup(index, name: package.name, version: package.version, architecture: package.architecture)?.sha256
                    ?? record.sha256(name: package.name, version: package.version, architecture: package.architecture) else {
                unverifiable.append(what)
                continue
            }
            expected[file] = sha256
            let recorded = record.package(name: package.name, version: package.version, architecture: package.architecture)
            packages.append(AptRepository.Package(path: file, name: package.name, version: package.version,
                                                  architecture: package.architecture, source: package.sourceName,
                                                  priority: recorded?.priority, section: recorded?.section))
        }
        guard missing.isEmpty else {
            throw HavelError(.notFound, "the binary CD needs \(missing.count) package(s) that are not in the package cache \(debs): "
                             + missing.joined(separator: ", ") + "; build again with --no-cache so that they are downloaded (packages installed by finetuning commands are never cached)")
        }
        guard unverifiable.isEmpty else {
            throw HavelError(.notFound, "the binary CD cannot check \(unverifiable.count) package(s) against the mirror's index, which names no sha256 for them: "
                             + unverifiable.joined(separator: ", "))
        }
        let digests = try await Digest.sha256(files: packages.map(\.path), processes: context.processes)
        let wrong = packages.filter { digests[$0.path] != expected[$0.path] }
        guard wrong.isEmpty else {
            throw HavelError(.processFailed, "the package cache holds .debs whose sha256 differs from the mirror's index: "
                             + wrong.map { "\($0.name) \($0.version)" }.joined(separator: ", ") + "; run havel cache prune --all and build again")
        }
        return packages
    }

    static func readme(_ project: Project, architecture: String, count: Int) -> String {
        """
        \(project.name) \(project.version) (\(architecture), \(project.suite)): binary packages

        The \(count) packages installed in the project's root filesystem (and in its build environment, when
        the build made one), each at its installed version,
        as an apt repository signed with the project's key (\(publicKeyFile) is its public half);
        source.xml is the project with every one of them pinned.
        With this CD mounted at /media/cdrom, apt installs from it with the sources line

            deb [signed-by=/media/cdrom/\(publicKeyFile)] file:/media/cdrom \(project.suite) main

        """
    }
}
