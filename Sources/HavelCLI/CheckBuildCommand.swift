// CheckBuildCommand owns `havel check-build BUILDDIR [FILE]`: a finished build verified after the fact
// (`BuildCheck`), as ELBE's `check-build`: its CDs, its SBOM and, given the project file, a rebuild from the
// binary CD, and its SDK installers. One line per check; exit 1 when one fails.

import ArgumentParser
import Build
import Foundation
import HavelCore

struct CheckBuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-build",
        abstract: "Verify a finished build: its binary and source CDs, its SBOM, its SDK, and (given FILE) a rebuild from its binary CD.",
        discussion: """
            binary CD: bin-cdrom.iso's signature, and every .deb exactly a package of source.xml at its sha256. \
            source CD: every installed package's source on src-cdrom.iso or named in src-cdrom-missing.txt. \
            SBOM: valid CycloneDX 1.6 and SPDX 2.3 (with the validators scripts/setup-host.sh installs), covering \
            every package. sdk: each setup-havel-sdk-*.sh installed into a scratch directory, a hello-world \
            cross-built with it (CMake from the SDK) and run against its sysroot (qemu-user for a foreign target). rebuild (with FILE, as root): the project built again from bin-cdrom.iso alone must give \
            the same rootfs archive and images. A check whose input the build lacks is skipped, and says so. \
            Exit status: 0 every check passed or was skipped, 1 one failed.
            """)

    @Argument(help: ArgumentHelp("A finished build directory.", valueName: "BUILDDIR"))
    var directory: String

    @Argument(help: ArgumentHelp("The project file the build was made from: also rebuild from the binary CD and compare.", valueName: "FILE"))
    var file: String?

    @OptionGroup var read: ProjectReadOptions
    @OptionGroup var mirrorOptions: MirrorOptions

    @Option(name: .long, help: ArgumentHelp("Where the rebuild goes (default: BUILDDIR.rebuild; replaced).", valueName: "DIR"))
    var rebuildDirectory: String?

    @Option(name: .long, help: ArgumentHelp("Havel's cache for the rebuild (its package cache is not read: the CD is the source).", valueName: "DIR"))
    var cache: String = HavelCache.defaultPath

    @Option(name: .long, help: ArgumentHelp("The Python with cyclonedx-python-lib and spdx-tools.", valueName: "PATH"))
    var validatorPython: String = BuildCheck.defaultValidatorPython

    func run() async throws {
        let build = BuildDirectory(directory)
        var results = [await BuildCheck.binaryCdrom(build), await BuildCheck.sourceCdrom(build),
                       await BuildCheck.sbom(build, python: validatorPython), await BuildCheck.sdk(build)]
        if let file {
            let project = try await BuildCommand.loadOnClient(file, options: read.loaderOptions(hashPasswords: true), mirror: mirrorOptions.mirror)
            let again = BuildDirectory(rebuildDirectory ?? build.path + ".rebuild")
            results.append(await BuildCheck.rebuild(build, project: project, into: again, cache: HavelCache(path: cache),
                                                    havelVersion: HavelVersion.current, logger: CLILogging.buildLogger(.quiet)))
        } else {
            results.append(BuildCheckResult(check: "rebuild", outcome: .skipped, detail: "give the project file to rebuild from the binary CD"))
        }
        for result in results {
            Terminal.out("\(result.outcome.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0)) \(result.check)" + (result.detail.isEmpty ? "" : ": \(result.detail)"))
        }
        if results.contains(where: { $0.outcome == .failed }) { throw ExitCode(1) }
    }
}
