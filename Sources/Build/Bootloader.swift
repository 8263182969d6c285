import Logging
import Foundation
import HavelCore
import Chroot
import Images
import SystemKit

/// GRUB for images with `<grub-install/>`, without loop devices or mounts. As ELBE does, the target's
/// installed packages decide which: `grub-pc` gives BIOS (amd64, i386), `grub-efi-<arch>-bin` gives EFI at
/// the removable path (`EFI/BOOT/BOOTX64.EFI`, `BOOTIA32.EFI`, `BOOTAA64.EFI` for arm64, `BOOTARM.EFI`,
/// `BOOTRISCV64.EFI`), or shim with Debian's signed GRUB where the target has both (`installShim`). Everything
/// GRUB needs is made inside the target with the
/// target's own grub-mkimage: the modules under /boot/grub, a grub.cfg that finds its filesystems by
/// label, and a core image. For BIOS, the core image and GRUB's boot sector are then written into the
/// finished disk image (the gap before the first partition, or a GPT biosgrub partition), patched as
/// grub-bios-setup would.
struct Bootloader {
    let project: Project
    let target: RootedFileSystem
    let chroot: ChrootRunner
    let log: Logger

    enum Firmware { case bios, efi }

    /// What the target has installed for GRUB.
    func firmwares() -> [Firmware] {
        var result: [Firmware] = []
        // grub-pc installed, not only grub-pc-bin; a tightened or dieted target has no dpkg database, so its
        // pkg-list (the only packages it keeps, with diet their dependencies) says.
        let grubPC = target.exists("/var/lib/dpkg/info/grub-pc.list")
            || (project.target.minimisation != nil && project.target.packages.contains { $0.name == "grub-pc" })
        if target.exists("/usr/lib/grub/i386-pc/boot.img") && grubPC { result.append(.bios) }
        if let efi = efiPlatform, target.exists("/usr/lib/grub/\(efi.platform)/normal.mod") { result.append(.efi) }
        return result
    }

    /// GRUB's EFI platform for the project's architecture and the file name UEFI boots from removable media.
    var efiPlatform: (platform: String, file: String)? {
        switch project.architecture {
        case .amd64: ("x86_64-efi", "BOOTX64.EFI")
        case .i386: ("i386-efi", "BOOTIA32.EFI")
        case .arm64: ("arm64-efi", "BOOTAA64.EFI")
        case .armhf, .armel: ("arm-efi", "BOOTARM.EFI")
        case .riscv64: ("riscv64-efi", "BOOTRISCV64.EFI")
        default: nil
        }
    }

    /// The fstab label holding `path` (the deepest mountpoint above it) and the path inside that filesystem.
    func filesystem(holding path: String) -> (label: String, inner: String)? {
        let candidates = project.target.fstab.compactMap { entry -> (String, String)? in
            guard let label = entry.label else { return nil }
            let mount = entry.mountpoint
            if mount == "/" { return (label, path) }
            if path == mount || path.hasPrefix(mount + "/") { return (label, String(path.dropFirst(mount.count))) }
            return nil
        }
        return candidates.max { $0.1.count > $1.1.count }.map { (label: $0.0, inner: $0.1.isEmpty ? "/" : $0.1) }
    }

