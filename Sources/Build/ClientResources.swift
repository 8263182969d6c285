// ClientResources owns what a project names on the client machine and the daemon never reads: the
// `<archivedir>`s of the root, packed in order into one `<archive>`, and `url/key` URLs, fetched
// (size-bounded, timed out) and written as `<raw-key>`, as ELBE's preprocess does. havel preprocess,
// havel build, havel control upload and havel initvm submit run it after loading; the preprocessor has
// already confined the directories and refuses both in a project uploaded to the daemon.
import Foundation
import HavelCore
import ProjectXML
import SystemKit

public enum ClientResources {
    /// The most bytes a fetched key may have; armored keys are a few KiB.
    public static let maximumKeySize = 1 << 20
    /// The longest a key download may take.
    public static let keyTimeoutSeconds = 60

    /// `loaded` with its archivedirs packed (unless `packingArchivedirs` is false: `havel initvm create` needs
    /// the keys only) and its keys fetched, checked again; an invalid or plain project is returned as it is.
    public static func resolve(_ loaded: LoadedProject, options: ProjectLoader.Options, packingArchivedirs: Bool = true,
                               processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> LoadedProject {
        guard loaded.isValid else { return loaded }
        var document = loaded.document
        let packedRoot = packingArchivedirs ? try await packArchivedirs(&document.root, processes: processes) : false
        let packedPbuilder = packingArchivedirs ? try await packPbuilderArchivedirs(&document.root, processes: processes) : false
        let packed = packedRoot || packedPbuilder
        let fetched = try await fetchKeys(&document.root, processes: processes)
        guard packed || fetched else { return loaded }
        return ProjectLoader.recheck(document, after: loaded, options: options)
    }

    // MARK: - archivedir

    /// Packs the root's archivedirs into its `<archive>` (replacing what it held, as ELBE does); true if there were any.
    static func packArchivedirs(_ root: inout XMLElement, processes: any ProcessRunning) async throws(HavelError) -> Bool {
        let archivedirs = root.elements(named: "archivedir")
        guard let first = archivedirs.first else { return false }
        let sources = archivedirs.map { element in
            ArchivePacker.Source(directory: element.text.trimmingWhitespace(),
                                 keepAttributes: ["true", "1"].contains(element.attributeValue("keep-attributes")?.trimmingWhitespace() ?? ""))
        }
        let bytes: [UInt8]
        do {
            bytes = try await ArchivePacker.packedBytes(sources, processes: processes)
        } catch {
            throw HavelError(error.code, "<archivedir> at \(first.location) cannot be packed: \(error.message)")
        }
        let base64 = "\n" + wrapped(Data(bytes).base64EncodedString(), width: 76) + "\n"
        var archive = root.firstElement(named: "archive") ?? XMLElement(name: QualifiedName("archive", namespace: first.name.namespace, prefix: first.name.prefix),
                                                                        location: first.location)
        archive.children = [.text(base64, archive.location)]
        var children: [XMLNode] = []
        var placed = false
        for node in root.children {
            guard case .element(let element) = node, ["archivedir", "archive"].contains(element.name.local) else {
                children.append(node)
                continue
            }
            if !placed { children.append(.element(archive)) }
            placed = true
        }
        root.children = children
        return true
    }

    /// Packs each `target/pbuilder/archivedir` into an `<archive>` in its place (one source tree each); true if there were any.
    static func packPbuilderArchivedirs(_ root: inout XMLElement, processes: any ProcessRunning) async throws(HavelError) -> Bool {
        var packedAny = false
        for (targetIndex, targetNode) in root.children.enumerated() {
            guard case .element(var target) = targetNode, target.name.local == "target" else { continue }
            for (pbuilderIndex, pbuilderNode) in target.children.enumerated() {
                guard case .element(var pbuilder) = pbuilderNode, pbuilder.name.local == "pbuilder" else { continue }
                for (index, node) in pbuilder.children.enumerated() {
                    guard case .element(let archivedir) = node, archivedir.name.local == "archivedir" else { continue }
                    let source = ArchivePacker.Source(directory: archivedir.text.trimmingWhitespace(),
                                                      keepAttributes: ["true", "1"].contains(archivedir.attributeValue("keep-attributes")?.trimmingWhitespace() ?? ""))
                    let bytes: [UInt8]
                    do {
                        bytes = try await ArchivePacker.packedBytes([source], processes: processes)
                    } catch {
                        throw HavelError(error.code, "<pbuilder><archivedir> at \(archivedir.location) cannot be packed: \(error.message)")
                    }
                    var archive = XMLElement(name: QualifiedName("archive", namespace: archivedir.name.namespace, prefix: archivedir.name.prefix),
                                             location: archivedir.location)
                    archive.children = [.text("\n" + wrapped(Data(bytes).base64EncodedString(), width: 76) + "\n", archivedir.location)]
                    pbuilder.children[index] = .element(archive)
                    packedAny = true
                }
                target.children[pbuilderIndex] = .element(pbuilder)
            }
            root.children[targetIndex] = .element(target)
        }
        return packedAny
    }

    static func wrapped(_ text: String, width: Int) -> String {
        var lines: [Substring] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            lines.append(rest.prefix(width))
            rest = rest.dropFirst(width)
        }
        return lines.joined(separator: "\n")
    }

