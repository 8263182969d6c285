// ProjectXML owns ELBE XML: a small XML reader that keeps file:line:column for every element and
// attribute, the typed project model decoded from it, validation, preprocessing and writing.
// It never runs a process.

import HavelCore

/// A namespace-resolved name: local part plus namespace URI (nil for none) and the prefix as written.
public struct QualifiedName: Sendable, Hashable {
    public var local: String
    public var namespace: String?
    public var prefix: String?

    public init(_ local: String, namespace: String? = nil, prefix: String? = nil) {
        self.local = local
        self.namespace = namespace
        self.prefix = prefix
    }

    /// The name as written in the file (`prefix:local`).
    public var written: String { prefix.map { "\($0):\(local)" } ?? local }
}

public enum XMLNamespace {
    public static let elbe = "https://www.linutronix.de/projects/Elbe"
    public static let xml = "http://www.w3.org/XML/1998/namespace"
    public static let xmlns = "http://www.w3.org/2000/xmlns/"
    /// ELBE's examples use the 2003 draft namespace; the W3C recommendation uses 2001. Both are honoured.
    public static let xinclude = ["http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"]
    public static let xsi = "http://www.w3.org/2001/XMLSchema-instance"
}

public struct XMLAttribute: Sendable, Hashable {
    public var name: QualifiedName
    public var value: String
    public var location: SourceLocation

    public init(name: QualifiedName, value: String, location: SourceLocation) {
        self.name = name
        self.value = value
        self.location = location
    }
}

public enum XMLNode: Sendable, Hashable {
    case element(XMLElement)
    case text(String, SourceLocation)
    case cdata(String, SourceLocation)
    case comment(String)
    case processingInstruction(target: String, data: String)
}

/// An element with its attributes, children, namespace declarations and where it starts.
public struct XMLElement: Sendable, Hashable {
    public var name: QualifiedName
    public var attributes: [XMLAttribute]
    public var children: [XMLNode]
    /// Namespace declarations written on this element, in order.
    public var namespaceDeclarations: [NamespaceDeclaration]
    public var location: SourceLocation

    public struct NamespaceDeclaration: Sendable, Hashable {
        /// nil for the default namespace.
        public var prefix: String?
        public var uri: String

        public init(prefix: String?, uri: String) {
            self.prefix = prefix
            self.uri = uri
        }
    }

    public init(name: QualifiedName, attributes: [XMLAttribute] = [], children: [XMLNode] = [],
                location: SourceLocation) {
        self.name = name
        self.attributes = attributes
        self.children = children
        self.namespaceDeclarations = []
        self.location = location
    }

    public var elements: [XMLElement] {
        children.compactMap { if case .element(let e) = $0 { e } else { nil } }
    }

    public func elements(named local: String) -> [XMLElement] {
        elements.filter { $0.name.local == local }
    }

    public func firstElement(named local: String) -> XMLElement? {
        elements.first { $0.name.local == local }
    }

    /// The attribute without namespace named `local`.
    public func attribute(_ local: String) -> XMLAttribute? {
        attributes.first { $0.name.local == local && $0.name.namespace == nil }
    }

    public func attributeValue(_ local: String) -> String? { attribute(local)?.value }

    public mutating func removeAttribute(_ local: String) {
        attributes.removeAll { $0.name.local == local && $0.name.namespace == nil }
    }

    public mutating func setAttribute(_ local: String, _ value: String) {
        if let index = attributes.firstIndex(where: { $0.name.local == local && $0.name.namespace == nil }) {
            attributes[index].value = value
        } else {
            attributes.append(XMLAttribute(name: QualifiedName(local), value: value, location: location))
        }
    }

    /// All text and CDATA directly inside this element, concatenated.
    public var text: String {
        var result = ""
        for child in children {
            switch child {
            case .text(let t, _), .cdata(let t, _): result += t
            default: break
            }
        }
        return result
    }

    /// Where the element's first non-blank text character is (for messages about its value),
    /// else the element itself.
    public var textLocation: SourceLocation {
        for child in children {
            switch child {
            case .text(let t, var loc), .cdata(let t, var loc):
                guard !t.trimmingWhitespace().isEmpty else { continue }
                if case .cdata = child { return loc }
                for scalar in t.unicodeScalars {
                    if scalar == "\n" {
                        loc.line += 1
                        loc.column = 1
                    } else if scalar == " " || scalar == "\t" || scalar == "\r" {
                        loc.column += 1
                    } else {
                        break
                    }
                }
                return loc
            default: continue
            }
        }
        return location
    }

    /// A child element holding only text, as ELBE writes simple values.
    public static func leaf(_ local: String, _ text: String, at location: SourceLocation) -> XMLElement {
        XMLElement(name: QualifiedName(local), children: [.text(text, location)], location: location)
    }
}

/// A parsed document: the root element plus comments and processing instructions around it.
public struct XMLDocument: Sendable, Hashable {
    public var root: XMLElement
    public var prolog: [XMLNode]
    public var file: String

    public init(root: XMLElement, prolog: [XMLNode] = [], file: String) {
        self.root = root
        self.prolog = prolog
        self.file = file
    }
}
