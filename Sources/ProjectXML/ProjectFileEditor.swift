import HavelCore

/// Edits a project file by splicing its own text: only the bytes of the changed element are replaced, so
/// comments, formatting, attribute quoting and every other element stay as the user wrote them (a
/// rewrite through `XMLWriter` would normalise all of that). Used by ELBE's editing commands (`havel add`,
/// `pin-versions`, `chg-archive`). Each edit re-reads the result, so a splice that broke the XML fails
/// at once instead of reaching the disk.
public struct ProjectFileEditor {
    public private(set) var bytes: [UInt8]
    public private(set) var document: XMLDocument
    var spans: [SourceLocation: XMLElementSpan]
    let file: String

    /// The indentation step used where the file shows none to copy.
    static let defaultIndentStep = "  "

    public init(bytes: [UInt8], file: String) throws(HavelError) {
        let parsed = try XMLReader.parseWithSpans(bytes, file: file)
        guard parsed.document.root.name.local == ElbeSchema.rootElement else {
            throw HavelError(.invalidProject, "the root element is <\(parsed.document.root.name.written)>, not an ELBE <RootFileSystem>; nothing changed",
                             at: parsed.document.root.location)
        }
        self.bytes = bytes
        self.document = parsed.document
        self.spans = parsed.spans
        self.file = file
    }

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    // MARK: - The edits ELBE's commands make

    /// `elbe add`: each package not yet in the target's pkg-lists is appended to the first pkg-list (made
    /// at the end of `<target>` when there is none). Returns the names that were added, in order.
    @discardableResult
    public mutating func addPackages(_ names: [String]) throws(HavelError) -> [String] {
        for name in names where !SemanticChecker.isPackageName(name) {
            throw HavelError(.invalidArgument, "\"\(name)\" is not a Debian package name (lowercase letters, digits, + - .); nothing changed")
        }
        let target = try requireTarget(for: "add packages")
        let lists = target.elements(named: "pkg-list")
        var present = Set(lists.flatMap { $0.elements(named: "pkg") }.map { $0.text.trimmingWhitespace() })
        var added: [String] = []
        for name in names where !present.contains(name) {
            present.insert(name)
            added.append(name)
        }
        guard !added.isEmpty else { return [] }
        if let list = lists.first {
            let markup = added.map { "<\(Self.written("pkg", like: list))>\($0)</\(Self.written("pkg", like: list))>" }
            try append(markup, to: list)
        } else {
            try refuseIncludes(in: target, for: "add a <pkg-list>")
            let listName = Self.written("pkg-list", like: target.elements.first ?? target)
            let pkgName = Self.written("pkg", like: target.elements.first ?? target)
            let listIndent = childIndent(of: target)
            let pkgIndent = listIndent + Self.step(from: indent(of: target) ?? "", to: listIndent)
            let pkgs = added.map { "\n\(pkgIndent)<\(pkgName)>\($0)</\(pkgName)>" }.joined()
            try append(["<\(listName)>\(pkgs)\n\(listIndent)</\(listName)>"], to: target)
        }
        return added
    }

    /// `elbe pin_versions`: the target's pkg-list becomes exactly `packages`, each with `version="…"`.
    /// The pkg-list's own attributes are kept; what was inside it (packages, comments) is replaced.
    public mutating func pinPackages(_ packages: [(name: String, version: String)]) throws(HavelError) {
        for package in packages where !SemanticChecker.isPackageName(package.name) {
            throw HavelError(.invalidArgument, "\"\(package.name)\" is not a Debian package name; nothing changed")
        }
        let target = try requireTarget(for: "pin package versions")
        try refuseIncludes(in: target, for: "pin the pkg-list")
        let lists = target.elements(named: "pkg-list")
        if lists.count > 1 {
            let lines = lists.map { String($0.location.line) }.joined(separator: ", ")
            throw HavelError(.invalidProject, "<target> has \(lists.count) <pkg-list> elements (lines \(lines)); merge them into one (havel preprocess does) before pinning; nothing changed",
                             at: lists[1].location)
        }
        guard let list = lists.first else {
            // An empty list is made first (as `elbe add` makes one), then filled as an existing one.
            try append(["<\(Self.written("pkg-list", like: target.elements.first ?? target))/>"], to: target)
            return try pinPackages(packages)
        }
        let pkgName = Self.written("pkg", like: list)
        let markup = packages.map {
            "<\(pkgName) version=\"\(XMLEscaping.escape($0.version, attribute: true))\">\(XMLEscaping.escape($0.name))</\(pkgName)>"
        }
        try replaceContent(of: list, with: markup)
    }

