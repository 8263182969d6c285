// ProjectFileReference: the project-file reference of the user's guide (docs/project-file-reference.md),
// printed by `havel ledger --reference` from the two tables Havel checks projects with: `ElbeSchema` (what
// each element may hold) and `SupportLedger` (what Havel does with it). One section per element that has
// children or attributes, reached from <RootFileSystem> depth first; a test keeps the committed page in step.
import Foundation

extension SupportLedger {
    /// The whole reference as Markdown.
    public static func reference() -> String {
        let order = typesInReadingOrder()
        let parents = parentsOfTypes()
        var out = [
            "# Project-file reference",
            "",
            "Every element and attribute of ELBE's project-file schema (revision 6), what it may hold, and what Havel does",
            "with it. Printed by `havel ledger --reference` from the tables `havel validate` and `havel build` use, so it",
            "cannot drift from them. In the *Havel* column: **built** (as ELBE builds it), **differs** (built; the result",
            "differs from ELBE's as said), **not built** (what happens instead; *refused* means `havel build` stops unless",
            "`--allow-unsupported`, *warns* that it goes on). `havel validate` warns on every not-built item a project uses.",
            "",
            "Occurs: `1` required, `0..1` optional, `0..n` any number, `1..n` at least one. A child shown as a link has",
            "children or attributes of its own, described in its section. Items marked *preprocess* are rewritten by",
            "`havel preprocess` (and by every command that reads the file) into the form the schema has.",
            "",
        ]
        for typeName in order {
            guard let type = ElbeSchema.types[typeName] else { continue }
            let title = sectionTitle(typeName, parents)
            let names = [title] + Set((parents[typeName] ?? []).map(\.child)).subtracting([title]).sorted()
            out.append("<a id=\"\(anchor(typeName))\"></a>")
            out.append("## " + names.map { "`<\($0)>`" }.joined(separator: ", ") + (names == [typeName] ? "" : " (type `\(typeName)`)"))
            out.append("")
            let inside = (parents[typeName] ?? []).map { parent in
                "`<\(parent.child)>` in [`<\(sectionTitle(parent.type, parents))>`](#\(anchor(parent.type)))"
            }
            if !inside.isEmpty { out.append("Found as " + inside.joined(separator: ", ") + ".") }
            out.append("Content: " + describe(type.text) + ".")
            out.append("")
            if !type.children.isEmpty {
                out.append("| Child | Occurs | Content | Havel |")
                out.append("|---|---|---|---|")
                for (child, rule) in type.children.sorted(by: { $0.key < $1.key }) {
                    let childType = ElbeSchema.types[rule.type]
                    var content = hasSection(rule.type) ? "[`<\(child)>`](#\(anchor(rule.type)))"
                                                        : describe(childType?.text ?? .string)
                    if ElbeSchema.preprocessedChildren[typeName]?.contains(child) == true { content += "; *preprocess*" }
                    out.append("| `<\(child)>` | \(occurs(rule)) | \(content) | \(cell(support(type: typeName, child: child))) |")
                }
                out.append("")
            }
            if !type.attributes.isEmpty {
                out.append("| Attribute | Required | Value | Havel |")
                out.append("|---|---|---|---|")
                for (attribute, rule) in type.attributes.sorted(by: { $0.key < $1.key }) {
                    var value = describe(rule.kind)
                    if ElbeSchema.preprocessedAttributes[typeName]?.contains(attribute) == true { value += "; *preprocess*" }
                    out.append("| `\(attribute)` | \(rule.required ? "yes" : "no") | \(value) | \(cell(support(type: typeName, attribute: attribute))) |")
                }
                out.append("")
            }
        }
        return out.joined(separator: "\n")
    }

    /// Types with a section: those with children or attributes.
    static func hasSection(_ typeName: String) -> Bool {
        guard let type = ElbeSchema.types[typeName] else { return false }
        return !type.children.isEmpty || !type.attributes.isEmpty
    }