    /// Prepares the tree: modules, grub.cfg and, for EFI, the EFI binary. Returns the BIOS core image
    /// (a host path in the work directory) when the target uses BIOS.
    func prepare(work: String) async throws(HavelError) -> String? {
        let firmwares = firmwares()
        guard !firmwares.isEmpty else {
            log.warning("<grub-install/> is set but the target has neither grub-pc nor grub-efi installed; add one to the pkg-list")
            return nil
        }
        guard let grubFS = filesystem(holding: "/boot/grub"), let rootFS = filesystem(holding: "/") else {
            throw HavelError(.invalidProject, "grub-install needs fstab entries by label for / (and /boot if it is separate)")
        }
        let kernels = (try target.glob("/boot/vmlinuz-*")).sorted()
        guard let kernel = kernels.last else {
            throw HavelError(.invalidProject, "grub-install: the target has no kernel in /boot; add a linux-image package to the pkg-list")
        }
        let version = String((kernel as NSString).lastPathComponent.dropFirst("vmlinuz-".count))
        guard let kernelFS = filesystem(holding: "/boot/vmlinuz-\(version)") else {
            throw HavelError(.invalidProject, "grub-install: no fstab entry holds /boot")
        }
        let bootPrefix = kernelFS.inner.hasPrefix("/boot/") ? "/boot" : ""
        var cmdline = "root=LABEL=\(rootFS.label) ro"
        var serial = ""
        if let console = project.target.console {
            let parts = console.split(separator: ",")
            let speed = parts.count > 1 ? String(parts[1]) : "115200"
            cmdline += " console=\(console)"
            if let unit = parts.first?.dropFirst("ttyS".count), parts.first?.hasPrefix("ttyS") == true, let number = Int(unit) {
                serial = "serial --unit=\(number) --speed=\(speed)\nterminal_input serial console\nterminal_output serial console\n"
            }
        }
        let initrd = target.exists("/boot/initrd.img-\(version)") ? "    initrd \(bootPrefix)/initrd.img-\(version)\n" : ""
        let config = """
        # Written by Havel for <grub-install/>: the filesystems are found by their labels.
        set timeout=2
        set default=0
        \(serial)search --no-floppy --label --set=root \(kernelFS.label)
        menuentry 'Debian GNU/Linux, \(version)' {
            linux \(bootPrefix)/vmlinuz-\(version) \(cmdline)
        \(initrd)}

        """
        try target.createDirectory("/boot/grub")
        try target.writeFile("/boot/grub/grub.cfg", contents: Array(config.utf8), mode: 0o644)
        let early = "search --no-floppy --label --set=root \(grubFS.label)\nset prefix=($root)\(grubFS.inner)\n"
        try target.writeFile("/boot/grub/havel-early.cfg", contents: Array(early.utf8), mode: 0o644)

        var core: String?
        for firmware in firmwares {
            switch firmware {
            case .bios:
                try await copyModules("i386-pc")
                try await chroot.check(["grub-mkimage", "-O", "i386-pc", "-o", "/boot/grub/i386-pc/havel-core.img",
                                        "-c", "/boot/grub/havel-early.cfg", "-p", "/boot/grub",
                                        "biosdisk", "part_msdos", "part_gpt", "ext2", "fat", "search", "search_label", "configfile", "normal"],
                                       what: "grub-mkimage (BIOS)", onLine: log.tool)
                let host = work + "/havel-core.img"
                try? FileManager.default.removeItem(atPath: host)
                try target.exportItem("/boot/grub/i386-pc/havel-core.img", toHost: host)
                core = host
                log.info("GRUB for BIOS: core image \(ByteCount.format(UInt64((try? FileManager.default.attributesOfItem(atPath: host)[.size] as? Int) ?? 0)))")
            case .efi:
                guard let (platform, file) = efiPlatform else { continue }
                guard filesystem(holding: "/boot/efi")?.inner == "/" || project.target.fstab.contains(where: { $0.mountpoint == "/boot/efi" }) else {
                    throw HavelError(.invalidProject, "grub-install for EFI needs a vfat partition mounted at /boot/efi")
                }
                try await copyModules(platform)
                try target.createDirectory("/boot/efi/EFI/BOOT")
                if try installShim(removableFile: file, redirect: early + "configfile $prefix/grub.cfg\n") { continue }
                try await chroot.check(["grub-mkimage", "-O", platform, "-o", "/boot/efi/EFI/BOOT/\(file)",
                                        "-c", "/boot/grub/havel-early.cfg", "-p", "/boot/grub",
                                        "part_msdos", "part_gpt", "ext2", "fat", "search", "search_label", "configfile", "normal",
                                        "efi_gop", "linux"],
                                       what: "grub-mkimage (EFI)", onLine: log.tool)
                log.info("GRUB for EFI: /boot/efi/EFI/BOOT/\(file)")
            }
        }
        return core
    }

    /// Debian's suffix of shim's and the signed GRUB's file names where Debian signs them (`shimaa64.efi`).
    var shimSuffix: String? {
        switch project.architecture {
        case .amd64: "x64"
        case .i386: "ia32"
        case .arm64: "aa64"
        default: nil
        }
    }

