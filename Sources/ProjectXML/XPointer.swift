// XPointer owns the part of `xi:include xpointer="…"` that ELBE projects use: the `xmlns(prefix=uri)`
// scheme binding prefixes, then `xpointer(path)` or `element(path)` with a child path such as
// `ns0:RootFileSystem/project/*`, or a bare name (shorthand) selecting the element with that id.
// It parses and selects only; the preprocessor puts the selected elements in place of the include.
import HavelCore

/// A parsed XPointer, ready to select elements from an included document.
struct XPointer: Equatable {
    /// One step of a child path: an element name (prefix resolved) or `*`.
    enum Step: Equatable {
        case any
        case named(local: String, namespace: String?)
    }

    enum Selection: Equatable {
        /// From the document: the root element must match the first step, its children the next, and so on.
        case childPath([Step])
        /// The element whose `xml:id` or `id` attribute has this value.
        case id(String)
    }

    let selection: Selection

    /// The forms supported, said in every error message.
    static let supportedForms = "use xmlns(p=URI) followed by xpointer(p:RootFileSystem/child/*) (names and * separated by /) or a bare id"

    /// Parses `text`; an unsupported or malformed pointer throws a message naming what is wrong.
    static func parse(_ text: String) throws(HavelError) -> XPointer {
        let trimmed = text.trimmingWhitespace()
        if isName(trimmed) { return XPointer(selection: .id(trimmed)) }
        var prefixes: [String: String] = [:]
        var selection: Selection?
        for (scheme, body) in try schemeParts(trimmed) {
            switch scheme {
            case "xmlns":
                guard let equals = body.firstIndex(of: "=") else {
                    throw HavelError(.invalidProject, "xmlns(\(body)) needs prefix=URI")
                }
                let prefix = body[..<equals].trimmingWhitespace()
                let uri = body[body.index(after: equals)...].trimmingWhitespace()
                guard isName(prefix), !uri.isEmpty else {
                    throw HavelError(.invalidProject, "xmlns(\(body)) needs a prefix without a colon and a URI")
                }
                prefixes[prefix] = uri
            case "xpointer", "element":
                // Like XInclude processors, the first scheme part that selects something wins.
                if selection == nil { selection = .childPath(try childPath(body, prefixes: prefixes)) }
            default:
                throw HavelError(.invalidProject, "the XPointer scheme \(scheme)() is not supported")
            }
        }
        guard let selection else { throw HavelError(.invalidProject, "it selects nothing: it has no xpointer() part") }
        return XPointer(selection: selection)
    }

    /// Splits `a(…) b(…)` into scheme names and bodies; `^(`, `^)` and `^^` escape inside a body.
    static func schemeParts(_ text: String) throws(HavelError) -> [(String, String)] {
        var parts: [(String, String)] = []
        var rest = Substring(text)
        while true {
            rest = rest.drop { $0.isWhitespace }
            if rest.isEmpty { return parts }
            guard let open = rest.firstIndex(of: "(") else {
                throw HavelError(.invalidProject, "\"\(rest)\" is not a scheme part name(…)")
            }
            let scheme = String(rest[..<open])
            guard isName(scheme) else { throw HavelError(.invalidProject, "\"\(scheme)\" is not a scheme name") }
            var body = ""
            var depth = 1
            var index = rest.index(after: open)
            while index < rest.endIndex {
                let character = rest[index]
                if character == "^" {
                    let next = rest.index(after: index)
                    guard next < rest.endIndex, "()^".contains(rest[next]) else {
                        throw HavelError(.invalidProject, "a ^ in \(scheme)() must escape (, ) or ^")
                    }
                    body.append(rest[next])
                    index = rest.index(after: next)
                    continue
                }
                if character == "(" { depth += 1 }
                if character == ")" {
                    depth -= 1
                    if depth == 0 { break }
                }
                body.append(character)
                index = rest.index(after: index)
            }
            guard index < rest.endIndex else { throw HavelError(.invalidProject, "\(scheme)( is not closed") }
            parts.append((scheme, body))
            rest = rest[rest.index(after: index)...]
        }
    }

