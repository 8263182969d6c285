import Foundation
import HavelCore
import QEMU
import SystemKit

/// How one start of the initvm runs qemu.
public struct QemuLaunch: Sendable, Hashable {
    public var accelerator: Accelerator
    public var memoryMiB: Int
    public var cpus: Int
    public var apiPort: Int
    public var forwards: [PortForward]
    public var kernelAppend: String
    /// buildenv.img's format: qcow2 or raw.
    public var diskFormat: String = "qcow2"

    public init(accelerator: Accelerator, memoryMiB: Int, cpus: Int, apiPort: Int, forwards: [PortForward],
                kernelAppend: String) {
        self.accelerator = accelerator
        self.memoryMiB = memoryMiB
        self.cpus = cpus
        self.apiPort = apiPort
        self.forwards = forwards
        self.kernelAppend = kernelAppend
    }
}

/// The qemu-system-x86_64 command line of the initvm: direct kernel boot of buildenv.img, user
/// networking with the API forwarded to the host's 127.0.0.1, the serial console and QMP on unix
/// sockets in the directory, and `-daemonize` so the VM is one process that outlives `havel`.
public enum QemuCommandLine {
    public static let qemu = "qemu-system-x86_64"

    public static func arguments(_ launch: QemuLaunch, directory: InitVMDirectory) -> [String] {
        invocation(launch, directory: directory).arguments
    }

    public static func invocation(_ launch: QemuLaunch, directory: InitVMDirectory) -> QemuInvocation {
        var invocation = QemuInvocation.directKernelBoot(qemu: qemu, accelerator: launch.accelerator, memoryMiB: launch.memoryMiB,
                                                         cpus: launch.cpus, kernel: directory.kernel, initrd: directory.initrd,
                                                         append: launch.kernelAppend)
        invocation.arguments = ["-name", "havel-initvm"] + invocation.arguments + [
            "-drive", "file=\(directory.image),format=\(launch.diskFormat),if=virtio,discard=unmap",
            "-nic", nicOption(launch),
            "-device", "virtio-rng-pci",
            "-chardev", "socket,id=serial0,path=\(directory.consoleSocket),server=on,wait=off,logfile=\(directory.consoleLog),logappend=off",
            "-serial", "chardev:serial0",
            "-qmp", "unix:\(directory.qmpSocket),server=on,wait=off",
            "-display", "none", "-vga", "none", "-monitor", "none", "-parallel", "none",
            "-daemonize", "-pidfile", directory.pidFile,
        ]
        return invocation
    }

    static func nicOption(_ launch: QemuLaunch) -> String {
        var parts = ["user", "model=virtio-net-pci", "hostfwd=tcp:127.0.0.1:\(launch.apiPort)-:\(InitVMDefaults.guestPort)"]
        for forward in launch.forwards {
            parts.append("hostfwd=\(forward.proto):127.0.0.1:\(forward.hostPort)-:\(forward.guestPort)")
        }
        return parts.joined(separator: ",")
    }

    /// qemu's options take commas as separators: a directory with a comma cannot be named in them.
    /// Unix socket paths are limited to 107 bytes.
    public static func checkSocketPaths(_ directory: InitVMDirectory) throws(HavelError) {
        if directory.path.contains(",") {
            throw HavelError(.invalidArgument, "initvm directory \(directory.path): qemu cannot take a path with a comma; choose another directory")
        }
        for socket in [directory.consoleSocket, directory.qmpSocket] where socket.utf8.count > 107 {
            throw HavelError(.invalidArgument, "initvm directory \(directory.path): the socket path \(socket) is longer than the 107 bytes a unix socket allows; choose a shorter directory")
        }
    }
}
