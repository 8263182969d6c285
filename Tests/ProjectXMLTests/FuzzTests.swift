import Foundation
import HavelCore
@testable import ProjectXML
import Testing

/// Mutates real project files thousands of times: the reader and every checker must answer each
/// input with a result or an error that points inside the input, and never crash or hang.
@Suite struct FuzzTests {
    /// A small, seeded generator (SplitMix64) so that a failure is reproducible from its seed.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let tokens: [[UInt8]] = ["<", ">", "/>", "</", "&", "&amp;", "&#x0;", "&#99999999;", "\"", "'", "=", "<!--", "-->",
                                    "<![CDATA[", "]]>", "<?", "?>", "<!DOCTYPE a [<!ENTITY e \"x\">]>", "xmlns:p=\"u\"", "p:",
                                    "remain", "999999999999GiB", "<partition><size>1</size><label>rfs</label></partition>",
                                    "<xi:include href=\"nope.xml\"/>", "variant=\"x\"", "\u{FEFF}", "\u{0}", "\r\n"].map { Array($0.utf8) }

    static func mutate(_ input: [UInt8], using rng: inout SeededGenerator) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            guard !bytes.isEmpty else { return bytes }
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: bytes[at] = UInt8.random(in: 0...255, using: &rng)
            case 1: bytes.remove(at: at)
            case 2: bytes.insert(contentsOf: tokens.randomElement(using: &rng)!, at: at)
            case 3: bytes = Array(bytes[..<at])
            case 4:
                let length = min(Int.random(in: 1...64, using: &rng), bytes.count - at)
                bytes.insert(contentsOf: bytes[at..<(at + length)], at: Int.random(in: 0..<bytes.count, using: &rng))
            default:
                let end = min(bytes.count, at + Int.random(in: 1...200, using: &rng))
                bytes.removeSubrange(at..<end)
            }
        }
        return bytes
    }

    static func corpus() -> [(String, [UInt8])] {
        var files = [TestPaths.fixtures + "/valid-base.xml", TestPaths.fixtures + "/preprocess/main.xml"]
        files += TestPaths.exampleFiles().map { TestPaths.elbeExamples + "/" + $0 }
        return files.compactMap { path in
            (try? Data(contentsOf: URL(fileURLWithPath: path))).map { (path, [UInt8]($0)) }
        }
    }

    @Test func mutatedProjectFilesNeverCrashTheReaderOrCheckers() {
        let corpus = Self.corpus()
        #expect(corpus.count >= 2)
        var rng = SeededGenerator(state: 0x4861_7665_6C21)
        var parsed = 0
        var refused = 0
        for iteration in 0..<3000 {
            let (path, original) = corpus[iteration % corpus.count]
            let input = Self.mutate(original, using: &rng)
            let lineCount = input.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
            do {
                let document = try XMLReader.parse(input, file: path)
                let loaded = ProjectLoader.check(document, options: .init(strict: true))
                parsed += 1
                for diagnostic in loaded.diagnostics where diagnostic.location?.file == path {
                    #expect((1...lineCount).contains(diagnostic.location!.line), "iteration \(iteration): \(diagnostic)")
                }
            } catch {
                refused += 1
                let line = error.location?.line ?? 0
                #expect((1...lineCount).contains(line), "iteration \(iteration): \(error) outside 1...\(lineCount)")
                #expect(!error.message.isEmpty)
            }
        }
        // Both paths were exercised: some mutants are still well-formed, most are not.
        #expect(parsed > 100)
        #expect(refused > 100)
    }
}
