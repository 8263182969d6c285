import HavelCore

/// Checks what a project means, beyond its structure: names Havel knows, partitions that fit their
/// image, labels that link fstab to partitions, pins that do not conflict, finetuning with real paths.
struct SemanticChecker {
    var diagnostics: [Diagnostic] = []

    mutating func error(_ location: SourceLocation?, _ path: String, _ message: String) {
        diagnostics.append(Diagnostic(.error, at: location, path: path, message))
    }

    mutating func warning(_ location: SourceLocation?, _ path: String, _ message: String) {
        diagnostics.append(Diagnostic(.warning, at: location, path: path, message))
    }

    mutating func check(_ root: XMLElement, _ project: Project) {
        let rootPath = "/RootFileSystem"
        guard root.name.local == ElbeSchema.rootElement else { return }
        if let initvm = root.firstElement(named: "initvm"),
           root.firstElement(named: "project") == nil, root.firstElement(named: "target") == nil {
            // A file that only describes the build VM (for `havel initvm create`).
            if let mirror = initvm.firstElement(named: "mirror"), let spec = project.initvm {
                checkMirror(mirror, spec.mirror, path: rootPath + "/initvm/mirror")
            }
            if let spec = project.initvm { checkInitVM(initvm, spec, path: rootPath + "/initvm") }
            checkPackages(root, project, rootPath: rootPath)
            return
        }
        if let initvm = root.firstElement(named: "initvm"), let spec = project.initvm {
            checkInitVM(initvm, spec, path: rootPath + "/initvm")
        }
        checkProject(root, project, rootPath: rootPath)
        checkTarget(root, project, rootPath: rootPath)
        checkPackages(root, project, rootPath: rootPath)
        checkCheckInterpreters(root, rootPath: rootPath)
    }

    /// A boot check's `<interpreter>` is run on the build host (the daemon's machine for an upload): only
    /// qemu-system programs found on PATH, as ELBE's examples name them, never a path or another program.
    mutating func checkCheckInterpreters(_ root: XMLElement, rootPath: String) {
        root.forEachDescendant(path: rootPath) { element, path in
            guard element.name.local == "interpreter", path.hasSuffix("/check-image-list/check/interpreter") else { return }
            let name = element.text.trimmingWhitespace()
            guard !Self.isQemuSystemProgram(name) else { return }
            self.error(element.textLocation, path, "\(name.debugDescription) is not a qemu-system program; a boot check runs qemu-system-<arch> "
                       + "(such as qemu-system-x86_64 or qemu-system-aarch64) found on PATH")
        }
    }

