import Foundation
import HavelCore

/// The machine Havel runs on.
public enum HostArchitecture {
    public static let current: Architecture? = {
        var info = utsname()
        uname(&info)
        let machine = withUnsafeBytes(of: &info.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return architecture(unameMachine: machine)
    }()

    /// The Debian architecture of a `uname -m` answer, for the machines Havel runs on.
    public static func architecture(unameMachine machine: String) -> Architecture? {
        switch machine {
        case "x86_64": .amd64
        case "aarch64": .arm64
        case "i686", "i386": .i386
        case "armv7l": .armhf
        case "riscv64": .riscv64
        case "ppc64le": .ppc64el
        default: nil
        }
    }
}

/// What a build plan needs to know of the host: its architecture and whether Havel runs as root.
/// A value, so that plans can be made (and tested) for hosts other than this one.
public struct HostFacts: Sendable, Hashable {
    public var architecture: Architecture?
    public var isRoot: Bool

    public init(architecture: Architecture?, isRoot: Bool) {
        self.architecture = architecture
        self.isRoot = isRoot
    }

    public static var current: HostFacts { HostFacts(architecture: HostArchitecture.current, isRoot: geteuid() == 0) }

    /// Whether binaries of `target` run here without qemu-user.
    public func runsNatively(_ target: Architecture) -> Bool {
        architecture.map { target.runsNatively(on: $0) } ?? false
    }
}
