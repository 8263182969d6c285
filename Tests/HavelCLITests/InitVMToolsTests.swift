// The initvm's package list against the tools Havel's build stages check for: a project submitted to the
// initvm must not fail there for a tool the host's build would have found.

@testable import Build
@testable import Images
import InitVM
import Testing

@Suite struct InitVMToolsTests {
    /// In every tree mmdebstrap makes (Essential or Priority required), so not named in the list.
    static let inEveryDebian: Set<String> = ["coreutils", "tar", "bash", "dash", "mount", "util-linux", "apt", "passwd", "gzip"]

    @Test func theInitVMHasThePackageOfEveryToolABuildChecksFor() {
        var needed = OwnPackageBuilds.hostTools.map(\.package) + MtdPlan.tools.map(\.package) + CheckHostStage.cdromTools.map(\.package)
        needed += FilesystemKind.allCases.flatMap { $0.tools.map(\.package) }
        // Checked where they are used, not in a list: the source CD's downloads (curl), the android-sparse
        // packer (img2simg), the partition table, the bootstrap tools and qemu-user.
        needed += ["curl", "android-sdk-libsparse-utils", "fdisk", "zstd", Tar.gzip[0], "mmdebstrap", "debootstrap", "qemu-user-static"]
        let present = Set(ImageRecipe.basePackages)
        var missing = Set(needed).subtracting(present).subtracting(Self.inEveryDebian)
        // gnupg is a metapackage: of its parts, the signing key's generation needs gpg and gpg-agent (found
        // missing when a <pbuilder> project was first submitted: "gpg: failed to start agent").
        if missing.contains("gnupg"), present.isSuperset(of: ["gpg", "gpg-agent"]) { missing.remove("gnupg") }
        #expect(missing.isEmpty, "not in the initvm: \(missing.sorted())")
    }
}
