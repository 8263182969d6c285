/// XPath-like paths for messages: `/RootFileSystem/target/images/msdoshd[2]/partition[1]/size`.
/// A position is shown only where the parent has several children of that name.
struct ElementPath {
    /// Calls `body` for each child element with its path.
    static func forEachChild(_ parent: XMLElement, path: String, _ body: (XMLElement, String) -> Void) {
        forEachChildNode(parent, path: path) { node, childPath in
            if case .element(let e) = node { body(e, childPath) }
        }
    }
}

extension ElementPath {
    /// Calls `body` for every child node, with a path for element nodes (text nodes get the parent's).
    static func forEachChildNode(_ parent: XMLElement, path: String, _ body: (XMLNode, String) -> Void) {
        var counts: [String: Int] = [:]
        for node in parent.children {
            if case .element(let e) = node { counts[e.name.local, default: 0] += 1 }
        }
        var seen: [String: Int] = [:]
        for node in parent.children {
            guard case .element(let e) = node else {
                body(node, path)
                continue
            }
            seen[e.name.local, default: 0] += 1
            let local = e.name.local
            body(node, counts[local]! > 1 ? "\(path)/\(local)[\(seen[local]!)]" : "\(path)/\(local)")
        }
    }
}
