import HavelCore

/// Where an element lies in the bytes it was read from: `start` is its `<`, `contentStart` the byte after
/// its start tag, `contentEnd` the `<` of its end tag and `end` the byte after that. For a self-closed
/// element (`<a/>`) the three last offsets are equal and `selfClosed` is true.
public struct XMLElementSpan: Sendable, Hashable {
    public var start: Int
    public var contentStart: Int
    public var contentEnd: Int
    public var end: Int
    public var selfClosed = false
}

/// Reads XML 1.0 text into an `XMLDocument`, keeping file:line:column for every element, attribute and
/// text run. It deliberately supports no DTDs: a `<!DOCTYPE` is refused before anything in it is read,
/// so external entities (XXE) and entity-expansion bombs cannot happen. Only UTF-8 input is accepted.
public struct XMLReader {
    /// Deeper nesting than this is refused (ELBE files nest about 8 deep).
    public static let maximumDepth = 256

    let bytes: [UInt8]
    let file: String
    var index = 0
    var line = 1
    var column = 1
    /// Filled only by `parseWithSpans`: each element's byte span, keyed by where its start tag begins.
    var spans: [SourceLocation: XMLElementSpan]?

    public static func parse(_ bytes: [UInt8], file: String) throws(HavelError) -> XMLDocument {
        var reader = XMLReader(bytes: bytes, file: file)
        return try reader.document()
    }

    public static func parse(_ text: String, file: String) throws(HavelError) -> XMLDocument {
        try parse(Array(text.utf8), file: file)
    }

    /// Parses and also returns every element's byte span in `bytes`, for edits that splice the file's
    /// own text instead of rewriting it (`ProjectFileEditor`).
    public static func parseWithSpans(_ bytes: [UInt8], file: String) throws(HavelError)
        -> (document: XMLDocument, spans: [SourceLocation: XMLElementSpan]) {
        var reader = XMLReader(bytes: bytes, file: file)
        reader.spans = [:]
        let document = try reader.document()
        return (document, reader.spans ?? [:])
    }

    init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    // MARK: - Positions and errors

    var location: SourceLocation { SourceLocation(file: file, line: line, column: column) }

    func fail(_ message: String, at location: SourceLocation? = nil) -> HavelError {
        HavelError(.malformedXML, message, at: location ?? self.location)
    }

    var atEnd: Bool { index >= bytes.count }
    var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    func peek(_ offset: Int) -> UInt8? {
        let i = index + offset
        return i < bytes.count ? bytes[i] : nil
    }

    func lookingAt(_ literal: String) -> Bool {
        var i = index
        for byte in literal.utf8 {
            guard i < bytes.count, bytes[i] == byte else { return false }
            i += 1
        }
        return true
    }

    mutating func advance() {
        guard index < bytes.count else { return }
        let byte = bytes[index]
        index += 1
        if byte == 0x0A {
            line += 1
            column = 1
        } else if byte & 0xC0 != 0x80 {
            column += 1
        }
    }

    mutating func advance(_ count: Int) {
        for _ in 0..<count { advance() }
    }

    mutating func skipWhitespace() {
        while let byte = current, Self.isSpace(byte) { advance() }
    }

    mutating func expect(_ literal: String, _ what: String) throws(HavelError) {
        guard lookingAt(literal) else { throw fail("expected \(what)") }
        advance(literal.utf8.count)
    }

    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

    static func isNameStart(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || byte == 0x5F || byte == 0x3A || byte >= 0x80
    }

    static func isNameChar(_ byte: UInt8) -> Bool {
        isNameStart(byte) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D || byte == 0x2E
    }

    // MARK: - Encoding checks

