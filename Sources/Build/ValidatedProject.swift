import Debian
import Foundation
import HavelCore
import Images
import ProjectXML

/// A project that passed validation, with its mirror resolved: the only thing a build plan is made
/// from. Its architecture is known, and every name the file gives to an output of the build directory
/// (the packed tree, cpio and squashfs archives, disk images, and the project's own name and version,
/// which name default outputs) is a plain file name, so no output lands outside the build directory.
public struct ValidatedProject: Sendable {
    public let loaded: LoadedProject
    public let architecture: Architecture

    public var project: Project { loaded.project }
    public var document: XMLDocument { loaded.document }
    public var warnings: [Diagnostic] { loaded.warnings }

    /// Refuses a project with errors, without a known architecture, naming an output outside the build
    /// directory, or using an item Havel does not build that would change the output (unless `allowUnsupported`).
    public init(_ loaded: LoadedProject, allowUnsupported: Bool = false) throws(HavelError) {
        guard loaded.isValid else {
            throw HavelError(.invalidProject, "the project has errors; run havel validate", diagnostics: loaded.errors)
        }
        let refused = loaded.unsupported.filter(\.changesOutput)
        if !allowUnsupported, !refused.isEmpty {
            throw HavelError(.unsupported, "the project uses \(refused.count) item\(refused.count == 1 ? "" : "s") Havel does not build, "
                             + "so the result would differ from what the file asks for; remove \(refused.count == 1 ? "it" : "them") "
                             + "or build anyway with --allow-unsupported",
                             diagnostics: refused.map { Diagnostic(.error, at: $0.location, path: $0.path, $0.message) })
        }
        guard let architecture = loaded.project.architecture else {
            throw HavelError(.invalidProject, "the project names no architecture Havel knows (<buildtype> \(loaded.project.buildtype))")
        }
        let diagnostics = Self.outputNameProblems(loaded)
        guard diagnostics.isEmpty else {
            throw HavelError(.invalidProject, "the project names outputs outside the build directory", diagnostics: diagnostics)
        }
        let refusedOptions = Self.archiveOptionProblems(loaded)
        guard refusedOptions.isEmpty else {
            throw HavelError(.invalidProject, "the project gives its rootfs archives options Havel does not pass on", diagnostics: refusedOptions)
        }
        self.loaded = loaded
        self.architecture = architecture
    }

    /// An error for every name the project gives to an output of the build directory that is not a plain
    /// file name (the daemon refuses such a project at upload already).
    public static func outputNameProblems(_ loaded: LoadedProject) -> [Diagnostic] {
        let project = loaded.project
        // (the element holding the name, its parent, the name)
        var named: [(element: String, parent: String, value: String)] = [("name", "project", project.name), ("version", "project", project.version)]
        if let tar = project.target.outputs.tar, !tar.isEmpty { named.append(("name", "tar", tar)) }
        if let cpio = project.target.outputs.cpio, !cpio.isEmpty { named.append(("name", "cpio", cpio)) }
        if let squashfs = project.target.outputs.squashfs, !squashfs.isEmpty { named.append(("name", "squashfs", squashfs)) }
        if let base = project.target.outputs.baseImage, !base.isEmpty { named.append(("name", "base-image", base)) }
        for image in project.target.images { named.append(("name", image.table == .gpt ? "gpthd" : "msdoshd", image.name)) }
        for mtd in project.target.mtdImages { named.append(("name", "mtd", mtd.name)) }
        for check in project.checks { named.append(("img", "check", check.image)) }
        return named.compactMap { element, parent, value -> Diagnostic? in
            guard !Self.isPlainFileName(value) else { return nil }
            let place = Self.place(of: element, under: parent, value: value, in: loaded.document)
            return Diagnostic(.error, at: place?.location, path: place?.path ?? "\(parent)/\(element)",
                              "\(value.debugDescription) is not a plain file name: it names a file of the build directory, so it may not contain '/', be '.' or '..', start with '-' or hold control characters")
        }
    }

    /// An error for `<tar><options>` or `<squashfs><options>` holding an option that could read or run
    /// something on the build host (see `ArchiveOptions`).
    public static func archiveOptionProblems(_ loaded: LoadedProject) -> [Diagnostic] {
        let outputs = loaded.project.target.outputs
        let checks: [(parent: String, text: String?, parse: (String) throws(HavelError) -> [String])] = [
            ("tar", outputs.tarOptions, ArchiveOptions.tar), ("squashfs", outputs.squashfsOptions, ArchiveOptions.squashfs),
        ]
        return checks.compactMap { parent, text, parse -> Diagnostic? in
            guard let text else { return nil }
            do throws(HavelError) {
                _ = try parse(text)
                return nil
            } catch {
                let place = Self.place(of: "options", under: parent, value: text.trimmingCharacters(in: .whitespacesAndNewlines), in: loaded.document)
                return Diagnostic(.error, at: place?.location, path: place?.path ?? "\(parent)/options", error.message)
            }
        }
    }

    /// A name that stays a single entry of the directory it is put in.
    public static func isPlainFileName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.hasPrefix("-")
            && name.utf8.count <= 255 && !name.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }
    }

    /// Where the element holding `value` is written, and its element path, for the message.
    static func place(of element: String, under parent: String, value: String,
                      in document: XMLDocument) -> (location: SourceLocation, path: String)? {
        func search(_ node: XMLElement, _ path: String) -> (location: SourceLocation, path: String)? {
            let here = path + "/" + node.name.local
            for child in node.elements {
                if node.name.local == parent, child.name.local == element,
                   child.text.trimmingCharacters(in: .whitespacesAndNewlines) == value {
                    return (child.location, here + "/" + element)
                }
                if let found = search(child, here) { return found }
            }
            return nil
        }
        return search(document.root, "")
    }
}

/// The one way from a project file to something to build, for `havel build`, `havel show --plan` and the
/// daemon: load (preprocessing as asked), validate, resolve the mirror, and check what a build needs.
public enum BuildEntry {
    /// Loads `path`; an invalid project throws `.invalidProject` with its errors as diagnostics.
    public static func load(path: String, options: ProjectLoader.Options, mirror: String?) throws(HavelError) -> ValidatedProject {
        try validate(try ProjectLoader.load(path: path, options: options), path: path, options: options, mirror: mirror)
    }

    /// As `load`, with the project's archivedirs packed and its keys fetched on this machine (`havel build`).
    public static func loadOnClient(path: String, options: ProjectLoader.Options, mirror: String?) async throws(HavelError) -> ValidatedProject {
        let loaded = try await ClientResources.resolve(try ProjectLoader.load(path: path, options: options), options: options)
        return try validate(loaded, path: path, options: options, mirror: mirror)
    }

    static func validate(_ loaded: LoadedProject, path: String, options: ProjectLoader.Options,
                         mirror: String?) throws(HavelError) -> ValidatedProject {
        var loaded = loaded
        guard loaded.isValid else {
            throw HavelError(.invalidProject, "\(path): invalid, not built (\(loaded.errors.count) error\(loaded.errors.count == 1 ? "" : "s"))",
                             diagnostics: loaded.errors)
        }
        try MirrorResolution.apply(mirror, to: &loaded.project)
        return try ValidatedProject(loaded, allowUnsupported: options.allowUnsupported)
    }

    /// The project and the plan that builds it on this host.
    public static func plan(path: String, options: ProjectLoader.Options, mirror: String?,
                            build: BuildOptions) throws(HavelError) -> BuildPlan {
        BuildPlan(try load(path: path, options: options, mirror: mirror), host: .current, options: build)
    }
}
