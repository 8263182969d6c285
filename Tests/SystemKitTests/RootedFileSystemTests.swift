import Foundation
import HavelCore
@testable import SystemKit
import Testing

// Every test builds its own fake tree under /tmp/havel-rfs-XXXXXX/tree next to a "host" directory
// /tmp/havel-rfs-XXXXXX/host that plays the host: hostile links in the tree point at it (absolutely and
// relatively), and after every test the whole of /tmp/havel-rfs-XXXXXX except the tree — the host directory, its
// sentinel file's content and mtime, and a sentinel file beside the tree — must be exactly as before.
//
// Every hostile path and link is chosen so that, joined naively (the bug these tests look for), it lands inside
// /tmp/havel-rfs-XXXXXX — where the snapshot notices it — and never on the real host: links and `..` chains that
// climb to `/` go on with the fixture's own absolute path (`/up/<base>/x`).

// MARK: - Host-side helpers (plain system calls, independent of RootedFileSystem)

private func hostStatus(_ path: String) -> stat? {
    var status = stat()
    return lstat(path, &status) == 0 ? status : nil
}

private func hostKind(_ path: String) -> String {
    guard let status = hostStatus(path) else { return "missing" }
    switch status.st_mode & S_IFMT {
    case S_IFDIR: return "dir"
    case S_IFREG: return "file"
    case S_IFLNK: return "link"
    default: return "other"
    }
}

private func hostRead(_ path: String) -> String? {
    guard hostKind(path) == "file", let data = FileManager.default.contents(atPath: path) else { return nil }
    return String(decoding: data, as: UTF8.self)
}

private func hostLink(_ path: String) -> String? {
    guard hostKind(path) == "link" else { return nil }
    var buffer = [CChar](repeating: 0, count: 4097)
    let count = readlink(path, &buffer, buffer.count)
    guard count >= 0 else { return nil }
    return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func hostWrite(_ path: String, _ text: String, mode: mode_t = 0o644) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode)
    precondition(fd >= 0, "test setup: cannot write \(path)")
    _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    fchmod(fd, mode)
    close(fd)
}

private func hostMkdir(_ path: String) {
    precondition(mkdir(path, 0o755) == 0 || errno == EEXIST, "test setup: cannot mkdir \(path)")
}

private func plant(_ target: String, at path: String) {
    precondition(symlink(target, path) == 0, "test setup: cannot plant \(path) -> \(target)")
}

private func permissions(_ path: String) -> mode_t? {
    hostStatus(path).map { $0.st_mode & 0o7777 }
}

private func text(_ string: String) -> [UInt8] { Array(string.utf8) }

// MARK: - Fixture

private final class Fixture {
    static let sentinelTime = timespec(tv_sec: 1_000_000_000, tv_nsec: 123_456_789)

    let base: String
    let tree: String
    let host: String
    let fs: RootedFileSystem
    private let before: [String]

    init() throws {
        var template = Array("/tmp/havel-rfs-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw HavelError(.io, "cannot make a temporary directory") }
        base = String(cString: made)
        tree = base + "/tree"
        host = base + "/host"
        for dir in ["", "/etc", "/usr", "/usr/bin", "/var", "/var/cache", "/tmp", "/dev"] { hostMkdir(tree + dir) }
        hostWrite(tree + "/etc/hostname", "board\n")
        hostWrite(tree + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nhavel-rfs-user:x:1234:4321::/home/u:/bin/sh\n")
        hostWrite(tree + "/etc/group", "root:x:0:\nhavel-rfs-group:x:4321:\n")
        hostMkdir(host)
        hostMkdir(host + "/sub")
        hostWrite(host + "/secret", "SECRET\n", mode: 0o600)
        hostWrite(host + "/passwd", "hostonly:x:999:999::/:/bin/sh\n")
        hostWrite(host + "/group", "hostgroup:x:998:\n")
        hostWrite(host + "/sub/deep", "DEEP\n")
        hostWrite(base + "/sentinel", "BESIDE\n")
        let times = [Self.sentinelTime, Self.sentinelTime]
        precondition(utimensat(AT_FDCWD, host + "/secret", times, 0) == 0)
        before = Self.snapshot(base)
        fs = try RootedFileSystem(root: tree)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: base)
    }

    /// Everything under `base` except the tree and `scratch-*` (test output): type, mode, owner, size, mtime,
    /// content or link target.
    static func snapshot(_ base: String) -> [String] {
        var lines: [String] = []
        func visit(_ path: String, _ relative: String) {
            guard let status = hostStatus(path) else { return }
            defer {
                if hostKind(path) == "dir" {
                    let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
                    for name in names where !(relative.isEmpty && (name == "tree" || name.hasPrefix("scratch-"))) {
                        visit(path + "/" + name, relative + "/" + name)
                    }
                }
            }
            if relative.isEmpty { return }
            var line = "\(relative) \(hostKind(path)) \(String(status.st_mode, radix: 8)) \(status.st_uid):\(status.st_gid) "
                + "\(status.st_size) \(status.st_mtim.tv_sec).\(status.st_mtim.tv_nsec)"
            if let content = hostRead(path) { line += " =" + content }
            if let target = hostLink(path) { line += " ->" + target }
            lines.append(line)
        }
        visit(base, "")
        return lines
    }

    func expectHostUntouched(sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(Self.snapshot(base) == before, "the host side changed", sourceLocation: sourceLocation)
        #expect(hostRead(host + "/secret") == "SECRET\n", sourceLocation: sourceLocation)
        let mtime = hostStatus(host + "/secret")?.st_mtim
        #expect(mtime?.tv_sec == Self.sentinelTime.tv_sec && mtime?.tv_nsec == Self.sentinelTime.tv_nsec,
                sourceLocation: sourceLocation)
        #expect(hostRead(base + "/sentinel") == "BESIDE\n", sourceLocation: sourceLocation)
    }

    /// The tree-side place of a host absolute path (where a link `-> /host/...` lands inside the tree).
    func inTree(_ hostAbsolute: String) -> String { tree + hostAbsolute }
}

