import HavelCore

/// Checks an ELBE document's structure against `ElbeSchema`: allowed and required children and
/// attributes, repetition, and the shape of text values. Reports every problem, not only the first.
struct SchemaChecker {
    var strict: Bool
    var diagnostics: [Diagnostic] = []
    /// Every use of an item the `SupportLedger` marks as not built, in document order.
    var unsupported: [UnsupportedUse] = []

    init(strict: Bool) { self.strict = strict }

    mutating func check(_ document: XMLDocument) {
        let root = document.root
        let rootPath = "/" + root.name.local
        guard root.name.local == ElbeSchema.rootElement else {
            error(root.location, rootPath, "the root element is <\(root.name.written)>; an ELBE project file has <RootFileSystem xmlns=\"\(XMLNamespace.elbe)\" revision=\"6\">")
            return
        }
        if root.name.namespace != XMLNamespace.elbe {
            let found = root.name.namespace.map { "namespace \"\($0)\"" } ?? "no namespace"
            error(root.location, rootPath, "RootFileSystem is in \(found); expected \"\(XMLNamespace.elbe)\"")
        }
        switch root.attributeValue("revision") {
        case nil: error(root.location, rootPath, "attribute revision is missing; write revision=\"6\"")
        case "6": break
        case let other?: error(root.attribute("revision")!.location, rootPath,
                               "revision=\"\(other)\" is not supported; ELBE project files have revision=\"6\"")
        }
        checkElement(root, type: ElbeSchema.rootType, path: rootPath)
    }

    mutating func error(_ location: SourceLocation, _ path: String, _ message: String) {
        diagnostics.append(Diagnostic(.error, at: location, path: path, message))
    }

    mutating func warning(_ location: SourceLocation, _ path: String, _ message: String) {
        diagnostics.append(Diagnostic(.warning, at: location, path: path, message))
    }

    /// A use of a not-built item: a warning (an error with --strict), recorded for the build to refuse.
    mutating func notBuilt(_ support: Support?, _ location: SourceLocation, _ path: String, item: String) {
        guard case .notBuilt(let instead, let changesOutput)? = support else { return }
        let use = UnsupportedUse(location: location, path: path, item: item, instead: instead, changesOutput: changesOutput)
        unsupported.append(use)
        if strict { error(location, path, use.message) } else { warning(location, path, use.message) }
    }

    mutating func unknown(_ location: SourceLocation, _ path: String, _ message: String) {
        if strict { error(location, path, message) } else { warning(location, path, message + " (ignored)") }
    }

    static func isXInclude(_ element: XMLElement) -> Bool {
        element.name.local == "include" && XMLNamespace.xinclude.contains(element.name.namespace ?? "")
    }

    /// `covered`: an enclosing element is already reported as not built or taken as a record, so the
    /// ledger says nothing more about what it holds.
    mutating func checkElement(_ element: XMLElement, type typeName: String, path: String, covered: Bool = false) {
        guard let type = ElbeSchema.types[typeName] else { return }
        checkAttributes(element, type: type, typeName: typeName, path: path, covered: covered)

        var counts: [String: (count: Int, first: SourceLocation)] = [:]
        ElementPath.forEachChild(element, path: path) { child, childPath in
            if Self.isXInclude(child) {
                self.unknown(child.location, childPath, "xi:include is resolved by `havel preprocess`; run preprocess first")
                return
            }
            if child.name.namespace != nil && child.name.namespace != XMLNamespace.elbe {
                self.unknown(child.location, childPath, "element <\(child.name.written)> from namespace \"\(child.name.namespace!)\" is not part of an ELBE project")
                return
            }
            guard let rule = type.children[child.name.local] else {
                let allowed = type.children.keys.sorted()
                let expected = allowed.isEmpty ? "<\(element.name.local)> has no child elements" :
                    "expected one of: " + allowed.joined(separator: ", ")
                self.unknown(child.location, childPath, "unknown element <\(child.name.local)> in <\(element.name.local)>; \(expected)")
                return
            }
            let support = SupportLedger.support(type: typeName, child: child.name.local)
            if !covered { self.notBuilt(support, child.location, childPath, item: "<\(child.name.local)>") }
            if ElbeSchema.preprocessedChildren[typeName]?.contains(child.name.local) == true,
               !covered, support == .built {
                self.warning(child.location, childPath, Self.migration(of: child.name.local))
            }
            if let previous = counts[child.name.local] {
                counts[child.name.local] = (previous.count + 1, previous.first)
                if !rule.repeatable {
                    self.error(child.location, childPath, "<\(child.name.local)> may appear only once in <\(element.name.local)> (first at line \(previous.first.line))")
                }
            } else {
                counts[child.name.local] = (1, child.location)
            }
            self.checkElement(child, type: rule.type, path: childPath, covered: covered || support?.isBuilt != true)
        }
        for (name, rule) in type.children.sorted(by: { $0.key < $1.key }) where rule.required && counts[name] == nil {
            error(element.location, path, "<\(element.name.local)> needs a <\(name)> element")
        }
        checkText(element, kind: type.text, path: path)
    }

    static func migration(of name: String) -> String {
        switch name {
        case "passwd": "<passwd> holds a plain-text password; havel preprocess stores it as passwd_hashed (sha512-crypt)"
        case "debootstrapvariant": "<debootstrapvariant> is deprecated; write <debootstrap><variant>…</variant></debootstrap>"
        case "tune2fs": "<tune2fs> is deprecated; write <fs-finetuning><device-command>tune2fs … {device}</device-command></fs-finetuning>"
        default: "<\(name)> is rewritten by havel preprocess"
        }
    }

