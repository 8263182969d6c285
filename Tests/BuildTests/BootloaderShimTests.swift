// Secure Boot's file layout on the ESP (shim, Debian's signed GRUB, MokManager), on a made-up tree: the files
// are placeholders, the real chain is booted by the slow matrix's arm64-efi-shim-secure-boot case.
import Chroot
import Foundation
import HavelCore
import Logging
import SystemKit
import Testing
@testable import Build

@Suite struct BootloaderShimTests {
    func bootloader(_ root: String) throws -> Bootloader {
        let project = Project(name: "p", version: "1", buildtype: "aarch64", architecture: .arm64, suite: "bookworm")
        return Bootloader(project: project, target: try RootedFileSystem(root: root), chroot: ChrootRunner(root: root),
                          log: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
    }

    func tree(signedGrub: Bool) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("havel-shim-\(UUID().uuidString)").path
        var files = ["/usr/lib/shim/shimaa64.efi.signed": "shim", "/usr/lib/shim/mmaa64.efi.signed": "mok"]
        if signedGrub { files["/usr/lib/grub/arm64-efi-signed/grubaa64.efi.signed"] = "signed grub" }
        for (path, content) in files {
            try FileManager.default.createDirectory(atPath: root + (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try content.write(toFile: root + path, atomically: true, encoding: .utf8)
        }
        try FileManager.default.createDirectory(atPath: root + "/boot/efi/EFI/BOOT", withIntermediateDirectories: true)
        return root
    }

    func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    @Test func shimBootsTheSignedGrubBesideItAtTheRemovablePath() throws {
        let root = try tree(signedGrub: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let redirect = "search --no-floppy --label --set=root rfs\nset prefix=($root)/boot/grub\nconfigfile $prefix/grub.cfg\n"
        #expect(try bootloader(root).installShim(removableFile: "BOOTAA64.EFI", redirect: redirect))
        let esp = root + "/boot/efi/EFI"
        #expect(read(esp + "/BOOT/BOOTAA64.EFI") == "shim")
        #expect(read(esp + "/BOOT/grubaa64.efi") == "signed grub")
        #expect(read(esp + "/BOOT/mmaa64.efi") == "mok")
        #expect(read(esp + "/BOOT/grub.cfg") == redirect)
        // The signed GRUB's built-in prefix is EFI/debian on the ESP: its grub.cfg is read first.
        #expect(read(esp + "/debian/grub.cfg") == redirect)
        #expect(read(esp + "/debian/shimaa64.efi") == "shim")
        #expect(read(esp + "/debian/grubaa64.efi") == "signed grub")
    }

    @Test func shimWithoutTheSignedGrubLeavesGrubAlone() throws {
        let root = try tree(signedGrub: false)
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(try !bootloader(root).installShim(removableFile: "BOOTAA64.EFI", redirect: ""))
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/boot/efi/EFI/BOOT").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: root + "/boot/efi/EFI/debian"))
    }
}
