// MinimiseTargetStage: ELBE's `<tighten/>`, `<diet/>` and `<setsel/>`, between the install (and the build
// environment, which keeps the whole tree) and the system settings. tighten and diet replace the target with a
// fresh tree holding only the chosen packages' files (TargetFileSelection); setsel hands dpkg the pkg-list as
// its selection and purges every other non-essential package.
import Chroot
import Debian
import Foundation
import HavelCore
import SystemKit

struct MinimiseTargetStage: BuildStage {
    let name = "minimise target"

    static func isNeeded(by project: Project) -> Bool {
        project.target.minimisation != nil || project.target.setSelections
    }

    /// What /etc keeps beyond the packages' own files, and the mount points ELBE makes.
    static let keptUnowned = "/etc"
    static let mountPoints = ["/dev", "/proc", "/sys"]

    func describe(_ plan: BuildPlan) -> StageDescription {
        let target = plan.project.project.target
        let count = target.packages.count
        let listed = "the pkg-list's \(count) package\(count == 1 ? "" : "s")"
        var reasons: [String] = []
        switch target.minimisation {
        case .tighten?: reasons.append("<tighten/>: only the files of \(listed), without dpkg's database")
        case .diet?: reasons.append("<diet/>: only the files of \(listed) and of what they depend on, without dpkg's database")
        case nil: break
        }
        if target.setSelections { reasons.append("<setsel/>: dpkg's selection becomes \(listed); every other non-essential package is purged") }
        return StageDescription(reason: reasons.joined(separator: "; "),
                                inputs: ["rootfs/var/lib/dpkg (file lists, status)", "<target><pkg-list>"],
                                outputs: target.minimisation != nil
                                    ? ["rootfs/ (a fresh tree; /etc keeps the files no package owns)", "kept-packages.status (the kept packages' dpkg stanzas, for the SBOM)"]
                                    : ["rootfs/"])
    }

    func run(_ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let target = context.project.project.target
        if target.setSelections && target.minimisation != nil {
            throw HavelError(.invalidProject, "<setsel/> needs dpkg's database in the target, which <tighten/> and <diet/> leave out; remove one of them")
        }
        if let minimisation = target.minimisation { try await cut(minimisation, context, &products) }
        if target.setSelections { try await setSelections(context) }
    }

    /// tighten / diet: the installed tree moves aside and a fresh rootfs gets the selected entries (tar keeps
    /// owners, modes, times, hard links and file capabilities); the whole tree's package list stays the
    /// build's record, as ELBE's reports read the build environment's.
    func cut(_ minimisation: TargetMinimisation, _ context: BuildContext, _ products: inout BuildProducts) async throws(HavelError) {
        let directory = context.directory
        let log = context.log
        let installed = directory.work + "/installed-rootfs"
        products.installedPackages = try DpkgStatus.read(root: directory.rootfs)
        guard rename(directory.rootfs, installed) == 0 else {
            throw HavelError(.io, "cannot move \(directory.rootfs) aside to \(installed): \(errnoText())")
        }
        let selection = TargetFileSelection(tree: try RootedFileSystem(root: installed), architecture: context.architecture.debianName)
        let named = context.project.project.target.packages.map(\.name)
        let chosen = minimisation == .diet ? try selection.dependencyClosure(of: named) : Set(named)
        products.keptPackages = chosen
        let status = String(decoding: try RootedFileSystem(root: installed).readFile("/var/lib/dpkg/status"), as: UTF8.self)
        try AtomicFile.write(DpkgStatus.stanzas(of: status, packages: chosen), to: directory.keptPackagesStatus)
        let packageEntries = selection.entries(for: try selection.listedPaths(of: chosen))
        let unowned = selection.unownedEntries(under: Self.keptUnowned, owned: try selection.ownedPaths(), kept: Set(packageEntries))
        let entries = Set(packageEntries + selection.entries(for: unowned, followingFinalLinks: false)).sorted()
        let list = directory.work + "/minimised-entries"
        let archive = directory.work + "/minimised.tar"
        let names = entries.map { String($0.dropFirst()) }.filter { !$0.isEmpty }
        guard FileManager.default.createFile(atPath: list, contents: Data(names.joined(separator: "\0").utf8)) else {
            throw HavelError(.io, "cannot write \(list)")
        }
        guard mkdir(directory.rootfs, 0o755) == 0, chmod(directory.rootfs, 0o755) == 0 else {
            throw HavelError(.io, "cannot create \(directory.rootfs): \(errnoText())")
        }
        let processes = context.processes
        try await processes.check(Command("tar", ["--create", "--file", archive, "--directory", installed, "--no-recursion", "--numeric-owner",
                                                   "--xattrs", "--xattrs-include=*", "--null", "--verbatim-files-from", "--files-from", list]))
        try await processes.check(Command("tar", ["--extract", "--file", archive, "--directory", directory.rootfs, "--numeric-owner",
                                                   "--same-owner", "--preserve-permissions", "--xattrs", "--xattrs-include=*"]))
        let target = try RootedFileSystem(root: directory.rootfs)
        for path in Self.mountPoints where !target.exists(path) { try target.createDirectory(path) }
        unlink(archive)
        try await processes.check(Command("rm", ["-rf", "--one-file-system", "--", installed]))
        log.info("<\(minimisation.rawValue)/>: kept \(entries.count) entries of \(chosen.count) packages (\(unowned.count) unowned in \(Self.keptUnowned)); dpkg's database left out")
    }

    /// setsel: dpkg --clear-selections, the pkg-list as `install` selections, then dpkg --purge --pending, in
    /// the target. A package the pkg-list needs but does not name makes dpkg refuse, and the stage says so.
    func setSelections(_ context: BuildContext) async throws(HavelError) {
        let rootfs = context.directory.rootfs
        let before = Set(try DpkgStatus.read(root: rootfs).map(\.name))
        let selections = BootstrapRequest.pkgListNames(for: context.project.project).map { "\($0) install\n" }.joined()
        let chroot = context.chroot(rootfs)
        let target = try RootedFileSystem(root: rootfs)
        let processes = context.processes
        try await ChrootExcursions.during(target, log: context.log) { () async throws(HavelError) in
            try await context.runTool(chroot.command(["dpkg", "--clear-selections"]), what: "dpkg --clear-selections", sources: [])
            try await processes.check(chroot.command(["dpkg", "--set-selections"]), input: Array(selections.utf8))
            do throws(HavelError) {
                try await context.runTool(chroot.command(["dpkg", "--purge", "--pending"]), what: "dpkg --purge --pending", sources: [])
            } catch {
                throw HavelError(.processFailed, "<setsel/>: dpkg could not purge the packages outside the pkg-list; every package the pkg-list's packages depend on must be in the pkg-list (\(error.message))")
            }
        }
        let purged = before.subtracting(try DpkgStatus.read(root: rootfs).map(\.name)).sorted()
        context.log.info("<setsel/>: purged \(purged.count) package\(purged.count == 1 ? "" : "s")\(purged.isEmpty ? "" : ": " + purged.joined(separator: " "))")
    }
}