    /// `elbe chg_archive`: `<archive>` holds `base64` (wrapped at 76 columns); made after `<target>` (or
    /// at the end of the root) when the file has none.
    public mutating func setArchive(base64: String) throws(HavelError) {
        let root = document.root
        let lines = Self.wrap(base64, width: 76)
        if let archive = root.firstElement(named: "archive") {
            let indent = self.indent(of: archive) ?? ""
            try splice(contentOf: archive, with: "\n" + lines.joined(separator: "\n") + "\n" + indent)
            return
        }
        let name = Self.written("archive", like: root.elements.first ?? root)
        let indent = childIndent(of: root)
        let element = "<\(name)>\n" + lines.joined(separator: "\n") + "\n\(indent)</\(name)>"
        if let target = root.firstElement(named: "target"), let span = spans[target.location] {
            try replace(span.end..<span.end, with: "\n" + indent + element)
        } else {
            try append([element], to: root)
        }
    }

    /// The text of `<archive>` (base64), or nil when the file has no archive or an empty one.
    public var archiveText: String? {
        guard let text = document.root.firstElement(named: "archive")?.text.trimmingWhitespace(), !text.isEmpty else { return nil }
        return text
    }

    // MARK: - Shapes that cannot be edited

    func requireTarget(for what: String) throws(HavelError) -> XMLElement {
        guard let target = document.root.firstElement(named: "target") else {
            throw HavelError(.invalidProject, "cannot \(what): <\(document.root.name.written)> has no <target> (a file with only <initvm> describes a build VM); nothing changed",
                             at: document.root.location)
        }
        return target
    }

    /// An `xi:include` in `parent` may bring packages (or a pkg-list) this edit cannot see: refused.
    func refuseIncludes(in parent: XMLElement, for what: String) throws(HavelError) {
        let includes = parent.elements.filter { $0.name.local == "include" && XMLNamespace.xinclude.contains($0.name.namespace ?? "") }
        guard let first = includes.first else { return }
        let listed = includes.map { "line \($0.location.line): \($0.attributeValue("href") ?? "(no href)")" }.joined(separator: ", ")
        throw HavelError(.invalidProject, "cannot \(what): <\(parent.name.written)> holds XIncludes whose content this edit cannot see (\(listed)); edit the included file, or edit the output of havel preprocess; nothing changed",
                         at: first.location)
    }

    // MARK: - Splicing

    /// `local` written with the prefix `sibling` uses, so new elements land in the same namespace.
    static func written(_ local: String, like sibling: XMLElement) -> String {
        sibling.name.prefix.map { "\($0):\(local)" } ?? local
    }

    /// The blanks before `element` on its line, or nil when something else stands before it there.
    func indent(of element: XMLElement) -> String? {
        guard let span = spans[element.location] else { return nil }
        var offset = span.start
        while offset > 0, bytes[offset - 1] == 0x20 || bytes[offset - 1] == 0x09 { offset -= 1 }
        guard offset == 0 || bytes[offset - 1] == 0x0A else { return nil }
        return String(decoding: bytes[offset..<span.start], as: UTF8.self)
    }

    /// The indentation children of `parent` get: the last child element's, else the parent's plus a step.
    func childIndent(of parent: XMLElement) -> String {
        if let last = parent.elements.last, let indent = indent(of: last) { return indent }
        return (indent(of: parent) ?? "") + Self.defaultIndentStep
    }

