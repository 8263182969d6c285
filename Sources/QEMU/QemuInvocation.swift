// QEMU owns running qemu-system: the command line value, the accelerator (KVM or TCG) with its probe
// and the one policy for choosing it, driving a guest's serial console (with the one terminal
// escape stripper), and QMP, its machine protocol. BootCheck and InitVM both use it; it knows nothing
// of projects or initvms.

import Foundation
import HavelCore
import SystemKit

/// How qemu runs the guest: hardware virtualisation or qemu's own translator.
public enum Accelerator: String, Sendable, Hashable, Codable, CustomStringConvertible {
    case kvm, tcg
    public var description: String { rawValue }
}

/// A qemu-system command line: the executable, its arguments and where it runs, with the steps that
/// adjust user-written options (KVM requests under TCG, the serial console on stdio). Building and
/// adjusting it does no I/O.
public struct QemuInvocation: Sendable, Hashable, CustomStringConvertible {
    public var executable: String
    public var arguments: [String]
    /// qemu runs here, so relative file arguments resolve against it (nil: the caller's directory).
    public var workingDirectory: String?
    /// What was changed in the user's options and why, for a visible warning.
    public var rewrites: [String] = []
    /// What was added (`-no-reboot`, `-nographic`, `-snapshot`), for the log.
    public var additions: [String] = []

    public init(executable: String, arguments: [String] = [], workingDirectory: String? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.workingDirectory = workingDirectory
    }

    public var description: String { ([executable] + arguments).map(Command.shellQuote).joined(separator: " ") }

    /// The process to run.
    public var command: Command { Command(executable, arguments, workingDirectory: workingDirectory) }

    /// A guest booted straight from `kernel` (no firmware, no disk yet): the accelerator, memory and
    /// CPUs, then `-kernel`, `-initrd` and `-append`. KVM asks for the host's CPU model.
    public static func directKernelBoot(qemu: String, accelerator: Accelerator, cpu: String = "host", memoryMiB: Int,
                                        cpus: Int, kernel: String, initrd: String?, append: String) -> QemuInvocation {
        var arguments = acceleratorOptions(accelerator, cpu: cpu)
        arguments += ["-m", "\(memoryMiB)", "-smp", "\(cpus)", "-kernel", kernel]
        if let initrd { arguments += ["-initrd", initrd] }
        arguments += ["-append", append]
        return QemuInvocation(executable: qemu, arguments: arguments)
    }

    /// `-accel kvm -cpu <cpu>` or `-accel tcg`.
    public static func acceleratorOptions(_ accelerator: Accelerator, cpu: String = "host") -> [String] {
        switch accelerator {
        case .kvm: ["-accel", "kvm", "-cpu", cpu]
        case .tcg: ["-accel", "tcg"]
        }
    }

    /// Options whose value is a file; relative ones are made absolute against the working directory
    /// (absolute paths make the logged command line usable elsewhere).
    static let fileOptions: Set<String> = ["-kernel", "-initrd", "-dtb", "-bios", "-pflash", "-hda", "-hdb", "-cdrom"]

    // MARK: - Steps