    /// Secure Boot, as ELBE sets it up when the target has shim-signed and grub-efi-<arch>-signed: the removable
    /// path boots Debian's shim (signed with the UEFI CA), which loads Debian's signed GRUB beside it
    /// (`grubaa64.efi`), with MokManager (`mmaa64.efi`) where shim-helpers is installed. The signed GRUB is one
    /// image with its modules inside; its own configuration reads `EFI/debian/grub.cfg` on the ESP (and the
    /// directory it was started from), which Havel writes to find /boot/grub by label. `EFI/debian` holds the
    /// same files as Debian's grub-install puts there. False (nothing done) without both packages; with shim
    /// alone the build warns and boots GRUB unsigned.
    func installShim(removableFile: String, redirect: String) throws(HavelError) -> Bool {
        guard let suffix = shimSuffix, let (platform, _) = efiPlatform else { return false }
        let shim = "/usr/lib/shim/shim\(suffix).efi.signed"
        let grub = "/usr/lib/grub/\(platform)-signed/grub\(suffix).efi.signed"
        guard target.exists(shim) else { return false }
        guard target.exists(grub) else {
            let package = "grub-efi-\(project.architecture?.debianName ?? "")-signed"
            log.warning("shim-signed is installed but \(package) is not: the image boots GRUB directly from EFI/BOOT/\(removableFile), which Secure Boot refuses; add \(package) to the pkg-list for Secure Boot")
            return false
        }
        let mokManager = "/usr/lib/shim/mm\(suffix).efi.signed"
        try target.createDirectory("/boot/efi/EFI/debian")
        for directory in ["/boot/efi/EFI/BOOT", "/boot/efi/EFI/debian"] {
            try target.copy(from: grub, to: "\(directory)/grub\(suffix).efi")
            if target.exists(mokManager) { try target.copy(from: mokManager, to: "\(directory)/mm\(suffix).efi") }
            try target.writeFile("\(directory)/grub.cfg", contents: Array(redirect.utf8), mode: 0o644)
        }
        try target.copy(from: shim, to: "/boot/efi/EFI/BOOT/\(removableFile)")
        try target.copy(from: shim, to: "/boot/efi/EFI/debian/shim\(suffix).efi")
        let mokNote = target.exists(mokManager) ? ", MokManager as mm\(suffix).efi" : ""
        log.info("Secure Boot: shim as /boot/efi/EFI/BOOT/\(removableFile), Debian's signed GRUB as grub\(suffix).efi beside it\(mokNote)")
        return true
    }

    func copyModules(_ platform: String) async throws(HavelError) {
        try await chroot.check(["sh", "-c", "mkdir -p /boot/grub/\(platform) && cp /usr/lib/grub/\(platform)/*.mod /usr/lib/grub/\(platform)/*.lst /boot/grub/\(platform)/"],
                               what: "copying GRUB modules", onLine: log.tool)
    }

    /// Writes GRUB's boot sector and the core image into a finished disk image, as grub-bios-setup would.
    static func installBIOS(core: String, image: String, built: BuiltImage, target: RootedFileSystem, log: Logger) throws(HavelError) {
        guard let coreData = FileManager.default.contents(atPath: core),
              let bootData = try? target.readFile("/usr/lib/grub/i386-pc/boot.img"), bootData.count == 512 else {
            throw HavelError(.notFound, "GRUB's boot.img or the core image is missing")
        }
        let sectors = UInt64((coreData.count + 511) / 512)
        // Where the core image goes: a biosgrub partition (GPT) or the gap before the first partition (msdos).
        let start: UInt64
        if let biosgrub = built.partitions.first(where: { $0.type.uppercased() == "21686148-6449-6E6F-744E-656564454649" }) {
            guard biosgrub.sectorCount >= sectors else {
                throw HavelError(.invalidProject, "the biosgrub partition (\(biosgrub.sectorCount) sectors) is smaller than GRUB's core image (\(sectors) sectors)")
            }
            start = biosgrub.startSector
        } else {
            guard built.table == "dos" else {
                throw HavelError(.invalidProject, "GRUB for BIOS on a GPT disk needs a partition with <biosgrub/>")
            }
            let first = built.partitions.map(\.startSector).min() ?? 2048
            guard first > sectors else {
                throw HavelError(.invalidProject, "GRUB's core image (\(sectors) sectors) does not fit before the first partition (sector \(first)); raise first_partition_sector")
            }
            start = 1
        }
        var boot = [UInt8](bootData)
        // boot.img: the LBA of the core image (offset 0x5c), and nops over the boot drive check (0x66),
        // as grub-bios-setup does for hard disks.
        for i in 0..<8 { boot[0x5c + i] = UInt8((start >> (8 * UInt64(i))) & 0xff) }
        boot[0x66] = 0x90
        boot[0x67] = 0x90
        var corePatched = [UInt8](coreData)
        // The first sector of core.img (diskboot) ends with a blocklist: where the rest of the core is.
        let list = 0x200 - 12
        let rest = start + 1
        for i in 0..<8 { corePatched[list + i] = UInt8((rest >> (8 * UInt64(i))) & 0xff) }
        let count = UInt16(sectors - 1)
        corePatched[list + 8] = UInt8(count & 0xff)
        corePatched[list + 9] = UInt8(count >> 8)
        guard let handle = FileHandle(forUpdatingAtPath: image) else { throw HavelError(.io, "cannot open \(image)") }
        defer { try? handle.close() }
        do {
            // Only the boot code: the partition table and signature (bytes 440-511) stay as sfdisk wrote them.
            try handle.seek(toOffset: 0)
            handle.write(Data(boot[0..<440]))
            try handle.seek(toOffset: start * 512)
            handle.write(Data(corePatched))
        } catch {
            throw HavelError(.io, "cannot write GRUB into \(image): \(error.localizedDescription)")
        }
        log.info("GRUB for BIOS written into \((image as NSString).lastPathComponent): core image at sector \(start)")
    }
}
