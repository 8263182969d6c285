// InitVM owns the build VM: making buildenv.img, the qemu process (KVM or TCG, run with the QEMU module),
// forwards, start/stop/status/attach.

import Foundation
import HavelCore
import SystemKit
import QEMU

/// The files of one initvm, all in one directory. Nothing else of the initvm lives on the host:
/// the root filesystem is inside `buildenv.img`, and the running VM is one qemu process.
public struct InitVMDirectory: Sendable, Hashable {
    /// What `havel initvm` uses without `--directory` (as ELBE's `initvm` directory).
    public static let defaultPath = "initvm"

    public let path: String

    public init(_ path: String) {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var clean = (absolute as NSString).standardizingPath
        while clean.count > 1, clean.hasSuffix("/") { clean.removeLast() }
        self.path = clean
    }

    /// The root filesystem (ext4 in qcow2); the VM boots it as /dev/vda.
    public var image: String { path + "/buildenv.img" }
    /// The guest's kernel and initramfs, kept beside the image for direct boot (no bootloader).
    public var kernel: String { path + "/vmlinuz" }
    public var initrd: String { path + "/initrd.img" }
    /// The API token (mode 0600); the same token is in the image at /etc/havel/api-token.
    public var token: String { path + "/" + InitVMDefaults.tokenFileName }
    /// Settings fixed at create time (memory, CPUs, forwards, port).
    public var settings: String { path + "/initvm.json" }
    /// What the running VM was started with (port, accelerator), for status; removed when it stops.
    public var runtime: String { path + "/runtime.json" }
    /// A remembered KVM probe for this directory's kernel.
    public var acceleratorRecord: String { path + "/accelerator.json" }
    public var pidFile: String { path + "/qemu.pid" }
    public var consoleSocket: String { path + "/console.sock" }
    public var qmpSocket: String { path + "/qmp.sock" }
    /// Everything the guest printed on its serial console since the last start.
    public var consoleLog: String { path + "/console.log" }
    /// Held while a command changes the VM's state (start, stop, destroy), so two never race.
    public var lockFile: String { path + "/.lock" }
    /// Scratch space of `create` (the tree before it becomes the image); removed when create ends.
    public var work: String { path + "/.create" }

    /// Every file Havel may leave in the directory; `destroy` removes these and nothing else.
    public var allFiles: [String] {
        [image, kernel, initrd, token, settings, runtime, acceleratorRecord, pidFile, consoleSocket, qmpSocket,
         consoleLog, lockFile, path + "/buildenv.raw"]
    }

    public var exists: Bool { FileManager.default.fileExists(atPath: image) }
}

/// Fixed facts of the initvm shared by `create`, `start` and the guest.
public enum InitVMDefaults {
    /// The daemon's port inside the guest (and, by default, on the host's 127.0.0.1).
    public static let guestPort = 7588
    public static let hostPort = 7588
    public static let suite = "bookworm"
    public static let imageSize: UInt64 = 20 << 30
    public static let memoryMiB = 2048
    public static let tokenFileName = "api-token"
    public static let guestTokenPath = "/etc/havel/api-token"
    public static let guestDataPath = "/var/lib/havel"
    public static let guestBinary = "/usr/local/bin/havel"
    public static let hostname = "havel-initvm"
    public static let filesystemLabel = "havel-initvm"
    /// On x86, `no_timer_check`: under TCG on a loaded host the kernel's early check of the IO-APIC
    /// timer can miss its ticks and panic ("IO-APIC + timer doesn't work!"); the check proves
    /// nothing on qemu's emulated chipset, so the guest skips it (as cloud images do).
    public static let kernelAppend = "root=/dev/vda rw console=ttyS0" + timerCheckOption
    #if arch(x86_64)
    public static let timerCheckOption = " no_timer_check"
    #else
    public static let timerCheckOption = ""
    #endif
    /// The guest's address and DNS server on qemu's user network.
    public static let guestAddress = "10.0.2.15"
    public static let dnsServer = "10.0.2.3"
}

/// What the VM runs with, decided at create time from the project's `<initvm>` (or the defaults)
/// and stored in `initvm.json`. `start` options may override memory, CPUs and the port.
public struct InitVMSettings: Sendable, Hashable, Codable {
    public var suite: String
    public var imageSize: UInt64
    public var memoryMiB: Int
    /// nil: every CPU of the host at start time.
    public var maxCPUs: Int?
    /// Host port (on 127.0.0.1) forwarded to the daemon's port in the guest.
    public var apiPort: Int
    /// The project's `<portforwarding>` entries.
    public var forwards: [PortForward]
    public var kernelAppend: String
    public var havelVersion: String?
    public var created: Date?
    /// `<img>`: qcow2 (nil) or raw.
    public var imageFormat: String?
    /// `<swap-size>`: the swap file the guest makes at its first boot (nil: none).
    public var swapBytes: UInt64?

    /// The format qemu opens buildenv.img with.
    public var diskFormat: String { imageFormat ?? "qcow2" }