    /// `p:RootFileSystem/project/*` (an optional leading `/`) as steps; predicates, axes and functions are refused.
    static func childPath(_ body: String, prefixes: [String: String]) throws(HavelError) -> [Step] {
        var path = body.trimmingWhitespace()
        guard !path.contains("//") else { throw HavelError(.invalidProject, "the path \"\(body)\" is not supported (no //)") }
        if path.hasPrefix("/") { path.removeFirst() }
        guard !path.isEmpty else {
            throw HavelError(.invalidProject, "the path \"\(body)\" is not supported")
        }
        var steps: [Step] = []
        for raw in path.split(separator: "/", omittingEmptySubsequences: false) {
            let step = raw.trimmingWhitespace()
            if step == "*" {
                steps.append(.any)
                continue
            }
            let parts = step.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count <= 2, parts.allSatisfy(isName) else {
                throw HavelError(.invalidProject, "the step \"\(step)\" of \"\(body)\" is not supported (only element names and *)")
            }
            if parts.count == 1 {
                steps.append(.named(local: parts[0], namespace: nil))
            } else if let uri = prefixes[parts[0]] {
                steps.append(.named(local: parts[1], namespace: uri))
            } else {
                throw HavelError(.invalidProject, "the prefix \(parts[0]) in \"\(body)\" is not bound; bind it with xmlns(\(parts[0])=URI) before xpointer()")
            }
        }
        return steps
    }

    /// An XML name without a colon (letters, digits, `_`, `-`, `.`; not starting with a digit, `-` or `.`).
    static func isName(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, !"-.0123456789".unicodeScalars.contains(first) else { return false }
        return text.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || ("0"..."9").contains($0) || "_-.".unicodeScalars.contains($0) }
    }

    /// The selected elements in document order, each carrying the namespace declarations of its
    /// ancestors that its subtree uses (they are not on the new parent).
    func select(from root: XMLElement) -> [XMLElement] {
        var found: [XMLElement] = []
        switch selection {
        case .childPath(let steps):
            func walk(_ element: XMLElement, _ remaining: ArraySlice<Step>, inherited: [XMLElement.NamespaceDeclaration]) {
                guard let step = remaining.first, Self.matches(step, element) else { return }
                if remaining.count == 1 {
                    found.append(Self.carryingDeclarations(element, inherited))
                    return
                }
                for child in element.elements {
                    walk(child, remaining.dropFirst(), inherited: inherited + element.namespaceDeclarations)
                }
            }
            walk(root, steps[...], inherited: [])
        case .id(let id):
            func search(_ element: XMLElement, inherited: [XMLElement.NamespaceDeclaration]) -> Bool {
                if element.attributes.contains(where: {
                    $0.value == id && ($0.name.local == "id" && ($0.name.namespace == nil || $0.name.namespace == XMLNamespace.xml))
                }) {
                    found.append(Self.carryingDeclarations(element, inherited))
                    return true
                }
                return element.elements.contains { search($0, inherited: inherited + element.namespaceDeclarations) }
            }
            _ = search(root, inherited: [])
        }
        return found
    }

    static func matches(_ step: Step, _ element: XMLElement) -> Bool {
        switch step {
        case .any: return true
        case .named(let local, let namespace): return element.name.local == local && element.name.namespace == namespace
        }
    }

    /// `element` with the inherited declarations of prefixes it or its descendants use and do not declare.
    static func carryingDeclarations(_ element: XMLElement, _ inherited: [XMLElement.NamespaceDeclaration]) -> XMLElement {
        var used = Set<String?>()
        func collect(_ e: XMLElement) {
            if e.name.namespace != nil { used.insert(e.name.prefix) }
            for attribute in e.attributes where attribute.name.prefix != nil && attribute.name.prefix != "xml" {
                used.insert(attribute.name.prefix)
            }
            e.elements.forEach(collect)
        }
        collect(element)
        var result = element
        var declared = Set(element.namespaceDeclarations.map(\.prefix))
        for declaration in inherited.reversed() where used.contains(declaration.prefix) && declared.insert(declaration.prefix).inserted {
            result.namespaceDeclarations.append(declaration)
        }
        return result
    }
}
