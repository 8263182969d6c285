import Debian
import Foundation
import HavelCore

/// report.txt: what a build installed and from where, what the archive and finetuning changed, and how
/// long each stage took.
public struct BuildReport: Sendable {
    public struct Stage: Sendable {
        public var name: String
        public var seconds: Double
        public var cached: Bool
        public var downloads: Int?

        public init(name: String, seconds: Double, cached: Bool, downloads: Int?) {
            self.name = name
            self.seconds = seconds
            self.cached = cached
            self.downloads = downloads
        }
    }

    public var title: String
    public var havelVersion: String
    public var sourcesList: String
    public var preferences: String
    public var installed: [InstalledPackage]
    /// Where each package came from, by name.
    public var origins: [String: String]
    public var archiveFiles: [String]
    public var finetunedFiles: [String]
    public var stages: [Stage]
    /// The repository keys the build trusted: where each came from and its fingerprints.
    public var repositoryKeys: [(source: String, fingerprints: [String])]

    public init(title: String, havelVersion: String, sourcesList: String, preferences: String, installed: [InstalledPackage],
                origins: [String: String], archiveFiles: [String], finetunedFiles: [String], stages: [Stage],
                repositoryKeys: [(source: String, fingerprints: [String])] = []) {
        self.repositoryKeys = repositoryKeys
        self.title = title
        self.havelVersion = havelVersion
        self.sourcesList = sourcesList
        self.preferences = preferences
        self.installed = installed
        self.origins = origins
        self.archiveFiles = archiveFiles
        self.finetunedFiles = finetunedFiles
        self.stages = stages
    }

    public var text: String {
        var text = "Havel build report: \(title)\n"
        text += "Built by Havel \(havelVersion)\n\n"
        text += "== apt sources\n\n" + sourcesList + "\n"
        if !preferences.isEmpty { text += "== apt preferences\n\n" + preferences + "\n" }
        if !repositoryKeys.isEmpty {
            text += "== repository keys\n\n"
            for key in repositoryKeys { text += "  \(key.source): \(key.fingerprints.joined(separator: ", "))\n" }
            text += "\n"
        }
        var byOrigin: [String: [InstalledPackage]] = [:]
        for package in installed { byOrigin[origins[package.name] ?? "unknown origin", default: []].append(package) }
        text += "== installed packages (\(installed.count))\n"
        for origin in byOrigin.keys.sorted() {
            text += "\n\(origin):\n"
            for package in byOrigin[origin]! {
                text += "  \(package.name) \(package.version) \(package.architecture)\(package.autoInstalled ? " (auto)" : "")\n"
            }
        }
        text += "\n== files added by the archive (\(archiveFiles.count))\n\n" + archiveFiles.map { "  \($0)\n" }.joined()
        text += "\n== files added or changed by finetuning (\(finetunedFiles.count))\n\n" + finetunedFiles.map { "  \($0)\n" }.joined()
        text += "\n== stages\n\n"
        for stage in stages {
            text += "  \(stage.name): \(String(format: "%.1f", stage.seconds)) s\(stage.cached ? ", from the stage cache" : "")" +
                (stage.downloads.map { ", \($0) packages downloaded" } ?? "") + "\n"
        }
        return text
    }
}
