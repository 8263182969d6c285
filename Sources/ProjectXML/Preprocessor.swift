import Foundation
import HavelCore

/// ELBE's preprocess: XInclude, variants, merging of repeated sections, migration of deprecated
/// tags, `noauth`, and hashing of plain passwords. The result is a plain document without includes.
public struct Preprocessor {
    public struct Options: Sendable {
        /// Elements with `variant="a,b"` are kept only if one of their variants is selected.
        public var variants: Set<String>
        /// Turn `passwd` into `passwd_hashed` (sha512-crypt). Validation leaves passwords alone.
        public var hashPasswords: Bool
        /// One salt for every password (tests); when nil each gets `PasswordHash.projectSalt` (project name,
        /// version and user), so the same project gives the same hashes.
        public var salt: String?
        /// Read `check-script location` files beside the project file (off for text that came from no file).
        public var readsCheckScripts = true
        /// Which files `xi:include` may read.
        public var includes: IncludePolicy
        /// The most bytes one included file, and all included files together, may have.
        public var maximumSize: Int

        public init(variants: Set<String> = [], hashPasswords: Bool = true, salt: String? = nil,
                    includes: IncludePolicy = .confined(to: []), maximumSize: Int = ProjectFile.maximumSize) {
            self.variants = variants
            self.hashPasswords = hashPasswords
            self.salt = salt
            self.includes = includes
            self.maximumSize = maximumSize
        }
    }

    /// Where included files may come from.
    public enum IncludePolicy: Sendable, Equatable {
        /// No includes at all: a project uploaded to the daemon, preprocessed by its client.
        case refused
        /// Files below the project file's own directory or below one of these directories, symbolic
        /// links resolved before the check.
        case confined(to: [String])
    }

    public static let maximumIncludeDepth = 16

    var options: Options
    public private(set) var diagnostics: [Diagnostic] = []
    /// The real directories includes may read from (set by `run`).
    var includeRoots: [String] = []
    /// Bytes read by includes so far, against `options.maximumSize`.
    var includedBytes = 0

    public init(options: Options = Options()) {
        self.options = options
    }

    /// Runs every step. Problems that make the result unusable are errors in `diagnostics`.
    public mutating func run(_ document: XMLDocument) -> XMLDocument {
        var document = document
        if case .confined(let extra) = options.includes {
            let own = (document.file as NSString).deletingLastPathComponent
            includeRoots = ([own.isEmpty ? "." : own] + extra).compactMap(Self.realPath)
        }
        let top = Self.realPath(document.file) ?? document.file
        document.root = resolveIncludes(document.root, base: document.file, chain: [top], path: "/" + document.root.name.local)
        document.root = selectVariants(document.root)
        checkClientResources(&document.root)
        mergeSections(&document.root)
        migrateDeprecated(&document.root)
        diagnostics += inlineCheckScripts(&document.root, projectFile: document.file)
        document.root.transformAll { $0.collapseBlankRuns() }
        return document
    }

    // MARK: - XInclude

    mutating func resolveIncludes(_ element: XMLElement, base: String, chain: [String], path: String) -> XMLElement {
        var result = element
        result.children = []
        ElementPath.forEachChildNode(element, path: path) { node, childPath in
            guard case .element(let child) = node else {
                result.children.append(node)
                return
            }
            if SchemaChecker.isXInclude(child) {
                result.children += include(child, base: base, chain: chain, path: childPath)
            } else {
                result.children.append(.element(resolveIncludes(child, base: base, chain: chain, path: childPath)))
            }
        }
        return result
    }

