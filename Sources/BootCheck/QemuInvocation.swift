import Foundation
import HavelCore
import SystemKit

/// The qemu command line for one check: `interpreter-opts` split into words, the image variables
/// expanded, KVM requests rewritten when KVM is not usable, and what a serial-console check needs
/// added. Building it does no I/O.
public struct QemuInvocation: Sendable, Hashable, CustomStringConvertible {
    public var executable: String
    public var arguments: [String]
    /// qemu runs here (the build directory), so relative file arguments resolve against it.
    public var workingDirectory: String
    /// What was changed in the user's options and why, for a visible warning.
    public var rewrites: [String]
    /// What was added (`-no-reboot`, `-nographic`, `-snapshot`), for the log.
    public var additions: [String]

    public var description: String { ([executable] + arguments).map(Command.shellQuote).joined(separator: " ") }

    /// The names `$ELBE_IMG`, `${ELBE_IMG}`, `$HAVEL_IMG` and `${HAVEL_IMG}` stand for the image path.
    public static let imageVariables = ["ELBE_IMG", "HAVEL_IMG"]

    /// Options whose value is a file; relative ones are made absolute against the build directory
    /// (qemu runs there anyway; absolute paths make the logged command line usable elsewhere).
    static let fileOptions: Set<String> = ["-kernel", "-initrd", "-dtb", "-bios", "-pflash", "-hda", "-hdb", "-cdrom"]

    public init(check: ImageCheck, context: CheckContext) throws(HavelError) {
        let buildDirectory = Self.absolute(context.buildDirectory, against: FileManager.default.currentDirectoryPath)
        let image = Self.absolute(context.imagePath, against: buildDirectory)
        let interpreter = check.interpreter.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !interpreter.isEmpty else {
            throw HavelError(.invalidProject, "the check has no interpreter (e.g. qemu-system-x86_64)", at: check.location)
        }
        let words: [String]
        do {
            words = try ShellWords.split(check.interpreterOptions)
        } catch {
            throw HavelError(.invalidProject, "interpreter-opts: \(error.message)", at: check.location)
        }
        self.executable = interpreter
        self.workingDirectory = buildDirectory
        self.rewrites = []
        self.additions = []
        self.arguments = words.map { Self.expandImage(in: $0, image: image) }
        absolutizeFileOptions(buildDirectory: buildDirectory)
        if context.accelerator == .tcg { rewriteForTCG() }
        addConsoleOptions()
    }

    // MARK: - Steps

    /// `$ELBE_IMG` and friends in one word; other `$` text is left as it is (no shell expansion).
    static func expandImage(in word: String, image: String) -> String {
        guard word.contains("$") else { return word }
        var result = word
        for name in imageVariables {
            result = result.replacingOccurrences(of: "${\(name)}", with: image)
            var searchStart = result.startIndex
            while let range = result.range(of: "$" + name, range: searchStart..<result.endIndex) {
                let next = range.upperBound
                if next < result.endIndex, result[next].isLetter || result[next].isNumber || result[next] == "_" {
                    searchStart = next              // $ELBE_IMGX is another variable
                    continue
                }
                result.replaceSubrange(range, with: image)
                searchStart = result.index(range.lowerBound, offsetBy: image.count)
            }
        }
        return result
    }

    static func absolute(_ path: String, against directory: String) -> String {
        if path.hasPrefix("/") || path.isEmpty { return path }
        return URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: directory, isDirectory: true)).standardizedFileURL.path
    }

    /// `--option` is the same as `-option` to qemu.
    static func optionName(_ word: String) -> String {
        word.hasPrefix("--") && word.count > 2 ? String(word.dropFirst()) : word
    }

    private func indices(of names: Set<String>) -> [Int] {
        arguments.indices.filter { names.contains(Self.optionName(arguments[$0])) }
    }

    private mutating func absolutizeFileOptions(buildDirectory: String) {
        for i in indices(of: Self.fileOptions) where i + 1 < arguments.count {
            arguments[i + 1] = Self.absolute(arguments[i + 1], against: buildDirectory)
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
    mutating func rewriteForTCG() {
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
    mutating func addConsoleOptions() {
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