    public init(suite: String = InitVMDefaults.suite, imageSize: UInt64 = InitVMDefaults.imageSize,
                memoryMiB: Int = InitVMDefaults.memoryMiB, maxCPUs: Int? = nil, apiPort: Int = InitVMDefaults.hostPort,
                forwards: [PortForward] = [], kernelAppend: String = InitVMDefaults.kernelAppend,
                havelVersion: String? = nil, created: Date? = nil) {
        self.suite = suite
        self.imageSize = imageSize
        self.memoryMiB = memoryMiB
        self.maxCPUs = maxCPUs
        self.apiPort = apiPort
        self.forwards = forwards
        self.kernelAppend = kernelAppend
        self.havelVersion = havelVersion
        self.created = created
    }

    /// The settings a project's `<initvm>` asks for; defaults for what it leaves out.
    public init(spec: InitVMSpec?, apiPort: Int = InitVMDefaults.hostPort) throws(HavelError) {
        self.init(apiPort: apiPort)
        guard let spec else { return }
        if let suite = spec.suite?.trimmingWhitespace(), !suite.isEmpty { self.suite = suite }
        if let buildtype = spec.buildtype?.trimmingWhitespace(), !buildtype.isEmpty, Architecture(buildtype: buildtype) != .amd64 {
            throw HavelError(.invalidProject, "initvm buildtype \(buildtype): the initvm is an amd64 VM of the host's architecture; "
                             + "leave <buildtype> out or write amd64 (targets of any architecture are built inside it)")
        }
        if let format = spec.imageFormat?.trimmingWhitespace(), !format.isEmpty {
            guard ["qcow2", "raw"].contains(format) else {
                throw HavelError(.invalidProject, "initvm img \(format): Havel makes buildenv.img as qcow2 or raw")
            }
            imageFormat = format == "qcow2" ? nil : format
        }
        if let swap = spec.swapSize?.trimmingWhitespace(), !swap.isEmpty {
            guard let bytes = SizeSpec(parsing: swap, allowRemain: false)?.byteCount else {
                throw HavelError(.invalidProject, "initvm swap-size \(swap): not a size such as 2GiB")
            }
            swapBytes = bytes == 0 ? nil : bytes
        }
        if let size = spec.size?.trimmingWhitespace(), !size.isEmpty {
            guard let bytes = SizeSpec(parsing: size, allowRemain: false)?.byteCount, bytes >= 1 << 30 else {
                throw HavelError(.invalidProject, "initvm size \(size): not a size of at least 1GiB such as 20GiB")
            }
            imageSize = bytes
        }
        if let memory = spec.memory?.trimmingWhitespace(), !memory.isEmpty {
            guard let mib = Self.memoryMiB(parsing: memory) else {
                throw HavelError(.invalidProject, "initvm mem \(memory): not a memory size of at least 256MiB such as 2GiB (a bare number means MiB)")
            }
            memoryMiB = mib
        }
        if let cpus = spec.maxCPUs {
            guard cpus >= 1 else { throw HavelError(.invalidProject, "initvm max-cpus \(cpus): must be at least 1") }
            maxCPUs = cpus
        }
        for forward in spec.portForwards {
            guard ["tcp", "udp"].contains(forward.proto) else {
                throw HavelError(.invalidProject, "initvm forward proto \(forward.proto): must be tcp or udp")
            }
            guard (1...65535).contains(forward.hostPort), (1...65535).contains(forward.guestPort) else {
                throw HavelError(.invalidProject, "initvm forward \(forward.hostPort)->\(forward.guestPort): ports must be 1-65535")
            }
            guard !(forward.proto == "tcp" && forward.hostPort == apiPort) else {
                throw HavelError(.invalidProject, "initvm forward of host port \(forward.hostPort): that port is the API's; choose another or start with --port")
            }
        }
        forwards = spec.portForwards
    }

    /// `2GiB`, `1024MiB`, `2G`; a bare number is MiB (as qemu's -m). At least 256 MiB.
    public static func memoryMiB(parsing text: String) -> Int? {
        let text = text.trimmingWhitespace()
        let mib: UInt64
        if !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }) {
            guard let value = UInt64(text) else { return nil }
            mib = value
        } else {
            guard let bytes = SizeSpec(parsing: text, allowRemain: false)?.byteCount else { return nil }
            mib = bytes >> 20
        }
        guard mib >= 256, mib <= 1 << 22 else { return nil }
        return Int(mib)
    }

    /// The CPUs the VM gets on this host: `maxCPUs` capped by the host's count.
    public func cpus(hostCPUs: Int = ProcessInfo.processInfo.activeProcessorCount) -> Int {
        max(1, min(maxCPUs ?? hostCPUs, hostCPUs))
    }

    public static func read(_ path: String) throws(HavelError) -> InitVMSettings {
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            return try decoder.decode(InitVMSettings.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw HavelError(.io, "cannot read the initvm settings \(path): \(error.localizedDescription)")
        }
    }

    public func write(_ path: String) throws(HavelError) {
        try JSONFile.write(self, to: path)
    }
}

/// What `start` wrote for the running VM: `status` reads it to know the port and accelerator.
public struct InitVMRuntime: Sendable, Hashable, Codable {
    public var processIdentifier: Int32
    public var apiPort: Int
    public var accelerator: Accelerator
    public var memoryMiB: Int
    public var cpus: Int
    public var started: Date
}

enum JSONFile {
    static func write<T: Encodable>(_ value: T, to path: String, permissions: Int = 0o644) throws(HavelError) {
        try AtomicFile.writeJSON(value, to: path, mode: mode_t(permissions))
    }

    static func read<T: Decodable>(_ type: T.Type, from path: String) -> T? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(type, from: data)
    }
}
