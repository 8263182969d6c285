import Chroot
import Foundation
import HavelCore
import Logging
import SystemKit
import Testing
@testable import Build
@testable import ProjectXML

/// Finetuning on a synthetic tree: ELBE's meaning of each file action, and that no path, symlink or
/// archive member planted in the tree lets an action read or write the host.
@Suite(.enabled(if: geteuid() == 0, "needs root (owners, useradd --root)"))
struct FinetuningTests {
    func runner(_ tree: SyntheticTree) throws -> (FinetuningRunner, Logger) {
        let log = Logger.discarding
        let target = try RootedFileSystem(root: tree.root)
        let runner = FinetuningRunner(target: target, chroot: ChrootRunner(root: tree.root),
                                      directory: BuildDirectory(tree.base), log: log)
        return (runner, log)
    }

    /// Decodes actions from XML the way a project file holds them.
    func steps(_ xml: String) throws -> [FinetuningStep] {
        let text = "<RootFileSystem xmlns=\"https://www.linutronix.de/projects/Elbe\" revision=\"6\"><target><finetuning>\(xml)</finetuning></target></RootFileSystem>"
        let document = try XMLReader.parse(text, file: "ft.xml")
        return ProjectDecoder.decode(document.root).target.finetuning
    }

    func run(_ xml: String, on tree: SyntheticTree) async throws {
        var (runner, _) = try runner(tree)
        try await runner.run(try steps(xml))
    }