    /// `path` made absolute against `directory` (empty and absolute paths stay as they are).
    public static func absolute(_ path: String, against directory: String) -> String {
        if path.hasPrefix("/") || path.isEmpty { return path }
        return URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: directory, isDirectory: true)).standardizedFileURL.path
    }

    /// `--option` is the same as `-option` to qemu.
    public static func optionName(_ word: String) -> String {
        word.hasPrefix("--") && word.count > 2 ? String(word.dropFirst()) : word
    }

    private func indices(of names: Set<String>) -> [Int] {
        arguments.indices.filter { names.contains(Self.optionName(arguments[$0])) }
    }

    /// Makes the file arguments of `-kernel`, `-initrd`, `-dtb` and the like absolute against `directory`.
    /// A relative one that `exists` does not find there but finds in one of `fallbacks` resolves to that one.
    public mutating func absolutizeFileOptions(against directory: String, fallbacks: [String] = [],
                                               exists: (String) -> Bool = { _ in false }) {
        for i in indices(of: Self.fileOptions) where i + 1 < arguments.count {
            let value = arguments[i + 1]
            var resolved = Self.absolute(value, against: directory)
            if !value.hasPrefix("/"), !value.isEmpty, !exists(resolved),
               let found = fallbacks.lazy.map({ Self.absolute(value, against: $0) }).first(where: exists) {
                resolved = found
            }
            arguments[i + 1] = resolved
        }
    }

    /// The CPU model that replaces `-cpu host` under TCG, by the interpreter's architecture.
    public static func tcgCPU(forInterpreter interpreter: String) -> String {
        let name = (interpreter as NSString).lastPathComponent
        if name.hasSuffix("aarch64") { return "cortex-a57" }
        if name.hasSuffix("-arm") || name.hasSuffix("-armeb") { return "cortex-a15" }
        return "max"
    }

    /// Replaces every request for KVM, so that the check runs (slowly) under TCG.
    public mutating func rewriteForTCG() {
        var out: [String] = []
        var sawAccelerator = false
        var i = 0
        while i < arguments.count {
            let word = arguments[i]
            let option = Self.optionName(word)
            let hasValue = i + 1 < arguments.count
            switch option {
            case "-enable-kvm":
                rewrites.append("\(word) dropped")
                i += 1
                continue
            case "-accel" where hasValue:
                sawAccelerator = true
                let value = arguments[i + 1]
                let name = value.split(separator: ",", maxSplits: 1).first.map(String.init) ?? ""
                let accelerator = name.hasPrefix("accel=") ? String(name.dropFirst(6)) : name
                if accelerator.split(separator: ":").contains("kvm") {
                    out += [word, "tcg"]
                    rewrites.append("\(word) \(value) → \(word) tcg")
                } else {
                    out += [word, value]
                }
                i += 2
                continue
            case "-machine", "-M":
                guard hasValue else { break }
                let value = arguments[i + 1]
                var parts = value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                for (p, part) in parts.enumerated() where part.hasPrefix("accel=") {
                    sawAccelerator = true
                    let alternatives = part.dropFirst(6).split(separator: ":").map(String.init)
                    guard alternatives.contains("kvm") else { continue }
                    let rest = alternatives.filter { $0 != "kvm" }
                    parts[p] = "accel=" + (rest.isEmpty ? "tcg" : rest.joined(separator: ":"))
                }
                let rewritten = parts.joined(separator: ",")
                if rewritten != value { rewrites.append("\(word) \(value) → \(word) \(rewritten)") }
                out += [word, rewritten]
                i += 2
                continue
            case "-cpu" where hasValue:
                let value = arguments[i + 1]
                if value == "host" || value.hasPrefix("host,") {
                    let cpu = Self.tcgCPU(forInterpreter: executable)
                    out += [word, cpu]
                    rewrites.append("\(word) \(value) → \(word) \(cpu)")
                } else {
                    out += [word, value]
                }
                i += 2
                continue
            default:
                break
            }
            out.append(word)
            i += 1
        }
        if !rewrites.isEmpty && !sawAccelerator {
            out += ["-accel", "tcg"]
            rewrites.append("-accel tcg added")
        }
        arguments = out
    }

    /// The serial console on stdio, no reboot loop, and the image left as it was built.
    public mutating func addConsoleOptions() {
        let present = Set(arguments.map(Self.optionName))
        if !present.contains("-no-reboot") {
            arguments.append("-no-reboot")
            additions.append("-no-reboot")
        }
        if !present.contains("-nographic") {
            if !present.contains("-serial") {
                arguments.append("-nographic")
                additions.append("-nographic")
            } else if !present.contains("-display") {
                arguments += ["-display", "none"]
                additions.append("-display none")
            }
        }
        // A boot check must not change the image it checks: a first boot writes machine-id, logs,
        // random seeds. Writes go to a temporary overlay instead (a drive's own snapshot=off wins).
        if !present.contains("-snapshot") {
            arguments.append("-snapshot")
            additions.append("-snapshot")
        }
    }
}
