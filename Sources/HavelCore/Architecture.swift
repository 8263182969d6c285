/// A Debian architecture Havel can build for, with its names in ELBE, Debian, qemu and `uname -m`.
public enum Architecture: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case armel, armhf, arm64, powerpc, ppc64el, amd64, i386, riscv64

    /// ELBE's `project/buildtype` values (`elbepack/xmldefaults.py`) mapped to Debian architectures.
    public init?(buildtype: String) {
        switch buildtype {
        case "armel": self = .armel
        case "armhf": self = .armhf
        case "aarch64": self = .arm64
        case "ppc": self = .powerpc
        case "ppc64el": self = .ppc64el
        case "amd64": self = .amd64
        case "i386": self = .i386
        case "riscv64": self = .riscv64
        default: return nil
        }
    }

    public static let buildtypes = ["armel", "armhf", "aarch64", "ppc", "ppc64el", "amd64", "i386", "riscv64"]

    /// The library directories a merged /usr links besides bin, sbin and lib (as debootstrap does).
    public var mergedUsrExtraLinks: [String] {
        switch self {
        case .amd64: ["lib32", "lib64", "libx32"]
        case .i386: ["lib64", "libx32"]
        case .powerpc, .ppc64el: ["lib64"]
        default: []
        }
    }

    /// Debian's name (`dpkg --print-architecture`).
    public var debianName: String { rawValue }
    public var description: String { rawValue }

    /// Debian's multiarch tuple: the directory under /usr/lib and /usr/include of this architecture's files.
    public var multiarchTuple: String {
        switch self {
        case .armel: "arm-linux-gnueabi"
        case .armhf: "arm-linux-gnueabihf"
        case .arm64: "aarch64-linux-gnu"
        case .powerpc: "powerpc-linux-gnu"
        case .ppc64el: "powerpc64le-linux-gnu"
        case .amd64: "x86_64-linux-gnu"
        case .i386: "i386-linux-gnu"
        case .riscv64: "riscv64-linux-gnu"
        }
    }

    /// The GNU triplet of Debian's cross compilers for this architecture (`gcc-<triplet>`), ELBE's default `triplet`.
    public var gnuTriplet: String { self == .i386 ? "i686-linux-gnu" : multiarchTuple }

    /// The ELBE buildtype that selects this architecture.
    public var buildtype: String {
        switch self {
        case .arm64: "aarch64"
        case .powerpc: "ppc"
        default: rawValue
        }
    }

    /// The suffix of `qemu-<name>-static` / the binfmt_misc entry `qemu-<name>`.
    public var qemuUserName: String {
        switch self {
        case .armel, .armhf: "arm"
        case .arm64: "aarch64"
        case .powerpc: "ppc"
        case .ppc64el: "ppc64le"
        case .amd64: "x86_64"
        case .i386: "i386"
        case .riscv64: "riscv64"
        }
    }

    /// The suffix of `qemu-system-<name>`.
    public var qemuSystemName: String {
        switch self {
        case .armel, .armhf: "arm"
        case .arm64: "aarch64"
        case .powerpc: "ppc"
        case .ppc64el: "ppc64"
        case .amd64: "x86_64"
        case .i386: "i386"
        case .riscv64: "riscv64"
        }
    }

    /// What `uname -m` prints for binaries of this architecture (under qemu-user: qemu's CPU model).
    public var unameMachine: String {
        switch self {
        case .armel: "armv5tel"
        case .armhf: "armv7l"
        case .arm64: "aarch64"
        case .powerpc: "ppc"
        case .ppc64el: "ppc64le"
        case .amd64: "x86_64"
        case .i386: "i686"
        case .riscv64: "riscv64"
        }
    }

    /// Whether a host of `host` runs this architecture's binaries natively (amd64 runs i386, etc.).
    public func runsNatively(on host: Architecture) -> Bool {
        if self == host { return true }
        switch (host, self) {
        case (.amd64, .i386), (.arm64, .armhf), (.armhf, .armel): return true
        default: return false
        }
    }
}

/// Debian and Ubuntu release code names Havel knows, and which distribution each belongs to.
public enum Suite {
    public static let debian = ["buster", "bullseye", "bookworm", "trixie", "forky", "sid",
                                "stable", "testing", "unstable", "oldstable"]
    public static let ubuntu = ["bionic", "focal", "jammy", "noble", "oracular", "plucky"]

    public static func isKnown(_ name: String) -> Bool {
        debian.contains(name) || ubuntu.contains(name)
    }

    /// Releases whose archive has no `usr-is-merged` package (it came with usrmerge 25, in bookworm and
    /// jammy). mmdebstrap's merged-usr hook installs that package, so it cannot serve these; their
    /// debootstrap still merges /usr (except for the buildd variant), and Havel does the same by links.
    public static let withoutUsrIsMerged: Set<String> = ["buster", "bullseye", "bionic", "focal"]

    /// Whether a bootstrap of `name` can merge /usr with mmdebstrap's hook (unknown names are taken as new).
    public static func hasUsrIsMerged(_ name: String) -> Bool {
        !withoutUsrIsMerged.contains(name)
    }
}
