/// The typed form of an ELBE project file (`RootFileSystem`, revision 6). Values only; parsing and
/// validation live in ProjectXML. Locations point back into the file for later error messages.
public struct Project: Sendable, Hashable, Codable {
    public var name: String
    public var version: String
    public var description: String?
    public var buildtype: String
    /// nil when `buildtype` names no architecture Havel knows (validation reports it).
    public var architecture: Architecture?
    public var suite: String
    public var mirror: Mirror
    public var preferences: [AptPreference]
    public var rawPreference: String?
    public var buildimage: BuildImage?
    public var target: Target
    /// The `<archive>` overlay: base64 of a tar.bz2, extracted over the target before finetuning.
    public var archive: String?
    public var checks: [ImageCheck]
    /// `check-image-list/check-script`, run after the boot checks.
    public var checkScript: CheckScript?
    public var initvm: InitVMSpec?
    /// Packages pinned by a previous build (`<fullpkgs>` in a source.xml).
    public var fullPackages: [PinnedPackage]
    /// The build environment's packages a previous build recorded (`<debootstrappkgs>` in a source.xml).
    public var buildEnvironmentPackages: [PinnedPackage] = []
    /// `<project><preseed>`: debconf answers given to the target before its packages are configured.
    public var preseed: [DebconfSelection] = []
    /// `<src-cdrom>`: the build writes the source CD (as `havel build --cdroms` does).
    public var sourceCdrom = false
    /// `<src-cdrom><archive volume="…">`: base64 tar.bz2 files unpacked onto the source CD.
    public var sourceCdromArchives: [SourceCdromArchive] = []

    public init(name: String = "", version: String = "", description: String? = nil, buildtype: String = "",
                architecture: Architecture? = nil, suite: String = "", mirror: Mirror = Mirror(),
                preferences: [AptPreference] = [], rawPreference: String? = nil, buildimage: BuildImage? = nil,
                target: Target = Target(), archive: String? = nil, checks: [ImageCheck] = [],
                initvm: InitVMSpec? = nil, fullPackages: [PinnedPackage] = []) {
        self.name = name
        self.version = version
        self.description = description
        self.buildtype = buildtype
        self.architecture = architecture
        self.suite = suite
        self.mirror = mirror
        self.preferences = preferences
        self.rawPreference = rawPreference
        self.buildimage = buildimage
        self.target = target
        self.archive = archive
        self.checks = checks
        self.initvm = initvm
        self.fullPackages = fullPackages
    }
}

/// One debconf answer (`<preseed><conf owner key type value/>`), as debconf-set-selections reads it.
public struct DebconfSelection: Sendable, Hashable, Codable {
    public var owner: String
    public var key: String
    public var type: String
    public var value: String
    public var location: SourceLocation?

    public init(owner: String, key: String, type: String, value: String, location: SourceLocation? = nil) {
        self.owner = owner
        self.key = key
        self.type = type
        self.value = value
        self.location = location
    }

    /// The types debconf knows for a question.
    public static let types: Set<String> = ["string", "boolean", "select", "multiselect", "note", "text", "password", "title", "error"]

    /// `owner key type value`: one line of debconf-set-selections input.
    public var line: String { "\(owner) \(key) \(type) \(value)" }

    /// The input of debconf-set-selections for these answers ("" for none).
    public static func selections(_ answers: [DebconfSelection]) -> String {
        answers.map { $0.line + "\n" }.joined()
    }
}

/// Where packages come from: the primary Debian mirror (component main) and extra apt lines.
public struct Mirror: Sendable, Hashable, Codable {
    public var primary: PrimaryMirror?
    public var urls: [MirrorURL]
    /// sources.list `[options]` applied to the primary mirror.
    public var options: [String]
    public var noauth: Bool
    public var cdrom: String?

    public init(primary: PrimaryMirror? = nil, urls: [MirrorURL] = [], options: [String] = [],
                noauth: Bool = false, cdrom: String? = nil) {
        self.primary = primary
        self.urls = urls
        self.options = options
        self.noauth = noauth
        self.cdrom = cdrom
    }

