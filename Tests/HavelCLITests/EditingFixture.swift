// What the tests of ELBE's editing commands share: a copy of the example project in a fresh directory.
import Foundation
import HavelCore
import ProjectXML

enum EditingFixture {
    static let example = CommandTests.example

    static func workspace() throws -> (dir: String, project: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("havel-edit-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let project = dir + "/project.xml"
        try FileManager.default.copyItem(atPath: Self.example, toPath: project)
        return (dir, project)
    }

    static func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    static func packages(_ path: String) throws -> [String] {
        let root = try ProjectFile.parse(path).root
        return root.firstElement(named: "target")?.firstElement(named: "pkg-list")?.elements(named: "pkg").map {
            ($0.attributeValue("version").map { v in "=\(v) " } ?? "") + $0.text
        } ?? []
    }
}
