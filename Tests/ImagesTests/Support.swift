import Foundation
import HavelCore
@testable import Images
import SystemKit
import Testing

/// A synthetic target tree under /var/tmp: a few hundred files, /boot and /boot/efi, /var and /home with
/// files, symlinks (relative, absolute, to directories), a setuid file, files owned by uid 1234, a hard-linked
/// pair, device nodes, empty directories, a name with a space and one with non-ASCII letters. All times are
/// a day before `epoch`, except /var/spool/late.txt and the symlink late-link beside it, which are after it
/// (to exercise clamping).
struct TestTree {
    static let epoch = 1_700_000_000
    let base: String
    var root: String { base + "/rootfs" }
    var project: String { base + "/project" }
    var output: String { base + "/out" }
    var work: String { base + "/work" }

    init() throws {
        base = "/var/tmp/havel-images-test-\(UUID().uuidString.prefix(8))"
        for dir in ["project", "out", "work"] { try FileManager.default.createDirectory(atPath: base + "/" + dir, withIntermediateDirectories: true) }
        try build()
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: base)
    }

    private func dir(_ path: String, mode: mode_t = 0o755, owner: uid_t = 0) throws {
        try FileManager.default.createDirectory(atPath: root + path, withIntermediateDirectories: true)
        chmod(root + path, mode)
        lchown(root + path, owner, owner)
    }

    private func file(_ path: String, _ text: String, mode: mode_t = 0o644, owner: uid_t = 0) throws {
        try file(path, Array(text.utf8), mode: mode, owner: owner)
    }

    private func file(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644, owner: uid_t = 0) throws {
        let parent = (root + path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: root + path, contents: Data(bytes)) else { throw TestFailure("cannot write \(path)") }
        lchown(root + path, owner, owner)
        chmod(root + path, mode)
    }

    private func link(_ path: String, to target: String) throws {
        guard symlink(target, root + path) == 0 else { throw TestFailure("symlink \(path)") }
    }

    static func bytes(_ count: Int, seed: UInt32) -> [UInt8] {
        var x = seed &* 2_654_435_761 | 1
        return (0..<count).map { _ in
            x ^= x << 13; x ^= x >> 17; x ^= x << 5
            return UInt8(truncatingIfNeeded: x)
        }
    }

    private func build() throws {
        try dir("")
        for d in ["/usr/bin", "/usr/lib", "/usr/share/doc", "/usr/share/zoneinfo", "/etc", "/dev", "/proc", "/sys", "/run", "/var/log",
                  "/var/lib/dpkg", "/var/cache/app", "/var/spool", "/srv/empty", "/mnt", "/boot/grub", "/boot/efi/EFI/BOOT", "/boot/efi/EFI/debian"] {
            try dir(d)
        }
        try dir("/tmp", mode: 0o1777)
        try dir("/root", mode: 0o700)
        try link("/bin", to: "usr/bin")
        try link("/lib", to: "usr/lib")
        try file("/usr/bin/dash", Self.bytes(30_000, seed: 1), mode: 0o755)
        try link("/usr/bin/sh", to: "dash")
        try file("/usr/bin/passwd", Self.bytes(20_000, seed: 2), mode: 0o4755)
        try file("/usr/bin/crontab", Self.bytes(9_000, seed: 3), mode: 0o2755)
        try file("/usr/lib/libfoo.so.1", Self.bytes(50_000, seed: 4))
        try link("/usr/lib/libfoo.so", to: "libfoo.so.1")
        try file("/usr/lib/hard1", "the same inode twice\n")
        guard Foundation.link(root + "/usr/lib/hard1", root + "/usr/lib/hard2") == 0 else { throw TestFailure("hard link") }
        for i in 0..<150 {
            let name = String(format: "pkg%03d", i)
            try file("/usr/share/doc/\(name)/copyright", "Files: *\nCopyright: \(i)\nLicense: MIT\n")
            try file("/usr/share/doc/\(name)/changelog.Debian", Self.bytes(100 + i * 7, seed: UInt32(100 + i)))
        }
        try file("/usr/share/doc/with space.txt", "a name with a space\n")
        try file("/usr/share/doc/grüße.txt", "non-ASCII name\n")
        try file("/usr/share/zoneinfo/UTC", "TZif2\n")
        try link("/etc/localtime", to: "/usr/share/zoneinfo/UTC")
        try file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nuser:x:1234:1234::/home/user:/bin/sh\n")
        try file("/etc/group", "root:x:0:\nuser:x:1234:\n")
        try file("/etc/hostname", "synthetic\n")
        try file("/etc/shadow", "root:*:19000:0:99999:7:::\n", mode: 0o640)
        for (name, major, minor) in [("null", 1, 3), ("zero", 1, 5), ("console", 5, 1)] {
            guard mknod(root + "/dev/" + name, S_IFCHR | 0o666, dev_t(major << 8 | minor)) == 0 else { throw TestFailure("mknod \(name)") }
            chmod(root + "/dev/" + name, 0o666)
        }
        guard mkfifo(root + "/run/initctl", 0o600) == 0 else { throw TestFailure("mkfifo") }
        try file("/boot/vmlinuz-6.1.0-test", Self.bytes(300_000, seed: 5))
        try file("/boot/initrd.img-6.1.0-test", Self.bytes(200_000, seed: 6))
        try file("/boot/config-6.1.0-test", "CONFIG_EXT4_FS=y\n")
        try file("/boot/fw.bin", Self.bytes(70_000, seed: 7))
        try file("/boot/grub/grub.cfg", "set timeout=0\n")
        try file("/boot/efi/EFI/BOOT/BOOTX64.EFI", Self.bytes(40_000, seed: 8))
        try file("/boot/efi/EFI/debian/grub.cfg", "search --label rootfs\n")
        try file("/var/lib/dpkg/status", "Package: base-files\nStatus: install ok installed\n")
        for i in 0..<40 { try file("/var/cache/app/entry\(i)", Self.bytes(500 + i, seed: UInt32(200 + i))) }
        try dir("/var/lib/app", mode: 0o750, owner: 1234)
        try file("/var/lib/app/data", "owned by 1234\n", mode: 0o600, owner: 1234)
        try file("/var/spool/late.txt", "modified after SOURCE_DATE_EPOCH\n")
        try link("/var/spool/late-link", to: "late.txt")
        try dir("/home/user", mode: 0o750, owner: 1234)
        try file("/home/user/.profile", "export PATH\n", owner: 1234)
        try file("/home/user/notes.txt", "notes\n", mode: 0o600, owner: 1234)
        try dir("/home/user/empty", owner: 1234)

        // Times: a day before the epoch, the late file after it; directories last, deepest first.
        var paths: [String] = []
        try TreeWalk.walk(root) { entry in paths.append(entry.path) }
        let before = timespec(tv_sec: Self.epoch - 86_400, tv_nsec: 123)
        for path in paths.reversed() + [""] {
            var times = [before, before]
            utimensat(AT_FDCWD, root + "/" + path, &times, AT_SYMLINK_NOFOLLOW)
        }
        let after = timespec(tv_sec: Self.epoch + 86_400, tv_nsec: 0)
        for late in ["/var/spool/late.txt", "/var/spool/late-link"] {
            var times = [after, after]
            utimensat(AT_FDCWD, root + late, &times, AT_SYMLINK_NOFOLLOW)
        }
    }

    func request(_ image: DiskImage, _ fstab: [FstabEntry], output: String? = nil, work: String? = nil, seed: String = "synthetic 1.0") -> ImageRequest {
        ImageRequest(image: image, fstab: fstab, rootfs: root, outputDirectory: output ?? self.output, workDirectory: work ?? self.work,
                     projectDirectory: project, sourceDateEpoch: Self.epoch, seed: seed)
    }

    /// Every path in the tree (absolute, "/" excluded) with its kind.
    func entries() throws -> [String: Kind] {
        var result: [String: Kind] = [:]
        try TreeWalk.walk(root) { entry in result["/" + entry.path] = Kind(entry.status.st_mode) }
        return result
    }

    /// Type, mode, owner, size, mtime, link count and symlink target of every entry, plus a content digest of
    /// regular files: what must not change when an image is built.
    func snapshot() throws -> [String: String] {
        var result: [String: String] = [:]
        try TreeWalk.walk(root) { entry in
            let s = entry.status
            var line = "\(s.st_mode) \(s.st_uid):\(s.st_gid) \(s.st_size) \(s.st_mtim.tv_sec).\(s.st_mtim.tv_nsec) \(s.st_nlink)"
            if (s.st_mode & S_IFMT) == S_IFLNK {
                line += " -> " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/" + entry.path)) ?? "?")
            } else if (s.st_mode & S_IFMT) == S_IFREG, let data = FileManager.default.contents(atPath: root + "/" + entry.path) {
                line += " " + SHA256.hash(Array(data)).prefix(8).map { String($0, radix: 16) }.joined()
            }
            result["/" + entry.path] = line
        }
        return result
    }

    func outputFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: output)) ?? []).sorted()
    }
}