    /// The placeholder host that examples and fixtures use; Havel substitutes the host's mirror.
    public static let placeholderHost = "MIRROR_HOST"
}

public struct PrimaryMirror: Sendable, Hashable, Codable {
    public var host: String
    public var path: String
    public var proto: String
    public var key: String?
    public var proxy: String?

    public init(host: String, path: String, proto: String, key: String? = nil, proxy: String? = nil) {
        self.host = host
        self.path = path
        self.proto = proto
        self.key = key
        self.proxy = proxy
    }

    /// `proto://host/path`, with exactly one slash between host and path.
    public var url: String {
        let cleanPath = path.hasPrefix("/") ? path : "/" + path
        return "\(proto)://\(host)\(cleanPath == "/" ? "" : cleanPath)"
    }

    public var usesPlaceholder: Bool { host == Mirror.placeholderHost }
}

/// One `url-list/url`: an extra apt repository line (`binary` and optional `source`), its key and options.
public struct MirrorURL: Sendable, Hashable, Codable {
    public var binary: String?
    public var source: String?
    public var rawKey: String?
    public var options: [String]
    /// `<binary pin="…">`: the apt priority of this repository's origin (ELBE's per-repository pin).
    public var pin: String?
    /// `<binary package="…">`: the packages the pin applies to (apt's `Package:` field; `*` when absent).
    public var pinnedPackages: String?
    public var location: SourceLocation?

    public init(binary: String? = nil, source: String? = nil, rawKey: String? = nil, options: [String] = [],
                pin: String? = nil, pinnedPackages: String? = nil, location: SourceLocation? = nil) {
        self.binary = binary
        self.source = source
        self.rawKey = rawKey
        self.options = options
        self.pin = pin
        self.pinnedPackages = pinnedPackages
        self.location = location
    }
}

/// `<preference pin="...">priority</preference>`: an apt pin on the project's origin.
public struct AptPreference: Sendable, Hashable, Codable {
    public var pin: String
    public var priority: Int

    public init(pin: String, priority: Int) {
        self.pin = pin
        self.priority = priority
    }
}

public struct BuildImage: Sendable, Hashable, Codable {
    public var arch: String?
    public var size: String?
    public var interpreter: String?
    public var console: String?
    public var machine: String?
    /// The GNU triplet of the SDK's cross tools (`buildimage/triplet`); nil: the architecture's own.
    public var triplet: String? = nil
    /// Packages installed into the build environment only, never into the target.
    public var packages: [PackageSpec]

    public init(arch: String? = nil, size: String? = nil, interpreter: String? = nil, console: String? = nil,
                machine: String? = nil, packages: [PackageSpec] = []) {
        self.arch = arch
        self.size = size
        self.interpreter = interpreter
        self.console = console
        self.machine = machine
        self.packages = packages
    }
}

/// A package in a pkg-list with at most one pin.
public struct PackageSpec: Sendable, Hashable, Codable {
    public enum Pin: Sendable, Hashable, Codable {
        /// `version="1.2*"`: a glob matched at validation, `Pin: version` with priority 1001.
        case version(String)
        /// `origin="..."`: `Pin: origin`.
        case origin(String)
        /// `release-name`, `release-archive`, ... : `Pin: release n=...,a=...`.
        case release([String: String])
    }

    public var name: String
    public var pin: Pin?
    public var location: SourceLocation?
    /// `on_src_cd="False"`: the package's source is left off the source CD (as ELBE does).
    public var onSourceCdrom = true
    /// `arch="…"`: the Debian architecture the installed package must have: the target's or `all` (checked
    /// after the install), or another one, which is installed alongside through multiarch (`name:arch`).
    public var architecture: String? = nil

    public init(name: String, pin: Pin? = nil, location: SourceLocation? = nil) {
        self.name = name
        self.pin = pin
        self.location = location
    }
}