    /// Refuses invalid UTF-8 and characters XML forbids, naming the first bad place.
    mutating func checkCharacters() throws(HavelError) {
        var decoder = UTF8()
        var iterator = bytes[index...].makeIterator()
        var offset = index
        var scanLine = 1
        var scanColumn = 1
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                let v = scalar.value
                if v < 0x20 && v != 0x09 && v != 0x0A && v != 0x0D {
                    throw fail("control character U+\(Self.hex4(v)) is not allowed in XML (is this a binary file?)",
                               at: SourceLocation(file: file, line: scanLine, column: scanColumn))
                }
                if v == 0xFFFE || v == 0xFFFF {
                    throw fail("character U+\(String(v, radix: 16, uppercase: true)) is not allowed in XML",
                               at: SourceLocation(file: file, line: scanLine, column: scanColumn))
                }
                offset += UTF8.width(scalar)
                if v == 0x0A { scanLine += 1; scanColumn = 1 } else { scanColumn += 1 }
            case .emptyInput:
                return
            case .error:
                let byte = offset < bytes.count ? bytes[offset] : 0
                throw fail("invalid UTF-8 (byte 0x\(String(byte, radix: 16, uppercase: true)) at offset \(offset)); save the file as UTF-8",
                           at: SourceLocation(file: file, line: scanLine, column: scanColumn))
            }
        }
    }

    // MARK: - Document

    mutating func document() throws(HavelError) -> XMLDocument {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        if bytes.starts(with: [0xFE, 0xFF]) || bytes.starts(with: [0xFF, 0xFE]) {
            throw fail("UTF-16 input is not supported; save the file as UTF-8")
        }
        try checkCharacters()
        if lookingAt("<?xml") && peek(5).map(Self.isSpace) == true {
            try xmlDeclaration()
        }
        var prolog: [XMLNode] = []
        var root: XMLElement?
        while true {
            skipWhitespace()
            if atEnd { break }
            if lookingAt("<!--") {
                prolog.append(try comment())
            } else if lookingAt("<?") {
                prolog.append(try processingInstruction())
            } else if lookingAt("<!DOCTYPE") || lookingAt("<!doctype") {
                throw fail("document type declarations (<!DOCTYPE>) are not allowed in project files: they can declare external or expanding entities; remove it")
            } else if lookingAt("<") {
                if root != nil { throw fail("content after the root element: a document has exactly one root element") }
                root = try element()
            } else {
                throw fail(root == nil ? "text before the root element; a project file starts with '<'" :
                    "text after the root element")
            }
        }
        guard let root else {
            throw fail(bytes.isEmpty ? "the file is empty" : "no root element found")
        }
        return XMLDocument(root: root, prolog: prolog, file: file)
    }

    mutating func xmlDeclaration() throws(HavelError) {
        let start = location
        advance(5)
        var declared: [String: String] = [:]
        while true {
            skipWhitespace()
            if lookingAt("?>") { advance(2); break }
            if atEnd { throw fail("unterminated XML declaration", at: start) }
            let name = try self.name()
            skipWhitespace()
            try expect("=", "'=' after \(name) in the XML declaration")
            skipWhitespace()
            declared[name] = try quotedValue(normalize: false)
        }
        if let version = declared["version"], !version.hasPrefix("1.") {
            throw fail("XML version \(version) is not supported (1.0 is)", at: start)
        }
        if let encoding = declared["encoding"] {
            let e = encoding.lowercased()
            if !["utf-8", "utf8", "us-ascii", "ascii"].contains(e) {
                throw fail("encoding \"\(encoding)\" is not supported; save the file as UTF-8", at: start)
            }
        }
    }

    mutating func comment() throws(HavelError) -> XMLNode {
        let start = location
        advance(4)
        let begin = index
        while !lookingAt("-->") {
            if atEnd { throw fail("unterminated comment", at: start) }
            advance()
        }
        let text = String(decoding: bytes[begin..<index], as: UTF8.self)
        advance(3)
        return .comment(text)
    }

    mutating func processingInstruction() throws(HavelError) -> XMLNode {
        let start = location
        advance(2)
        let target = try name()
        if target.lowercased() == "xml" {
            throw fail("the XML declaration is only allowed at the very start of the file", at: start)
        }
        skipWhitespace()
        let begin = index
        while !lookingAt("?>") {
            if atEnd { throw fail("unterminated processing instruction <?\(target)", at: start) }
            advance()
        }
        let data = String(decoding: bytes[begin..<index], as: UTF8.self)
        advance(2)
        return .processingInstruction(target: target, data: data)
    }

    mutating func name() throws(HavelError) -> String {
        guard let first = current, Self.isNameStart(first) else {
            if atEnd { throw fail("unexpected end of file, expected a name") }
            throw fail("expected a name, found '\(Self.describe(current))'")
        }
        let begin = index
        advance()
        while let byte = current, Self.isNameChar(byte) { advance() }
        return String(decoding: bytes[begin..<index], as: UTF8.self)
    }

    static func hex4(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    static func describe(_ byte: UInt8?) -> String {
        guard let byte else { return "end of file" }
        if byte >= 0x20 && byte < 0x7F { return String(UnicodeScalar(byte)) }
        return "byte 0x\(String(byte, radix: 16))"
    }

    /// A quoted attribute value with entity and character references resolved.
    mutating func quotedValue(normalize: Bool) throws(HavelError) -> String {
        guard let quote = current, quote == 0x22 || quote == 0x27 else {
            throw fail("expected a quoted value")
        }
        let start = location
        advance()
        var value = [UInt8]()
        while true {
            guard let byte = current else { throw fail("unterminated attribute value", at: start) }
            if byte == quote { advance(); break }
            if byte == 0x3C {
                throw fail("'<' is not allowed in an attribute value; write &lt;, or close the value opened at line \(start.line), column \(start.column)")
            }
            if byte == 0x26 {
                value += try reference()
                continue
            }
            value.append(normalize && Self.isSpace(byte) ? 0x20 : byte)
            advance()
        }
        return String(decoding: value, as: UTF8.self)
    }

    /// `&name;` or `&#N;` / `&#xN;`; only XML's five predefined entities exist here.
    mutating func reference() throws(HavelError) -> [UInt8] {
        let start = location
        advance()
        let begin = index
        while let byte = current, byte != 0x3B {
            if index - begin > 12 || Self.isSpace(byte) || byte == 0x3C || byte == 0x26 {
                throw fail("'&' must start a reference like &amp; (write &amp; for a literal '&')", at: start)
            }
            advance()
        }
        guard current == 0x3B else { throw fail("unterminated reference; write &amp; for a literal '&'", at: start) }
        let body = String(decoding: bytes[begin..<index], as: UTF8.self)
        advance()
        switch body {
        case "lt": return [0x3C]
        case "gt": return [0x3E]
        case "amp": return [0x26]
        case "apos": return [0x27]
        case "quot": return [0x22]
        default: break
        }
        if body.hasPrefix("#") {
            let digits = body.dropFirst()
            let value: UInt32? = digits.hasPrefix("x") ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits, radix: 10)
            guard let value, let scalar = Unicode.Scalar(value),
                  value == 0x09 || value == 0x0A || value == 0x0D || (value >= 0x20 && value != 0xFFFE && value != 0xFFFF)
            else { throw fail("character reference &\(body); is not a valid XML character", at: start) }
            return Array(String(Character(scalar)).utf8)
        }
        throw fail("undefined entity &\(body);: only &lt; &gt; &amp; &apos; &quot; exist without a DTD, and DTDs are not allowed", at: start)
    }

    // MARK: - Elements

    struct OpenElement {
        var element: XMLElement
        var writtenName: String
        var scope: [String: String]
        /// Byte offsets of the start tag's `<` and of the byte after its `>`.
        var startOffset = 0
        var contentStart = 0
    }

    /// Parses one element and everything inside it, iteratively (no recursion on nesting depth).
    mutating func element() throws(HavelError) -> XMLElement {
        var stack: [OpenElement] = []
        let baseScope: [String: String] = ["xml": XMLNamespace.xml]
        var finished: XMLElement?

        let (first, firstClosed) = try startTag(parentScope: baseScope)
        if firstClosed { return first.element }
        stack.append(first)

        while finished == nil {
            guard !atEnd else {
                let open = stack[stack.count - 1]
                throw fail("unexpected end of file: <\(open.writtenName)> opened at line \(open.element.location.line) is not closed")
            }
            if lookingAt("</") {
                let closeLocation = location
                let closeOffset = index
                advance(2)
                let closing = try name()
                skipWhitespace()
                try expect(">", "'>' to end </\(closing)>")
                let open = stack.removeLast()
                guard closing == open.writtenName else {
                    throw fail("</\(closing)> does not match <\(open.writtenName)> opened at line \(open.element.location.line)",
                               at: closeLocation)
                }
                let done = open.element
                if spans != nil {
                    spans![done.location] = XMLElementSpan(start: open.startOffset, contentStart: open.contentStart,
                                                           contentEnd: closeOffset, end: index)
                }
                if stack.isEmpty {
                    finished = done
                } else {
                    stack[stack.count - 1].element.children.append(.element(done))
                }
            } else if lookingAt("<!--") {
                let node = try comment()
                stack[stack.count - 1].element.children.append(node)
            } else if lookingAt("<![CDATA[") {
                let start = location
                advance(9)
                let begin = index
                while !lookingAt("]]>") {
                    if atEnd { throw fail("unterminated CDATA section", at: start) }
                    advance()
                }
                let text = String(decoding: bytes[begin..<index], as: UTF8.self)
                advance(3)
                stack[stack.count - 1].element.children.append(.cdata(text, start))
            } else if lookingAt("<!") {
                throw fail("'<!' here must start a comment <!-- --> or <![CDATA[ ]]>; DTD declarations are not allowed")
            } else if lookingAt("<?") {
                let node = try processingInstruction()
                stack[stack.count - 1].element.children.append(node)
            } else if lookingAt("<") {
                guard stack.count < Self.maximumDepth else {
                    throw fail("elements nest deeper than \(Self.maximumDepth) levels")
                }
                let parentScope = stack[stack.count - 1].scope
                let (open, closed) = try startTag(parentScope: parentScope)
                if closed {
                    stack[stack.count - 1].element.children.append(.element(open.element))
                } else {
                    stack.append(open)
                }
            } else {
                let start = location
                var text = [UInt8]()
                while let byte = current, byte != 0x3C {
                    if byte == 0x26 {
                        text += try reference()
                        continue
                    }
                    if byte == 0x5D && lookingAt("]]>") { throw fail("']]>' is not allowed in text") }
                    if byte == 0x0D {
                        // Line ends are normalised to \n as XML requires.
                        advance()
                        if current != 0x0A { text.append(0x0A) }
                        continue
                    }
                    text.append(byte)
                    advance()
                }
                stack[stack.count - 1].element.children.append(.text(String(decoding: text, as: UTF8.self), start))
            }
        }
        return finished!
    }

    /// Reads `<name attr="v" ...>` or `<name .../>` (then `closed` is true), resolving namespace prefixes.
    mutating func startTag(parentScope: [String: String]) throws(HavelError) -> (open: OpenElement, closed: Bool) {
        let start = location
        let startOffset = index
        advance()
        let written = try name()
        var scope = parentScope
        var rawAttributes: [(name: String, value: String, location: SourceLocation)] = []
        var declarations: [XMLElement.NamespaceDeclaration] = []
        var selfClosed = false
        while true {
            let hadSpace = current.map(Self.isSpace) ?? false
            skipWhitespace()
            guard let byte = current else { throw fail("unexpected end of file inside <\(written)>", at: start) }
            if byte == 0x3E { advance(); break }
            if byte == 0x2F {
                advance()
                try expect(">", "'>' after '/' in <\(written)/>")
                selfClosed = true
                break
            }
            guard hadSpace else { throw fail("expected whitespace, '>' or '/>' in <\(written)>, found '\(Self.describe(byte))'") }
            let attributeLocation = location
            let attributeName = try name()
            skipWhitespace()
            try expect("=", "'=' after attribute \(attributeName)")
            skipWhitespace()
            let value = try quotedValue(normalize: true)
            if rawAttributes.contains(where: { $0.name == attributeName }) {
                throw fail("attribute \(attributeName) appears twice on <\(written)>", at: attributeLocation)
            }
            rawAttributes.append((attributeName, value, attributeLocation))
            if attributeName == "xmlns" {
                scope[""] = value
                declarations.append(.init(prefix: nil, uri: value))
            } else if attributeName.hasPrefix("xmlns:") {
                let prefix = String(attributeName.dropFirst(6))
                if value.isEmpty { throw fail("namespace prefix \(prefix) cannot be bound to an empty URI", at: attributeLocation) }
                scope[prefix] = value
                declarations.append(.init(prefix: prefix, uri: value))
            }
        }
        var attributes: [XMLAttribute] = []
        for raw in rawAttributes where raw.name != "xmlns" && !raw.name.hasPrefix("xmlns:") {
            let (prefix, local) = Self.split(raw.name)
            var qname = QualifiedName(local, prefix: prefix)
            if let prefix {
                guard let uri = scope[prefix] else {
                    throw fail("namespace prefix \(prefix) of attribute \(raw.name) is not declared", at: raw.location)
                }
                qname.namespace = uri
            }
            if attributes.contains(where: { $0.name.local == qname.local && $0.name.namespace == qname.namespace }) {
                throw fail("attribute \(raw.name) appears twice on <\(written)>", at: raw.location)
            }
            attributes.append(XMLAttribute(name: qname, value: raw.value, location: raw.location))
        }
        let (prefix, local) = Self.split(written)
        var qname = QualifiedName(local, prefix: prefix)
        if let prefix {
            guard let uri = scope[prefix] else { throw fail("namespace prefix \(prefix) of <\(written)> is not declared", at: start) }
            qname.namespace = uri
        } else if let uri = scope[""], !uri.isEmpty {
            qname.namespace = uri
        }
        var element = XMLElement(name: qname, attributes: attributes, location: start)
        element.namespaceDeclarations = declarations
        if selfClosed, spans != nil {
            spans![start] = XMLElementSpan(start: startOffset, contentStart: index, contentEnd: index, end: index, selfClosed: true)
        }
        return (OpenElement(element: element, writtenName: written, scope: scope, startOffset: startOffset, contentStart: index),
                selfClosed)
    }

    static func split(_ name: String) -> (prefix: String?, local: String) {
        guard let colon = name.firstIndex(of: ":") else { return (nil, name) }
        let prefix = String(name[..<colon])
        let local = String(name[name.index(after: colon)...])
        if prefix.isEmpty || local.isEmpty { return (nil, name) }
        return (prefix, local)
    }
}
