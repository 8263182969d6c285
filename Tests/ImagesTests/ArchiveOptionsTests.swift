import Foundation
import HavelCore
import SystemKit
import Testing
@testable import Images

/// `<tar><options>` and `<squashfs><options>`: what is passed on, what is refused, and that tar really
/// applies what is passed on.
@Suite struct ArchiveOptionsTests {
    @Test func tarOptionsThatChooseWhatIsPackedArePassedOn() throws {
        #expect(try ArchiveOptions.tar("--exclude='./var/cache/apt/*' --one-file-system --owner=0") ==
                ["--exclude=./var/cache/apt/*", "--one-file-system", "--owner=0"])
        #expect(try ArchiveOptions.tar("") == [])
        for refused in ["--to-command=id", "-T /etc/shadow", "--files-from=/etc/shadow", "--exclude-from=/etc/shadow",
                        "--use-compress-program=sh", "-C /", "--exclude=", "--checkpoint-action=exec=id"] {
            #expect(throws: HavelError.self, "\(refused)") { try ArchiveOptions.tar(refused) }
        }
    }

    @Test func squashfsOptionsThatReachTheHostAreRefused() throws {
        #expect(try ArchiveOptions.squashfs("-comp xz -b 1M -Xbcj x86 -no-xattrs -e var/cache tmp -all-root") ==
                ["-comp", "xz", "-b", "1M", "-Xbcj", "x86", "-no-xattrs", "-e", "var/cache", "tmp", "-all-root"])
        for refused in ["-pf /etc/shadow", "-p 'f 644 0 0 cat /etc/shadow'", "-ef /etc/shadow", "-sort /etc/shadow",
                        "-action-file /x", "-comp", "-comp -b", "-mkfs-time 0", "-e a -pf /x"] {
            #expect(throws: HavelError.self, "\(refused)") { try ArchiveOptions.squashfs(refused) }
        }
        do {
            _ = try ArchiveOptions.squashfs("-pf /etc/shadow")
        } catch {
            #expect(error.message.hasPrefix("mksquashfs option \"-pf\" is not passed on"), "\(error.message)")
        }
    }

    @Test func tarAppliesTheExclusions() async throws {
        let base = FileManager.default.temporaryDirectory.path + "/havel-archive-options-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        try FileManager.default.createDirectory(atPath: base + "/tree/var/cache/apt", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: base + "/tree/etc", withIntermediateDirectories: true)
        try "cache".write(toFile: base + "/tree/var/cache/apt/pkgcache.bin", atomically: true, encoding: .utf8)
        try "host".write(toFile: base + "/tree/etc/hostname", atomically: true, encoding: .utf8)
        try await Tar.pack(base + "/tree", to: base + "/out.tar", mtimeClamp: 1_700_000_000,
                           options: try ArchiveOptions.tar("--exclude=./var/cache/apt/*"))
        let listing = try await ProcessRunner.check(Command("tar", ["-tf", base + "/out.tar"])).standardOutput
        #expect(listing.contains("./etc/hostname"))
        #expect(listing.contains("./var/cache/apt/\n"), "the directory stays, its content goes: \(listing)")
        #expect(!listing.contains("pkgcache.bin"), "\(listing)")
    }
}
