import ArgumentParser
import Debian
import Foundation
import HavelCore
import ProjectXML

/// `havel pin-versions FILE [SOURCE]`: ELBE's `elbe pin_versions`, every package a build installed
/// (the `<fullpkgs>` of its source.xml) written into the project's pkg-list with its exact version.
struct PinVersionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pin-versions",
        abstract: "Pin the pkg-list to the exact versions a build installed (as elbe pin_versions).",
        discussion: """
            SOURCE is a build directory (its source.xml is read) or a source.xml; without it FILE itself must \
            hold <fullpkgs>, as with elbe pin_versions. The pkg-list of FILE is replaced by one \
            <pkg version="…"> per installed package; the rest of the file is kept as written.
            """)

    @Argument(help: "The project file to pin.")
    var file: String

    @Argument(help: ArgumentHelp("A build directory or a source.xml with <fullpkgs>.", valueName: "BUILD_DIR|SOURCE_XML"))
    var source: String?

    func run() throws {
        let sourcePath = Self.sourceXML(source ?? file)
        let packages = try Self.installedPackages(in: try ProjectFile.parse(sourcePath))
        var edit = try ProjectFileEditing(file)
        try edit.editor.pinPackages(packages)
        try edit.save()
        Terminal.out("\(file): pkg-list pinned to the \(packages.count) packages of \(sourcePath)")
    }

    /// A build directory stands for the source.xml inside it.
    static func sourceXML(_ path: String) -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return (path.hasSuffix("/") ? path : path + "/") + "source.xml"
        }
        return path
    }

    /// Name and version of each `<fullpkgs><pkg>`, checked: a name and a Debian version each.
    static func installedPackages(in document: XMLDocument) throws(HavelError) -> [(name: String, version: String)] {
        guard let full = document.root.firstElement(named: "fullpkgs") else {
            throw HavelError(.invalidProject, "\(document.file) has no <fullpkgs>: give a build directory or the source.xml havel build wrote there",
                             at: document.root.location)
        }
        var packages: [(name: String, version: String)] = []
        for pkg in full.elements(named: "pkg") {
            let name = pkg.text.trimmingWhitespace()
            guard let version = pkg.attributeValue("version")?.trimmingWhitespace(), DebianVersion(version) != nil else {
                throw HavelError(.invalidProject, "<fullpkgs><pkg>\(name)</pkg> has no valid version=\"…\"; this source.xml was not written by a build",
                                 at: pkg.location)
            }
            packages.append((name, version))
        }
        guard !packages.isEmpty else {
            throw HavelError(.invalidProject, "<fullpkgs> lists no packages; nothing to pin", at: full.location)
        }
        return packages
    }
}
