import Logging
import Foundation
import HavelCore
import Chroot
import SystemKit

/// Runs `<finetuning>` actions in document order with ELBE's meaning. File work is done from the
/// host through `RootedFileSystem`, so no path (`..`, absolute or chained symlinks) can leave the
/// tree; commands run inside the target through `ChrootRunner` (under qemu-user for a foreign arch).
struct FinetuningRunner {
    let target: RootedFileSystem
    let chroot: ChrootRunner
    /// The build environment (`buildenv/`), present when the project uses buildenv actions.
    var buildenv: RootedFileSystem?
    let directory: BuildDirectory
    let log: Logger
    let processes: any ProcessRunning
    /// Tree paths written or created by finetuning, for the build report.
    var touched: [String] = []
    var artifacts: [String] = []
    /// The build's clamp for file times, given to `<command>` and `<raw_cmd>` as SOURCE_DATE_EPOCH (0: none known).
    var epoch = 0

    /// SOURCE_DATE_EPOCH for what runs in the tree, so that a script stamping a date can stamp the same one every build.
    static func epochEnvironment(_ epoch: Int) -> [String: String] {
        epoch > 0 ? ["SOURCE_DATE_EPOCH": String(epoch)] : [:]
    }

    init(target: RootedFileSystem, chroot: ChrootRunner, buildenv: RootedFileSystem? = nil, directory: BuildDirectory, log: Logger,
         processes: any ProcessRunning = SystemProcesses()) {
        self.processes = processes
        self.target = target
        self.chroot = chroot
        self.buildenv = buildenv
        self.directory = directory
        self.log = log
    }

    func fail(_ step: FinetuningStep, _ message: String) -> HavelError {
        HavelError(.invalidProject, "finetuning <\(step.action.elementName)>: \(message)", at: step.location)
    }

    mutating func run(_ steps: [FinetuningStep]) async throws(HavelError) {
        for step in steps {
            try Task.checkCancellationAsHavelError()
            log.info("finetuning: \(Self.describe(step.action))\(step.location.map { " (\($0))" } ?? "")")
            do {
                try await run(step)
            } catch {
                throw error.location == nil ? fail(step, error.message) : error
            }
        }
    }

    static func describe(_ action: FinetuningAction) -> String {
        switch action {
        case .remove(let pattern, let exclude): "rm \(pattern)" + (exclude.isEmpty ? "" : " (keeping \(exclude.joined(separator: ",")))")
        case .makeDirectory(let path, _): "mkdir -p \(path)"
        case .makeNode(let path, let options): "mknod \(path) \(options)"
        case .copy(let from, let to, _, _): "cp -a \(from) \(to)"
        case .move(let from, let to, _, _): "mv \(from) \(to)"
        case .link(let target, let link): "ln -sf \(target) \(link)"
        case .addUser(let user): "adduser \(user.name)"
        case .addGroup(let name, _, _): "addgroup \(name)"
        case .file(let spec): (spec.append ? "append to " : "write ") + spec.destination
        case .rawCommand(let command): "raw_cmd \(command)"
        case .command(let script, _): "command " + (script.trimmingWhitespace().split(separator: "\n").first.map(String.init) ?? "")
        case .purge(let package): "purge \(package)"
        case .artifact(let path, _): "artifact \(path)"
        default: action.elementName
        }
    }