    /// Sections in the order a reader meets them: from the root, children by name, each type once.
    static func typesInReadingOrder() -> [String] {
        var seen: Set<String> = [], order: [String] = []
        func visit(_ typeName: String) {
            guard hasSection(typeName), seen.insert(typeName).inserted else { return }
            order.append(typeName)
            for (_, rule) in (ElbeSchema.types[typeName]?.children ?? [:]).sorted(by: { $0.key < $1.key }) { visit(rule.type) }
        }
        visit(ElbeSchema.rootType)
        return order
    }

    /// For each type, where it occurs: the parent type and the child's element name, sorted.
    static func parentsOfTypes() -> [String: [(type: String, child: String)]] {
        var parents: [String: [(type: String, child: String)]] = [:]
        for (typeName, type) in ElbeSchema.types.sorted(by: { $0.key < $1.key }) {
            for (child, rule) in type.children.sorted(by: { $0.key < $1.key }) { parents[rule.type, default: []].append((typeName, child)) }
        }
        return parents
    }

    /// The element name a type's section goes by: the name it has in a project file, the type's own name when
    /// elements carry it, else the first by name.
    static func sectionTitle(_ typeName: String, _ parents: [String: [(type: String, child: String)]]) -> String {
        if typeName == ElbeSchema.rootType { return typeName }
        let names = (parents[typeName] ?? []).map(\.child)
        return elementNames[typeName] ?? (names.contains(typeName) ? typeName : names.sorted().first ?? typeName)
    }

    static func anchor(_ typeName: String) -> String {
        "type-" + typeName.map { $0.isLetter || $0.isNumber ? String($0).lowercased() : "-" }.joined()
    }

    static func occurs(_ rule: ChildRule) -> String {
        switch (rule.required, rule.repeatable) {
        case (true, false): "1"
        case (false, false): "0..1"
        case (false, true): "0..n"
        case (true, true): "1..n"
        }
    }

    static func cell(_ support: Support?) -> String {
        switch support {
        case .built: "built"
        case .differs(let how): "differs: " + escaped(how)
        case .notBuilt(let instead, let changesOutput): "not built (\(changesOutput ? "refused" : "warns")): " + escaped(instead)
        case nil: "unclassified"
        }
    }

    static func describe(_ kind: ValueKind) -> String {
        switch kind {
        case .none: "elements only"
        case .string: "text"
        case .nonEmptyString: "text, not empty"
        case .integer: "integer"
        case .unsignedInteger: "integer, 0 or more"
        case .integerRange(let range): range.lowerBound == range.upperBound ? "`\(range.lowerBound)`" : "integer \(range.lowerBound) to \(range.upperBound)"
        case .boolean: "`true`, `false`, `1` or `0`"
        case .size: "size: digits with k, M, G, kB, MB, GB, kiB, MiB or GiB"
        case .sizeOrRemain: "size (digits with k, M, G, kB, MB, GB, kiB, MiB or GiB) or `remain`"
        case .dateTime: "date and time (xs:dateTime)"
        case .base64: "base64"
        case .volumeList: "`all`, or volume numbers such as `1,2,-3`"
        case .enumeration(let values): "one of " + values.map { "`\($0)`" }.joined(separator: ", ")
        case .mixed: "text and elements (a script, often in CDATA)"
        }
    }

    /// Table cells hold no pipes or line breaks, and an element named in the text (`<pkg version="…">`) goes in
    /// backticks, else Markdown would read it as an HTML tag and show nothing.
    static func escaped(_ text: String) -> String {
        var out = "", inCode = false, tag: String? = nil
        for character in text.replacingOccurrences(of: "\n", with: " ") {
            if var open = tag {
                open.append(character)
                if character == ">" { out += "`" + open + "`"; tag = nil } else if character == "<" { out += open.dropLast(); tag = "<" } else { tag = open }
                continue
            }
            if character == "`" { inCode.toggle() }
            if character == "<", !inCode { tag = "<"; continue }
            out.append(character == "|" ? "\\|" : String(character))
        }
        return out + (tag ?? "")
    }
}
