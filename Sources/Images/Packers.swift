import Foundation
import HavelCore
import SystemKit

/// Root filesystem archives from `target/package` (tar, cpio newc, squashfs) and ELBE's packers for
/// finished disk images (`set_packer`: none, gzip, zstd, tar, tarxz, targz, tarzstd, android-sparse;
/// default tarxz).
/// Every output is written under a temporary name and renamed when complete, with entries sorted and
/// times clamped so that equal inputs give equal bytes.
public enum Packers {
    public static let imagePackers = ["none", "gzip", "zstd", "tar", "tarxz", "targz", "tarzstd", "android-sparse"]
    public static let defaultImagePacker = "tarxz"
    /// The packers that gzip (through `Tar.gzip`).
    public static let gzipPackers: Set = ["gzip", "targz"]

    /// The file name a packer gives `name`.
    public static func packedName(_ name: String, packer: String) -> String {
        switch packer {
        case "gzip": name + ".gz"
        case "zstd": name + ".zst"
        case "tar": name + ".tar"
        case "tarxz": name + ".tar.xz"
        case "targz": name + ".tar.gz"
        case "tarzstd": name + ".tar.zst"
        case "android-sparse": name + ".simg"
        default: name
        }
    }

    /// Packs `directory/name` with `packer`, removing the unpacked file unless the packer is `none`.
    /// Returns the packed file's name.
    public static func packImage(_ name: String, in directory: String, packer: String, mtime: Int,
                          processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> String {
        guard imagePackers.contains(packer) else {
            throw HavelError(.invalidProject, "set_packer \(packer) is not supported; use one of: " + imagePackers.joined(separator: ", "))
        }
        if packer == "none" { return name }
        let output = packedName(name, packer: packer)
        let temporary = directory + "/" + output + ".partial"
        let source = directory + "/" + name
        let tar = ["tar", "--sort=name", "--numeric-owner", "--owner=0", "--group=0", "--mtime=@\(mtime)", "--sparse",
                   "-C", directory, "-cf", "-", name]
        func piped(_ line: String) -> Command {
            Command("bash", ["-o", "pipefail", "-c", line + " > " + Command.shellQuote(temporary)])
        }
        let command: Command
        switch packer {
        case "gzip": command = piped(Command.shellLine(Tar.gzip) + " < \(Command.shellQuote(source))")
        case "zstd": command = piped("zstd -T0 -q -c < \(Command.shellQuote(source))")
        case "tar": command = piped(Command.shellLine(tar))
        case "tarxz": command = piped(Command.shellLine(tar) + " | xz -T0 -3 -c")
        case "targz": command = piped(Command.shellLine(tar) + " | " + Command.shellLine(Tar.gzip))
        case "tarzstd": command = piped(Command.shellLine(tar) + " | zstd -T0 -q -c")
        // Android's sparse format, as fastboot flashes it (ELBE's android-sparse packer runs img2simg too).
        default: command = Command("img2simg", [source, temporary])
        }
        let result = try await processes.run(command)
        guard result.succeeded else {
            unlink(temporary)
            throw HavelError(.processFailed, "packing \(name) with \(packer) failed: \(result.standardError.trimmingWhitespace())")
        }
        try AtomicFile.publish(temporary, as: directory + "/" + output)
        unlink(source)
        return output
    }

    /// `target/package/cpio`: a newc archive of the tree, entries sorted and times clamped (GNU tar
    /// writes the sorted, clamped stream; bsdtar turns it into newc without touching the tree).
    public static func cpio(_ rootfs: String, to output: String, mtime: Int, processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) {
        let temporary = output + ".partial"
        let tar = ["tar", "--sort=name", "--numeric-owner", "--mtime=@\(mtime)", "--clamp-mtime", "-C", rootfs, "-cf", "-", "."]
        let line = Command.shellLine(tar) + " | bsdtar --format newc -cf " + Command.shellQuote(temporary) + " @-"
        let result = try await processes.run(Command("bash", ["-o", "pipefail", "-c", line]))
        guard result.succeeded else {
            unlink(temporary)
            throw HavelError(.processFailed, "making the cpio archive \(output) failed: \(result.standardError.trimmingWhitespace())")
        }
        try AtomicFile.publish(temporary, as: output)
    }

    /// `target/package/squashfs`: mksquashfs with fixed times, plus the project's options.
    public static func squashfs(_ rootfs: String, to output: String, options: String?, mtime: Int,
                         processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) {
        let temporary = output + ".partial"
        unlink(temporary)
        var arguments = [rootfs, temporary, "-noappend", "-quiet", "-mkfs-time", String(mtime), "-all-time", String(mtime)]
        if let options { arguments += try ArchiveOptions.squashfs(options) }
        let result = try await processes.run(Command("mksquashfs", arguments))
        guard result.succeeded else {
            unlink(temporary)
            throw HavelError(.processFailed, "mksquashfs \(output) failed: \(result.standardError.trimmingWhitespace())")
        }
        try AtomicFile.publish(temporary, as: output)
    }
}
