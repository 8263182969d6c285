/// A partitioned disk image (`msdoshd` or `gpthd`).
public struct DiskImage: Sendable, Hashable, Codable {
    public enum Table: String, Sendable, Codable { case msdos, gpt }

    public var table: Table
    public var name: String
    public var size: SizeSpec
    public var firstPartitionSector: UInt64
    /// `grub-install` present: its text holds extra arguments (may be empty).
    public var grubInstall: String?
    public var partitions: [Partition]
    /// msdos only: the extended partition and its logical partitions.
    public var extended: ExtendedPartition?
    public var binaries: [BinaryBlob]
    public var location: SourceLocation?

    public init(table: Table, name: String, size: SizeSpec, firstPartitionSector: UInt64 = 2048,
                grubInstall: String? = nil, partitions: [Partition] = [], extended: ExtendedPartition? = nil,
                binaries: [BinaryBlob] = [], location: SourceLocation? = nil) {
        self.table = table
        self.name = name
        self.size = size
        self.firstPartitionSector = firstPartitionSector
        self.grubInstall = grubInstall
        self.partitions = partitions
        self.extended = extended
        self.binaries = binaries
        self.location = location
    }

    /// Every partition in table order: primaries, then the logical ones.
    public var allPartitions: [Partition] { partitions + (extended?.logical ?? []) }
}

public struct Partition: Sendable, Hashable, Codable {
    public var size: SizeSpec
    public var label: String
    /// The GPT partition name.
    public var name: String?
    /// A file dd'ed into the partition instead of a filesystem.
    public var binary: String?
    public var bootable: Bool
    public var biosgrub: Bool
    public var location: SourceLocation?

    public init(size: SizeSpec, label: String, name: String? = nil, binary: String? = nil, bootable: Bool = false,
                biosgrub: Bool = false, location: SourceLocation? = nil) {
        self.size = size
        self.label = label
        self.name = name
        self.binary = binary
        self.bootable = bootable
        self.biosgrub = biosgrub
        self.location = location
    }
}

public struct ExtendedPartition: Sendable, Hashable, Codable {
    public var size: SizeSpec
    public var logical: [Partition]
    public var location: SourceLocation?

    public init(size: SizeSpec, logical: [Partition] = [], location: SourceLocation? = nil) {
        self.size = size
        self.logical = logical
        self.location = location
    }
}

/// `binary@offset@blocksize`: a blob written into the disk at an offset.
public struct BinaryBlob: Sendable, Hashable, Codable {
    public var path: String
    public var offset: UInt64
    public var blockSize: UInt64

    public init(path: String, offset: UInt64 = 0, blockSize: UInt64 = 1) {
        self.path = path
        self.offset = offset
        self.blockSize = blockSize
    }
}

/// One `fstab/bylabel` or `fstab/bydev` entry.
public struct FstabEntry: Sendable, Hashable, Codable {
    public enum Source: Sendable, Hashable, Codable {
        case label(String)
        case device(String)
    }

    public var source: Source
    public var mountpoint: String
    public var filesystem: Filesystem
    public var options: String?
    /// Create the filesystem but write no fstab line.
    public var noFstab: Bool
    public var location: SourceLocation?

    public init(source: Source, mountpoint: String, filesystem: Filesystem, options: String? = nil,
                noFstab: Bool = false, location: SourceLocation? = nil) {
        self.source = source
        self.mountpoint = mountpoint
        self.filesystem = filesystem
        self.options = options
        self.noFstab = noFstab
        self.location = location
    }

    public var label: String? {
        if case .label(let l) = source { return l }
        return nil
    }

    /// The line for /etc/fstab (a ubifs volume's is `Target.fstabLine(_:)`, which knows its ubi device).
    public var fstabLine: String {
        switch source {
        case .label(let label): fstabLine(device: "LABEL=\(label)")
        case .device(let device): fstabLine(device: device)
        }
    }

    /// The line for /etc/fstab with `device` as its first field. ubifs has no fsck, so its pass is 0 unless given.
    public func fstabLine(device: String) -> String {
        let opts = (options?.isEmpty == false) ? options! : "defaults"
        let pass = filesystem.passno ?? (filesystem.type == "ubifs" ? 0 : mountpoint == "/" ? 1 : 2)
        return "\(device) \(mountpoint) \(filesystem.type) \(opts) 0 \(pass)"
    }
}

public struct Filesystem: Sendable, Hashable, Codable {
    public static let types = ["ext2", "ext3", "ext4", "f2fs", "ubifs", "tmpfs", "debugfs", "configfs", "devpts",
                               "proc", "sysfs", "vfat", "btrfs", "devtmpfs", "swap", "erofs", "squashfs"]

