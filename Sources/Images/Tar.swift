import Foundation
import HavelCore
import SystemKit

/// Packing and unpacking trees with GNU tar: numeric owners, extended attributes (file capabilities),
/// entries sorted by name and times clamped, so that equal trees give equal archives.
public enum Tar {
    /// Compression chosen by the file name: .tar.zst/.tzst, .tar.gz/.tgz, .tar.xz/.txz, .tar.bz2, .tar.
    public static func compressor(for name: String) -> [String]? {
        if name.hasSuffix(".tar.zst") || name.hasSuffix(".tzst") { return ["zstd", "-T0", "-q", "-3", "-c"] }
        if name.hasSuffix(".tar.gz") || name.hasSuffix(".tgz") { return gzip }
        if name.hasSuffix(".tar.xz") || name.hasSuffix(".txz") { return ["xz", "-T0", "-c"] }
        if name.hasSuffix(".tar.bz2") { return ["bzip2", "-c"] }
        if name.hasSuffix(".tar") { return [] }
        return nil
    }

    /// gzip output: pigz writes the same bytes whatever the number of threads it uses (so every host writes the
    /// same file), uses every core, and on one core is still faster than gzip; `-n` stores no name or time.
    public static let gzip = ["pigz", "-n", "-c"]

    /// Whether writing `name` runs `gzip` (the build's host check asks for pigz then).
    public static func compressesWithGzip(_ name: String) -> Bool { compressor(for: name) == gzip }

    /// Packs `directory` into `output` (written to a temporary name, renamed when complete).
    public static func pack(_ directory: String, to output: String, mtimeClamp: Int?, options: [String] = [],
                            processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) {
        guard let compressor = compressor(for: output) else {
            throw HavelError(.invalidProject, "\((output as NSString).lastPathComponent): unknown archive type; name it .tar, .tar.gz, .tar.xz, .tar.bz2 or .tar.zst")
        }
        let temporary = output + ".partial"
        // Extended attributes need pax headers, which record atime and ctime unless told not to.
        var tar = ["tar", "--sort=name", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls",
                   "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"]
        if let clamp = mtimeClamp { tar += ["--mtime=@\(clamp)", "--clamp-mtime"] }
        tar += options + ["-C", directory, "-cf", "-", "."]
        let pipeline = compressor.isEmpty ? Command.shellLine(tar) + " > " + Command.shellQuote(temporary) :
            Command.shellLine(tar) + " | " + Command.shellLine(compressor) + " > " + Command.shellQuote(temporary)
        let result = try await processes.run(Command("bash", ["-o", "pipefail", "-c", pipeline]))
        guard result.succeeded else {
            unlink(temporary)
            throw HavelError(.processFailed, "packing \(directory) into \(output) failed: \(result.standardError.trimmingWhitespace())")
        }
        try AtomicFile.publish(temporary, as: output)
    }
}