    // MARK: - url/key

    /// Replaces every `url/key` of every mirror by `<raw-key>` holding the key it names; true if there were any.
    static func fetchKeys(_ root: inout XMLElement, processes: any ProcessRunning) async throws(HavelError) -> Bool {
        var urls: [String] = []
        collectKeyURLs(root, into: &urls)
        guard !urls.isEmpty else { return false }
        var keys: [String: String] = [:]
        for url in urls where keys[url] == nil {
            keys[url] = try await fetchKey(url, processes: processes)
        }
        replaceKeys(&root, keys)
        return true
    }

    static func collectKeyURLs(_ element: XMLElement, parent: String = "", into urls: inout [String]) {
        if element.name.local == "key", parent == "url" { urls.append(element.text.trimmingWhitespace()) }
        for child in element.elements { collectKeyURLs(child, parent: element.name.local, into: &urls) }
    }

    static func replaceKeys(_ element: inout XMLElement, _ keys: [String: String]) {
        for index in element.children.indices {
            guard case .element(var child) = element.children[index] else { continue }
            if element.name.local == "url", child.name.local == "key", let key = keys[child.text.trimmingWhitespace()] {
                child.name = QualifiedName("raw-key", namespace: child.name.namespace, prefix: child.name.prefix)
                child.children = [.text("\n" + key + "\n", child.textLocation)]
            } else {
                replaceKeys(&child, keys)
            }
            element.children[index] = .element(child)
        }
    }

    /// The armored key at `url` (http, https or file:///; LOCALMACHINE means this machine, as in ELBE).
    public static func fetchKey(_ url: String, processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> String {
        let url = url.replacingOccurrences(of: "LOCALMACHINE", with: "localhost")
        let bytes: [UInt8]
        if url.hasPrefix("file:///") {
            bytes = try readBounded(String(url.dropFirst("file://".count)), url: url)
        } else if url.hasPrefix("http://") || url.hasPrefix("https://") {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("havel-key-\(UUID().uuidString)").path
            defer { unlink(file) }
            let outcome = try await BoundedDownload.fetch(url, to: file, maximumBytes: maximumKeySize, timeoutSeconds: keyTimeoutSeconds,
                                                          processes: processes)
            guard outcome.succeeded || outcome.tooLarge else {
                throw HavelError(.notFound, "<key>\(url)</key> cannot be downloaded: \(outcome.error); check the URL or inline the key as <raw-key>")
            }
            bytes = try readBounded(file, url: url)
        } else {
            throw HavelError(.invalidProject, "<key>\(url)</key>: a key URL must start with http://, https:// or file:///")
        }
        guard let text = String(validating: bytes, as: UTF8.self), text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") else {
            throw HavelError(.invalidProject, "<key>\(url)</key> is not an armored OpenPGP public key (gpg --armor --export); give such a key")
        }
        return text.trimmingWhitespace()
    }

    static func readBounded(_ path: String, url: String) throws(HavelError) -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw HavelError(.notFound, "<key>\(url)</key>: cannot read \(path)")
        }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: maximumKeySize + 1)) ?? Data()
        guard data.count <= maximumKeySize else {
            throw HavelError(.invalidProject, "<key>\(url)</key> is larger than \(ByteCount.format(UInt64(maximumKeySize))); an armored key is a few KiB")
        }
        return [UInt8](data)
    }
}
