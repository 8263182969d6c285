/// One finetuning action with where it was written.
public struct FinetuningStep: Sendable, Hashable, Codable {
    public var action: FinetuningAction
    public var location: SourceLocation?

    public init(_ action: FinetuningAction, location: SourceLocation? = nil) {
        self.action = action
        self.location = location
    }
}

/// ELBE's finetuning and project-finetuning actions. Paths are as written in the file.
public enum FinetuningAction: Sendable, Hashable, Codable {
    /// Where a copy or move starts and ends.
    public enum Place: String, Sendable, Codable {
        case target, buildenv, project
    }

    case remove(pattern: String, exclude: [String])
    case makeDirectory(path: String, in: Place)
    case makeNode(path: String, options: String)
    /// `cp`, `buildenv_cp`, `b2t_cp`, `t2b_cp`: `from` the source glob, `to` the destination.
    case copy(from: String, to: String, source: Place, destination: Place)
    /// `mv`, `buildenv_mv`, `t2p_mv`.
    case move(from: String, to: String, source: Place, destination: Place)
    /// `ln path=target`: the link's target; `link` the new link.
    case link(target: String, link: String)
    case addUser(UserSpec)
    case addGroup(name: String, gid: Int?, system: Bool)
    case file(FileSpec)
    case rawCommand(String)
    case command(String, in: Place)
    case purge(package: String)
    case updated(String)
    case artifact(path: String, in: Place)
    case removeArtifact(path: String)
    case removeAptSource(String)
    case setPacker(String)
    case imageConvert(source: String, destination: String, format: String, keepSource: Bool)
    case losetup(image: String, actions: [ImageAction])

    /// The element name this action is written as.
    public var elementName: String {
        switch self {
        case .remove: "rm"
        case .makeDirectory(_, let place): place == .buildenv ? "buildenv_mkdir" : "mkdir"
        case .makeNode: "mknod"
        case .copy(_, _, let s, let d):
            switch (s, d) {
            case (.buildenv, .buildenv): "buildenv_cp"
            case (.buildenv, .target): "b2t_cp"
            case (.target, .buildenv): "t2b_cp"
            default: "cp"
            }
        case .move(_, _, let s, let d):
            switch (s, d) {
            case (.buildenv, _): "buildenv_mv"
            case (_, .project): "t2p_mv"
            default: "mv"
            }
        case .link: "ln"
        case .addUser: "adduser"
        case .addGroup: "addgroup"
        case .file: "file"
        case .rawCommand: "raw_cmd"
        case .command(_, let place): place == .buildenv ? "buildenv_command" : "command"
        case .purge: "purge"
        case .updated: "updated"
        case .artifact: "artifact"
        case .removeArtifact: "rm_artifact"
        case .removeAptSource: "rm_apt_source"
        case .setPacker: "set_packer"
        case .imageConvert: "img_convert"
        case .losetup: "losetup"
        }
    }
}

public struct UserSpec: Sendable, Hashable, Codable {
    public var name: String
    public var shell: String
    public var passwdHashed: String?
    public var groups: [String]
    public var uid: Int?
    public var gid: Int?
    public var home: String?
    public var system: Bool
    public var createHome: Bool
    public var createGroup: Bool

    public init(name: String, shell: String, passwdHashed: String? = nil, groups: [String] = [], uid: Int? = nil,
                gid: Int? = nil, home: String? = nil, system: Bool = false, createHome: Bool = true,
                createGroup: Bool = true) {
        self.name = name
        self.shell = shell
        self.passwdHashed = passwdHashed
        self.groups = groups
        self.uid = uid
        self.gid = gid
        self.home = home
        self.system = system
        self.createHome = createHome
        self.createGroup = createGroup
    }
}

public struct FileSpec: Sendable, Hashable, Codable {
    public enum Encoding: String, Sendable, Codable { case plain, raw, base64 }

    public var destination: String
    public var content: String
    public var encoding: Encoding
    public var append: Bool
    public var owner: String?
    public var group: String?
    public var mode: String?

    public init(destination: String, content: String, encoding: Encoding = .plain, append: Bool = false,
                owner: String? = nil, group: String? = nil, mode: String? = nil) {
        self.destination = destination
        self.content = content
        self.encoding = encoding
        self.append = append
        self.owner = owner
        self.group = group
        self.mode = mode
    }
}

/// Actions on a partition of a disk image (`project-finetuning/losetup`).
public enum ImageAction: Sendable, Hashable, Codable {
    case extractPartition(partition: Int, artifact: String)
    case copyFromPartition(partition: Int, path: String, artifact: String)
    case copyToPartition(partition: Int, artifact: String, path: String)
    case setPartitionType(partition: Int, type: String)
    case command(partition: Int, script: String, mount: Bool)
}
