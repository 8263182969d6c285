import HavelCore
import SystemKit

/// The options a project may add to its rootfs archives (`<tar><options>`, `<squashfs><options>`, which
/// ELBE hands to tar and mksquashfs as they are): only options that change what is packed or how. Options
/// that read files of the build host, run programs (mksquashfs pseudo files) or change where output goes
/// are refused, because a project may come from anyone who can upload to the daemon.
public enum ArchiveOptions {
    /// tar options taken alone.
    static let tarFlags: Set<String> = [
        "--one-file-system", "--no-xattrs", "--no-acls", "--selinux", "--no-selinux", "--exclude-caches",
        "--exclude-caches-all", "--exclude-caches-under", "--exclude-vcs", "--exclude-backups", "--hard-dereference",
        "--numeric-owner", "--no-recursion", "--wildcards", "--no-wildcards", "--anchored", "--no-anchored",
    ]
    /// tar options written `--name=value`.
    static let tarValued: Set<String> = ["--exclude", "--owner", "--group", "--mode"]

    /// mksquashfs options taken alone.
    static let squashfsFlags: Set<String> = [
        "-noI", "-noInodeCompression", "-noId", "-noIdTableCompression", "-noD", "-noDataCompression", "-noF",
        "-noFragmentCompression", "-noX", "-noXattrCompression", "-no-xattrs", "-xattrs", "-all-root", "-root-owned",
        "-no-fragments", "-always-use-fragments", "-no-duplicates", "-no-sparse", "-keep-as-directory", "-wildcards",
        "-regex", "-no-exports", "-exports", "-nopad", "-no-tailends", "-tailends", "-Xhc", "-no-hardlinks",
    ]
    /// mksquashfs options followed by one value.
    static let squashfsValued: Set<String> = [
        "-comp", "-b", "-Xbcj", "-Xdict-size", "-Xcompression-level", "-Xalgorithm", "-Xwindow-size", "-Xstrategy",
        "-force-uid", "-force-gid", "-processors", "-mem", "-root-mode",
    ]

    /// The words of `<tar><options>`, or an error naming the first option Havel does not pass on.
    public static func tar(_ text: String) throws(HavelError) -> [String] {
        let words = try ShellWords.split(text)
        for word in words {
            if tarFlags.contains(word) { continue }
            if let equals = word.firstIndex(of: "="), tarValued.contains(String(word[..<equals])),
               word.index(after: equals) < word.endIndex {
                continue
            }
            throw HavelError(.invalidProject, "tar option \(word.debugDescription) is not passed on: Havel accepts "
                             + tarFlags.sorted().joined(separator: " ") + " and " + tarValued.sorted().map { $0 + "=…" }.joined(separator: " "))
        }
        return words
    }

    /// The words of `<squashfs><options>`, or an error naming the first option Havel does not pass on.
    /// `-e` takes the names after it (up to the next option) as exclusions, as mksquashfs does.
    public static func squashfs(_ text: String) throws(HavelError) -> [String] {
        let words = try ShellWords.split(text)
        var index = 0
        var excluding = false
        while index < words.count {
            let word = words[index]
            defer { index += 1 }
            if excluding, !word.hasPrefix("-") { continue }
            excluding = false
            if word == "-e" { excluding = true; continue }
            if squashfsFlags.contains(word) { continue }
            if squashfsValued.contains(word) {
                guard index + 1 < words.count, !words[index + 1].hasPrefix("-") else {
                    throw HavelError(.invalidProject, "mksquashfs option \(word) needs a value")
                }
                index += 1
                continue
            }
            throw HavelError(.invalidProject, "mksquashfs option \(word.debugDescription) is not passed on (it may read or run something on the "
                             + "build host, or Havel sets it itself): Havel accepts " + (squashfsFlags.union(squashfsValued).union(["-e"])).sorted().joined(separator: " "))
        }
        return words
    }
}