private func withFixture(sourceLocation: Testing.SourceLocation = #_sourceLocation, _ body: (Fixture) throws -> Void) throws {
    let fixture = try Fixture()
    defer { fixture.expectHostUntouched(sourceLocation: sourceLocation) }
    try body(fixture)
}

// MARK: - Hostile trees and paths

@Suite struct RootedFileSystemHostileTests {
    @Test func dotDotChainsInWriteStayInTheTree() throws {
        try withFixture { f throws in
            try f.fs.writeFile("../../../../../..\(f.base)/motd", contents: text("hi\n"))
            #expect(hostRead(f.inTree(f.base) + "/motd") == "hi\n")
            try f.fs.writeFile("/../host/secret", contents: text("mine\n"))
            #expect(hostRead(f.tree + "/host/secret") == "mine\n")
            try f.fs.writeFile("usr/../../sentinel", contents: text("tree\n"))
            #expect(hostRead(f.tree + "/sentinel") == "tree\n")
            #expect(try f.fs.resolve("../../..\(f.host)/secret") == f.inTree(f.host) + "/secret")
        }
    }

    @Test func dotDotChainsInCreateDirectory() throws {
        try withFixture { f throws in
            try f.fs.createDirectory("../../../..\(f.base)/newdir/../newdir/sub")
            #expect(hostKind(f.inTree(f.base) + "/newdir/sub") == "dir")
            try f.fs.createDirectory("/missing/../../host/made")
            #expect(hostKind(f.tree + "/host/made") == "dir")
        }
    }

    @Test func dotDotChainsInRemove() throws {
        try withFixture { f throws in
            hostMkdir(f.tree + "/host")
            hostWrite(f.tree + "/host/secret", "tree copy\n")
            try f.fs.remove("../host/secret")
            #expect(hostKind(f.tree + "/host/secret") == "missing")
            try f.fs.remove("../sentinel")  // not in the tree: nothing to do
            try f.fs.remove("../../../..\(f.host)")
            let error = #expect(throws: HavelError.self) { try f.fs.remove("..") }
            #expect(error?.code == .invalidArgument)
            #expect(hostKind(f.tree + "/etc") == "dir")
        }
    }

    @Test func dotDotChainsInCopyAndMove() throws {
        try withFixture { f throws in
            let error = #expect(throws: HavelError.self) { try f.fs.copy(from: "../host/secret", to: "/stolen") }
            #expect(error?.code == .notFound)
            try f.fs.copy(from: "/../etc/hostname", to: "../copied")
            #expect(hostRead(f.tree + "/copied") == "board\n")
            try f.fs.move(from: "/../copied", to: "../moved")
            #expect(hostRead(f.tree + "/moved") == "board\n")
            #expect(hostKind(f.tree + "/copied") == "missing")
            try f.fs.move(from: "/moved", to: "..")  // `..` of the root is the root: move into it
            #expect(hostRead(f.tree + "/moved") == "board\n")
        }
    }

    @Test func dotDotChainsInSymlinkCreation() throws {
        try withFixture { f throws in
            try f.fs.symlink(target: "../../../host/secret", at: "../lnk")
            #expect(hostLink(f.tree + "/lnk") == "../../../host/secret")
            // Reading through the new link stays in the tree.
            #expect(throws: HavelError.self) { try f.fs.readFile("/lnk") }
            try f.fs.symlink(target: f.host + "/secret", at: "/../tmp/../abs")
            #expect(hostLink(f.tree + "/abs") == f.host + "/secret")
        }
    }

    @Test func absoluteEtcLinkToTheHostLandsInsideTheTree() throws {
        try withFixture { f throws in
            try FileManager.default.removeItem(atPath: f.tree + "/etc")
            plant(f.host, at: f.tree + "/etc")
            try f.fs.writeFile("/etc/passwd", contents: text("x:x:1:1::/:/bin/sh\n"))
            #expect(hostRead(f.inTree(f.host) + "/passwd") == "x:x:1:1::/:/bin/sh\n")
            #expect(try f.fs.resolve("/etc/passwd") == f.inTree(f.host) + "/passwd")
            #expect(try f.fs.readFile("/etc/passwd") == text("x:x:1:1::/:/bin/sh\n"))
            try f.fs.createDirectory("/etc/sub/new")
            #expect(hostKind(f.inTree(f.host) + "/sub/new") == "dir")
        }
    }

    @Test func relativeLinksClimbingOutStopAtTheTreeRoot() throws {
        try withFixture { f throws in
            plant("../../../../../../../../", at: f.tree + "/up")
            plant("../host", at: f.tree + "/esc")
            plant("usr/../../host/sub", at: f.tree + "/esc2")
            try f.fs.writeFile("/up\(f.base)/escaped", contents: text("x"))
            #expect(hostRead(f.inTree(f.base) + "/escaped") == "x")
            try f.fs.writeFile("/esc/secret", contents: text("in tree\n"))
            #expect(hostRead(f.tree + "/host/secret") == "in tree\n")
            try f.fs.writeFile("/esc2/deep", contents: text("in tree\n"))
            #expect(hostRead(f.tree + "/host/sub/deep") == "in tree\n")
            #expect(try f.fs.resolve("/up/up/up/etc/hostname") == f.tree + "/etc/hostname")
        }
    }

    @Test func symlinkChainsAreFollowedInsideTheTree() throws {
        try withFixture { f throws in
            plant("b", at: f.tree + "/a")
            plant("/c", at: f.tree + "/b")
            plant("usr/../d", at: f.tree + "/c")
            plant("../../..\(f.host)", at: f.tree + "/d")
            try f.fs.writeFile("/a/file", contents: text("chain\n"))
            #expect(hostRead(f.inTree(f.host) + "/file") == "chain\n")
            #expect(try f.fs.resolve("/a") == f.inTree(f.host))
            #expect(try f.fs.resolve("/a", followFinalSymlink: false) == f.tree + "/a")
            // The kernel's limit: 40 links are fine, 41 are not.
            for index in 0..<40 { plant("/l\(index + 1)", at: f.tree + "/l\(index)") }
            hostWrite(f.tree + "/l40", "end\n")
            #expect(try f.fs.readFile("/l0") == text("end\n"))
            plant("/l0", at: f.tree + "/l-1")
            let error = #expect(throws: HavelError.self) { try f.fs.readFile("/l-1") }
            #expect(error?.message.contains("too many levels of symbolic links") == true)
        }
    }