    public var type: String
    public var mkfsOptions: String?
    public var deviceCommands: [String]
    public var pathCommands: [String]
    public var passno: Int?

    public init(type: String, mkfsOptions: String? = nil, deviceCommands: [String] = [], pathCommands: [String] = [],
                passno: Int? = nil) {
        self.type = type
        self.mkfsOptions = mkfsOptions
        self.deviceCommands = deviceCommands
        self.pathCommands = pathCommands
        self.passno = passno
    }
}

/// A `check-image-list/check`: boot an image with an interpreter and talk to its console.
public struct ImageCheck: Sendable, Hashable, Codable {
    public enum Action: Sendable, Hashable, Codable {
        /// Wait for a login prompt and log in as root with this password.
        case login(password: String)
        /// An expect/sendline script.
        case serial([SerialStep])
    }

    public enum SerialStep: Sendable, Hashable, Codable {
        case expect(String)
        case sendline(String)
        case eof
    }

    public var image: String
    public var interpreter: String
    public var interpreterOptions: String
    public var action: Action
    /// `<interpreter-firmware>`: the firmware qemu starts with, chosen from qemu's firmware descriptors.
    public var firmware: FirmwareRequest?
    public var location: SourceLocation?

    public init(image: String, interpreter: String, interpreterOptions: String, action: Action,
                firmware: FirmwareRequest? = nil, location: SourceLocation? = nil) {
        self.image = image
        self.interpreter = interpreter
        self.interpreterOptions = interpreterOptions
        self.action = action
        self.firmware = firmware
        self.location = location
    }
}

/// `check/interpreter-firmware`: what a check's firmware must be, in the terms of qemu's firmware
/// descriptors (/usr/share/qemu/firmware/*.json).
public struct FirmwareRequest: Sendable, Hashable, Codable {
    /// qemu's architecture name, such as x86_64 or aarch64.
    public var architecture: String
    /// A machine type such as pc-q35-7.2 or virt-7.2, matched against the descriptors' machine patterns.
    public var machine: String
    /// Space-separated interface types the firmware must have, `!` before those it must not (`uefi !bios`).
    public var interfaceTypes: String
    /// Space-separated features, as interface types (`!requires-smm`).
    public var features: String

    public init(architecture: String, machine: String, interfaceTypes: String, features: String) {
        self.architecture = architecture
        self.machine = machine
        self.interfaceTypes = interfaceTypes
        self.features = features
    }
}

/// A `check-image-list/check-script`: a program run on the build host against the finished build
/// directory (its one argument), as ELBE's check-build does; exit status 0 passes. A `location` file has
/// been read into `text` by preprocessing.
public struct CheckScript: Sendable, Hashable, Codable {
    /// The whole program, shebang line first (run as it is, never through a shell).
    public var text: String
    public var location: SourceLocation?

    public init(text: String, location: SourceLocation? = nil) {
        self.text = text
        self.location = location
    }
}

/// The `<initvm>` section: how the build VM itself is made.
public struct InitVMSpec: Sendable, Hashable, Codable {
    public var suite: String?
    public var buildtype: String?
    public var mirror: Mirror
    public var packages: [PackageSpec]
    public var size: String?
    public var memory: String?
    public var maxCPUs: Int?
    public var portForwards: [PortForward]
    public var finetuningCommands: [String]
    /// debconf answers for the initvm's packages.
    public var preseed: [DebconfSelection] = []
    /// apt preferences for the initvm (`<preference pin="...">priority</preference>`).
    public var preferences: [AptPreference] = []
    /// `<swap-size>`: a swap file of this size in the initvm ("" or nil: none).
    public var swapSize: String?
    /// `<img>`: the image format, qcow2 (default) or raw.
    public var imageFormat: String?

    public init(suite: String? = nil, buildtype: String? = nil, mirror: Mirror = Mirror(),
                packages: [PackageSpec] = [], size: String? = nil, memory: String? = nil, maxCPUs: Int? = nil,
                portForwards: [PortForward] = [], finetuningCommands: [String] = []) {
        self.suite = suite
        self.buildtype = buildtype
        self.mirror = mirror
        self.packages = packages
        self.size = size
        self.memory = memory
        self.maxCPUs = maxCPUs
        self.portForwards = portForwards
        self.finetuningCommands = finetuningCommands
    }
}

public struct PortForward: Sendable, Hashable, Codable {
    public var proto: String
    public var guestPort: Int
    public var hostPort: Int

    public init(proto: String, guestPort: Int, hostPort: Int) {
        self.proto = proto
        self.guestPort = guestPort
        self.hostPort = hostPort
    }
}
