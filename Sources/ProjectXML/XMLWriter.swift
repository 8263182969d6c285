import HavelCore

/// Writes an `XMLDocument` back as UTF-8 XML text, keeping prefixes, namespace declarations,
/// comments and CDATA sections as they were read.
public enum XMLWriter {
    public static func write(_ document: XMLDocument) -> String {
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        for node in document.prolog {
            write(node, into: &out)
            out += "\n"
        }
        write(.element(document.root), into: &out)
        out += "\n"
        return out
    }

    public static func write(_ element: XMLElement) -> String {
        var out = ""
        write(.element(element), into: &out)
        return out
    }

    static func write(_ node: XMLNode, into out: inout String) {
        switch node {
        case .text(let text, _):
            out += escapeText(text)
        case .cdata(let text, _):
            out += "<![CDATA[" + text.replacingAll("]]>", with: "]]]]><![CDATA[>") + "]]>"
        case .comment(let text):
            out += "<!--" + text + "-->"
        case .processingInstruction(let target, let data):
            out += "<?" + target + (data.isEmpty ? "" : " " + data) + "?>"
        case .element(let element):
            out += "<" + element.name.written
            for declaration in element.namespaceDeclarations {
                let name = declaration.prefix.map { "xmlns:" + $0 } ?? "xmlns"
                out += " " + name + "=\"" + escapeAttribute(declaration.uri) + "\""
            }
            for attribute in element.attributes {
                out += " " + attribute.name.written + "=\"" + escapeAttribute(attribute.value) + "\""
            }
            if element.children.isEmpty {
                out += "/>"
                return
            }
            out += ">"
            for child in element.children { write(child, into: &out) }
            out += "</" + element.name.written + ">"
        }
    }

    static func escapeText(_ text: String) -> String { XMLEscaping.escape(text) }

    static func escapeAttribute(_ text: String) -> String { XMLEscaping.escape(text, attribute: true) }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.range(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