    mutating func run(_ step: FinetuningStep) async throws(HavelError) {
        switch step.action {
        case .remove(let pattern, let exclude):
            for path in try target.glob(pattern) {
                let base = (path as NSString).lastPathComponent
                if exclude.contains(base) { continue }
                try target.remove(path)
            }
        case .makeDirectory(let path, let place):
            try tree(place, step).createDirectory(path)
            if place == .target { touched.append(path) }
        case .makeNode(let path, let options):
            let words = options.split(separator: " ").map(String.init)
            let valid = (words.count == 3 && ["c", "u", "b"].contains(words[0]) && words.dropFirst().allSatisfy { UInt32($0) != nil })
                || words == ["p"]
            guard valid else { throw fail(step, "opts=\"\(options)\" must be TYPE MAJOR MINOR such as \"c 1 3\", or p") }
            let host = try target.resolve(path, followFinalSymlink: false)
            unlink(host)
            try await processes.check(Command("mknod", [host] + words))
            touched.append(path)
        case .copy(let from, let to, let source, let destination):
            let sourceTree = try tree(source, step)
            let destinationTree = try tree(destination, step)
            let sources = try sourceTree.glob(from)
            guard !sources.isEmpty else { throw fail(step, "path=\"\(from)\" matches nothing in the \(source.rawValue)") }
            for path in sources {
                if source == destination {
                    try sourceTree.copy(from: path, to: to)
                } else {
                    // Between trees: resolved in the source tree, placed by the destination tree.
                    var placed = to
                    if destinationTree.exists(to), (try? FileManager.default.attributesOfItem(atPath: destinationTree.resolve(to)))?[.type] as? FileAttributeType == .typeDirectory {
                        placed = to + "/" + (path as NSString).lastPathComponent
                    }
                    try destinationTree.remove(placed)
                    try destinationTree.importItem(fromHost: sourceTree.resolve(path, followFinalSymlink: false), to: placed)
                }
            }
            if destination == .target { touched.append(to) }
        case .move(let from, let to, let source, let destination):
            let sourceTree = try tree(source, step)
            let sources = try sourceTree.glob(from)
            guard !sources.isEmpty else { throw fail(step, "path=\"\(from)\" matches nothing in the \(source.rawValue)") }
            if destination == .project {
                try makeArtifactsDirectory()
                for path in sources {
                    let name = to.isEmpty ? (path as NSString).lastPathComponent : to
                    let host = try projectPath(name, step)
                    try target.exportItem(path, toHost: host)
                    try target.remove(path)
                    artifacts.append(String(host.dropFirst(directory.path.count + 1)))
                }
            } else {
                for path in sources { try sourceTree.move(from: path, to: to) }
                if source == .target { touched.append(to) }
            }
        case .link(let linkTarget, let link):
            try target.symlink(target: linkTarget, at: link)
            touched.append(link)
        case .addGroup(let name, let gid, let system):
            var arguments = ["--root", target.root, "-f"]
            if let gid { arguments += ["-g", String(gid)] }
            if system { arguments.append("--system") }
            try await processes.check(Command("groupadd", arguments + [name]))
        case .addUser(let user):
            try await addUser(user)
        case .file(let spec):
            try writeFile(spec, step)
            touched.append(spec.destination)
        case .rawCommand(let line):
            let words = try ShellWords.split(line)
            guard !words.isEmpty else { throw fail(step, "the command is empty") }
            try await chroot.check(words, what: "raw_cmd \(line)", environment: Self.epochEnvironment(epoch), onLine: log.tool)
        case .command(let script, let place):
            let runner = place == .buildenv ? ChrootRunner(root: try tree(.buildenv, step).root, processes: processes) : chroot
            let lines = LineTail(limit: 8)
            let log = self.log
            let status = try await processes.stream(runner.command(["/bin/sh", "-c", script], environment: Self.epochEnvironment(epoch))) { line in
                lines.append(line)
                log.tool(line)
            }
            guard status == .exited(0) else {
                throw fail(step, "the script failed in the target (\(status))" + (lines.text.isEmpty ? "" : ":\n" + lines.text))
            }
        case .purge(let package):
            try await chroot.check(["dpkg", "--purge", package], what: "dpkg --purge \(package)", onLine: log.tool)
        case .artifact(let path, _):
            let matches = try target.glob(path)
            guard !matches.isEmpty else { throw fail(step, "\(path) does not exist in the target") }
            try makeArtifactsDirectory()
            for match in matches {
                let host = directory.artifacts + "/" + (match as NSString).lastPathComponent
                try? FileManager.default.removeItem(atPath: host)
                try target.exportItem(match, toHost: host)
                artifacts.append("artifacts/" + (match as NSString).lastPathComponent)
            }
        case .removeAptSource(let text):
            let path = "/etc/apt/sources.list"
            guard target.exists(path) else { return }
            let content = String(decoding: try target.readFile(path), as: UTF8.self)
            let kept = content.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains(text) }
            try target.writeFile(path, contents: Array(kept.joined(separator: "\n").utf8))
        case .updated:
            log.warning("finetuning <updated> (a repository of the installed packages for `elbe updated`) is not supported by Havel; skipped")
        case .removeArtifact, .setPacker, .imageConvert, .losetup:
            throw fail(step, "this is a project-finetuning action; put it in <project-finetuning>")
        }
    }

    /// The tree an action works on.
    func tree(_ place: FinetuningAction.Place, _ step: FinetuningStep) throws(HavelError) -> RootedFileSystem {
        switch place {
        case .target: return target
        case .buildenv:
            guard let buildenv else { throw fail(step, "no build environment was made for this build") }
            return buildenv
        case .project: throw fail(step, "the project directory is not a tree for this action")
        }
    }

    func makeArtifactsDirectory() throws(HavelError) {
        do {
            try FileManager.default.createDirectory(atPath: directory.artifacts, withIntermediateDirectories: true)
        } catch {
            throw HavelError(.io, "cannot create \(directory.artifacts)")
        }
    }

    /// A path in the build directory for t2p_mv, refusing anything that would leave it.
    func projectPath(_ name: String, _ step: FinetuningStep) throws(HavelError) -> String {
        guard let path = BuildDirectory.confined(name, under: directory.artifacts) else {
            throw fail(step, "\"\(name)\" must be a plain file name inside the build directory")
        }
        return path
    }

    func writeFile(_ spec: FileSpec, _ step: FinetuningStep) throws(HavelError) {
        var content: [UInt8]
        switch spec.encoding {
        case .raw:
            content = Array(spec.content.utf8)
        case .plain:
            content = Array(Self.dedent(spec.content).utf8)
        case .base64:
            guard let data = Data(base64Encoded: spec.content.filter { !$0.isWhitespace }) else {
                throw fail(step, "the content is not valid base64")
            }
            content = [UInt8](data)
        }
        var mode: mode_t?
        if let text = spec.mode {
            guard let value = mode_t(text, radix: 8) else { throw fail(step, "mode \"\(text)\" is not octal") }
            mode = value
        }
        let owner = try spec.owner.map { name throws(HavelError) in try target.userID(name) }
        let group = try spec.group.map { name throws(HavelError) in try target.groupID(name) }
        try target.writeFile(spec.destination, contents: content, append: spec.append, mode: mode, owner: owner, group: group)
        if spec.append, mode != nil || owner != nil || group != nil {
            try target.setAttributes(spec.destination, mode: mode, owner: owner, group: group)
        }
    }

    /// ELBE strips the common indentation of `plain` file content written inside the XML and the
    /// first line break after the opening tag.
    static func dedent(_ text: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.first?.trimmingWhitespace().isEmpty == true, lines.count > 1 { lines.removeFirst() }
        let indents = lines.filter { !$0.trimmingWhitespace().isEmpty }.map { $0.prefix { $0 == " " || $0 == "\t" }.count }
        let common = indents.min() ?? 0
        var result = lines.map { $0.trimmingWhitespace().isEmpty ? "" : String($0.dropFirst(common)) }
        while result.count > 1, result.last?.isEmpty == true, result[result.count - 2].isEmpty { result.removeLast() }
        return result.joined(separator: "\n")
    }

    func addUser(_ user: UserSpec) async throws(HavelError) {
        var arguments = ["--root", target.root, "--shell", user.shell]
        if let uid = user.uid { arguments += ["--uid", String(uid)] }
        if let gid = user.gid { arguments += ["--gid", String(gid)] }
        if let home = user.home { arguments += ["--home-dir", home] }
        if !user.groups.isEmpty { arguments += ["--groups", user.groups.joined(separator: ",")] }
        if user.system { arguments.append("--system") }
        arguments.append(user.createHome ? "--create-home" : "--no-create-home")
        let groups = target.exists("/etc/group") ? String(decoding: try target.readFile("/etc/group"), as: UTF8.self) : ""
        if user.createGroup && user.gid == nil && groups.split(separator: "\n").contains(where: { $0.hasPrefix(user.name + ":") }) {
            // A group of that name exists already (Debian's base-passwd has several): the user joins it.
            arguments += ["--gid", user.name]
        } else {
            arguments.append(user.createGroup && user.gid == nil ? "--user-group" : "--no-user-group")
        }
        arguments.append(user.name)
        let passwd = target.exists("/etc/passwd") ? String(decoding: try target.readFile("/etc/passwd"), as: UTF8.self) : ""
        let exists = passwd.split(separator: "\n").contains { $0.hasPrefix(user.name + ":") }
        if !exists {
            try await processes.check(Command("useradd", arguments))
        }
        if let hash = user.passwdHashed {
            try await processes.check(Command("chpasswd", ["--root", target.root, "--encrypted"]), input: Array("\(user.name):\(hash)\n".utf8))
        }
    }
}

extension Task where Success == Never, Failure == Never {
    static func checkCancellationAsHavelError() throws(HavelError) {
        if Task.isCancelled { throw HavelError(.cancelled, "the build was interrupted") }
    }
}