enum Kind: Equatable, CustomStringConvertible {
    case directory, file, symlink, device, fifo, other
    init(_ mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFDIR: self = .directory
        case S_IFREG: self = .file
        case S_IFLNK: self = .symlink
        case S_IFCHR, S_IFBLK: self = .device
        case S_IFIFO: self = .fifo
        default: self = .other
        }
    }
    var description: String { "\(self as Any)".split(separator: ".").last.map(String.init) ?? "?" }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}


// MARK: running tools

@discardableResult
func sh(_ executable: String, _ arguments: [String], environment: [String: String] = [:], expectSuccess: Bool = true) async throws -> ProcessResult {
    let result = try await ProcessRunner.run(Command(executable, arguments, environment: environment), outputLimit: 64 << 20)
    if expectSuccess && !result.succeeded {
        throw TestFailure("\(executable) \(arguments.joined(separator: " ")) failed (\(result.termination)): \(result.standardError)\(result.standardOutput.suffix(2000))")
    }
    return result
}

func sfdiskDump(_ image: String) async throws -> PartitionTable.Dump {
    try await PartitionTable.read(image, processes: SystemProcesses())
}

/// Copies one partition out of an image into its own file.
func extract(_ image: String, _ partition: BuiltPartition, to file: String) throws {
    let input = open(image, O_RDONLY)
    guard input >= 0 else { throw TestFailure("open \(image)") }
    defer { close(input) }
    let out = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard out >= 0 else { throw TestFailure("create \(file)") }
    defer { close(out) }
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    var done: UInt64 = 0
    while done < partition.sizeBytes {
        let want = Int(min(UInt64(buffer.count), partition.sizeBytes - done))
        let got = buffer.withUnsafeMutableBytes { pread(input, $0.baseAddress, want, off_t(partition.startBytes + done)) }
        guard got > 0 else { throw TestFailure("read \(image)") }
        _ = buffer.withUnsafeBytes { pwrite(out, $0.baseAddress, got, off_t(done)) }
        done += UInt64(got)
    }
}

