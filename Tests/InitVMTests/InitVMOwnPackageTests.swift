import DaemonAPI
import Foundation
import HavelCore
import Testing
@testable import InitVM
import SystemKit
import TestFixtures

/// A product's own packages built in the initvm: `havel initvm submit` of a project whose `<pbuilder>` names
/// two source directories (`<archivedir>`, packed on this side), built there with pbuilder in Build-Depends
/// order into the signed project repository, installed into the target from it; the results, repository
/// included, come back here. Slow tier (make test-slow): under TCG the build chroot alone takes minutes.
@Suite(.serialized, .enabled(if: BootEnvironment.available, BootEnvironment.skipReason),
       .enabled(if: ProcessInfo.processInfo.environment["HAVEL_SLOW_TESTS"] == "1", "the initvm's own-package build runs with HAVEL_SLOW_TESTS=1 (make test-slow)"))
struct InitVMOwnPackageTests {
    static let project = """
        <RootFileSystem xmlns="https://www.linutronix.de/projects/Elbe" revision="6">
          <project>
            <name>havel-initvm-own-packages</name><version>0.1</version><buildtype>amd64</buildtype>
            <mirror><primary_host>MIRROR_HOST</primary_host><primary_path>/debian</primary_path><primary_proto>http</primary_proto></mirror>
            <suite>bookworm</suite>
          </project>
          <target>
            <hostname>own-packages</hostname>
            <debootstrap><variant>minbase</variant></debootstrap>
            <pbuilder><archivedir>hello-prog</archivedir><archivedir>libhello</archivedir></pbuilder>
            <package><tar><name>rootfs.tar.gz</name></tar></package>
            <pkg-list><pkg>hello-prog</pkg></pkg-list>
          </target>
        </RootFileSystem>
        """

    /// A hang guard, not a speed bound.
    @Test(.timeLimit(.minutes(120)))
    func ownPackagesAreBuiltInTheInitVMAndTheirRepositoryComesBack() async throws {
        let havel = try #require(BootEnvironment.daemonHavel)
        let base = try TestDirectory()
        let directory = InitVMDirectory(base.path + "/initvm")
        defer {
            BootEnvironment.killLeftovers(directory)
            base.remove()
        }
        let port = BootEnvironment.freePort()
        let clock = ContinuousClock.now
        let created = try await ProcessRunner.run(Command(havel, ["initvm", "create", "--directory", directory.path, "--port", "\(port)", "--mirror", "host"]))
        try #require(created.succeeded, "\(created.standardError.suffix(3000))")
        let started = try await ProcessRunner.run(Command(havel, ["initvm", "start", "--directory", directory.path, "--wait"]))
        try #require(started.succeeded, "\(started.standardError.suffix(3000))")
        print("initvm (own packages) create + start: \(InitVMTime.seconds(ContinuousClock.now - clock)) s")

        try OwnPackageFixtures.library(in: base.path + "/libhello")
        try OwnPackageFixtures.program(in: base.path + "/hello-prog")
        let projectFile = base.path + "/own.xml"
        try Self.project.write(toFile: projectFile, atomically: true, encoding: .utf8)
        let results = base.path + "/results"
        let submitClock = ContinuousClock.now
        let said = LockedLines()
        let submitted = try await ProcessRunner.stream(Command(havel, [
            "initvm", "submit", "--directory", directory.path, "--output", results, "--keep", projectFile,
        ])) { said.append($0) }
        print("initvm submit with own packages: \(InitVMTime.seconds(ContinuousClock.now - submitClock)) s")
        #expect(submitted == .exited(0), "submit failed:\n\(said.lines.suffix(40).joined(separator: "\n"))")

        // The packages were built in the VM, in Build-Depends order (the library first, though named second).
        let log = try String(contentsOfFile: results + "/log.txt", encoding: .utf8)
        #expect(log.contains("own packages: 2 source(s), native builds with pbuilder"), "\(log.suffix(3000))")
        #expect(log.contains("own packages in build order: libhello, hello-prog"))
        // The signed repository came back and verifies with its exported key.
        let keyring = base.path + "/key.gpg"
        _ = try await ProcessRunner.check(Command("gpg", ["--batch", "--yes", "--dearmor", "-o", keyring, results + "/repo/archive-key.asc"]))
        let verified = try await ProcessRunner.run(Command("gpgv", ["--keyring", keyring, results + "/repo/dists/bookworm/InRelease"]))
        #expect(verified.succeeded, "gpgv: \(verified.standardError)")
        let packages = try String(contentsOfFile: results + "/repo/dists/bookworm/main/binary-amd64/Packages", encoding: .utf8)
        for name in ["libhello1", "libhello-dev", "hello-prog"] {
            #expect(packages.contains("Package: \(name)\n"), "\(name) in the project repository")
        }
        // Installed into the target from there: the program and its library are in the packed tree.
        let listing = try await ProcessRunner.check(Command("tar", ["-tzf", results + "/rootfs.tar.gz"])).standardOutput
        #expect(listing.contains("./usr/bin/hello-prog\n") && listing.contains("./usr/lib/libhello.so.1\n"))

        // It runs in the kept build's tree, inside the VM.
        let kept = said.lines.compactMap { line -> String? in
            line.hasPrefix("kept as project ") ? String(line.dropFirst("kept as project ".count)) : nil
        }.first
        let projectID = try #require(kept, "submit --keep names the project")
        let shell = try await GuestShell(directory: directory)
        defer { shell.finish() }
        let build = "\(InitVMDefaults.guestDataPath)/projects/\(projectID)/build"
        let ran = try await shell.run("havel chroot \(build) -- /usr/bin/hello-prog")
        #expect(ran == .init(status: 0, output: "hello from libhello, hello-prog\n"))
        shell.finish()

        try await InitVMController(directory: directory).destroy()
        #expect(!FileManager.default.fileExists(atPath: directory.path))
    }
}