    @Test func symlinkLoopsFailCleanly() throws {
        try withFixture { f throws in
            plant("loop2", at: f.tree + "/loop1")
            plant("/loop1", at: f.tree + "/loop2")
            plant("self", at: f.tree + "/self")
            plant("./dirloop/x", at: f.tree + "/dirloop")
            for path in ["/loop1/x", "/self/x", "/dirloop/y", "/self"] {
                let error = #expect(throws: HavelError.self) { try f.fs.writeFile(path, contents: text("x"), append: true) }
                #expect(error?.message.contains(path) == true)
                #expect(error?.message.contains("too many levels of symbolic links") == true)
                #expect(throws: HavelError.self) { try f.fs.createDirectory(path + "/d") }
                #expect(throws: HavelError.self) { try f.fs.readFile(path) }
                #expect(!f.fs.exists(path))
            }
            #expect(try f.fs.glob("/loop1/*") == [])
            #expect(try f.fs.glob("/self*") == ["/self"])
            try f.fs.remove("/loop1")
            #expect(hostKind(f.tree + "/loop1") == "missing")
            #expect(hostLink(f.tree + "/loop2") == "/loop1")
            // mv onto a looping link replaces the link.
            try f.fs.move(from: "/etc/hostname", to: "/self")
            #expect(hostRead(f.tree + "/self") == "board\n")
        }
    }

