// Tests of the <tighten/> and <diet/> file selection rules on a small fixture tree with dpkg's database
// (status and info/*.list files) and a merged /usr (bin and lib as links into usr).
import Foundation
@testable import Debian
import HavelCore
import SystemKit
import Testing

struct TargetFileSelectionTests {
    static let status = """
        Package: less
        Status: install ok installed
        Version: 590-2
        Depends: libc6 (>= 2.34), libtinfo6 (>= 6), pager-virtual | mailx, gone

        Package: libtinfo6
        Status: install ok installed
        Architecture: amd64
        Multi-Arch: same
        Version: 6.4-4
        Depends: libc6:any (>= 2.34)

        Package: libc6
        Status: install ok installed
        Version: 2.36-9
        Depends: libgcc-s1
        Pre-Depends: gcc-12-base [amd64]

        Package: libgcc-s1
        Status: install ok installed
        Version: 12.2.0-14
        Depends: libc6 (>= 2.35)

        Package: gcc-12-base
        Status: install ok installed
        Version: 12.2.0-14

        Package: dpkg
        Status: install ok installed
        Version: 1.21.22
        Pre-Depends: libc6, tar

        Package: tar
        Status: install ok installed
        Version: 1.34

        Package: gone
        Status: deinstall ok config-files
        Version: 1.0
        Depends: tar

        """

    /// A tree: /bin → usr/bin, /lib → usr/lib; less with a conffile and a link into dpkg's files; libtinfo6
    /// listed under its :amd64 name; /etc/passwd and an alternatives link owned by nobody.
    static func makeTree() throws -> (RootedFileSystem, String) {
        let root = NSTemporaryDirectory() + "havel-selection-\(UUID().uuidString.prefix(8))"
        let fm = FileManager.default
        for directory in ["usr/bin", "usr/lib/x86_64-linux-gnu", "var/lib/dpkg/info", "etc/alternatives", "etc/dpkg"] {
            try fm.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
        }
        try fm.createSymbolicLink(atPath: root + "/bin", withDestinationPath: "usr/bin")
        try fm.createSymbolicLink(atPath: root + "/lib", withDestinationPath: "usr/lib")
        func write(_ path: String, _ text: String) throws { try text.write(toFile: root + path, atomically: false, encoding: .utf8) }
        try write("/var/lib/dpkg/status", status)
        try write("/usr/bin/less", "less")
        try write("/usr/bin/dpkg", "dpkg")
        try write("/usr/bin/dpkg-helper", "helper")
        try fm.createSymbolicLink(atPath: root + "/usr/bin/lessfile", withDestinationPath: "dpkg-helper")
        try write("/usr/lib/x86_64-linux-gnu/libtinfo.so.6", "tinfo")
        try write("/etc/less.conf", "conf")
        try write("/etc/dpkg/dpkg.cfg", "cfg")
        try write("/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
        try write("/etc/dpkg/unowned.cfg", "made by a maintainer script")
        try fm.createSymbolicLink(atPath: root + "/etc/alternatives/pager", withDestinationPath: "/usr/bin/less")
        try write("/var/lib/dpkg/info/less.list", "/.\n/bin\n/bin/less\n/etc\n/etc/less.conf\n/usr\n/usr/bin\n/usr/bin/lessfile\n/usr/share/doc/less/missing\n")
        try write("/var/lib/dpkg/info/less.conffiles", "/etc/less.conf\n")
        try write("/var/lib/dpkg/info/libtinfo6:amd64.list", "/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libtinfo.so.6\n")
        try write("/var/lib/dpkg/info/dpkg.list", "/.\n/etc\n/etc/dpkg\n/etc/dpkg/dpkg.cfg\n/usr/bin/dpkg\n/usr/bin/dpkg-helper\n")
        return (try RootedFileSystem(root: root), root)
    }

    @Test func dietFollowsDependsAndPreDependsOfInstalledPackagesOnly() throws {
        let closure = TargetFileSelection.dependencyClosure(of: ["less"], status: Self.status)
        #expect(closure == ["less", "libtinfo6", "libc6", "libgcc-s1", "gcc-12-base"])
        // A named package that is not installed counts, with nothing behind it.
        #expect(TargetFileSelection.dependencyClosure(of: ["gone"], status: Self.status) == ["gone"])
    }

    @Test func dependencyFieldsGiveEveryAlternativeWithoutVersionsOrArchitectures() {
        #expect(TargetFileSelection.dependencyNames("libc6:any (>= 2.34), a | b (<< 2) [amd64], c<!nocheck>") == ["libc6", "a", "b", "c"])
        #expect(TargetFileSelection.dependencyNames(nil).isEmpty)
    }

    @Test func tightenListsTheChosenPackagesFilesAndConffilesUnderBothNames() throws {
        let (tree, root) = try Self.makeTree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let selection = TargetFileSelection(tree: tree, architecture: "amd64")
        let paths = try selection.listedPaths(of: ["less", "libtinfo6"])
        #expect(paths.contains("/etc/less.conf"))
        #expect(paths.contains("/lib/x86_64-linux-gnu/libtinfo.so.6"))
        #expect(!paths.contains("/."))
        #expect(!paths.contains("/usr/bin/dpkg"))
    }

    @Test func entriesResolveLinksOnTheWayAndKeepWhatALinkPointsTo() throws {
        let (tree, root) = try Self.makeTree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let selection = TargetFileSelection(tree: tree, architecture: "amd64")
        let entries = selection.entries(for: try selection.listedPaths(of: ["less", "libtinfo6"]))
        // /bin/less lies under the /bin link: the link, its target directory and the real file are kept.
        for kept in ["/bin", "/lib", "/usr", "/usr/bin", "/usr/bin/less", "/usr/lib/x86_64-linux-gnu/libtinfo.so.6",
                     "/etc", "/etc/less.conf", "/usr/bin/lessfile", "/usr/bin/dpkg-helper"] {
            #expect(entries.contains(kept), "\(kept) kept")
        }
        #expect(!entries.contains("/bin/less"))
        #expect(!entries.contains("/usr/bin/dpkg"))
        #expect(!entries.contains("/etc/dpkg/dpkg.cfg"))
        #expect(!entries.contains { $0.hasPrefix("/usr/share") }, "a listed file that is missing is skipped")
        #expect(entries == entries.sorted())
    }

    @Test func unownedEtcEntriesAreKeptAsTheyAreWithoutFollowingLinks() throws {
        let (tree, root) = try Self.makeTree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let selection = TargetFileSelection(tree: tree, architecture: "amd64")
        let unowned = selection.unownedEntries(under: "/etc", owned: try selection.ownedPaths(), kept: [])
        #expect(unowned == ["/etc/alternatives", "/etc/alternatives/pager", "/etc/passwd"])
        // An unowned file in the directory of a package left out goes with it; in a kept one it stays.
        #expect(selection.unownedEntries(under: "/etc", owned: try selection.ownedPaths(), kept: ["/etc/dpkg"]).contains("/etc/dpkg/unowned.cfg"))
        let entries = selection.entries(for: unowned, followingFinalLinks: false)
        #expect(entries.contains("/etc/alternatives/pager"))
        #expect(!entries.contains("/usr/bin/less"))
    }
}