    mutating func include(_ element: XMLElement, base: String, chain: [String], path: String) -> [XMLNode] {
        func fail(_ message: String) -> [XMLNode] {
            diagnostics.append(Diagnostic(.error, at: element.location, path: path, message))
            return []
        }
        guard var href = element.attributeValue("href"), !href.isEmpty else {
            return fail("xi:include needs an href attribute naming the file to include")
        }
        if href.hasPrefix("file://") { href = String(href.dropFirst("file://".count)) }
        else if href.hasPrefix("file:") { href = String(href.dropFirst("file:".count)) }
        if href.contains("://") {
            return fail("xi:include href=\"\(href)\": only local files can be included, not URLs")
        }
        if options.includes == .refused {
            return fail("xi:include href=\"\(href)\": an uploaded project may not include files; "
                        + "upload it preprocessed (havel control upload and havel initvm submit do)")
        }
        let directory = (base as NSString).deletingLastPathComponent
        let resolved = href.hasPrefix("/") ? href : (directory.isEmpty ? href : directory + "/" + href)
        let parse = element.attributeValue("parse") ?? "xml"
        var pointer: XPointer?
        if let written = element.attributeValue("xpointer") {
            guard parse == "xml" else {
                return fail("xi:include href=\"\(href)\" xpointer=\"\(written)\": an xpointer needs parse=\"xml\"")
            }
            do throws(HavelError) {
                pointer = try XPointer.parse(written)
            } catch {
                return fail("xi:include href=\"\(href)\" xpointer=\"\(written)\": \(error.message); \(XPointer.supportedForms)")
            }
        }
        let bytes: [UInt8]
        do throws(HavelError) {
            guard let real = Self.realPath(resolved) else {
                throw HavelError(.notFound, "xi:include href=\"\(href)\": cannot read \(resolved)")
            }
            guard isBelowIncludeRoots(real) else {
                return fail("xi:include href=\"\(href)\": \(real) is outside the project file's directory"
                            + (includeRoots.isEmpty ? "" : " \(includeRoots[0])")
                            + "; include files below it, or name their directory with --include-dir")
            }
            if chain.contains(real) {
                return fail("xi:include href=\"\(href)\" includes itself (through \(chain.map { ($0 as NSString).lastPathComponent }.joined(separator: " → ")))")
            }
            if chain.count > Self.maximumIncludeDepth {
                return fail("xi:include nests deeper than \(Self.maximumIncludeDepth) files")
            }
            let budget = options.maximumSize - includedBytes
            guard budget > 0 else {
                return fail("xi:include href=\"\(href)\": the included files together are larger than the "
                            + "\(ByteCount.format(UInt64(options.maximumSize))) limit for project files")
            }
            do {
                bytes = try ProjectFile.readBytes(real, limit: budget)
            } catch where error.code == .invalidProject {
                return fail("xi:include href=\"\(href)\": \(error.message) (the limit holds for all included files together)")
            }
            includedBytes += bytes.count
            switch parse {
            case "text":
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    return fail("xi:include href=\"\(href)\" parse=\"text\": \(real) is not valid UTF-8; save it as UTF-8")
                }
                return [.text(text, element.location)]
            case "xml":
                do {
                    let included = try XMLReader.parse(bytes, file: resolved)
                    guard let pointer else {
                        return [.element(resolveIncludes(included.root, base: resolved, chain: chain + [real], path: path))]
                    }
                    let selected = pointer.select(from: included.root)
                    guard !selected.isEmpty else {
                        return fail("xi:include href=\"\(href)\" xpointer=\"\(element.attributeValue("xpointer") ?? "")\" selects no element of \(resolved)")
                    }
                    return selected.map { .element(resolveIncludes($0, base: resolved, chain: chain + [real], path: path)) }
                } catch {
                    diagnostics.append(Diagnostic(.error, at: error.location, path: nil, error.message))
                    return fail("xi:include href=\"\(href)\": the included file is not well-formed XML")
                }
            default:
                return fail("xi:include parse=\"\(parse)\" is not supported; use xml or text")
            }
        } catch {
            if let fallback = element.elements.first(where: {
                $0.name.local == "fallback" && XMLNamespace.xinclude.contains($0.name.namespace ?? "")
            }) {
                return fallback.children
            }
            return fail("xi:include href=\"\(href)\": cannot read \(resolved)")
        }
    }

    func isBelowIncludeRoots(_ real: String) -> Bool {
        includeRoots.contains(where: { $0 == "/" || real == $0 || real.hasPrefix($0 + "/") })
    }

    // MARK: - archivedir and url/key (packed and fetched on the client by ClientResources)

    /// The archivedirs of the root and of `target/pbuilder` located (those of `<src-cdrom>` are not built)
    /// and every url-list key URL checked, after variants are selected: what is left is packed and fetched later.
    mutating func checkClientResources(_ root: inout XMLElement) {
        let rootPath = "/" + root.name.local
        locateArchivedirs(in: &root, path: rootPath)
        for (targetIndex, targetNode) in root.children.enumerated() {
            guard case .element(var target) = targetNode, target.name.local == "target" else { continue }
            for (index, node) in target.children.enumerated() {
                guard case .element(var pbuilder) = node, pbuilder.name.local == "pbuilder" else { continue }
                locateArchivedirs(in: &pbuilder, path: rootPath + "/target/pbuilder")
                target.children[index] = .element(pbuilder)
            }
            root.children[targetIndex] = .element(target)
        }
        checkKeyURLs(root, path: rootPath)
    }

    mutating func locateArchivedirs(in parent: inout XMLElement, path parentPath: String) {
        var located: [Int: XMLElement] = [:]
        var index = 0
        ElementPath.forEachChildNode(parent, path: parentPath) { node, path in
            defer { index += 1 }
            guard case .element(var child) = node, child.name.local == "archivedir" else { return }
            locateArchivedir(&child, path: path)
            located[index] = child
        }
        for (index, archivedir) in located { parent.children[index] = .element(archivedir) }
    }

    mutating func checkKeyURLs(_ element: XMLElement, path: String) {
        ElementPath.forEachChild(element, path: path) { child, childPath in
            if element.name.local == "url", child.name.local == "key" {
                checkKeyURL(child, path: childPath)
            } else {
                checkKeyURLs(child, path: childPath)
            }
        }
    }

    /// Rewrites an `<archivedir>`'s text to the real path of its directory, relative paths taken from the
    /// directory of the file that holds it (it may come from an include) and confined like includes;
    /// absolute paths and file:/// URLs are allowed on this machine. An uploaded project may hold none.
    mutating func locateArchivedir(_ archivedir: inout XMLElement, path: String) {
        let base = archivedir.location.file
        func fail(_ message: String) {
            diagnostics.append(Diagnostic(.error, at: archivedir.location, path: path, message))
        }
        let written = archivedir.text.trimmingWhitespace()
        if options.includes == .refused {
            return fail("<archivedir>\(written)</archivedir>: an uploaded project may not name directories; "
                        + "preprocess it on the client (havel preprocess, havel control upload and havel initvm submit pack it into <archive>)")
        }
        var location = written
        if location.hasPrefix("file://") {
            location = String(location.dropFirst("file://".count))
            guard location.hasPrefix("/") else {
                return fail("<archivedir>\(written)</archivedir>: a file URL names a host; write file:///absolute/path or a relative path")
            }
        } else if location.contains("://") {
            return fail("<archivedir>\(written)</archivedir>: only local directories and file:/// URLs can be packed")
        }
        guard !location.isEmpty else { return fail("<archivedir> is empty; name a directory") }
        let directory = (base as NSString).deletingLastPathComponent
        let absolute = location.hasPrefix("/")
        let resolved = absolute ? location : (directory.isEmpty ? location : directory + "/" + location)
        var isDirectory: ObjCBool = false
        guard let real = Self.realPath(resolved), FileManager.default.fileExists(atPath: real, isDirectory: &isDirectory),
              isDirectory.boolValue else {
            return fail("<archivedir>\(written)</archivedir>: \(resolved) is not a directory")
        }
        if !absolute, !isBelowIncludeRoots(real) {
            return fail("<archivedir>\(written)</archivedir>: \(real) is outside the project file's directory; "
                        + "name it with an absolute path or put it below the project file")
        }
        archivedir.children = [.text(real, archivedir.textLocation)]
    }

    /// A `url/key` names a key fetched on the client: http(s) or file:///; an uploaded project may hold none.
    mutating func checkKeyURL(_ key: XMLElement, path: String) {
        let url = key.text.trimmingWhitespace()
        if options.includes == .refused {
            diagnostics.append(Diagnostic(.error, at: key.location, path: path,
                "<key>\(url)</key>: the daemon fetches no keys; preprocess the project on the client (havel preprocess, havel control upload and havel initvm submit write it as <raw-key>)"))
        } else if !["http://", "https://", "file:///"].contains(where: { url.hasPrefix($0) }) {
            diagnostics.append(Diagnostic(.error, at: key.location, path: path,
                "<key>\(url)</key>: a key URL must start with http://, https:// or file:///"))
        }
    }

    static func realPath(_ path: String) -> String? {
        guard let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        return String(cString: real)
    }

    // MARK: - Variants

    func selectVariants(_ element: XMLElement) -> XMLElement {
        var result = element
        result.removeAttribute("variant")
        result.children = element.children.compactMap { node in
            guard case .element(let child) = node else { return node }
            return isSelected(child) ? .element(selectVariants(child)) : nil
        }
        return result
    }

    /// False for an element whose `variant="a,b"` names none of the selected variants.
    func isSelected(_ element: XMLElement) -> Bool {
        guard let variant = element.attributeValue("variant") else { return true }
        let wanted = Set(variant.split(separator: ",").map { $0.trimmingWhitespace() })
        return !wanted.isDisjoint(with: options.variants)
    }

    // MARK: - Merging

    /// Sections that may be written several times and are joined into the first occurrence.
    static let mergedSections: [[String]] = [
        ["target", "finetuning"], ["target", "hostsdk-pkg-list"], ["target", "pkg-list"],
        ["project", "mirror", "url-list"], ["project", "buildimage", "pkg-list"],
    ]

    func mergeSections(_ root: inout XMLElement) {
        for section in Self.mergedSections {
            root.modifyElements(at: Array(section.dropLast())) { parent in
                let name = section.last!
                var firstIndex: Int?
                var extra: [XMLNode] = []
                var kept: [XMLNode] = []
                for node in parent.children {
                    if case .element(let e) = node, e.name.local == name {
                        if firstIndex == nil {
                            firstIndex = kept.count
                            kept.append(node)
                        } else {
                            extra += e.children
                        }
                        continue
                    }
                    kept.append(node)
                }
                if let firstIndex, !extra.isEmpty, case .element(var first) = kept[firstIndex] {
                    first.children += extra
                    kept[firstIndex] = .element(first)
                }
                parent.children = kept
            }
        }
    }

    // MARK: - Deprecated tags, noauth, passwords

    mutating func migrateDeprecated(_ root: inout XMLElement) {
        var diagnostics: [Diagnostic] = []
        let hash = options.hashPasswords
        let salt = options.salt
        let project = root.firstElement(named: "project")
        let name = project?.value("name") ?? ""
        let version = project?.value("version") ?? ""

        func hashed(_ password: String, user: String, at location: SourceLocation) -> String? {
            do {
                return try PasswordHash.sha512crypt(password, salt: salt ?? PasswordHash.projectSalt(project: name, version: version, user: user))
            } catch {
                diagnostics.append(Diagnostic(.error, at: location, path: nil, error.message))
                return nil
            }
        }

        root.modifyElements(at: ["target"]) { target in
            // passwd → passwd_hashed
            if hash, let index = target.children.firstIndex(where: { $0.elementName == "passwd" }),
               case .element(let passwd) = target.children[index] {
                if target.firstElement(named: "passwd_hashed") != nil {
                    diagnostics.append(Diagnostic(.warning, at: passwd.location, path: "/RootFileSystem/target/passwd",
                                                  "both passwd and passwd_hashed are given; passwd is dropped"))
                    target.children.remove(at: index)
                } else if let value = hashed(passwd.text, user: "root", at: passwd.location) {
                    target.children[index] = .element(.leaf("passwd_hashed", value, at: passwd.location))
                }
            }
            // debootstrapvariant → debootstrap/variant (+ include)
            if let index = target.children.firstIndex(where: { $0.elementName == "debootstrapvariant" }),
               case .element(let old) = target.children[index] {
                var debootstrap = target.firstElement(named: "debootstrap") ??
                    XMLElement(name: QualifiedName("debootstrap"), location: old.location)
                debootstrap.children.append(.element(.leaf("variant", old.text.trimmingWhitespace(), at: old.location)))
                if let include = old.attributeValue("includepkgs") {
                    debootstrap.children.append(.element(.leaf("include", include, at: old.location)))
                }
                target.children.remove(at: index)
                if let existing = target.children.firstIndex(where: { $0.elementName == "debootstrap" }) {
                    target.children[existing] = .element(debootstrap)
                } else {
                    target.children.insert(.element(debootstrap), at: index)
                }
            }
            // adduser@passwd → passwd_hashed
            if hash {
                target.modifyElements(at: ["finetuning"]) { finetuning in
                    for i in finetuning.children.indices {
                        guard case .element(var user) = finetuning.children[i], user.name.local == "adduser",
                              let plain = user.attribute("passwd") else { continue }
                        user.removeAttribute("passwd")
                        if user.attribute("passwd_hashed") == nil,
                           let value = hashed(plain.value, user: user.text.trimmingWhitespace(), at: plain.location) {
                            user.setAttribute("passwd_hashed", value)
                        }
                        finetuning.children[i] = .element(user)
                    }
                }
            }
            // fs/tune2fs → fs-finetuning/device-command
            target.modifyElements(at: ["fstab"]) { fstab in
                for i in fstab.children.indices {
                    guard case .element(var entry) = fstab.children[i] else { continue }
                    entry.modifyElements(at: ["fs"]) { fs in
                        guard let index = fs.children.firstIndex(where: { $0.elementName == "tune2fs" }),
                              case .element(let tune) = fs.children[index] else { return }
                        fs.children.remove(at: index)
                        let command = XMLElement.leaf("device-command", "tune2fs \(tune.text.trimmingWhitespace()) {device}", at: tune.location)
                        if let existing = fs.children.firstIndex(where: { $0.elementName == "fs-finetuning" }),
                           case .element(var tuning) = fs.children[existing] {
                            tuning.children.append(.element(command))
                            fs.children[existing] = .element(tuning)
                        } else {
                            var tuning = XMLElement(name: QualifiedName("fs-finetuning"), location: tune.location)
                            tuning.children = [.element(command)]
                            fs.children.append(.element(tuning))
                        }
                    }
                    fstab.children[i] = .element(entry)
                }
            }
        }
        // pkg@pin → release-name, everywhere a pkg-list is.
        root.transformAll { element in
            guard element.name.local == "pkg", let pin = element.attribute("pin") else { return }
            element.removeAttribute("pin")
            if element.attribute("release-name") == nil { element.setAttribute("release-name", pin.value) }
        }
        // noauth → trusted=yes on every mirror; "[opts] url" → <options>.
        for section in [["project"], ["initvm"]] {
            root.modifyElements(at: section) { owner in
                let noauth = owner.firstElement(named: "noauth") != nil
                owner.modifyElements(at: ["mirror"]) { mirror in
                    if noauth { mirror.addOption("trusted=yes") }
                    mirror.modifyElements(at: ["url-list"]) { list in
                        for i in list.children.indices {
                            guard case .element(var url) = list.children[i], url.name.local == "url" else { continue }
                            url.moveBracketOptions()
                            if noauth { url.addOption("trusted=yes") }
                            list.children[i] = .element(url)
                        }
                    }
                }
            }
        }
        self.diagnostics += diagnostics
    }
}