extension PackageSpec {
    /// The architecture this package is installed for when it is not the target's own (nor `all`).
    public func foreignArchitecture(target: Architecture) -> String? {
        guard let architecture, architecture != "all", architecture != target.debianName else { return nil }
        return architecture
    }

    /// The name apt and dpkg are given: `name:arch` for a foreign architecture, else the plain name.
    public func aptName(target: Architecture) -> String {
        foreignArchitecture(target: target).map { name + ":" + $0 } ?? name
    }

    /// The foreign architectures `packages` ask for, each once, in order.
    public static func foreignArchitectures(_ packages: [PackageSpec], target: Architecture) -> [String] {
        var seen = Set<String>()
        return packages.compactMap { $0.foreignArchitecture(target: target) }.filter { seen.insert($0).inserted }
    }
}

/// A package recorded by a previous build, as `<fullpkgs>` holds it.
public struct PinnedPackage: Sendable, Hashable, Codable {
    public var name: String
    public var version: String
    public var arch: String?
    public var sha256: String?
    public var auto: Bool
    public var sourceName: String?
    public var sourceVersion: String?
    /// As ELBE records them: the .deb's MD5, the Release's Origin and Codename, and the .deb's full URI.
    public var md5: String?
    public var releaseOrigin: String?
    public var releaseName: String?
    public var uri: String?
    /// The archive's `Priority:` (ELBE's `prio`).
    public var priority: String? = nil

    public init(name: String, version: String, arch: String? = nil, sha256: String? = nil, auto: Bool = false,
                sourceName: String? = nil, sourceVersion: String? = nil) {
        self.name = name
        self.version = version
        self.arch = arch
        self.sha256 = sha256
        self.auto = auto
        self.sourceName = sourceName
        self.sourceVersion = sourceVersion
    }
}

public struct Target: Sendable, Hashable, Codable {
    public var hostname: String
    public var domain: String?
    /// A crypt(3) hash; nil locks the root account.
    public var passwdHashed: String?
    public var console: String?
    public var debootstrap: DebootstrapSpec
    public var packages: [PackageSpec]
    public var installRecommends: Bool
    public var outputs: RootfsOutputs
    public var images: [DiskImage]
    /// `<images><mtd>`: UBI images for raw flash.
    public var mtdImages: [MtdImage] = []
    public var fstab: [FstabEntry]
    public var finetuning: [FinetuningStep]
    public var projectFinetuning: [FinetuningStep]
    /// `target/pbuilder`: the project's own packages, built from source before the install.
    public var ownPackages: [OwnPackageSource] = []
    /// `<tighten/>` or `<diet/>`: the target keeps only the files of the pkg-list's packages (with their
    /// dependencies for diet); nil keeps the whole installed tree.
    public var minimisation: TargetMinimisation?
    /// `<setsel/>`: the pkg-list becomes dpkg's selection and every other non-essential package is purged.
    public var setSelections: Bool
    /// `<hostsdk-pkg-list>`: the host part of the SDK (`havel build --sdk`); empty: the cross compiler and gdb-multiarch.
    public var hostSDKPackages: [String] = []
    /// `<pkg-blacklist><sysroot>`: packages kept out of the SDK's sysroot.
    public var sysrootBlacklist: [String] = []

    public init(hostname: String = "", domain: String? = nil, passwdHashed: String? = nil, console: String? = nil,
                debootstrap: DebootstrapSpec = DebootstrapSpec(), packages: [PackageSpec] = [],
                installRecommends: Bool = false, outputs: RootfsOutputs = RootfsOutputs(),
                images: [DiskImage] = [], fstab: [FstabEntry] = [], finetuning: [FinetuningStep] = [],
                projectFinetuning: [FinetuningStep] = [], minimisation: TargetMinimisation? = nil, setSelections: Bool = false) {
        self.hostname = hostname
        self.domain = domain
        self.passwdHashed = passwdHashed
        self.console = console
        self.debootstrap = debootstrap
        self.packages = packages
        self.installRecommends = installRecommends
        self.outputs = outputs
        self.images = images
        self.fstab = fstab
        self.finetuning = finetuning
        self.projectFinetuning = projectFinetuning
        self.minimisation = minimisation
        self.setSelections = setSelections
    }
}

