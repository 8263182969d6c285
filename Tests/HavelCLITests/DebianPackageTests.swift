// The Debian package as a user meets it: scripts/make-deb.sh packs the havel that `make test-slow` has linked
// with the Swift runtime inside (make static), apt installs the .deb without recommends into a fresh Debian 12
// tree made by mmdebstrap (with man-db), and there havel runs, validates the default example and has its man
// pages. Slow tier: the second, static build of Havel it needs took 480 s of `make test`'s time on its own.
import Debian
import Foundation
import SystemKit
import Testing

enum DebianPackage {
    static let repositoryRoot = CommandTests.repositoryRoot
    static let binary = repositoryRoot + "/.build/static/debug/havel"

    static let missingReason: String? = {
        if ProcessInfo.processInfo.environment["HAVEL_SLOW_TESTS"] != "1" {
            return "the .deb is built and installed by make test-slow (HAVEL_SLOW_TESTS=1), after make static"
        }
        if geteuid() != 0 { return "needs root (mmdebstrap makes a tree, apt installs into it)" }
        for tool in ["mmdebstrap", "dpkg-deb", "dpkg-shlibdeps", "perl", "strip", "lintian"] where ProcessRunner.which(tool) == nil {
            return "needs \(tool) (scripts/setup-host.sh installs it)"
        }
        if !FileManager.default.isExecutableFile(atPath: binary) {
            return "needs .build/static/debug/havel, havel with the Swift runtime linked in (make static; make test-slow builds it first)"
        }
        if !FileManager.default.isExecutableFile(atPath: repositoryRoot + "/.build/debug/generate-manual") {
            return "needs .build/debug/generate-manual (make test builds it: swift build --product generate-manual)"
        }
        guard (try? HostAptSources.primaryMirror()) != nil else { return "needs a Debian mirror in the host's apt sources" }
        return nil
    }()
}

@Suite(.enabled(if: DebianPackage.missingReason == nil, Comment(rawValue: DebianPackage.missingReason ?? "")))
struct DebianPackageTests {
    @Test(.timeLimit(.minutes(30)))
    func theDebInstallsWithAptIntoAFreshDebian12AndRuns() async throws {
        let work = "/var/tmp/havel-deb-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? Command.baseEnvironment["PATH"]!

        let made = try await ProcessRunner.check(Command("bash", [DebianPackage.repositoryRoot + "/scripts/make-deb.sh", DebianPackage.binary, work + "/out"],
                                                         environment: ["PATH": path]))
        let deb = try #require(made.standardOutput.split(separator: "\n").last.map(String.init))
        let version = try await ProcessRunner.check(Command(DebianPackage.binary, ["--version"])).standardOutput
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(deb == "\(work)/out/havel_\(version)_amd64.deb")

        // What it asks for: the tools every build runs; boot checks, the build VM and the rest only recommended;
        // nothing that only Havel's own build and tests need.
        let control = try await ProcessRunner.check(Command("dpkg-deb", ["--field", deb])).standardOutput
        let depends = try #require(control.split(separator: "\n").first { $0.hasPrefix("Depends: ") })
        let recommends = try #require(control.split(separator: "\n").first { $0.hasPrefix("Recommends: ") })
        for tool in ["mmdebstrap", "qemu-user-static", "e2fsprogs", "fdisk", "zstd", "libc6"] {
            #expect(depends.contains(tool), "Depends lacks \(tool)")
        }
        for tool in ["qemu-system-arm", "ovmf", "mtd-utils"] { #expect(recommends.contains(tool), "Recommends lacks \(tool)") }
        for own in ["zlib1g-dev", "libcrypt-dev", "libsqlite3-dev", "pkg-config", "openssl", "busybox", " bc,", "libswift"] {
            #expect(!(depends + ", " + recommends + ",").contains(own), "\(own) is for Havel's own build and tests")
        }
        let listing = try await ProcessRunner.check(Command("dpkg-deb", ["--contents", deb])).standardOutput
        for file in ["./usr/bin/havel", "./usr/share/man/man1/havel.1.gz", "./usr/share/man/man1/havel-build.1.gz",
                     "./usr/share/man/man1/havel-initvm-submit.1.gz", "./usr/share/bash-completion/completions/havel",
                     "./usr/share/zsh/vendor-completions/_havel", "./usr/share/fish/vendor_completions.d/havel.fish",
                     "./lib/systemd/system/havel-daemon.service", "./usr/share/doc/havel/guide.md", "./usr/share/doc/havel/copyright"] {
            #expect(listing.contains(" " + file + "\n") || listing.contains(" " + file + " "), "the package lacks \(file)")
        }

        // lintian: no error or warning; the tags that stay are explained in packaging/lintian-overrides.
        let lintian = try await ProcessRunner.run(Command("lintian", ["--fail-on", "error,warning", deb]))
        #expect(lintian.succeeded, "lintian: \(lintian.standardOutput)\(lintian.standardError)")

        // A fresh Debian 12 with man-db; apt installs the .deb and its Depends from the mirror, no Recommends.
        let tree = work + "/tree"
        let mirror = try HostAptSources.primaryMirror()
        try await ProcessRunner.check(Command("mmdebstrap", [
            "--variant=apt", "--include=man-db", "--architectures=amd64",
            "--customize-hook=copy-in \(deb) /tmp",
            "--customize-hook=chroot \"$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /tmp/\((deb as NSString).lastPathComponent)",
            "bookworm", tree, "deb \(mirror.url) bookworm main",
        ], environment: ["PATH": path]).inPrivateMountNamespace())
        try FileManager.default.copyItem(atPath: DebianPackage.repositoryRoot + "/examples/default.xml", toPath: tree + "/tmp/default.xml")

        // With /proc, as on a running system (the Swift runtime reads a program's arguments from it), in a mount
        // namespace of its own so that nothing stays mounted.
        func inTree(_ arguments: [String]) async throws -> ProcessResult {
            try await ProcessRunner.run(Command("unshare", ["--mount", "--propagation", "private", "--", "sh", "-c",
                                                            "mount -t proc proc \"$0/proc\" && exec chroot \"$0\" \"$@\"", tree] + arguments,
                                               environment: ["MANWIDTH": "100", "MANPAGER": "cat", "PAGER": "cat"]))
        }
        let reported = try await inTree(["havel", "--version"])
        #expect(reported.succeeded && reported.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == version)
        let validated = try await inTree(["havel", "validate", "/tmp/default.xml"])
        #expect(validated.succeeded, "havel validate in the tree: \(validated.standardOutput)\(validated.standardError)")
        #expect((validated.standardOutput + validated.standardError).contains("default.xml: valid"))
        let page = try await inTree(["man", "havel-build"])
        #expect(page.succeeded, "man havel-build: \(page.standardError)")
        #expect(page.standardOutput.contains("havel build") && page.standardOutput.contains("--check-reproducible"))

        // Installed, not started: nothing enables the daemon's unit; recommended packages stay out.
        #expect(FileManager.default.fileExists(atPath: tree + "/lib/systemd/system/havel-daemon.service"))
        #expect(!FileManager.default.fileExists(atPath: tree + "/etc/systemd/system/multi-user.target.wants/havel-daemon.service"))
        #expect(!FileManager.default.fileExists(atPath: tree + "/usr/bin/qemu-system-aarch64"))
        #expect(FileManager.default.fileExists(atPath: tree + "/usr/bin/mmdebstrap"))
    }
}