extension XMLNode {
    var elementName: String? {
        if case .element(let e) = self { return e.name.local }
        return nil
    }
}

extension XMLElement {
    /// Applies `body` to every element reached by following `path` (child names) from here.
    mutating func modifyElements(at path: [String], _ body: (inout XMLElement) -> Void) {
        guard let first = path.first else {
            body(&self)
            return
        }
        let rest = Array(path.dropFirst())
        for i in children.indices {
            guard case .element(var child) = children[i], child.name.local == first else { continue }
            child.modifyElements(at: rest, body)
            children[i] = .element(child)
        }
    }

    /// Applies `body` to this element and every descendant.
    mutating func transformAll(_ body: (inout XMLElement) -> Void) {
        body(&self)
        for i in children.indices {
            guard case .element(var child) = children[i] else { continue }
            child.transformAll(body)
            children[i] = .element(child)
        }
    }

    /// Where removed elements leave runs of whitespace-only text, keeps only the last of each run.
    mutating func collapseBlankRuns() {
        var result: [XMLNode] = []
        for node in children {
            if case .text(let t, _) = node, t.trimmingWhitespace().isEmpty,
               case .text(let previous, _)? = result.last, previous.trimmingWhitespace().isEmpty {
                result[result.count - 1] = node
                continue
            }
            result.append(node)
        }
        children = result
    }

