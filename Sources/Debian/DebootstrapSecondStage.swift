import Chroot
import Foundation
import HavelCore
import Logging
import SystemKit

/// debootstrap's base system made into what mmdebstrap leaves: the project's apt sources, preferences and
/// keys in the tree, then apt inside it for the pkg-list (with update-initramfs deferred and the <preseed>
/// answers given), the package cache linked in and the new packages linked back out, apt's lists kept
/// where the install record reads them and removed from the tree.
public struct DebootstrapSecondStage: Sendable {
    public let request: BootstrapRequest
    public let rootfs: String
    /// The pkg-list.
    public let packages: [String]
    public let processes: any ProcessRunning
    public let log: Logger

    public init(request: BootstrapRequest, rootfs: String, packages: [String], processes: any ProcessRunning,
                log: Logger) {
        self.request = request
        self.rootfs = rootfs
        self.packages = packages
        self.processes = processes
        self.log = log
    }

    /// `runTool` runs apt and friends with their output in the build log and explains a failure.
    public func run(_ runTool: (Command, String) async throws(HavelError) -> Void) async throws(HavelError) {
        let target = try RootedFileSystem(root: rootfs)
        try target.writeFile("/etc/apt/sources.list", contents: Array((request.sourceLines.joined(separator: "\n") + "\n").utf8), mode: 0o644)
        if !request.preferences.isEmpty {
            try target.writeFile("/etc/apt/preferences.d/havel", contents: Array(request.preferences.utf8), mode: 0o644)
        }
        for key in request.keys {
            try target.writeFile("/etc/apt/trusted.gpg.d/" + key.fileName, contents: Array(key.armored.utf8), mode: 0o644)
        }
        // apt inside the tree: cached packages linked in, new ones linked back out.
        let archives = try target.resolve("/var/cache/apt/archives")
        _ = try await processes.run(Command("sh", ["-c", "cp -l -n \"$1\"/*.deb \"$2\"/ 2>/dev/null || cp -n \"$1\"/*.deb \"$2\"/ 2>/dev/null; true", "sh",
                                                   request.packageCache, archives]))
        try await ChrootExcursions.during(target, log: log) { () async throws(HavelError) in
            let chroot = ChrootRunner(root: rootfs, processes: processes)
            let recommends = "APT::Install-Recommends=\(request.installRecommends ? "true" : "false")"
            try await runTool(chroot.command(["/bin/sh", "-c", InitramfsDeferral.deferScript(inChroot: true)]), "deferring update-initramfs")
            if !request.debconfSelections.isEmpty {
                // debootstrap has configured its base already; the pkg-list's packages find the answers.
                let answers = DebconfSelection.selections(request.debconfSelections)
                log.info("debconf answers from <preseed>: \(request.debconfSelections.map(\.key).joined(separator: ", "))")
                let result = try await processes.run(chroot.command(["debconf-set-selections"]), input: Array(answers.utf8))
                guard result.termination == .exited(0) else {
                    throw HavelError(.processFailed, "debconf-set-selections refused the <preseed> answers: " + result.standardError.trimmingWhitespace())
                }
            }
            for architecture in request.foreignArchitectures {
                try await runTool(chroot.command(["dpkg", "--add-architecture", architecture]), "dpkg --add-architecture \(architecture)")
            }
            try await runTool(chroot.command(["apt-get", "-o", "Acquire::Retries=3", "update"]), "apt-get update")
            if !packages.isEmpty {
                try await runTool(chroot.command(["apt-get", "-y", "-o", recommends, "install"] + packages), "apt-get install")
            }
        }
        let lists = try target.resolve("/var/lib/apt/lists")
        try await processes.check(Command("sh", ["-c", """
            set -e
            cp -l -n "$1"/*.deb "$2"/ 2>/dev/null || cp -n "$1"/*.deb "$2"/ 2>/dev/null || true
            mkdir -p "$3/var/lib/apt/lists"
            cp "$4"/*_Packages "$3/var/lib/apt/lists/"
            for release in "$4"/*_InRelease "$4"/*_Release; do [ ! -f "$release" ] || cp "$release" "$3/var/lib/apt/lists/"; done
            rm -f "$1"/*.deb
            find "$4" -mindepth 1 -maxdepth 1 ! -name lock ! -name partial -exec rm -rf {} +
            """, "sh", archives, request.packageCache, request.listsDirectory, lists]))
    }
}
