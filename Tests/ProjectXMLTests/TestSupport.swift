import Foundation

/// Paths the tests read: the fixtures bundled with this target, and ELBE's examples in the shared
/// folder that lies beside the repository (`../shared/elbe-examples`).
enum TestPaths {
    static let fixtures: String = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path

    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static let elbeExamples: String = {
        let candidates = [ProcessInfo.processInfo.environment["HAVEL_ELBE_EXAMPLES"],
                          repositoryRoot + "/../shared/elbe-examples"].compactMap { $0 }
        return candidates.first { FileManager.default.fileExists(atPath: $0) } ?? candidates.last!
    }()

    static var elbeExamplesPresent: Bool { FileManager.default.fileExists(atPath: elbeExamples) }

    static func exampleFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: elbeExamples)) ?? [])
            .filter { $0.hasSuffix(".xml") }.sorted()
    }

    static func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("havel-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
