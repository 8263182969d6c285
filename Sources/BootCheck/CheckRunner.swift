import Foundation
import HavelCore
import Logging
import QEMU
import SystemKit

/// Runs a project's `check-image-list` against a build directory (at the end of a build, or by
/// `havel check-image`): each image booted with the accelerator the QEMU policy chooses, a transcript
/// per check beside it, then the check script (its output in check-script.log), and check.xml (JUnit)
/// with every result.
public enum CheckRunner {
    public static func run(_ checks: [ImageCheck], script: CheckScript? = nil, buildDirectory: String, report: String,
                           scriptTimeout: Duration = CheckScriptRunner.defaultTimeout,
                           logger: Logger) async throws(HavelError) -> [CheckResult] {
        var results: [CheckResult] = []
        var lastImage: String?
        for (index, check) in checks.enumerated() {
            let accelerator = await accelerator(for: check, buildDirectory: buildDirectory, logger: logger)
            let name = "check-\(index + 1)-\(check.image)"
            let image = buildDirectory + "/" + check.image
            guard FileManager.default.fileExists(atPath: image) else {
                throw HavelError(.notFound, "boot check \(index + 1): image \(check.image) is not in \(buildDirectory)")
            }
            let context = CheckContext(buildDirectory: buildDirectory, imagePath: image, accelerator: accelerator,
                                       bootTimeout: accelerator == .tcg ? CheckContext.emulatedBootTimeout : CheckContext.defaultBootTimeout,
                                       transcriptPath: buildDirectory + "/\(name).log")
            logger.info("boot check \(name): \(check.interpreter) \(check.interpreterOptions)")
            let result = await BootChecker.run(check, name: name, context: context, log: logger)
            logger.info("boot check \(name): \(result.passed ? "passed" : "FAILED: \(result.message)") in \(String(format: "%.1f", result.seconds)) s")
            results.append(result)
            lastImage = image
        }
        if let script {
            results.append(await CheckScriptRunner.run(script, buildDirectory: buildDirectory, imagePath: lastImage,
                                                       timeout: scriptTimeout, outputPath: buildDirectory + "/check-script.log",
                                                       log: logger))
        }
        try AtomicFile.write(BootChecker.junitXML(results, suite: "havel-checks"), to: report)
        return results
    }

    /// The QEMU module's one policy (KVM when a real probe boot shows it works here, otherwise TCG), with a
    /// visible warning when KVM is not used for a guest of this host's architecture.
    static func accelerator(for check: ImageCheck, buildDirectory: String, logger: Logger) async -> Accelerator {
        let options = (try? ShellWords.split(check.interpreterOptions)) ?? []
        let outcome = await AcceleratorPolicy.host.choose(interpreter: check.interpreter, options: options,
                                                          directory: buildDirectory, host: HostArchitecture.current)
        if outcome.accelerator == .kvm {
            logger.info("KVM works here: boot checks use it")
        } else if !outcome.foreignGuest {
            logger.warning("KVM is not used (\(outcome.reason)): boot checks run under software emulation (TCG), 5-15x slower")
        }
        return outcome.accelerator
    }
}
