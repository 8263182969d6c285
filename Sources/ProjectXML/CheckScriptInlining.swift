// Owns the preprocess step that reads a `check-image-list/check-script location="…"` file into the
// element, as ELBE's preprocess does, so that source.xml, an upload and `havel check-image` carry the script.

import Foundation
import HavelCore

extension Preprocessor {
    /// Larger scripts are refused (a check script is a page of shell or Python).
    public static let maximumCheckScriptSize = 1 << 20

    /// Replaces each check-script's `location` with the file's text. The location is a plain relative
    /// name inside the project file's directory; the file must be a regular UTF-8 file there (a symlink
    /// that leaves the directory is refused).
    /// Returns the problems, each naming the attribute's line and what to do.
    func inlineCheckScripts(_ root: inout XMLElement, projectFile: String) -> [Diagnostic] {
        let path = "/" + root.name.local + "/check-image-list/check-script"
        guard let list = root.children.firstIndex(where: { $0.elementName == "check-image-list" }),
              case .element(var listElement) = root.children[list] else { return [] }
        var changed = false
        var failures: [Diagnostic] = []
        for index in listElement.children.indices {
            guard case .element(var script) = listElement.children[index], script.name.local == "check-script",
                  let attribute = script.attribute("location") else { continue }
            func fail(_ message: String) {
                failures.append(Diagnostic(.error, at: attribute.location, path: path + "/@location",
                                           "check-script location=\"\(attribute.value)\": " + message))
            }
            guard options.readsCheckScripts else {
                fail("this project was not read from a file, so there is no directory to find the script in; "
                     + "inline the script (havel preprocess, havel initvm submit and havel control upload do)")
                continue
            }
            if !script.text.trimmingWhitespace().isEmpty {
                fail("the element has both a location and a script; give one of them")
                continue
            }
            switch Self.readCheckScript(attribute.value, projectFile: projectFile) {
            case .success(let text):
                script.removeAttribute("location")
                script.children = [.text(text, script.location)]
                listElement.children[index] = .element(script)
                changed = true
            case .failure(let message):
                fail(message.text)
            }
        }
        if changed { root.children[list] = .element(listElement) }
        return failures
    }

    struct ScriptReadFailure: Error { var text: String }

    /// The text of `location` inside the directory of `projectFile`, or why it cannot be read.
    static func readCheckScript(_ location: String, projectFile: String) -> Result<String, ScriptReadFailure> {
        let parts = location.split(separator: "/", omittingEmptySubsequences: false)
        guard !location.isEmpty, !location.hasPrefix("/"), !location.contains("://"),
              !parts.contains(".."), !parts.contains(""), location.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) else {
            return .failure(ScriptReadFailure(text: "give a plain relative file name inside the project file's directory "
                                              + "(no leading /, no .., no URL)"))
        }
        let directoryName = (projectFile as NSString).deletingLastPathComponent
        let directory = directoryName.isEmpty ? FileManager.default.currentDirectoryPath : directoryName
        let file = directory + "/" + location
        guard let realDirectory = realPath(directory), let realFile = realPath(file) else {
            return .failure(ScriptReadFailure(text: "\(file) does not exist; put the script beside the project file"))
        }
        guard realFile.hasPrefix(realDirectory == "/" ? "/" : realDirectory + "/") else {
            return .failure(ScriptReadFailure(text: "\(file) leads out of the project's directory \(realDirectory) (to \(realFile)); "
                                              + "keep the script inside it"))
        }
        var status = stat()
        guard stat(realFile, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            return .failure(ScriptReadFailure(text: "\(file) is not a regular file"))
        }
        guard status.st_size <= maximumCheckScriptSize else {
            return .failure(ScriptReadFailure(text: "\(file) is \(status.st_size) bytes, more than the \(maximumCheckScriptSize) allowed for a check script"))
        }
        guard let handle = FileHandle(forReadingAtPath: realFile) else {
            return .failure(ScriptReadFailure(text: "\(file) cannot be read"))
        }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: maximumCheckScriptSize + 1)) ?? Data()
        guard data.count <= maximumCheckScriptSize else {
            return .failure(ScriptReadFailure(text: "\(file) grew beyond \(maximumCheckScriptSize) bytes while being read"))
        }
        guard let text = String(data: data, encoding: .utf8), !text.unicodeScalars.contains(where: { $0.value == 0 }) else {
            return .failure(ScriptReadFailure(text: "\(file) is not UTF-8 text; a check script must be a text program with a #! line"))
        }
        return .success(text)
    }
}