    mutating func checkAttributes(_ element: XMLElement, type: ElementType, typeName: String, path: String, covered: Bool) {
        for attribute in element.attributes {
            if let ns = attribute.name.namespace, ns == XMLNamespace.xml || ns == XMLNamespace.xsi { continue }
            if attribute.name.namespace == nil && attribute.name.local == "variant" { continue }
            // The root's revision is checked once, with its own message, in `check`.
            if attribute.name.local == "revision", element.name.local == ElbeSchema.rootElement { continue }
            guard attribute.name.namespace == nil, let rule = type.attributes[attribute.name.local] else {
                let allowed = type.attributes.keys.sorted()
                let expected = allowed.isEmpty ? "<\(element.name.local)> takes no attributes" :
                    "expected one of: " + allowed.joined(separator: ", ")
                unknown(attribute.location, path + "/@" + attribute.name.written,
                        "unknown attribute \(attribute.name.written) on <\(element.name.local)>; \(expected)")
                continue
            }
            if !covered {
                notBuilt(SupportLedger.support(type: typeName, attribute: attribute.name.local), attribute.location,
                         path + "/@" + attribute.name.local, item: "attribute \(attribute.name.local) of <\(element.name.local)>")
            }
            if ElbeSchema.preprocessedAttributes[typeName]?.contains(attribute.name.local) == true {
                warning(attribute.location, path + "/@" + attribute.name.local,
                        "attribute passwd holds a plain-text password; havel preprocess stores it as passwd_hashed")
            }
            if let problem = Self.problem(with: attribute.value, kind: rule.kind) {
                error(attribute.location, path + "/@" + attribute.name.local, "attribute \(attribute.name.local)=\"\(attribute.value)\": \(problem)")
            }
        }
        for (name, rule) in type.attributes.sorted(by: { $0.key < $1.key })
        where rule.required && element.attribute(name) == nil && !(name == "revision" && element.name.local == ElbeSchema.rootElement) {
            error(element.location, path, "<\(element.name.local)> needs attribute \(name)")
        }
    }

    mutating func checkText(_ element: XMLElement, kind: ValueKind, path: String) {
        let text = element.text
        switch kind {
        case .none:
            if !text.trimmingWhitespace().isEmpty {
                error(element.textLocation, path, "<\(element.name.local)> holds only elements, found text \"\(Self.excerpt(text))\"")
            }
        case .mixed:
            break
        default:
            if !element.elements.isEmpty {
                let child = element.elements[0]
                unknown(child.location, path + "/" + child.name.local, "<\(element.name.local)> holds a value, not elements; found <\(child.name.local)>")
            }
            if let problem = Self.problem(with: text, kind: kind) {
                error(element.textLocation, path, problem)
            }
        }
    }

    static func excerpt(_ text: String) -> String {
        let trimmed = text.trimmingWhitespace()
        return trimmed.count > 40 ? String(trimmed.prefix(40)) + "…" : trimmed
    }

    /// What is wrong with `text` for `kind`, or nil when it fits.
    static func problem(with text: String, kind: ValueKind) -> String? {
        let value = text.trimmingWhitespace()
        switch kind {
        case .none, .mixed, .string:
            return nil
        case .nonEmptyString:
            return value.isEmpty ? "must not be empty" : nil
        case .integer:
            return Int(value) == nil ? "\"\(excerpt(value))\" is not an integer" : nil
        case .unsignedInteger:
            return UInt64(value) == nil ? "\"\(excerpt(value))\" is not a non-negative integer" : nil
        case .integerRange(let range):
            guard let n = Int(value) else { return "\"\(excerpt(value))\" is not an integer" }
            return range.contains(n) ? nil : "\(n) is outside \(range.lowerBound)…\(range.upperBound)"
        case .boolean:
            return ["true", "false", "1", "0"].contains(value) ? nil : "\"\(excerpt(value))\" is not a boolean; write true or false"
        case .size:
            return SizeSpec(parsing: value, allowRemain: false) == nil ?
                "\"\(excerpt(value))\" is not a size; write a number with an optional unit (k, M, G, kB, MB, GB, kiB, MiB, GiB), e.g. 512MiB" : nil
        case .sizeOrRemain:
            return SizeSpec(parsing: value) == nil ?
                "\"\(excerpt(value))\" is not a size; write a number with an optional unit (k, M, G, kB, MB, GB, kiB, MiB, GiB), e.g. 512MiB, or remain" : nil
        case .dateTime:
            return isDateTime(value) ? nil : "\"\(excerpt(value))\" is not a date and time like 2009-05-20T08:50:56"
        case .base64:
            let ok = value.unicodeScalars.allSatisfy { $0.properties.isWhitespace || $0 == "+" || $0 == "/" || $0 == "=" ||
                ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
            return ok ? nil : "is not base64"
        case .volumeList:
            if value == "all" { return nil }
            let ok = !value.isEmpty && value.split(separator: ",", omittingEmptySubsequences: false).allSatisfy { Int($0) != nil }
            return ok ? nil : "\"\(excerpt(value))\" is not `all` or a comma-separated list of volume numbers"
        case .enumeration(let allowed):
            return allowed.contains(value) ? nil : "\"\(excerpt(value))\" is not allowed here; expected one of: " + allowed.joined(separator: ", ")
        }
    }

    static func isDateTime(_ value: String) -> Bool {
        let chars = Array(value)
        guard chars.count >= 19 else { return false }
        let digitPositions = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
        return digitPositions.allSatisfy { chars[$0].isASCII && chars[$0].isNumber } &&
            chars[4] == "-" && chars[7] == "-" && chars[10] == "T" && chars[13] == ":" && chars[16] == ":"
    }
}