    static func step(from outer: String, to inner: String) -> String {
        inner.hasPrefix(outer) && inner.count > outer.count ? String(inner.dropFirst(outer.count)) : defaultIndentStep
    }

    /// Appends each markup as a new line at the end of `parent`'s children.
    mutating func append(_ markup: [String], to parent: XMLElement) throws(HavelError) {
        guard let span = spans[parent.location] else { throw lostSpan(parent) }
        let indent = childIndent(of: parent)
        let lines = markup.map { "\n" + indent + $0 }.joined()
        if let last = parent.elements.last, let lastSpan = spans[last.location] {
            try replace(lastSpan.end..<lastSpan.end, with: lines)
        } else {
            try replace(contentOf: parent, span: span, with: lines + "\n" + (self.indent(of: parent) ?? ""), keepingLeading: true)
        }
    }

    /// Replaces everything inside `parent` with `markup`, one per line.
    mutating func replaceContent(of parent: XMLElement, with markup: [String]) throws(HavelError) {
        guard let span = spans[parent.location] else { throw lostSpan(parent) }
        let outer = indent(of: parent) ?? ""
        let inner: String
        if let first = parent.elements.first, let indent = indent(of: first) { inner = indent } else { inner = outer + Self.defaultIndentStep }
        let lines = markup.map { "\n" + inner + $0 }.joined()
        try replace(contentOf: parent, span: span, with: markup.isEmpty ? "" : lines + "\n" + outer, keepingLeading: false)
    }

    mutating func splice(contentOf element: XMLElement, with text: String) throws(HavelError) {
        guard let span = spans[element.location] else { throw lostSpan(element) }
        try replace(contentOf: element, span: span, with: text, keepingLeading: false)
    }

    /// Replaces an element's content. `keepingLeading` keeps what is there (comments, text) and replaces
    /// only the blanks before the end tag. A self-closed element is opened (`<a x="1"/>` → `<a x="1">…</a>`).
    mutating func replace(contentOf element: XMLElement, span: XMLElementSpan, with text: String, keepingLeading: Bool) throws(HavelError) {
        if span.selfClosed {
            guard !text.isEmpty else { return }
            var tagEnd = span.end - 2  // the '/' of '/>'
            while tagEnd > span.start, bytes[tagEnd - 1] == 0x20 || bytes[tagEnd - 1] == 0x09 || bytes[tagEnd - 1] == 0x0A || bytes[tagEnd - 1] == 0x0D {
                tagEnd -= 1
            }
            let startTag = String(decoding: bytes[span.start..<tagEnd], as: UTF8.self)
            try replace(span.start..<span.end, with: startTag + ">" + text + "</" + element.name.written + ">")
            return
        }
        var from = span.contentStart
        if keepingLeading {
            from = span.contentEnd
            while from > span.contentStart, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[from - 1]) { from -= 1 }
        }
        try replace(from..<span.contentEnd, with: text)
    }

    /// Inserted lines end as the file's own do (`\r\n` in a file written on Windows).
    mutating func replace(_ range: Range<Int>, with text: String) throws(HavelError) {
        let usesCRLF = bytes.indices.dropLast().contains { bytes[$0] == 0x0D && bytes[$0 + 1] == 0x0A }
        var edited = Array(bytes[..<range.lowerBound])
        edited += Array((usesCRLF ? text.replacingAll("\n", with: "\r\n") : text).utf8)
        edited += bytes[range.upperBound...]
        let parsed: (document: XMLDocument, spans: [SourceLocation: XMLElementSpan])
        do {
            parsed = try XMLReader.parseWithSpans(edited, file: file)
        } catch {
            throw HavelError(.internalError, "\(file): the edit would make the file unreadable (\(error.message)); nothing changed")
        }
        bytes = edited
        document = parsed.document
        spans = parsed.spans
    }

    func lostSpan(_ element: XMLElement) -> HavelError {
        HavelError(.internalError, "no position recorded for <\(element.name.written)>; nothing changed", at: element.location)
    }

    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            lines.append(String(rest.prefix(width)))
            rest = rest.dropFirst(width)
        }
        return lines
    }
}