    @Test func fileActionsWriteAppendAndSetOwnerAndMode() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        try await run("""
        <file dst="/etc/app/app.conf" owner="root" group="www-data" mode="0640">
            key = value
              indented
        </file>
        <file dst="/etc/app/app.conf" append="true">second = 2
        </file>
        <file dst="/etc/app/blob" encoding="base64">aGVsbG8K</file>
        <file dst="/etc/app/raw" encoding="raw">  kept  </file>
        """, on: tree)
        #expect(tree.read("/etc/app/app.conf") == "key = value\n  indented\nsecond = 2\n")
        #expect(tree.read("/etc/app/blob") == "hello\n")
        #expect(tree.read("/etc/app/raw") == "  kept  ")
        let attributes = try FileManager.default.attributesOfItem(atPath: tree.root + "/etc/app/app.conf")
        #expect((attributes[.posixPermissions] as? Int) == 0o640)
        #expect((attributes[.groupOwnerAccountID] as? Int) == 33)
    }

    @Test func directoryCopyMoveLinkAndRemove() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        try tree.write("/var/log/a.log", "a")
        try tree.write("/var/log/b.log", "b")
        try tree.write("/var/log/keep.log", "k")
        try await run("""
        <mkdir>/srv/data/deep</mkdir>
        <cp path="/etc/hostname">/srv/data/hostname.copy</cp>
        <mv path="/srv/data/hostname.copy">/srv/data/hostname.moved</mv>
        <ln path="/srv/data">/data</ln>
        <rm exclude="keep.log">/var/log/*.log</rm>
        """, on: tree)
        #expect(FileManager.default.fileExists(atPath: tree.root + "/srv/data/deep"))
        #expect(tree.read("/srv/data/hostname.moved") == "tree-hostname\n")
        #expect(!FileManager.default.fileExists(atPath: tree.root + "/srv/data/hostname.copy"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: tree.root + "/data") == "/srv/data")
        #expect(!FileManager.default.fileExists(atPath: tree.root + "/var/log/a.log"))
        #expect(tree.read("/var/log/keep.log") == "k")
    }

    @Test func usersAndGroupsUseTheTreesOwnFiles() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        try await run("""
        <addgroup gid="4242">operators</addgroup>
        <adduser shell="/bin/bash" groups="operators" uid="2001" passwd_hashed="$6$salt$hash">alice</adduser>
        <file dst="/home/alice/notes" owner="alice" group="operators" mode="0600">x</file>
        """, on: tree)
        #expect(tree.read("/etc/group")?.contains("operators:x:4242:alice") == true)
        #expect(tree.read("/etc/passwd")?.contains("alice:x:2001:") == true)
        #expect(tree.read("/etc/shadow")?.contains("alice:$6$salt$hash:") == true)
        let attributes = try FileManager.default.attributesOfItem(atPath: tree.root + "/home/alice/notes")
        #expect((attributes[.ownerAccountID] as? Int) == 2001)
        #expect((attributes[.groupOwnerAccountID] as? Int) == 4242)
        // The host has no alice.
        #expect(!((try? String(contentsOfFile: "/etc/passwd", encoding: .utf8)) ?? "").contains("alice:x:2001"))
    }

    @Test func aUserWhoseGroupAlreadyExistsJoinsIt() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        try await run("<adduser shell=\"/bin/sh\">www-data2</adduser><adduser shell=\"/bin/sh\" system=\"true\">backup</adduser>", on: tree)
        try tree.write("/etc/group", (tree.read("/etc/group") ?? "") + "operator:x:37:\n")
        try await run("<adduser shell=\"/bin/sh\">operator</adduser>", on: tree)
        #expect(tree.read("/etc/passwd")?.contains("operator:x:") == true)
        #expect(tree.read("/etc/passwd")?.split(separator: "\n").first { $0.hasPrefix("operator:") }?.split(separator: ":")[3] == "37")
    }

    @Test func buildEnvironmentActionsWorkBetweenTheTwoTrees() async throws {
        let tree = try SyntheticTree()
        let env = try SyntheticTree()
        defer { tree.remove(); env.remove() }
        try env.write("/etc/tool.conf", "from the build environment\n")
        let log = Logger.discarding
        var runner = FinetuningRunner(target: try RootedFileSystem(root: tree.root), chroot: ChrootRunner(root: tree.root),
                                      buildenv: try RootedFileSystem(root: env.root), directory: BuildDirectory(tree.base), log: log)
        try await runner.run(try steps("""
        <buildenv_mkdir>/opt/sdk</buildenv_mkdir>
        <b2t_cp path="/etc/tool.conf">/etc/tool.conf</b2t_cp>
        <t2b_cp path="/etc/hostname">/opt/sdk</t2b_cp>
        <buildenv_mv path="/opt/sdk/hostname">/opt/sdk/target-hostname</buildenv_mv>
        """))
        #expect(tree.read("/etc/tool.conf") == "from the build environment\n")
        #expect(env.read("/opt/sdk/target-hostname") == "tree-hostname\n")
        #expect(!FileManager.default.fileExists(atPath: tree.root + "/opt/sdk"))
    }

    /// Scripts in the tree see the build's clamp for file times, so a date they stamp is the same every build.
    @Test func commandsSeeTheBuildsSourceDateEpoch() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        let processes = RecordingProcesses()
        var runner = FinetuningRunner(target: try RootedFileSystem(root: tree.root), chroot: ChrootRunner(root: tree.root, processes: processes),
                                      directory: BuildDirectory(tree.base), log: Logger.discarding, processes: processes)
        runner.epoch = 1_700_000_000
        try await runner.run(try steps("""
        <command>date -u -d "@$SOURCE_DATE_EPOCH" +%F > /etc/build-stamp</command>
        <raw_cmd>touch /etc/stamped</raw_cmd>
        """))
        #expect(processes.commands.count == 2)
        for command in processes.commands {
            #expect(command.environment["SOURCE_DATE_EPOCH"] == "1700000000", "\(command)")
        }
        runner.epoch = 0
        try await runner.run(try steps("<raw_cmd>true</raw_cmd>"))
        #expect(processes.commands.last?.environment["SOURCE_DATE_EPOCH"] == nil)
    }

    @Test func artifactsAndTargetToProjectMoves() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        try tree.write("/var/log/boot.log", "booted")
        var (runner, _) = try runner(tree)
        try await runner.run(try steps("""
        <artifact>/etc/hostname</artifact>
        <t2p_mv path="/var/log/boot.log">boot-log.txt</t2p_mv>
        """))
        #expect((try? String(contentsOfFile: tree.base + "/artifacts/hostname", encoding: .utf8)) == "tree-hostname\n")
        #expect((try? String(contentsOfFile: tree.base + "/artifacts/boot-log.txt", encoding: .utf8)) == "booted")
        #expect(!FileManager.default.fileExists(atPath: tree.root + "/var/log/boot.log"))
        #expect(runner.artifacts == ["artifacts/hostname", "artifacts/boot-log.txt"])
    }

    @Test func errorsNameTheActionAndItsLine() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        var (runner, _) = try runner(tree)
        await #expect {
            try await runner.run(try steps("<cp path=\"/nope/*\">/x</cp>"))
        } throws: { error in
            let e = error as? HavelError
            return e?.message.contains("finetuning <cp>") == true && e?.message.contains("matches nothing") == true && e?.location?.line == 1
        }
    }

    // MARK: - Hostile input: nothing may reach the host

    /// Each case plants links in the tree, runs actions, and checks the host directory is unchanged.
    static let hostileCases: [(name: String, plant: [(link: String, target: String)], actions: String, check: @Sendable (SyntheticTree) -> Bool)] = [
        ("dot-dot in a file destination", [], "<file dst=\"../../../../host/sentinel\">owned</file>",
         { $0.read("/host/sentinel") == "owned" }),
        ("dot-dot in mkdir", [], "<mkdir>../../../host/newdir</mkdir>",
         { FileManager.default.fileExists(atPath: $0.root + "/host/newdir") }),
        ("dot-dot glob in rm", [], "<rm>../../../host/*</rm>", { _ in true }),
        ("absolute symlink to the host directory, then write through it", [("/etc/evil", "HOST")],
         "<file dst=\"/etc/evil/sentinel\">owned</file>", { _ in true }),
        ("relative symlink climbing out, then write", [("/etc/up", "../../../../../../../../HOST")],
         "<file dst=\"/etc/up/sentinel\">owned</file>", { _ in true }),
        ("symlink to /, then copy the host sentinel out", [("/etc/rootlink", "/")],
         "<cp path=\"/etc/rootlink/HOSTNAME/sentinel\">/stolen</cp>", { _ in true }),
        ("rm through a symlink to the host removes only the link", [("/var/hostdir", "HOST")],
         "<rm>/var/hostdir</rm>", { !FileManager.default.fileExists(atPath: $0.root + "/var/hostdir") }),
        ("rm -rf of a directory holding links to the host", [("/var/log/h1", "HOST"), ("/var/log/h2", "HOST/sentinel")],
         "<rm>/var/log</rm>", { !FileManager.default.fileExists(atPath: $0.root + "/var/log") }),
        ("symlink chain ending outside", [("/a", "/b"), ("/b", "/c"), ("/c", "HOST")],
         "<file dst=\"/a/sentinel\" append=\"true\">more</file>", { _ in true }),
        ("ln then append through the new link", [],
         "<ln path=\"HOST/sentinel\">/etc/motd</ln><file dst=\"/etc/motd\" append=\"true\">x</file>", { _ in true }),
        ("mv of a link to the host moves the link", [("/opt/h", "HOST")],
         "<mv path=\"/opt/h\">/opt/moved</mv>",
         { (try? FileManager.default.destinationOfSymbolicLink(atPath: $0.root + "/opt/moved")) != nil }),
        ("artifact through a link exports the tree's file", [("/etc/l", "/etc")],
         "<artifact>/etc/l/hostname</artifact>",
         { (try? String(contentsOfFile: $0.base + "/artifacts/hostname", encoding: .utf8)) == "tree-hostname\n" }),
        ("owner by name comes from the tree, mode applied in the tree", [("/etc/x", "HOST")],
         "<file dst=\"/etc/x/sentinel\" owner=\"www-data\" mode=\"0777\">x</file>", { _ in true }),
        ("mkdir through a symlink loop fails cleanly", [("/loop1", "/loop2"), ("/loop2", "/loop1")],
         "<mkdir>/loop1/sub</mkdir>", { _ in true }),
        ("copy a directory holding a link to the host copies the link", [("/etc/conf.d/h", "HOST")],
         "<cp path=\"/etc/conf.d\">/etc/conf.copy</cp>",
         { (try? FileManager.default.destinationOfSymbolicLink(atPath: $0.root + "/etc/conf.copy/h")) != nil }),
        ("rm_apt_source through a link to the host", [("/etc/apt", "HOST")],
         "<rm_apt_source>host data</rm_apt_source>", { _ in true }),
    ]

    @Test(arguments: 0..<hostileCases.count)
    func hostileInputLeavesTheHostUntouched(index: Int) async throws {
        let hostile = Self.hostileCases[index]
        let tree = try SyntheticTree()
        defer { tree.remove() }
        try tree.write("/etc/apt-placeholder", "")
        for (link, target) in hostile.plant {
            let hostLink = tree.root + link
            try FileManager.default.createDirectory(atPath: (hostLink as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let resolvedTarget = target.replacingOccurrences(of: "HOSTNAME", with: String(tree.host.dropFirst()))
                .replacingOccurrences(of: "HOST", with: tree.host)
            try FileManager.default.createSymbolicLink(atPath: hostLink, withDestinationPath: resolvedTarget)
        }
        if hostile.name.contains("rm_apt_source") {
            try "deb http://x host data\n".write(toFile: tree.host + "/sources.list", atomically: true, encoding: .utf8)
        }
        let before = tree.hostSnapshot()
        let actions = hostile.actions.replacingOccurrences(of: "HOST", with: tree.host)
        var (runner, _) = try runner(tree)
        // Some cases must fail (a loop, a missing source); none may touch the host either way.
        _ = try? await runner.run(try steps(actions))
        #expect(tree.hostSnapshot() == before, "\(hostile.name): the host directory changed")
        #expect((try? String(contentsOfFile: tree.sentinel, encoding: .utf8)) == SyntheticTree.sentinelText, "\(hostile.name)")
        #expect(hostile.check(tree), "\(hostile.name): the action did not land in the tree as expected")
    }

    @Test func t2pMoveRefusesToLeaveTheBuildDirectory() async throws {
        let tree = try SyntheticTree()
        defer { tree.remove() }
        var (runner, _) = try runner(tree)
        await #expect(throws: HavelError.self) {
            try await runner.run(try steps("<t2p_mv path=\"/etc/hostname\">../../escaped</t2p_mv>"))
        }
        #expect(!FileManager.default.fileExists(atPath: tree.base + "/../escaped"))
    }

    @Test func plainContentIsDedentedLikeELBE() {
        #expect(FinetuningRunner.dedent("\n    a\n      b\n    ") == "a\n  b\n")
        #expect(FinetuningRunner.dedent("single") == "single")
    }

    @Test func rawCommandWordSplitting() throws {
        #expect(try ShellWords.split("echo 'a b' \"c \\\"d\\\"\" e\\ f") == ["echo", "a b", "c \"d\"", "e f"])
        #expect(throws: HavelError.self) { try ShellWords.split("echo 'unclosed") }
    }
}