    @Test func removingALinkToAHostDirectoryRemovesOnlyTheLink() throws {
        try withFixture { f throws in
            plant(f.host, at: f.tree + "/hostlink")
            plant("../host", at: f.tree + "/rellink")
            plant(f.host + "/secret", at: f.tree + "/filelink")
            try f.fs.remove("/hostlink")
            try f.fs.remove("rellink")
            try f.fs.remove("/etc/../filelink")
            for name in ["hostlink", "rellink", "filelink"] { #expect(hostKind(f.tree + "/" + name) == "missing") }
            // With a trailing slash the link is followed — inside the tree, where there is nothing.
            plant(f.host, at: f.tree + "/hostlink")
            try f.fs.remove("/hostlink/")
            #expect(hostLink(f.tree + "/hostlink") == f.host)
        }
    }

    @Test func recursiveRemoveDoesNotFollowLinksToTheHost() throws {
        try withFixture { f throws in
            hostMkdir(f.tree + "/dir")
            hostMkdir(f.tree + "/dir/sub")
            hostWrite(f.tree + "/dir/sub/file", "x")
            plant(f.host, at: f.tree + "/dir/abs")
            plant("../../host", at: f.tree + "/dir/rel")
            plant("../../..", at: f.tree + "/dir/sub/up")
            plant(f.host + "/secret", at: f.tree + "/dir/sub/secret")
            plant(f.base, at: f.tree + "/dir/base")
            try f.fs.remove("/dir")
            #expect(hostKind(f.tree + "/dir") == "missing")
            #expect(hostKind(f.tree + "/etc/hostname") == "file")
        }
    }

    @Test func copyingALinkToAHostFileCopiesTheLink() throws {
        try withFixture { f throws in
            plant(f.host + "/secret", at: f.tree + "/lnk")
            try f.fs.copy(from: "/lnk", to: "/copy")
            #expect(hostLink(f.tree + "/copy") == f.host + "/secret")
            hostMkdir(f.tree + "/dir")
            plant(f.host + "/secret", at: f.tree + "/dir/abs")
            plant("../../host/secret", at: f.tree + "/dir/rel")
            plant(f.host, at: f.tree + "/dir/hostdir")
            try f.fs.copy(from: "/dir", to: "/dircopy")
            #expect(hostLink(f.tree + "/dircopy/abs") == f.host + "/secret")
            #expect(hostLink(f.tree + "/dircopy/rel") == "../../host/secret")
            #expect(hostLink(f.tree + "/dircopy/hostdir") == f.host)
            // Copying *through* a link to the host's directory reads the tree's version (here: nothing).
            #expect(throws: HavelError.self) { try f.fs.copy(from: "/dir/hostdir/secret", to: "/stolen") }
            #expect(hostKind(f.tree + "/stolen") == "missing")
        }
    }

    @Test func copyOntoALinkToAHostFileReplacesTheLink() throws {
        try withFixture { f throws in
            plant(f.host + "/secret", at: f.tree + "/dst")
            try f.fs.copy(from: "/etc/hostname", to: "/dst")
            #expect(hostRead(f.tree + "/dst") == "board\n")
            plant(f.host, at: f.tree + "/dstdir")
            hostMkdir(f.tree + "/src")
            hostWrite(f.tree + "/src/secret", "tree\n")
            // /dstdir points (inside the tree) at a missing directory: the link itself is in the way.
            #expect(throws: HavelError.self) { try f.fs.copy(from: "/src", to: "/dstdir") }
            try f.fs.copy(from: "/src/secret", to: "/dstdir")
            #expect(hostRead(f.tree + "/dstdir") == "tree\n")
        }
    }

    @Test func globThroughAPlantedLinkDirectoryListsTheTree() throws {
        try withFixture { f throws in
            plant(f.host, at: f.tree + "/var/cache/abs")
            plant("../../../host", at: f.tree + "/var/cache/rel")
            #expect(try f.fs.glob("/var/cache/abs/*") == [])
            #expect(try f.fs.glob("/var/cache/rel/*") == [])
            #expect(try f.fs.glob("/var/cache/*/secret") == [])
            try f.fs.createDirectory(f.host)
            try f.fs.writeFile(f.host + "/inner.deb", contents: text("deb"))
            #expect(try f.fs.glob("/var/cache/abs/*") == [f.host + "/inner.deb"])
            #expect(try f.fs.glob("/var/cache/*/*.deb") == [f.host + "/inner.deb"])
            for path in try f.fs.glob("/var/cache/abs/*") { try f.fs.remove(path) }
            #expect(hostKind(f.inTree(f.host) + "/inner.deb") == "missing")
            #expect(try f.fs.glob("/var/cache/*") == ["/var/cache/abs", "/var/cache/rel"])
        }
    }

    @Test func globPatternsWithDotDotStayInTheTree() throws {
        try withFixture { f throws in
            let top = try f.fs.glob("/*")
            #expect(top == ["/dev", "/etc", "/tmp", "/usr", "/var"])
            #expect(try f.fs.glob("/../../../*") == top)
            #expect(try f.fs.glob("../../*") == top)
            #expect(try f.fs.glob("/etc/../../../*") == top)
            #expect(try f.fs.glob("../host/*") == [])
            #expect(try f.fs.glob("../../../..\(f.host)/*") == [])
            #expect(try f.fs.glob("/*/../etc/host*") == ["/etc/hostname"])
            #expect(try f.fs.glob("..") == ["/"])
        }
    }

    @Test func writingBelowALinkToSlashWritesInTheTree() throws {
        try withFixture { f throws in
            plant("/", at: f.tree + "/rootlink")
            plant("../../../../../../../..", at: f.tree + "/rootrel")
            plant("/rootlink", at: f.tree + "/usr/bin/indirect")
            try f.fs.writeFile("/rootlink\(f.base)/motd", contents: text("1\n"))
            #expect(hostRead(f.inTree(f.base) + "/motd") == "1\n")
            try f.fs.writeFile("/rootrel\(f.host)/secret", contents: text("2\n"))
            #expect(hostRead(f.inTree(f.host) + "/secret") == "2\n")
            try f.fs.writeFile("/usr/bin/indirect\(f.base)/x", contents: text("3\n"))
            #expect(hostRead(f.inTree(f.base) + "/x") == "3\n")
            try f.fs.writeFile("/rootlink/..\(f.base)/sentinel", contents: text("4\n"), append: true)
            #expect(hostRead(f.inTree(f.base) + "/sentinel") == "4\n")
        }
    }

    @Test func moveOntoALinkReplacesOrEntersInsideTheTree() throws {
        try withFixture { f throws in
            plant(f.host + "/secret", at: f.tree + "/target")
            hostWrite(f.tree + "/file", "moved\n")
            try f.fs.move(from: "/file", to: "/target")
            #expect(hostRead(f.tree + "/target") == "moved\n")
            // A link to a directory that exists in the tree: into it.
            hostMkdir(f.tree + "/host")
            plant("../host", at: f.tree + "/dirlink")
            hostWrite(f.tree + "/file2", "two\n")
            try f.fs.move(from: "/file2", to: "/dirlink")
            #expect(hostRead(f.tree + "/host/file2") == "two\n")
            #expect(hostLink(f.tree + "/dirlink") == "../host")
            // A link to a host directory that is not in the tree: the link is in the way (mv refuses to put a
            // directory in place of a non-directory) and a file replaces it.
            plant(f.host, at: f.tree + "/hostlink")
            #expect(throws: HavelError.self) { try f.fs.move(from: "/host", to: "/hostlink") }
            #expect(hostLink(f.tree + "/hostlink") == f.host)
            try f.fs.move(from: "/host/file2", to: "/hostlink")
            #expect(hostRead(f.tree + "/hostlink") == "two\n")
            // Moving a link moves the link.
            plant(f.host, at: f.tree + "/moveme")
            try f.fs.move(from: "/moveme", to: "/tmp")
            #expect(hostLink(f.tree + "/tmp/moveme") == f.host)
        }
    }

    @Test func ownerNamesComeFromTheTreesOwnPasswdAndGroup() throws {
        try withFixture { f throws in
            #expect(getpwnam("havel-rfs-user") == nil, "the test user must not exist on the host")
            #expect(try f.fs.userID("havel-rfs-user") == 1234)
            #expect(try f.fs.groupID("havel-rfs-group") == 4321)
            #expect(try f.fs.userID("root") == 0)
            #expect(try f.fs.userID("4242") == 4242)
            #expect(try f.fs.groupID("0") == 0)
            if let hostUser = ["daemon", "nobody", "bin", "sys"].first(where: { (name: String) in getpwnam(name) != nil }) {
                let error = #expect(throws: HavelError.self) { try f.fs.userID(hostUser) }
                #expect(error?.code == .notFound)
            }
            #expect(throws: HavelError.self) { try f.fs.groupID("havel-rfs-user") }
            try f.fs.writeFile("/etc/owned", contents: text("x"), mode: 0o640,
                               owner: try f.fs.userID("havel-rfs-user"), group: try f.fs.groupID("havel-rfs-group"))
            let status = try #require(hostStatus(f.tree + "/etc/owned"))
            #expect(status.st_uid == 1234 && status.st_gid == 4321)
            #expect(status.st_mode & 0o7777 == 0o640)
        }
    }

    @Test func ownerLookupThroughAPlantedEtcLinkNeverReadsTheHost() throws {
        try withFixture { f throws in
            try FileManager.default.removeItem(atPath: f.tree + "/etc")
            plant(f.host, at: f.tree + "/etc")
            let error = #expect(throws: HavelError.self) { try f.fs.userID("hostonly") }
            #expect(error?.code == .notFound)
            #expect(throws: HavelError.self) { try f.fs.groupID("hostgroup") }
            try f.fs.writeFile("/etc/passwd", contents: text("inner:x:77:77::/:/bin/sh\n"))
            try f.fs.writeFile("/etc/group", contents: text("innerg:x:78:\n"))
            #expect(try f.fs.userID("inner") == 77)
            #expect(try f.fs.groupID("innerg") == 78)
            #expect(throws: HavelError.self) { try f.fs.userID("hostonly") }
        }
    }

    @Test func modesAreSetExactly() throws {
        try withFixture { f throws in
            let saved = umask(0o077)
            defer { umask(saved) }
            try f.fs.writeFile("/etc/a", contents: text("a"), mode: 0o640)
            #expect(permissions(f.tree + "/etc/a") == 0o640)
            try f.fs.writeFile("/usr/bin/suid", contents: text("b"), mode: 0o4755, owner: 1234, group: 0)
            #expect(permissions(f.tree + "/usr/bin/suid") == 0o4755)
            #expect(hostStatus(f.tree + "/usr/bin/suid")?.st_uid == 1234)
            try f.fs.writeFile("/etc/default", contents: text("c"))
            #expect(permissions(f.tree + "/etc/default") == 0o644)
            try f.fs.setAttributes("/etc/a", mode: 0o2750, owner: 1234, group: 4321)
            #expect(permissions(f.tree + "/etc/a") == 0o2750)
            try f.fs.setAttributes("/usr/bin/suid", mode: nil, owner: 0, group: nil)
            #expect(hostStatus(f.tree + "/usr/bin/suid")?.st_uid == 0)
            try f.fs.setAttributes("/usr/bin/suid", mode: 0o4711, owner: nil, group: nil)
            #expect(permissions(f.tree + "/usr/bin/suid") == 0o4711)
            try f.fs.createDirectory("/srv/private", mode: 0o1770)
            #expect(permissions(f.tree + "/srv/private") == 0o1770)
            #expect(permissions(f.tree + "/srv") == 0o755)
            // Rewriting an existing file keeps its mode unless one is given.
            try f.fs.writeFile("/etc/a", contents: text("again"))
            #expect(permissions(f.tree + "/etc/a") == 0o2750)
        }
    }

    @Test func setAttributesThroughAHostLinkChangesTheTree() throws {
        try withFixture { f throws in
            plant(f.host + "/secret", at: f.tree + "/etc/secretlink")
            let error = #expect(throws: HavelError.self) {
                try f.fs.setAttributes("/etc/secretlink", mode: 0o777, owner: 1234, group: 1234)
            }
            #expect(error?.code == .notFound)
            try f.fs.writeFile(f.host + "/secret", contents: text("tree\n"))
            try f.fs.setAttributes("/etc/secretlink", mode: 0o777, owner: 1234, group: 1234)
            #expect(permissions(f.inTree(f.host) + "/secret") == 0o777)
            #expect(hostLink(f.tree + "/etc/secretlink") == f.host + "/secret")
        }
    }