/// How the target is cut down from the installed tree, as ELBE's `<tighten/>` and `<diet/>` ask.
public enum TargetMinimisation: String, Sendable, Hashable, Codable {
    /// The files of the pkg-list's packages only.
    case tighten
    /// The files of the pkg-list's packages and of everything they depend on (Depends, Pre-Depends).
    case diet
}

public struct DebootstrapSpec: Sendable, Hashable, Codable {
    public enum Tool: String, Sendable, Codable { case debootstrap, mmdebstrap, baseImage = "base-image" }

    public var variant: String?
    public var include: [String]
    public var exclude: [String]
    /// nil: Havel's default (mmdebstrap).
    public var tool: Tool?

    public init(variant: String? = nil, include: [String] = [], exclude: [String] = [], tool: Tool? = nil) {
        self.variant = variant
        self.include = include
        self.exclude = exclude
        self.tool = tool
    }
}

/// `target/package`: archives of the whole root filesystem.
public struct RootfsOutputs: Sendable, Hashable, Codable {
    public var tar: String?
    public var tarOptions: String?
    public var cpio: String?
    public var squashfs: String?
    public var squashfsOptions: String?
    public var baseImage: String?

    public init(tar: String? = nil, tarOptions: String? = nil, cpio: String? = nil, squashfs: String? = nil,
                squashfsOptions: String? = nil, baseImage: String? = nil) {
        self.tar = tar
        self.tarOptions = tarOptions
        self.cpio = cpio
        self.squashfs = squashfs
        self.squashfsOptions = squashfsOptions
        self.baseImage = baseImage
    }

    public var isEmpty: Bool { tar == nil && cpio == nil && squashfs == nil && baseImage == nil }
}

/// One `target/pbuilder` child: where the source of a package the project builds itself comes from.
public struct OwnPackageSource: Sendable, Hashable, Codable {
    public enum Origin: Sendable, Hashable, Codable {
        /// `<git revision=…>URL</git>`: cloned, then the revision (a commit, tag or branch) checked out.
        case git(url: String, revision: String?)
        /// `<src-pkg>name[=version]</src-pkg>`: a source package from the project's mirror.
        case sourcePackage(name: String, version: String?)
        /// `<archive>` (also what a packed `<archivedir>` becomes): base64 of a tar(.bz2) of the source tree with debian/.
        case archive(base64: String)
    }

    public var origin: Origin
    public var location: SourceLocation?

    public init(_ origin: Origin, location: SourceLocation? = nil) {
        self.origin = origin
        self.location = location
    }

    /// A short name for logs and errors: the URL, the source package or "archive".
    public var summary: String {
        switch origin {
        case .git(let url, let revision): revision.map { "\(url) at \($0)" } ?? url
        case .sourcePackage(let name, let version): version.map { "\(name)=\($0)" } ?? name
        case .archive: "archive"
        }
    }
}

/// One `<src-cdrom><archive>`: a base64 tar.bz2 and the volumes ELBE would add it to (nil: every volume).
public struct SourceCdromArchive: Sendable, Hashable, Codable {
    public var base64: String
    public var volume: String?
    public var location: SourceLocation?

    public init(base64: String, volume: String? = nil, location: SourceLocation? = nil) {
        self.base64 = base64
        self.volume = volume
        self.location = location
    }

    /// Havel's source CD is one volume: ELBE's volume lists name it with `all`, `0` or `-1`.
    public var isOnTheOneVolume: Bool {
        guard let volume else { return true }
        return volume == "all" || volume.split(separator: ",").contains { ["0", "-1"].contains($0.trimmingWhitespace()) }
    }
}
