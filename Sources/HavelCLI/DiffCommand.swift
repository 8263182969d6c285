// DiffCommand owns `havel diff BUILD_A BUILD_B`: the packages and files in which two builds differ, as
// text or JSON, with diff's exit status (0 equal, 1 different, 2 trouble).

import ArgumentParser
import Build
import Foundation
import HavelCore

struct DiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two build directories: packages added, removed, changed, and files of the two root filesystems.",
        discussion: """
            Packages come from each rootfs's dpkg status (else source.xml); files are compared by type, content \
            (sha256), mode, owner, symlink target and device number, without following symlinks. Exit status: \
            0 the builds are equal, 1 they differ, 2 the comparison failed.
            """)

    @Argument(help: ArgumentHelp("The first build directory.", valueName: "BUILD_A"))
    var first: String

    @Argument(help: ArgumentHelp("The second build directory.", valueName: "BUILD_B"))
    var second: String

    @Flag(name: .long, help: "Print the differences as JSON.")
    var json = false

    func run() async throws {
        let diff: BuildDiff
        do {
            diff = try await BuildDiff.compare(BuildDirectory(first), BuildDirectory(second))
        } catch {
            Terminal.error("havel: \(error)")
            throw ExitCode(2)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            Terminal.out(String(decoding: try encoder.encode(diff), as: UTF8.self))
        } else if !diff.isEmpty {
            Terminal.out(String(diff.text.dropLast()))
        }
        if !diff.isEmpty { throw ExitCode(1) }
    }
}