    @Test func writeReplacesAFinalLinkAndAppendFollowsItInside() throws {
        try withFixture { f throws in
            plant(f.host + "/secret", at: f.tree + "/etc/motd")
            try f.fs.writeFile("/etc/motd", contents: text("replaced\n"))
            #expect(hostRead(f.tree + "/etc/motd") == "replaced\n")
            plant(f.host + "/secret", at: f.tree + "/etc/log")
            try f.fs.writeFile("/etc/log", contents: text("appended\n"), append: true)
            #expect(hostLink(f.tree + "/etc/log") == f.host + "/secret")
            #expect(hostRead(f.inTree(f.host) + "/secret") == "appended\n")
            try f.fs.writeFile("/etc/log", contents: text("more\n"), append: true)
            #expect(hostRead(f.inTree(f.host) + "/secret") == "appended\nmore\n")
            plant("../../host/secret", at: f.tree + "/etc/rel")
            #expect(throws: HavelError.self) { try f.fs.readFile("/etc/rel") }
        }
    }

    @Test func deviceNodesAreNeverOpened() throws {
        try withFixture { f throws in
            // A target's postinst could mknod a host disk; /dev/null's numbers stand in for it here.
            let null = hostStatus("/dev/null")!.st_rdev
            #expect(mknod(f.tree + "/dev/disk", S_IFCHR | 0o666, null) == 0)
            #expect(mkfifo(f.tree + "/dev/fifo", 0o644) == 0)
            plant("/dev/disk", at: f.tree + "/disklink")
            for path in ["/dev/disk", "/dev/fifo", "/disklink"] {
                #expect(throws: HavelError.self) { try f.fs.writeFile(path, contents: text("x"), append: true) }
                #expect(throws: HavelError.self) { try f.fs.readFile(path) }
            }
            #expect(throws: HavelError.self) { try f.fs.writeFile("/dev/fifo", contents: text("x")) }
            // cp -a recreates special files instead of reading them.
            try f.fs.copy(from: "/dev", to: "/devcopy")
            #expect(hostStatus(f.tree + "/devcopy/disk")?.st_rdev == null)
            #expect(hostStatus(f.tree + "/devcopy/fifo").map { $0.st_mode & S_IFMT } == S_IFIFO)
        }
    }

    @Test func createDirectoryThroughAPlantedLinkStaysInside() throws {
        try withFixture { f throws in
            plant(f.host, at: f.tree + "/opt")
            plant(f.host + "/sub", at: f.tree + "/dangling")
            try f.fs.createDirectory("/opt/new")
            #expect(hostKind(f.inTree(f.host) + "/new") == "dir")
            try f.fs.createDirectory("/dangling")
            #expect(hostKind(f.inTree(f.host) + "/sub") == "dir")
            #expect(hostLink(f.tree + "/dangling") == f.host + "/sub")
        }
    }

    @Test func symlinkCreationNeverWritesThroughExistingLinks() throws {
        try withFixture { f throws in
            plant(f.host + "/secret", at: f.tree + "/etc/l")
            try f.fs.symlink(target: "/bin/true", at: "/etc/l")
            #expect(hostLink(f.tree + "/etc/l") == "/bin/true")
            plant(f.host, at: f.tree + "/etc/dl")
            try f.fs.symlink(target: "x", at: "/etc/dl")
            #expect(hostLink(f.tree + "/etc/dl") == "x")
            plant(f.host, at: f.tree + "/hostdir")
            // The link's directory is a link to the host: the tree has no such directory.
            let error = #expect(throws: HavelError.self) { try f.fs.symlink(target: "x", at: "/hostdir/evil") }
            #expect(error?.code == .notFound)
        }
    }

    @Test func importAndExportRefuseToTouchTheTreeFromTheHostSide() throws {
        try withFixture { f throws in
            #expect(throws: HavelError.self) { try f.fs.exportItem("/etc/hostname", toHost: f.tree + "/etc/out") }
            #expect(throws: HavelError.self) { try f.fs.exportItem("/", toHost: f.base) }
            #expect(throws: HavelError.self) { try f.fs.importItem(fromHost: f.tree + "/etc/hostname", to: "/x") }
            #expect(throws: HavelError.self) { try f.fs.importItem(fromHost: f.base, to: "/x") }
            // Exporting through a planted link reads the tree's content, never the host's.
            plant(f.host + "/secret", at: f.tree + "/etc/key")
            let out = f.base + "/scratch-out"
            #expect(throws: HavelError.self) { try f.fs.exportItem("/etc/key", toHost: out) }
            #expect(hostKind(out) == "missing")
        }
    }