    static func isQemuSystemProgram(_ name: String) -> Bool {
        let prefix = "qemu-system-"
        guard name.hasPrefix(prefix), name.count > prefix.count, name.count <= 40 else { return false }
        return name.dropFirst(prefix.count).allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }
    }

    mutating func checkProject(_ root: XMLElement, _ project: Project, rootPath: String) {
        let path = rootPath + "/project"
        guard let element = root.firstElement(named: "project") else {
            error(root.location, rootPath, "a project file needs a <project> section with name, version, buildtype, suite and mirror")
            return
        }
        for (name, what) in [("name", "the project's name"), ("version", "the project's version"),
                             ("buildtype", "the target architecture, one of " + Architecture.buildtypes.joined(separator: ", "))] {
            if let child = element.firstElement(named: name) {
                if child.text.trimmingWhitespace().isEmpty {
                    error(child.location, path + "/" + name, "<\(name)> is empty; give \(what)")
                }
            } else {
                error(element.location, path, "<project> needs <\(name)> (\(what))")
            }
        }
        if let buildtype = element.firstElement(named: "buildtype"), !project.buildtype.isEmpty, project.architecture == nil {
            error(buildtype.textLocation, path + "/buildtype",
                  "unknown buildtype \"\(project.buildtype)\"; expected one of: " + Architecture.buildtypes.joined(separator: ", "))
        }
        if let suite = element.firstElement(named: "suite") {
            let name = project.suite
            if name.isEmpty {
                error(suite.location, path + "/suite", "<suite> is empty; name a Debian release such as bookworm")
            } else if !Suite.isKnown(name) {
                error(suite.textLocation, path + "/suite",
                      "unknown suite \"\(name)\"; expected a Debian release (" + Suite.debian.joined(separator: ", ") +
                      ") or an Ubuntu release (" + Suite.ubuntu.joined(separator: ", ") + ")")
            }
        }
        if let mirror = element.firstElement(named: "mirror") {
            checkMirror(mirror, project.mirror, path: path + "/mirror")
        }
        checkPreferences(element, path: path)
        checkPreseed(project.preseed, path: path + "/preseed")
    }

    mutating func checkPreferences(_ element: XMLElement, path: String) {
        for (i, pref) in element.elements(named: "preference").enumerated() where Int(pref.text.trimmingWhitespace()) == nil {
            error(pref.textLocation, path + "/preference[\(i + 1)]", "the pin priority \"\(pref.text.trimmingWhitespace())\" is not a number")
        }
    }

    /// Each answer must be one line of debconf-set-selections input with a type debconf knows.
    mutating func checkPreseed(_ answers: [DebconfSelection], path: String) {
        for (i, answer) in answers.enumerated() {
            let confPath = path + "/conf[\(i + 1)]"
            for (name, value) in [("owner", answer.owner), ("key", answer.key)]
            where value.isEmpty || value.contains(where: { $0.isWhitespace }) {
                error(answer.location, confPath, "the \(name) \"\(value)\" must be one word, such as owner=\"tzdata\" key=\"tzdata/Areas\"")
            }
            if !DebconfSelection.types.contains(answer.type) {
                error(answer.location, confPath, "unknown debconf type \"\(answer.type)\"; expected one of "
                      + DebconfSelection.types.sorted().joined(separator: ", "))
            }
            if answer.value.contains(where: \.isNewline) {
                error(answer.location, confPath, "the value of \(answer.key) spans lines; debconf answers are one line")
            }
        }
    }

    mutating func checkInitVM(_ element: XMLElement, _ spec: InitVMSpec, path: String) {
        if let buildtype = spec.buildtype, !buildtype.isEmpty, Architecture(buildtype: buildtype) == nil {
            error(element.firstElement(named: "buildtype")?.textLocation, path + "/buildtype",
                  "\"\(buildtype)\" is not an architecture Havel knows (the initvm is the host's: amd64 on a PC)")
        }
        if let format = spec.imageFormat, !["qcow2", "raw"].contains(format) {
            error(element.firstElement(named: "img")?.textLocation, path + "/img", "image format \"\(format)\": Havel makes qcow2 or raw")
        }
        if let swap = spec.swapSize, !swap.isEmpty, SizeSpec(parsing: swap, allowRemain: false)?.byteCount == nil {
            error(element.firstElement(named: "swap-size")?.textLocation, path + "/swap-size", "\"\(swap)\" is not a size such as 2GiB")
        }
        checkPreferences(element, path: path)
        checkPreseed(spec.preseed, path: path + "/preseed")
    }

    mutating func checkMirror(_ element: XMLElement, _ mirror: Mirror, path: String) {
        if mirror.primary == nil && mirror.urls.isEmpty && mirror.cdrom == nil {
            error(element.location, path, "the mirror names no repository; give <primary_host>, <primary_path> and <primary_proto>, or a <url-list>")
        }
        if let primary = mirror.primary {
            if primary.host.isEmpty { error(element.location, path + "/primary_host", "<primary_host> is empty") }
            if element.firstElement(named: "primary_path") == nil {
                error(element.location, path, "<primary_host> is given without <primary_path> (such as /debian)")
            }
            if let proxy = primary.proxy?.trimmingWhitespace(), !proxy.isEmpty,
               !(proxy.hasPrefix("http://") || proxy.hasPrefix("https://")) || proxy.contains(where: \.isWhitespace) {
                let at = element.firstElement(named: "primary_proxy")?.textLocation ?? element.location
                error(at, path + "/primary_proxy", "the proxy \"\(proxy)\" is not an http(s) URL such as http://LOCALMACHINE:3142")
            }
            if !["http", "https", "ftp", "file"].contains(primary.proto) {
                let at = element.firstElement(named: "primary_proto")?.textLocation ?? element.location
                error(at, path + "/primary_proto", "unknown protocol \"\(primary.proto)\"; expected http, https, ftp or file")
            }
        } else {
            for name in ["primary_path", "primary_proto"] where element.firstElement(named: name) != nil {
                error(element.firstElement(named: name)!.location, path + "/" + name, "<\(name)> is given without <primary_host>")
            }
        }
        for (i, url) in mirror.urls.enumerated() {
            let urlPath = path + "/url-list/url[\(i + 1)]"
            if (url.binary ?? "").isEmpty && (url.source ?? "").isEmpty {
                error(url.location, urlPath, "<url> needs a <binary> or <source> apt line such as \"http://host/debian bookworm main\"")
            }
            for line in [url.binary, url.source].compactMap({ $0 }) where !line.isEmpty {
                let words = line.split(separator: " ", omittingEmptySubsequences: true)
                if words.count < 2 || !words[0].contains(":") {
                    error(url.location, urlPath, "\"\(line)\" is not an apt line: write URI SUITE [COMPONENT...]")
                }
            }
            if let pin = url.pin, Int(pin) == nil {
                error(url.location, urlPath + "/binary/@pin", "the pin priority \"\(pin)\" is not a number (such as 900)")
            }
            if url.pin == nil, url.pinnedPackages != nil {
                warning(url.location, urlPath + "/binary/@package", "package= has no effect without pin=; give the priority as <binary pin=\"900\" package=\"…\">")
            }
        }
    }

    mutating func checkTarget(_ root: XMLElement, _ project: Project, rootPath: String) {
        let path = rootPath + "/target"
        guard let target = root.firstElement(named: "target") else {
            error(root.location, rootPath, "a project file needs a <target> section with at least <hostname>")
            return
        }
        if let setsel = target.firstElement(named: "setsel"), project.target.minimisation != nil {
            error(setsel.location, path + "/setsel",
                  "<setsel/> needs dpkg's database in the target, which <tighten/> and <diet/> leave out; remove one of them")
        }
        if let hostname = target.firstElement(named: "hostname") {
            let name = project.target.hostname
            if name.isEmpty {
                error(hostname.location, path + "/hostname", "<hostname> is empty")
            } else if !Self.isHostname(name) {
                error(hostname.textLocation, path + "/hostname",
                      "\"\(name)\" is not a valid host name (letters, digits and '-', at most 63 characters, not starting or ending with '-')")
            }
        }
        checkImages(target, project.target, path: path)
        checkMtdImages(target, project.target, path: path)
        checkFstab(target, project.target, path: path)
        checkFinetuning(target, path: path)
        checkOwnPackages(project.target.ownPackages, path: path + "/pbuilder")
    }

    /// `<git>` URLs a build may clone (no ssh, no ext:: transports that run commands) and `<src-pkg>` names.
    mutating func checkOwnPackages(_ sources: [OwnPackageSource], path: String) {
        for source in sources {
            switch source.origin {
            case .git(let url, let revision):
                if !Self.isCloneableGitURL(url) {
                    error(source.location, path + "/git", "<git>\(url)</git>: a package's git URL must start with https://, http://, git:// or file:///")
                }
                if let revision, revision.hasPrefix("-") || revision.contains(where: \.isWhitespace) {
                    error(source.location, path + "/git/@revision", "revision \"\(revision)\" is not a commit, tag or branch name")
                }
            case .sourcePackage(let name, let version):
                if name.isEmpty || !name.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || "+-.".contains($0)) }) || name.hasPrefix("-") {
                    error(source.location, path + "/src-pkg", "<src-pkg>\(name)</src-pkg> is not a source package name; write name or name=version")
                }
                if let version, !version.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.~:".contains($0)) }) {
                    error(source.location, path + "/src-pkg", "\"\(version)\" is not a Debian version")
                }
            case .archive(let base64):
                if base64.isEmpty { error(source.location, path + "/archive", "<archive> is empty; give a base64 tar of a source tree with debian/") }
            }
        }
    }

    static func isCloneableGitURL(_ url: String) -> Bool {
        ["https://", "http://", "git://", "file:///"].contains(where: { url.hasPrefix($0) }) && !url.contains(where: \.isWhitespace)
    }

    static func isHostname(_ name: String) -> Bool {
        guard (1...63).contains(name.count), !name.hasPrefix("-"), !name.hasSuffix("-") else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
    }

    mutating func checkImages(_ target: XMLElement, _ model: Target, path: String) {
        guard let images = target.firstElement(named: "images") else { return }
        var imageIndex = 0
        var labels: [String: SourceLocation?] = [:]
        var imageNames: [String: SourceLocation?] = [:]
        ElementPath.forEachChild(images, path: path + "/images") { element, imagePath in
            guard element.name.local == "msdoshd" || element.name.local == "gpthd" else { return }
            let image = model.images[imageIndex]
            imageIndex += 1
            if let previous = imageNames[image.name] {
                self.error(element.location, imagePath, "image name \"\(image.name)\" is used twice (first at line \(previous?.line ?? 0))")
            }
            imageNames[image.name] = element.location
            self.checkImage(element, image, path: imagePath)
            for partition in image.allPartitions {
                if let previous = labels[partition.label] {
                    self.error(partition.location, imagePath, "partition label \"\(partition.label)\" is used twice (first at line \(previous?.line ?? 0)); labels link fstab entries to partitions and must be unique")
                } else {
                    labels[partition.label] = partition.location
                }
            }
        }
    }

    /// Each `<mtd>`'s own checks (`MtdImage.check`), and names unique among all images.
    mutating func checkMtdImages(_ target: XMLElement, _ model: Target, path: String) {
        guard let images = target.firstElement(named: "images") else { return }
        var index = 0
        var names = Set(model.images.map(\.name))
        ElementPath.forEachChild(images, path: path + "/images") { element, mtdPath in
            guard element.name.local == "mtd", index < model.mtdImages.count else { return }
            let mtd = model.mtdImages[index]
            index += 1
            if !names.insert(mtd.name).inserted {
                self.error(element.location, mtdPath, "image name \"\(mtd.name)\" is used twice; each image needs its own file name")
            }
            do throws(HavelError) {
                try mtd.check()
            } catch {
                self.error(error.location ?? element.location, mtdPath, error.message)
            }
        }
    }

    mutating func checkImage(_ element: XMLElement, _ image: DiskImage, path: String) {
        guard image.size.byteCount != nil else {
            error(element.firstElement(named: "size")?.textLocation ?? element.location, path + "/size",
                  "the image size must be a size, not remain")
            return
        }
        // Sizes that did not parse were reported by the schema check; a layout would only repeat them.
        let partitionElements = element.elements(named: "partition") +
            (element.firstElement(named: "extended").map { [$0] + $0.elements(named: "logical") } ?? [])
        guard partitionElements.allSatisfy({ SizeSpec(parsing: $0.value("size") ?? "") != nil }) else { return }
        if image.table == .msdos && image.partitions.count > 4 {
            error(image.partitions[4].location, path, "an msdos partition table holds at most 4 primary partitions; \(image.partitions.count) given (use <extended> with <logical> partitions)")
        } else if image.table == .msdos && image.extended != nil && image.partitions.count > 3 {
            error(image.extended?.location, path, "with an <extended> partition at most 3 primary partitions fit; \(image.partitions.count) given")
        }
        if image.table == .gpt && image.partitions.count > 128 {
            error(element.location, path, "a GPT holds at most 128 partitions; \(image.partitions.count) given")
        }
        let remains = image.partitions.filter { $0.size == .remain } + (image.extended?.size == .remain ?
            [Partition(size: .remain, label: "extended", location: image.extended?.location)] : [])
        if remains.count > 1 {
            error(remains[1].location, path, "more than one partition has size remain (\(remains.map(\.label).joined(separator: ", "))); only one can take the rest of the disk")
        } else if let extended = image.extended, extended.logical.filter({ $0.size == .remain }).count > 1 {
            error(extended.location, path + "/extended", "more than one logical partition has size remain; only one can take the rest of the extended partition")
        } else if let last = image.partitions.last, image.partitions.dropLast().contains(where: { $0.size == .remain }) || (image.extended != nil && last.size == .remain) {
            let which = image.partitions.first { $0.size == .remain }!
            error(which.location, path, "partition \(which.label) has size remain but is not the last partition; remain takes the rest of the disk")
        } else {
            do {
                _ = try image.layout()
            } catch {
                self.error(error.location, path, error.message)
            }
        }
        for partition in image.allPartitions {
            if partition.label.isEmpty { error(partition.location, path, "a partition needs a non-empty <label>") }
            if partition.size == .bytes(0) { error(partition.location, path, "partition \(partition.label) has size 0") }
            if partition.biosgrub && image.table != .gpt {
                warning(partition.location, path, "biosgrub only has a meaning in a GPT (gpthd)")
            }
        }
    }

    mutating func checkFstab(_ target: XMLElement, _ model: Target, path: String) {
        guard let fstab = target.firstElement(named: "fstab") else { return }
        let partitionLabels = Set(model.images.flatMap { $0.allPartitions.map(\.label) })
        let ubiLabels = Self.ubiVolumeLabels(target)
        var seenLabels: [String: SourceLocation?] = [:]
        var seenMountpoints: [String: SourceLocation?] = [:]
        var index = 0
        ElementPath.forEachChild(fstab, path: path + "/fstab") { element, entryPath in
            guard element.name.local == "bylabel" || element.name.local == "bydev" else { return }
            let entry = model.fstab[index]
            index += 1
            if let label = entry.label {
                if let previous = seenLabels[label] {
                    self.error(entry.location, entryPath, "fstab label \"\(label)\" is used twice (first at line \(previous?.line ?? 0))")
                }
                seenLabels[label] = entry.location
                if !partitionLabels.contains(label) && !ubiLabels.contains(label) {
                    let known = partitionLabels.union(ubiLabels).filter { !$0.isEmpty }.sorted()
                    self.error(entry.location, entryPath, "fstab label \"\(label)\" names no partition or ubi volume" +
                               (known.isEmpty ? "; the project defines no images" : "; known labels: " + known.joined(separator: ", ")))
                }
            }
            if !entry.mountpoint.hasPrefix("/") && entry.mountpoint != "none" && entry.filesystem.type != "swap" {
                self.error(element.firstElement(named: "mountpoint")?.textLocation ?? entry.location, entryPath + "/mountpoint", "mountpoint \"\(entry.mountpoint)\" must be an absolute path")
            }
            if entry.mountpoint.hasPrefix("/"), !entry.noFstab || entry.label != nil {
                if let previous = seenMountpoints[entry.mountpoint], entry.filesystem.type != "swap" {
                    self.error(entry.location, entryPath, "mountpoint \(entry.mountpoint) is used twice (first at line \(previous?.line ?? 0))")
                }
                seenMountpoints[entry.mountpoint] = entry.location
            }
        }
    }

    static func ubiVolumeLabels(_ target: XMLElement) -> Set<String> {
        var labels = Set<String>()
        for mtd in target.firstElement(named: "images")?.elements(named: "mtd") ?? [] {
            for vg in mtd.elements(named: "ubivg") {
                for ubi in vg.elements(named: "ubi") {
                    if let label = ubi.value("label") { labels.insert(label) }
                }
            }
        }
        return labels
    }

    mutating func checkFinetuning(_ target: XMLElement, path: String) {
        for section in ["finetuning", "project-finetuning"] {
            for list in target.elements(named: section) {
                ElementPath.forEachChild(list, path: path + "/" + section) { action, actionPath in
                    self.checkAction(action, path: actionPath)
                }
            }
        }
    }

    /// Actions whose text is a path or a name that must not be empty.
    static let textRequired: Set<String> = ["rm", "mkdir", "buildenv_mkdir", "mknod", "cp", "buildenv_cp", "b2t_cp", "t2b_cp",
                                            "mv", "buildenv_mv", "t2p_mv", "ln", "adduser", "addgroup", "purge", "artifact",
                                            "rm_artifact", "rm_apt_source", "raw_cmd", "command", "buildenv_command", "img_convert"]
    static let pathAttributeRequired: Set<String> = ["cp", "buildenv_cp", "b2t_cp", "t2b_cp", "mv", "buildenv_mv", "t2p_mv", "ln"]

    mutating func checkAction(_ action: XMLElement, path: String) {
        let name = action.name.local
        if Self.textRequired.contains(name) && action.text.trimmingWhitespace().isEmpty {
            let what = ["command", "buildenv_command", "raw_cmd"].contains(name) ? "a command" :
                ["adduser", "addgroup"].contains(name) ? "a name" : ["purge"].contains(name) ? "a package name" : "a path"
            error(action.location, path, "<\(name)> is empty; it needs \(what)")
        }
        if Self.pathAttributeRequired.contains(name), let attribute = action.attribute("path"),
           attribute.value.trimmingWhitespace().isEmpty {
            error(attribute.location, path + "/@path", "<\(name) path=\"\"> is empty; it needs a path")
        }
        if name == "file", let dst = action.attribute("dst"), dst.value.trimmingWhitespace().isEmpty {
            error(dst.location, path + "/@dst", "<file dst=\"\"> is empty; it needs the destination path")
        }
        if name == "file", let mode = action.attributeValue("mode"), !mode.isEmpty,
           !(mode.allSatisfy { ("0"..."7").contains($0) } && (3...4).contains(mode.count)) {
            error(action.attribute("mode")?.location, path + "/@mode", "mode \"\(mode)\" is not an octal file mode such as 0644")
        }
        if name == "file", let encoding = action.attributeValue("encoding"), !["plain", "raw", "base64"].contains(encoding) {
            error(action.attribute("encoding")?.location, path + "/@encoding", "encoding \"\(encoding)\" is unknown; expected plain, raw or base64")
        }
        if name == "adduser" {
            for attribute in ["uid", "gid"] {
                if let value = action.attributeValue(attribute), Int(value) == nil {
                    error(action.attribute(attribute)?.location, path + "/@" + attribute, "\(attribute) \"\(value)\" is not a number")
                }
            }
        }
        if name == "addgroup", let gid = action.attributeValue("gid"), Int(gid) == nil {
            error(action.attribute("gid")?.location, path + "/@gid", "gid \"\(gid)\" is not a number")
        }
    }

    mutating func checkPackages(_ root: XMLElement, _ project: Project, rootPath: String) {
        root.forEachDescendant(path: rootPath) { element, path in
            guard element.name.local == "pkg-list" else { return }
            let isTargetList = path.hasPrefix(rootPath + "/target/pkg-list")
            ElementPath.forEachChild(element, path: path) { pkg, pkgPath in
                guard pkg.name.local == "pkg" else { return }
                if let arch = pkg.attribute("arch") {
                    self.checkPackageArchitecture(arch, of: pkg, path: pkgPath + "/@arch", project: project, inTargetList: isTargetList)
                }
                if pkg.text.trimmingWhitespace().isEmpty {
                    self.error(pkg.location, pkgPath, "<pkg> is empty; it needs a package name")
                } else if !Self.isPackageName(pkg.text.trimmingWhitespace()) {
                    self.error(pkg.textLocation, pkgPath, "\"\(pkg.text.trimmingWhitespace())\" is not a Debian package name (lowercase letters, digits, + - .)")
                }
                var kinds: [String] = []
                if pkg.attribute("version") != nil { kinds.append("version") }
                if pkg.attribute("origin") != nil { kinds.append("origin") }
                let release = pkg.attributes.map(\.name.local).filter { $0.hasPrefix("release-") || $0 == "pin" }
                if !release.isEmpty { kinds.append(release.joined(separator: "/")) }
                if kinds.count > 1 {
                    self.error(pkg.location, pkgPath, "conflicting pins on package \(pkg.text.trimmingWhitespace()): \(kinds.joined(separator: " and ")); use only one of version, origin or release-*")
                }
            }
        }
    }

    /// `<pkg arch>`: `all`, the target's architecture, or (in the target's pkg-list) another architecture Havel
    /// knows, installed through multiarch.
    mutating func checkPackageArchitecture(_ arch: XMLAttribute, of pkg: XMLElement, path: String, project: Project, inTargetList: Bool) {
        let value = arch.value.trimmingWhitespace()
        let name = pkg.text.trimmingWhitespace()
        guard value == "all" || Architecture(rawValue: value) != nil else {
            error(arch.location, path, "arch \"\(value)\" of package \(name) is not a Debian architecture Havel knows (all, "
                  + Architecture.allCases.map(\.debianName).joined(separator: ", ") + ")")
            return
        }
        // The initvm's packages are for the build VM, an amd64 machine; every other list is the target's architecture.
        let listArchitecture = path.hasPrefix("/RootFileSystem/initvm/") ? Architecture.amd64 : project.architecture
        guard let target = listArchitecture, value != "all", value != target.debianName else { return }
        if !inTargetList {
            error(arch.location, path, "package \(name) for \(value) in a list that is installed for \(target.debianName): only the target's "
                  + "<pkg-list> installs packages of another architecture (multiarch); remove arch, or move the package there")
        } else if let minimisation = project.target.minimisation {
            error(arch.location, path, "package \(name) for \(value) (multiarch) and <\(minimisation.rawValue)/>: the minimised target is chosen "
                  + "by package name and would mix the architectures; remove one of them")
        }
    }

    static func isPackageName(_ name: String) -> Bool {
        guard name.count >= 2, let first = name.first, first.isASCII, first.isLowercase || first.isNumber else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "+" || $0 == "-" || $0 == ".") }
    }
}

extension XMLElement {
    /// Calls `body` for this element's descendants (not itself), with their paths.
    func forEachDescendant(path: String, _ body: (XMLElement, String) -> Void) {
        ElementPath.forEachChild(self, path: path) { child, childPath in
            body(child, childPath)
            child.forEachDescendant(path: childPath, body)
        }
    }
}
