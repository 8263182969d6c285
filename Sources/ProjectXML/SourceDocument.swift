import HavelCore

/// source.xml: the preprocessed project plus what the build pinned: `<fullpkgs>` with every installed
/// package (version, priority, architecture, md5 and sha256 of its .deb, its Release's origin and codename, its
/// URI, source package), `<debootstrappkgs>` with the build environment's packages when the build made one,
/// `<sources_list>` and `<apt_prefs>`.
public enum SourceDocument {
    public static let generatedElements: Set<String> = ["fullpkgs", "debootstrappkgs", "sources_list", "apt_prefs", "elbe_version", "havel_version"]

    public static func pinned(_ document: XMLDocument, packages: [PinnedPackage], buildEnvironment: [PinnedPackage] = [],
                              sourcesList: String, aptPreferences: String, havelVersion: String) -> XMLDocument {
        var document = document
        var root = document.root
        root.children.removeAll { node in
            if case .element(let e) = node { return generatedElements.contains(e.name.local) }
            return false
        }
        let at = root.location
        func list(_ name: String, _ packages: [PinnedPackage]) -> XMLElement {
            var list = XMLElement(name: QualifiedName(name), location: at)
            for package in packages {
                var pkg = XMLElement.leaf("pkg", package.name, at: at)
                pkg.setAttribute("version", package.version)
                if let priority = package.priority { pkg.setAttribute("prio", priority) }
                if let arch = package.arch { pkg.setAttribute("arch", arch) }
                pkg.setAttribute("auto", package.auto ? "true" : "false")
                if let md5 = package.md5 { pkg.setAttribute("md5", md5) }
                if let sha256 = package.sha256 { pkg.setAttribute("sha256", sha256) }
                if let origin = package.releaseOrigin { pkg.setAttribute("release-origin", origin) }
                if let name = package.releaseName { pkg.setAttribute("release-name", name) }
                if let uri = package.uri { pkg.setAttribute("uri", uri) }
                if let source = package.sourceName { pkg.setAttribute("source-name", source) }
                if let version = package.sourceVersion { pkg.setAttribute("source-version", version) }
                list.children.append(.text("\n    ", at))
                list.children.append(.element(pkg))
            }
            list.children.append(.text("\n  ", at))
            return list
        }
        // ELBE lists its build chroot's packages as debootstrappkgs; Havel's build environment is the installed
        // target plus buildimage/pkg-list, and all of its packages are listed.
        let lists = [list("fullpkgs", packages)] + (buildEnvironment.isEmpty ? [] : [list("debootstrappkgs", buildEnvironment)])
        for element in lists + [.leaf("sources_list", sourcesList, at: at), .leaf("apt_prefs", aptPreferences, at: at),
                                .leaf("elbe_version", "havel " + havelVersion, at: at)] {
            root.children.append(.text("\n  ", at))
            root.children.append(.element(element))
        }
        root.children.append(.text("\n", at))
        document.root = root
        return document
    }

    /// The copy of source.xml that goes onto the device (ELBE's /etc/elbe_base.xml) without plain-text
    /// secrets: `<check-image-list>` (its login and sendline steps hold the root password in clear; the
    /// device has no use for build checks), and any `passwd` element or attribute that preprocessing did not
    /// hash. Hashes (`passwd_hashed`) stay, as in ELBE's copy.
    public static func forDevice(_ document: XMLDocument) -> XMLDocument {
        var document = document
        var root = document.root
        root.removeChildren { $0 == "check-image-list" }
        root.transformAll { element in
            element.removeChildren { $0 == "passwd" }
            element.removeAttribute("passwd")
        }
        document.root = root
        return document
    }

    /// Rewrites the primary mirror elements so that source.xml names the mirror the build really used.
    public static func withPrimaryMirror(_ document: XMLDocument, _ primary: PrimaryMirror?) -> XMLDocument {
        guard let primary else { return document }
        var document = document
        document.root.modifyElements(at: ["project", "mirror"]) { mirror in
            for (name, value) in [("primary_host", primary.host), ("primary_path", primary.path), ("primary_proto", primary.proto)] {
                if let index = mirror.children.firstIndex(where: { $0.elementName == name }), case .element(let old) = mirror.children[index] {
                    mirror.children[index] = .element(.leaf(name, value, at: old.location))
                }
            }
        }
        return document
    }
}

extension XMLElement {
    /// Removes the child elements whose name `matches`, each with the blank text that indented it.
    mutating func removeChildren(_ matches: (String) -> Bool) {
        var kept: [XMLNode] = []
        for node in children {
            if let name = node.elementName, matches(name) {
                if case .text(let blank, _)? = kept.last, blank.trimmingWhitespace().isEmpty { kept.removeLast() }
                continue
            }
            kept.append(node)
        }
        children = kept
    }
}