    @Test func deepTreesAreWalkedOrRefusedCleanly() async throws {
        let f = try Fixture()
        defer { f.expectHostUntouched() }
        let fs = f.fs
        let levels = String(repeating: "/d", count: 1000)
        var path = f.tree + "/deep"
        hostMkdir(path)
        for _ in 0..<1000 {
            path += "/d"
            hostMkdir(path)
        }
        hostWrite(path + "/leaf", "x")
        plant(f.host, at: path + "/escape")
        // On a cooperative thread, the smallest stack Havel's async code runs on.
        try await Task.detached {
            try fs.copy(from: "/deep", to: "/deepcopy")
            try fs.remove("/deep")
        }.value
        #expect(hostKind(f.tree + "/deep") == "missing")
        #expect(hostRead(f.tree + "/deepcopy" + levels + "/leaf") == "x")
        #expect(hostLink(f.tree + "/deepcopy" + levels + "/escape") == f.host)
        var deeper = f.tree + "/deepcopy" + levels
        for _ in 0..<100 {
            deeper += "/d"
            hostMkdir(deeper)
        }
        let error = await #expect(throws: HavelError.self) { try await Task.detached { try fs.remove("/deepcopy") }.value }
        #expect(error?.message.contains("directory levels") == true)
        try fs.remove("/deepcopy" + String(repeating: "/d", count: 500))
        try fs.remove("/deepcopy")
        #expect(hostKind(f.tree + "/deepcopy") == "missing")
    }

    @Test func nulBytesAndEmptyPathsAreRefused() throws {
        try withFixture { f throws in
            for bad in ["", "/etc/\u{0}x"] {
                let error = #expect(throws: HavelError.self) { try f.fs.writeFile(bad, contents: []) }
                #expect(error?.code == .invalidArgument)
                #expect(!f.fs.exists(bad))
            }
            #expect(throws: HavelError.self) { try f.fs.symlink(target: "a\u{0}b", at: "/x") }
        }
    }
}

// MARK: - Normal function

@Suite struct RootedFileSystemFunctionTests {
    @Test func rootIsResolvedAtInit() throws {
        try withFixture { f throws in
            plant(f.tree, at: f.base + "/scratch-alias")
            let viaAlias = try RootedFileSystem(root: f.base + "/scratch-alias/")
            #expect(viaAlias.root == f.tree)
            #expect(throws: HavelError.self) { try RootedFileSystem(root: f.tree + "/etc/hostname") }
            let error = #expect(throws: HavelError.self) { try RootedFileSystem(root: f.base + "/nope") }
            #expect(error?.code == .notFound)
        }
    }

    @Test func resolveSpellingsAgree() throws {
        try withFixture { f throws in
            for spelling in ["/etc/hostname", "etc/hostname", "../../etc/hostname", "/usr/../etc/./hostname", "//etc//hostname"] {
                #expect(try f.fs.resolve(spelling) == f.tree + "/etc/hostname")
            }
            #expect(try f.fs.resolve("/") == f.tree)
            #expect(try f.fs.resolve("/new/dir/file") == f.tree + "/new/dir/file")
            #expect(try f.fs.resolve("/new/../etc") == f.tree + "/etc")
            #expect(throws: HavelError.self) { try f.fs.resolve("/etc/hostname/x") }
            #expect(throws: HavelError.self) { try f.fs.resolve("/etc/hostname/") }
        }
    }

    @Test func globMatchesLikePython() throws {
        try withFixture { f throws in
            for name in ["a.deb", "b.deb", "c.txt", ".hidden.deb", "[x].deb", "a1", "a2", "ab"] {
                hostWrite(f.tree + "/var/cache/" + name, "")
            }
            hostMkdir(f.tree + "/var/cache/dir.deb")
            #expect(try f.fs.glob("/var/cache/*.deb") == ["/var/cache/[x].deb", "/var/cache/a.deb", "/var/cache/b.deb", "/var/cache/dir.deb"])
            #expect(try f.fs.glob("/var/cache/.*.deb") == ["/var/cache/.hidden.deb"])
            #expect(try f.fs.glob("/var/cache/a?") == ["/var/cache/a1", "/var/cache/a2", "/var/cache/ab"])
            #expect(try f.fs.glob("/var/cache/a[0-9]") == ["/var/cache/a1", "/var/cache/a2"])
            #expect(try f.fs.glob("/var/cache/a[!0-9]") == ["/var/cache/ab"])
            #expect(try f.fs.glob("/var/cache/[[]x].deb") == ["/var/cache/[x].deb"])
            #expect(try f.fs.glob("/var/cache/*.deb/") == ["/var/cache/dir.deb"])
            #expect(try f.fs.glob("/var/*/c.txt") == ["/var/cache/c.txt"])
            #expect(try f.fs.glob("var/cache/c.txt") == ["/var/cache/c.txt"])
            #expect(try f.fs.glob("/var/cache/missing") == [])
            #expect(try f.fs.glob("/nothing/*") == [])
            #expect(try f.fs.glob("/") == ["/"])
        }
    }

    @Test func globPatternUnit() {
        #expect(GlobPattern("*").matches("anything"))
        #expect(GlobPattern("a*b*c").matches("aXbYc"))
        #expect(!GlobPattern("a*b*c").matches("aXbY"))
        #expect(GlobPattern("[").matches("["))
        #expect(GlobPattern("[!]]").matches("x"))
        #expect(!GlobPattern("[!]]").matches("]"))
        #expect(GlobPattern("[]]").matches("]"))
        #expect(GlobPattern("[a-]").matches("-"))
        #expect(GlobPattern("[z-a]x").matches("x") == false)
        #expect(GlobPattern("\\*").matches("\\abc"))
        #expect(GlobPattern("é?").matches("éa"))
        #expect(GlobPattern.isMagic("a[b") && !GlobPattern.isMagic("plain"))
    }