func readImage(_ image: String, at offset: UInt64, count: Int) throws -> [UInt8] {
    let fd = open(image, O_RDONLY)
    guard fd >= 0 else { throw TestFailure("open \(image)") }
    defer { close(fd) }
    return try FileIO.readBytes(fd, at: offset, count: count)
}

// MARK: listing filesystems

struct ListedEntry: Equatable {
    var kind: Kind
    var mode: UInt32
    var uid: Int
    var gid: Int
}

/// Every entry of an ext filesystem inside an image (paths relative to its root, "/x"), via debugfs `ls -p`,
/// one debugfs run per directory level. lost+found at the root is left out.
func extEntries(_ image: String, offset: UInt64) async throws -> [String: ListedEntry] {
    let device = "\(image)?offset=\(offset)"
    var result: [String: ListedEntry] = [:]
    var level = ["/"]
    while !level.isEmpty {
        let script = level.map { "ls -p \"\($0)\"" }.joined(separator: "\n") + "\n"
        let scriptFile = "\(image).ls-\(UUID().uuidString.prefix(6))"
        _ = FileManager.default.createFile(atPath: scriptFile, contents: Data(script.utf8))
        defer { unlink(scriptFile) }
        let output = try await sh("debugfs", ["-f", scriptFile, device]).standardOutput
        var next: [String] = []
        var current = ""
        for line in output.split(separator: "\n") {
            if line.hasPrefix("debugfs: ls -p \"") {
                current = String(line.dropFirst("debugfs: ls -p \"".count).dropLast())
                continue
            }
            let fields = line.split(separator: "/", omittingEmptySubsequences: false)
            guard fields.count >= 7, let mode = UInt32(fields[2], radix: 8), let uid = Int(fields[3]), let gid = Int(fields[4]) else { continue }
            let name = String(fields[5])
            if name == "." || name == ".." { continue }
            let path = (current == "/" ? "/" : current + "/") + name
            if path == "/lost+found" { continue }
            let entry = ListedEntry(kind: Kind(mode_t(mode)), mode: mode & 0o7777, uid: uid, gid: gid)
            result[path] = entry
            if entry.kind == .directory { next.append(path) }
        }
        level = next
    }
    return result
}