    /// Adds `<options><option>value</option></options>` unless that option is already there.
    mutating func addOption(_ value: String) {
        if let index = children.firstIndex(where: { $0.elementName == "options" }), case .element(var options) = children[index] {
            if options.elements(named: "option").contains(where: { $0.text.trimmingWhitespace() == value }) { return }
            options.children.append(.element(.leaf("option", value, at: options.location)))
            children[index] = .element(options)
        } else {
            var options = XMLElement(name: QualifiedName("options"), location: location)
            options.children = [.element(.leaf("option", value, at: location))]
            children.append(.element(options))
        }
    }

    /// `<binary>[arch=amd64 trusted=yes] http://...</binary>` → the URL alone plus `<options>`.
    mutating func moveBracketOptions() {
        for name in ["binary", "source"] {
            guard let index = children.firstIndex(where: { $0.elementName == name }),
                  case .element(var line) = children[index] else { continue }
            let text = line.text.trimmingWhitespace()
            guard text.hasPrefix("["), let close = text.firstIndex(of: "]") else { continue }
            let opts = text[text.index(after: text.startIndex)..<close].split(separator: " ").map(String.init)
            let rest = text[text.index(after: close)...].trimmingWhitespace()
            line.children = [.text(rest, line.textLocation)]
            children[index] = .element(line)
            for opt in opts where !opt.isEmpty { addOption(opt) }
        }
    }
}