    @Test func createDirectoryIsMkdirP() throws {
        try withFixture { f throws in
            try f.fs.createDirectory("/a/b/c")
            #expect(hostKind(f.tree + "/a/b/c") == "dir")
            try f.fs.createDirectory("/a/b/c")
            try f.fs.createDirectory("/etc")
            let error = #expect(throws: HavelError.self) { try f.fs.createDirectory("/etc/hostname") }
            #expect(error?.message.contains("/etc/hostname") == true)
            #expect(throws: HavelError.self) { try f.fs.createDirectory("/etc/hostname/sub") }
        }
    }

    @Test func writeReadAndAppend() throws {
        try withFixture { f throws in
            try f.fs.writeFile("/new/dirs/file", contents: text("one\n"))
            #expect(hostKind(f.tree + "/new/dirs") == "dir")
            #expect(permissions(f.tree + "/new") == 0o755)
            #expect(try f.fs.readFile("/new/dirs/file") == text("one\n"))
            try f.fs.writeFile("/new/dirs/file", contents: text("two\n"), append: true)
            #expect(try f.fs.readFile("new/dirs/file") == text("one\ntwo\n"))
            try f.fs.writeFile("/new/dirs/file", contents: text("three\n"))
            #expect(try f.fs.readFile("/new/dirs/file") == text("three\n"))
            try f.fs.writeFile("/new/appended", contents: text("a"), append: true, mode: 0o600)
            #expect(permissions(f.tree + "/new/appended") == 0o600)
            try f.fs.writeFile("/empty", contents: [])
            #expect(try f.fs.readFile("/empty") == [])
            let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            try f.fs.writeFile("/big", contents: big)
            #expect(try f.fs.readFile("/big") == big)
            #expect(throws: HavelError.self) { try f.fs.writeFile("/etc", contents: []) }
            #expect(throws: HavelError.self) { try f.fs.writeFile("/", contents: []) }
            let missing = #expect(throws: HavelError.self) { try f.fs.readFile("/nope") }
            #expect(missing?.code == .notFound)
            #expect(throws: HavelError.self) { try f.fs.readFile("/etc") }
        }
    }

    @Test func removeFilesDirectoriesAndMissingPaths() throws {
        try withFixture { f throws in
            try f.fs.writeFile("/d/e/f", contents: text("x"))
            try f.fs.writeFile("/d/g", contents: text("x"))
            try f.fs.remove("/d/g")
            #expect(hostKind(f.tree + "/d/g") == "missing")
            try f.fs.setAttributes("/d/e", mode: 0o000, owner: nil, group: nil)
            try f.fs.remove("/d")
            #expect(hostKind(f.tree + "/d") == "missing")
            try f.fs.remove("/d")
            try f.fs.remove("/no/such/thing")
            #expect(throws: HavelError.self) { try f.fs.remove("/") }
            #expect(throws: HavelError.self) { try f.fs.remove("/etc/hostname/x") }
        }
    }

    @Test func copyIsCpA() throws {
        try withFixture { f throws in
            try f.fs.writeFile("/src/file", contents: text("data\n"), mode: 0o4750, owner: 1234, group: 4321)
            try f.fs.writeFile("/src/sub/inner", contents: text("inner\n"))
            try f.fs.symlink(target: "file", at: "/src/link")
            #expect(link(f.tree + "/src/file", f.tree + "/src/hard") == 0)
            try f.fs.setAttributes("/src/sub", mode: 0o700, owner: 1234, group: nil)
            let times = [timespec(tv_sec: 1_500_000_000, tv_nsec: 0), timespec(tv_sec: 1_600_000_000, tv_nsec: 42)]
            #expect(utimensat(AT_FDCWD, f.tree + "/src/file", times, 0) == 0)
            #expect(utimensat(AT_FDCWD, f.tree + "/src/sub", times, 0) == 0)
            try f.fs.copy(from: "/src", to: "/dst")
            let file = try #require(hostStatus(f.tree + "/dst/file"))
            #expect(file.st_mode & 0o7777 == 0o4750 && file.st_uid == 1234 && file.st_gid == 4321)
            #expect(file.st_mtim.tv_sec == 1_600_000_000 && file.st_mtim.tv_nsec == 42)
            #expect(hostRead(f.tree + "/dst/sub/inner") == "inner\n")
            #expect(hostLink(f.tree + "/dst/link") == "file")
            #expect(hostStatus(f.tree + "/dst/hard")?.st_ino == file.st_ino)
            let sub = try #require(hostStatus(f.tree + "/dst/sub"))
            #expect(sub.st_mode & 0o7777 == 0o700 && sub.st_uid == 1234 && sub.st_mtim.tv_sec == 1_600_000_000)
            // Into an existing directory, and merging into an existing copy.
            try f.fs.copy(from: "/src", to: "/tmp")
            #expect(hostRead(f.tree + "/tmp/src/file") == "data\n")
            try f.fs.writeFile("/src/added", contents: text("new\n"))
            try f.fs.copy(from: "/src", to: "/tmp/")
            #expect(hostRead(f.tree + "/tmp/src/added") == "new\n")
            // A file onto a file replaces it; the link itself is copied.
            try f.fs.copy(from: "/etc/hostname", to: "/dst/file")
            #expect(hostRead(f.tree + "/dst/file") == "board\n")
            try f.fs.copy(from: "/src/link", to: "/etc")
            #expect(hostLink(f.tree + "/etc/link") == "file")
            #expect(throws: HavelError.self) { try f.fs.copy(from: "/src", to: "/src/sub") }
            #expect(throws: HavelError.self) { try f.fs.copy(from: "/", to: "/x") }
            #expect(throws: HavelError.self) { try f.fs.copy(from: "/etc/hostname", to: "/etc/hostname") }
            #expect(throws: HavelError.self) { try f.fs.copy(from: "/etc/hostname", to: "/missing/dir/x") }
            #expect(throws: HavelError.self) { try f.fs.copy(from: "/src", to: "/etc/hostname") }
        }
    }

