import BootCheck
import Foundation
import HavelCore
import SystemKit

/// Runs a project's checks against a build directory (at the end of a build, or by `havel check-image`).
public enum CheckRunner {
    public static func run(_ checks: [ImageCheck], directory: BuildDirectory, log: BuildLog) async throws(HavelError) -> [CheckResult] {
        var results: [CheckResult] = []
        for (index, check) in checks.enumerated() {
            let accelerator = await AcceleratorChoice.choose(for: check, directory: directory, log: log)
            let name = "check-\(index + 1)-\(check.image)"
            let image = directory.path + "/" + check.image
            guard FileManager.default.fileExists(atPath: image) else {
                throw HavelError(.notFound, "boot check \(index + 1): image \(check.image) is not in \(directory.path)")
            }
            let context = CheckContext(buildDirectory: directory.path, imagePath: image, accelerator: accelerator,
                                       transcriptPath: directory.path + "/\(name).log")
            log.info("boot check \(name): \(check.interpreter) \(check.interpreterOptions)")
            let result = await BootChecker.run(check, name: name, context: context) { log.info($0) }
            log.info("boot check \(name): \(result.passed ? "passed" : "FAILED: \(result.message)") in \(String(format: "%.1f", result.seconds)) s")
            results.append(result)
        }
        let xml = BootChecker.junitXML(results, suite: "havel-checks")
        do {
            try xml.write(toFile: directory.checkReport, atomically: true, encoding: .utf8)
        } catch {
            throw HavelError(.io, "cannot write \(directory.checkReport)")
        }
        return results
    }
}

/// KVM when a real probe shows it works here (a kernel booted with a deadline prints its banner),
/// otherwise TCG with a visible warning. The probe only applies when the check's qemu is of this
/// host's architecture; it boots the check's own `-kernel`, or a kernel of the host.
enum AcceleratorChoice {
    static let hostQemu: [Architecture: String] = [.amd64: "qemu-system-x86_64", .arm64: "qemu-system-aarch64", .i386: "qemu-system-i386"]

    static func choose(for check: ImageCheck, directory: BuildDirectory, log: BuildLog) async -> Accelerator {
        guard FileManager.default.fileExists(atPath: "/dev/kvm") else {
            log.warning("no /dev/kvm: boot checks run under software emulation (TCG), 5-15x slower")
            return .tcg
        }
        guard let host = HostArchitecture.current, let native = hostQemu[host],
              (check.interpreter as NSString).lastPathComponent == native else {
            return .tcg
        }
        let words = (try? ShellWords.split(check.interpreterOptions)) ?? []
        var kernel: String?
        if let index = words.firstIndex(of: "-kernel"), index + 1 < words.count {
            let path = words[index + 1]
            kernel = path.hasPrefix("/") ? path : directory.path + "/" + path
        }
        if kernel == nil {
            let boot = ((try? FileManager.default.contentsOfDirectory(atPath: "/boot")) ?? []).filter { $0.hasPrefix("vmlinuz-") }.sorted()
            kernel = boot.last.map { "/boot/" + $0 } ?? ["/var/cache/havel/test-kernel/vmlinuz"].first { FileManager.default.isReadableFile(atPath: $0) }
        }
        guard let kernel, FileManager.default.isReadableFile(atPath: kernel) else {
            log.warning("no kernel to probe KVM with: boot checks run under software emulation (TCG)")
            return .tcg
        }
        let console = host == .arm64 ? "ttyAMA0" : "ttyS0"
        let outcome = await AcceleratorProbe.probeOutcome(qemu: native, kernel: kernel, initrd: nil, append: "console=\(console) panic=-1",
                                                          marker: "Linux version", deadline: .seconds(30))
        if outcome.accelerator == .tcg {
            log.warning("KVM does not work here (\(outcome.reason)): boot checks run under software emulation (TCG), 5-15x slower")
        } else {
            log.info("KVM works here: boot checks use it")
        }
        return outcome.accelerator
    }
}
