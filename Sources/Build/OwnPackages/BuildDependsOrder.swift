// BuildDependsOrder owns the order in which a project's own source packages are built: each source's
// debian/control read for its binary packages and Build-Depends, and the sources sorted so that one whose
// Build-Depends names a binary package of another is built after it. A cycle is refused with its names.

import Debian
import Foundation
import HavelCore

public enum BuildDependsOrder {
    /// What ordering needs of one source package.
    public struct Source: Sendable, Equatable {
        public var name: String
        public var binaries: [String]
        /// Package names from Build-Depends, Build-Depends-Arch and Build-Depends-Indep (alternatives included).
        public var buildDepends: [String]

        public init(name: String, binaries: [String], buildDepends: [String]) {
            self.name = name
            self.binaries = binaries
            self.buildDepends = buildDepends
        }
    }

    /// The source described by the text of a debian/control: the first stanza is the source's, the
    /// others name its binary packages.
    public static func source(control text: String, file: String) throws(HavelError) -> Source {
        let stanzas = Deb822.parse(text, keeping: ["source", "package", "build-depends", "build-depends-arch", "build-depends-indep"])
        guard let first = stanzas.first, let name = first["source"], !name.isEmpty else {
            throw HavelError(.invalidProject, "\(file) has no Source field in its first stanza; a package's debian/control starts with Source:")
        }
        let binaries = stanzas.dropFirst().compactMap { $0["package"] }.filter { !$0.isEmpty }
        guard !binaries.isEmpty else {
            throw HavelError(.invalidProject, "\(file) names no binary package (Package:); give at least one")
        }
        let depends = ["build-depends", "build-depends-arch", "build-depends-indep"].flatMap { packageNames((first[$0] ?? "").replacingOccurrences(of: "\n", with: " ")) }
        return Source(name: name, binaries: binaries, buildDepends: depends)
    }

    /// The package names of a dependency field: `a (>= 1) [amd64] <!nocheck> | b:any, c` gives a, b, c.
    public static func packageNames(_ field: String) -> [String] {
        field.split(whereSeparator: { $0 == "," || $0 == "|" }).compactMap { alternative in
            let word = alternative.trimmingWhitespace().prefix { !$0.isWhitespace && $0 != "(" && $0 != "[" && $0 != "<" }
            let name = word.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
            return name.isEmpty ? nil : name
        }
    }

    /// `sources` in build order: stable (the document order wherever Build-Depends leaves a choice).
    /// Two sources that make the same binary package, or a cycle of Build-Depends, are refused.
    public static func order(_ sources: [Source]) throws(HavelError) -> [Source] {
        var producer: [String: Int] = [:]
        for (index, source) in sources.enumerated() {
            for binary in source.binaries {
                if let other = producer[binary], other != index {
                    throw HavelError(.invalidProject, "the <pbuilder> sources \(sources[other].name) and \(source.name) both make the binary package \(binary); keep one of them")
                }
                producer[binary] = index
            }
        }
        // needs[i]: the sources that must be built before source i.
        let needs: [[Int]] = sources.enumerated().map { index, source in
            var seen = Set<Int>()
            return source.buildDepends.compactMap { producer[$0] }.filter { $0 != index && seen.insert($0).inserted }
        }
        var state = [Int](repeating: 0, count: sources.count)   // 0 new, 1 on the path, 2 placed
        var ordered: [Source] = []
        var path: [Int] = []
        func visit(_ index: Int) throws(HavelError) {
            if state[index] == 2 { return }
            if state[index] == 1 {
                let start = path.firstIndex(of: index) ?? 0
                let cycle = (path[start...] + [index]).map { sources[$0].name }
                throw HavelError(.invalidProject, "the <pbuilder> sources need each other to build (Build-Depends cycle: "
                                 + cycle.joined(separator: " -> ") + "); break the cycle, for example with a build profile")
            }
            state[index] = 1
            path.append(index)
            for other in needs[index] { try visit(other) }
            path.removeLast()
            state[index] = 2
            ordered.append(sources[index])
        }
        for index in sources.indices { try visit(index) }
        return ordered
    }
}