    @Test func copyKeepsExtendedAttributes() throws {
        try withFixture { f throws in
            let xattr = try #require(ExtendedAttributeCalls())
            try f.fs.writeFile("/usr/bin/tool", contents: text("#!/bin/sh\n"), mode: 0o755)
            let fd = open(f.tree + "/usr/bin/tool", O_RDONLY)
            defer { close(fd) }
            let value = Array("havel".utf8)
            guard xattr.set(fd, "user.havel", value, value.count, 0) == 0 else { return }  // file system without user xattrs
            try f.fs.copy(from: "/usr/bin/tool", to: "/usr/bin/tool2")
            let copy = open(f.tree + "/usr/bin/tool2", O_RDONLY)
            defer { close(copy) }
            var read = [UInt8](repeating: 0, count: 16)
            let count = xattr.get(copy, "user.havel", &read, read.count)
            #expect(count == value.count && Array(read.prefix(max(count, 0))) == value)
        }
    }

    @Test func moveIsMv() throws {
        try withFixture { f throws in
            try f.fs.writeFile("/a", contents: text("a\n"))
            try f.fs.move(from: "/a", to: "/b")
            #expect(hostKind(f.tree + "/a") == "missing" && hostRead(f.tree + "/b") == "a\n")
            try f.fs.move(from: "/b", to: "/etc")
            #expect(hostRead(f.tree + "/etc/b") == "a\n")
            try f.fs.move(from: "/etc/b", to: "/etc/hostname")
            #expect(hostRead(f.tree + "/etc/hostname") == "a\n")
            try f.fs.createDirectory("/d1/inner")
            try f.fs.move(from: "/d1", to: "/d2")
            #expect(hostKind(f.tree + "/d2/inner") == "dir")
            #expect(throws: HavelError.self) { try f.fs.move(from: "/d2", to: "/d2") }
            try f.fs.move(from: "/etc/hostname", to: "/etc/hostname")
            #expect(hostRead(f.tree + "/etc/hostname") == "a\n")
            #expect(throws: HavelError.self) { try f.fs.move(from: "/d2", to: "/d2/inner") }
            #expect(throws: HavelError.self) { try f.fs.move(from: "/", to: "/x") }
            let missing = #expect(throws: HavelError.self) { try f.fs.move(from: "/nope", to: "/x") }
            #expect(missing?.code == .notFound)
        }
    }

    @Test func symlinkIsLnSf() throws {
        try withFixture { f throws in
            try f.fs.symlink(target: "/lib/systemd/system/x.service", at: "/etc/x.service")
            #expect(hostLink(f.tree + "/etc/x.service") == "/lib/systemd/system/x.service")
            try f.fs.symlink(target: "other", at: "/etc/x.service")
            #expect(hostLink(f.tree + "/etc/x.service") == "other")
            try f.fs.symlink(target: "hostname2", at: "/etc/hostname")
            #expect(hostLink(f.tree + "/etc/hostname") == "hostname2")
            try f.fs.symlink(target: "/usr/lib/os-release", at: "/usr")
            #expect(hostLink(f.tree + "/usr/os-release") == "/usr/lib/os-release")
            #expect(throws: HavelError.self) { try f.fs.symlink(target: "x", at: "/missing/link") }
            #expect(throws: HavelError.self) { try f.fs.symlink(target: "", at: "/x") }
        }
    }

    @Test func existsFollowsLinksInsideTheTree() throws {
        try withFixture { f throws in
            plant("hostname", at: f.tree + "/etc/ok")
            plant("nothing", at: f.tree + "/etc/dangling")
            #expect(f.fs.exists("/etc/hostname"))
            #expect(f.fs.exists("/etc/ok"))
            #expect(f.fs.exists("/"))
            #expect(!f.fs.exists("/etc/dangling"))
            #expect(!f.fs.exists("/etc/nope"))
            #expect(try f.fs.resolve("/etc/dangling", followFinalSymlink: false) == f.tree + "/etc/dangling")
        }
    }

    @Test func importAndExportCopyWithCpASemantics() throws {
        try withFixture { f throws in
            let overlay = f.base + "/scratch-overlay"
            hostMkdir(overlay)
            hostMkdir(overlay + "/etc")
            hostWrite(overlay + "/etc/issue", "Havel\n", mode: 0o600)
            plant("/etc/issue", at: overlay + "/etc/issue.net")
            try f.fs.importItem(fromHost: overlay + "/etc", to: "/")  // into /, merging with /etc
            #expect(hostRead(f.tree + "/etc/issue") == "Havel\n")
            #expect(permissions(f.tree + "/etc/issue") == 0o600)
            #expect(hostLink(f.tree + "/etc/issue.net") == "/etc/issue")
            #expect(hostRead(f.tree + "/etc/hostname") == "board\n")
            try f.fs.importItem(fromHost: overlay + "/etc/issue", to: "/usr/issue.copy")
            #expect(hostRead(f.tree + "/usr/issue.copy") == "Havel\n")
            try f.fs.importItem(fromHost: overlay + "/etc/", to: "/var")
            #expect(hostRead(f.tree + "/var/etc/issue") == "Havel\n")
            let missing = #expect(throws: HavelError.self) { try f.fs.importItem(fromHost: overlay + "/nope", to: "/") }
            #expect(missing?.code == .notFound)

            let out = f.base + "/scratch-out"
            try f.fs.exportItem("/etc/hostname", toHost: out)
            #expect(hostRead(out) == "board\n")
            hostMkdir(f.base + "/scratch-outdir")
            try f.fs.symlink(target: "/etc/hostname", at: "/vmlinuz")
            try f.fs.exportItem("/vmlinuz", toHost: f.base + "/scratch-outdir")
            #expect(hostRead(f.base + "/scratch-outdir/hostname") == "board\n")
            try f.fs.exportItem("/etc", toHost: f.base + "/scratch-outdir/")
            #expect(hostLink(f.base + "/scratch-outdir/etc/issue.net") == "/etc/issue")
            #expect(hostRead(f.base + "/scratch-outdir/etc/passwd")?.contains("havel-rfs-user") == true)
        }
    }
}
