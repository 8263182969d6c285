// Reports owns what a build writes about itself: source.xml pins, licences, validation.txt, report.txt.

import Debian
import Foundation
import HavelCore
import SystemKit

/// One package's copyright file, or nil when the package has none.
public struct LicenceEntry: Sendable, Hashable {
    public var package: String
    public var copyright: CopyrightInfo?

    public init(package: String, copyright: CopyrightInfo?) {
        self.package = package
        self.copyright = copyright
    }
}

/// The licence files of a build (`licence-chroot.{txt,xml}`, `licence-target.{txt,xml}`), laid out as
/// ELBE writes them (`elbepack/efilesystem.py: write_licenses`, `elbepack/licencexml.py`).
public enum LicenceReport {
    /// The text written for a package without a copyright file.
    public static let missingCopyright = "no copyright file found"

    /// Every package's copyright file after a header, sorted by package name:
    /// `\n<pkg>:\n=====…\n<copyright text>\n\n`.
    public static func text(_ entries: [LicenceEntry]) -> String {
        var out = ""
        for entry in sorted(entries) {
            out += "\n" + entry.package + ":\n" + String(repeating: "=", count: 69) + "\n"
            out += entry.copyright?.text ?? missingCopyright
            out += "\n\n"
        }
        return out
    }

    /// `pkglicenses/pkglicense@name`, sorted by package name, each with `text`, then for a machine-readable
    /// file `machinereadable`, `debian_licenses/license*` and `detailed/files{glob*, license, copyright}`;
    /// for a free-form file with heuristic matches `heuristics` and `debian_licenses/license*`; for a
    /// free-form file without matches, or a missing one, only `text`. `debian_licenses` lists the single
    /// licence names (`GPL-2+ or Artistic` gives two), where ELBE lists each distinct expression.
    /// Characters XML 1.0 does not allow (most C0 controls) are dropped, as ELBE drops them.
    public static func xml(_ entries: [LicenceEntry]) -> String {
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<pkglicenses>\n"
        for entry in sorted(entries) {
            out += "  <pkglicense name=\"\(escape(entry.package, attribute: true))\">\n"
            out += "    <text>\(escape(entry.copyright?.text ?? missingCopyright))</text>\n"
            if let info = entry.copyright {
                if info.machineReadable {
                    out += "    <machinereadable/>\n"
                    out += licenceList(info.licenses)
                    if info.files.isEmpty {
                        out += "    <detailed/>\n"
                    } else {
                        out += "    <detailed>\n"
                        for files in info.files {
                            out += "      <files>\n"
                            for glob in files.globs { out += "        <glob>\(escape(glob))</glob>\n" }
                            out += "        <license>\(escape(files.license))</license>\n"
                            out += "        <copyright>\(escape(files.copyright))</copyright>\n"
                            out += "      </files>\n"
                        }
                        out += "    </detailed>\n"
                    }
                } else if !info.licenses.isEmpty {
                    out += "    <heuristics/>\n"
                    out += licenceList(info.licenses)
                }
            }
            out += "  </pkglicense>\n"
        }
        return out + "</pkglicenses>\n"
    }

    /// Reads and parses `<root>/usr/share/doc/<pkg>/copyright` for each package, in the given order.
    /// A `:arch` qualifier is dropped from the name. Symlinks are followed as a process chrooted into
    /// `root` would see them (absolute targets start at `root`, `..` stops at `root`), so a doc directory
    /// linked to another one (`gcc -> cpp`) is found and nothing outside `root` is ever read. Missing or
    /// unreadable files, directories and names that are not package names give a nil copyright.
    /// Files that are not UTF-8 are read as ISO-8859-1.
    public static func collect(root: String, packages: [String]) -> [LicenceEntry] {
        let tree = try? RootedFileSystem(root: root)
        return packages.map { package in
            let name = String(package.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            guard isPlausiblePackageName(name), let tree,
                  let bytes = try? tree.readFile("/usr/share/doc/\(name)/copyright") else {
                return LicenceEntry(package: package, copyright: nil)
            }
            let data = Data(bytes)
            let text = String(data: data, encoding: .utf8) ?? String(data: data, encoding: .isoLatin1)
                ?? String(decoding: data, as: UTF8.self)
            return LicenceEntry(package: package, copyright: CopyrightParser.parse(text))
        }
    }

    static func isPlausiblePackageName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\0")
    }

    private static func sorted(_ entries: [LicenceEntry]) -> [LicenceEntry] {
        entries.enumerated().sorted { ($0.element.package, $0.offset) < ($1.element.package, $1.offset) }.map(\.element)
    }

    private static func licenceList(_ licenses: [String]) -> String {
        guard !licenses.isEmpty else { return "    <debian_licenses/>\n" }
        var out = "    <debian_licenses>\n"
        for license in licenses { out += "      <license>\(escape(license))</license>\n" }
        return out + "    </debian_licenses>\n"
    }

    static func escape(_ text: String, attribute: Bool = false) -> String {
        XMLEscaping.escape(text, attribute: attribute)
    }
}
