import Foundation
import HavelCore
import QEMU
import SystemKit

/// The qemu command line for one check: `interpreter-opts` split into words, the image variables
/// expanded, KVM requests rewritten when KVM is not usable, and what a serial-console check needs
/// added. Building it reads nothing but whether a relative kernel, initrd or dtb is in artifacts/.
extension QemuInvocation {
    /// The names `$ELBE_IMG`, `${ELBE_IMG}`, `$HAVEL_IMG` and `${HAVEL_IMG}` stand for the image path.
    public static let imageVariables = ["ELBE_IMG", "HAVEL_IMG"]

    /// `firmware`: the options that attach the check's `<interpreter-firmware>` (see `QemuFirmware`).
    public init(check: ImageCheck, context: CheckContext, firmware: [String] = []) throws(HavelError) {
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
        self.init(executable: interpreter, arguments: words.map { Self.expandImage(in: $0, image: image) } + firmware,
                  workingDirectory: buildDirectory)
        if !firmware.isEmpty { additions.append(firmware.joined(separator: " ")) }
        // ELBE's checks name artifacts by their plain names (-kernel vmlinuz -dtb dtb), as they lie in the
        // directory `elbe initvm submit` downloads; Havel keeps them in artifacts/, where such a name resolves
        // when the build directory itself has no file of that name.
        absolutizeFileOptions(against: buildDirectory, fallbacks: [buildDirectory + "/" + CheckContext.artifactsSubdirectory],
                              exists: { FileManager.default.fileExists(atPath: $0) })
        if context.accelerator == .tcg { rewriteForTCG() }
        addConsoleOptions()
    }

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
}
