import Build
import Foundation
import HavelCore

/// Shows a build on the terminal: one live line on a TTY (stage, packages n/N, MiB fetched), plain
/// timestamped lines otherwise, everything with --verbose, almost nothing with --quiet.
final class ProgressRenderer: @unchecked Sendable {
    enum Mode { case live, plain, verbose, quiet }

    /// The one renderer of this process, which the bootstrapped log handler drives (`CLILogging`).
    static let shared = ProgressRenderer(mode: .plain)

    private(set) var mode: Mode
    private let lock = NSLock()
    private var started = Date()
    private var stage = "starting"
    private var packages: (Int, Int) = (0, 0)
    private var fetched: UInt64 = 0
    private var detail = ""
    private var lineShown = false

    init(mode: Mode) {
        self.mode = mode
    }

    /// Starts showing a new build or check in `mode`.
    func start(mode: Mode) {
        lock.lock()
        defer { lock.unlock() }
        self.mode = mode
        started = Date()
        stage = "starting"
        packages = (0, 0)
        fetched = 0
        detail = ""
        lineShown = false
    }

    func handle(_ event: BuildEvent) {
        lock.lock()
        defer { lock.unlock() }
        switch event {
        case .stageStarted(let name):
            stage = name
            detail = ""
            if mode == .plain || mode == .verbose { print(stamped("\(name)…")) }
        case .stageFinished(let name, let seconds, let cached):
            if mode == .plain || mode == .verbose {
                print(stamped("\(name) done in \(String(format: "%.1f", seconds)) s\(cached ? " (stage cache)" : "")"))
            }
        case .log(let line):
            if mode == .verbose { print(line) }
        case .warning(let text):
            if mode != .quiet { clearLine(); Terminal.error("warning: " + text) }
        case .packages(let done, let total):
            packages = (done, total)
        case .fetched(let bytes):
            fetched = bytes
        case .detail(let text):
            detail = text
        }
        if mode == .live { redraw() }
    }

    func stamped(_ text: String) -> String {
        String(format: "[%6.1f] ", Date().timeIntervalSince(started)) + text
    }

    func print(_ text: String) {
        Terminal.out(text)
    }

    func clearLine() {
        if lineShown {
            try? FileHandle.standardOutput.write(contentsOf: Data("\r\u{1B}[K".utf8))
            lineShown = false
        }
    }

    func redraw() {
        var line = String(format: "%5.0fs  ", Date().timeIntervalSince(started)) + stage
        if packages.1 > packages.0 { line += "  packages \(packages.0)/\(packages.1)" } else if packages.0 > 0 { line += "  \(packages.0) set up" }
        if fetched > 0 { line += String(format: "  %.1f MiB fetched", Double(fetched) / 1_048_576) }
        if !detail.isEmpty { line += "  " + String(detail.prefix(50)) }
        try? FileHandle.standardOutput.write(contentsOf: Data(("\r\u{1B}[K" + line).utf8))
        lineShown = true
    }

    func finish() {
        lock.lock()
        clearLine()
        lock.unlock()
    }

    static func describe(output: String) -> String {
        switch output {
        case "bin-cdrom.iso": return "the binary CD: every installed package as a signed apt repository"
        case "src-cdrom.iso": return "the source CD: every installed package's source as a signed source repository"
        case "src-cdrom-missing.txt": return "the sources the source CD lacks, with the reasons"
        default: return output.hasSuffix(".cpio") || output.hasSuffix(".squashfs") ? "a root filesystem archive" : "an image"
        }
    }

    func summary(_ state: BuildState, directory: BuildDirectory) {
        if mode != .quiet { timings(state) }
        Terminal.out("built \(state.project) \(state.version) (\(state.architecture)) in \(directory.path):")
        Terminal.out("  rootfs/             the target tree (havel chroot \(directory.path))")
        if let packed = state.packedRootfs { Terminal.out("  \(packed)  the packed root filesystem") }
        Terminal.out("  source.xml          the project with every installed package pinned")
        Terminal.out("  validation.txt, report.txt, licence-target.txt/.xml, sbom.cdx.json, sbom.spdx.json, log.txt")
        for output in state.outputs { Terminal.out("  \(output)  " + Self.describe(output: output)) }
        for artifact in state.artifacts { Terminal.out("  \(artifact)  an artifact") }
    }

    func timings(_ state: BuildState) {
        Terminal.out("stage timings:")
        for stage in state.stages {
            var line = "  " + stage.name.padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: "%7.1f s", stage.seconds)
            if stage.cached { line += "  (stage cache)" }
            if let downloads = stage.downloads { line += "  \(downloads) packages downloaded" }
            Terminal.out(line)
        }
    }
}