func debugfs(_ image: String, offset: UInt64, _ request: String) async throws -> String {
    try await sh("debugfs", ["-R", request, "\(image)?offset=\(offset)"]).standardOutput
}

/// Every entry of a FAT filesystem inside an image ("/x"), via `mdir -/ -b`.
func fatEntries(_ image: String, offset: UInt64) async throws -> [String: Kind] {
    let output = try await sh("mdir", ["-/", "-b", "-i", "\(image)@@\(offset)", "::/"],
                              environment: ["MTOOLS_SKIP_CHECK": "1", "LC_ALL": "C.UTF-8"]).standardOutput
    var result: [String: Kind] = [:]
    for line in output.split(separator: "\n") where line.hasPrefix("::/") {
        let isDirectory = line.hasSuffix("/")
        let path = String(line.dropFirst(2).dropLast(isDirectory ? 1 : 0))
        result[path] = isDirectory ? .directory : .file
    }
    return result
}

/// Every entry of a squashfs file ("/x") with the `unsquashfs -lln` line.
func squashEntries(_ file: String) async throws -> [String: String] {
    let output = try await sh("unsquashfs", ["-lln", "-d", "", file]).standardOutput
    var result: [String: String] = [:]
    for line in output.split(separator: "\n") {
        // "-rwsr-xr-x 0/0   20000 2023-11-13 22:13 /usr/bin/passwd", devices with "1,  3" for the size.
        guard line.first.map({ "-dlcbps".contains($0) }) == true,
              let time = line.firstMatch(of: #/\d{4}-\d{2}-\d{2} \d{2}:\d{2} /#) else { continue }
        var path = String(line[time.range.upperBound...])
        if let arrow = path.range(of: " -> ") { path = String(path[..<arrow.lowerBound]) }
        if path.isEmpty || path == "/" { continue }
        result[path.hasPrefix("/") ? path : "/" + path] = String(line)
    }
    return result
}

/// Every entry of an erofs file ("/x"), by extracting it with fsck.erofs.
func erofsEntries(_ file: String) async throws -> [String: Kind] {
    let directory = file + ".extracted"
    try await sh("fsck.erofs", ["--extract=\(directory)", file])
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var result: [String: Kind] = [:]
    try TreeWalk.walk(directory) { entry in result["/" + entry.path] = Kind(entry.status.st_mode) }
    return result
}

/// Checks that the partitions' file lists, each placed at its mountpoint, cover the tree exactly once.
func expectExactCover(tree: [String: Kind], partitions: [(mountpoint: String, entries: [String])],
                      ignoring ignored: Set<String> = [], sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    var seen: [String: Int] = [:]
    for partition in partitions {
        for entry in partition.entries {
            let path = partition.mountpoint == "/" ? entry : partition.mountpoint + entry
            seen[path, default: 0] += 1
        }
    }
    let expected = Set(tree.keys).subtracting(ignored)
    let missing = expected.subtracting(seen.keys).sorted()
    let extra = Set(seen.keys).subtracting(tree.keys).sorted()
    let twice = seen.filter { $0.value > 1 }.keys.sorted()
    #expect(missing.isEmpty, "in no partition: \(missing.prefix(20))", sourceLocation: sourceLocation)
    #expect(extra.isEmpty, "not in the tree: \(extra.prefix(20))", sourceLocation: sourceLocation)
    #expect(twice.isEmpty, "in more than one partition: \(twice.prefix(20))", sourceLocation: sourceLocation)
}

func entry(_ label: String, _ mountpoint: String, _ type: String, mkfs: String? = nil, device: [String] = [], path: [String] = []) -> FstabEntry {
    FstabEntry(source: .label(label), mountpoint: mountpoint,
               filesystem: Filesystem(type: type, mkfsOptions: mkfs, deviceCommands: device, pathCommands: path))
}

let MiB: UInt64 = 1 << 20
