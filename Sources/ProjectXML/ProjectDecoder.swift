import HavelCore

/// Turns an ELBE element tree (after preprocessing) into the typed `Project`. Structure has already
/// been checked by `SchemaChecker`; this reads leniently and leaves meaning checks to `SemanticChecker`.
struct ProjectDecoder {
    static func decode(_ root: XMLElement) -> Project {
        var project = Project()
        if let p = root.firstElement(named: "project") {
            project.name = p.value("name") ?? ""
            project.version = p.value("version") ?? ""
            project.description = p.value("description")
            project.buildtype = p.value("buildtype") ?? ""
            project.architecture = Architecture(buildtype: project.buildtype)
            project.suite = p.value("suite") ?? ""
            if let mirror = p.firstElement(named: "mirror") {
                project.mirror = decodeMirror(mirror, noauth: p.firstElement(named: "noauth") != nil)
            }
            project.preferences = p.elements(named: "preference").map {
                AptPreference(pin: $0.attributeValue("pin") ?? "", priority: Int($0.text.trimmingWhitespace()) ?? 0)
            }
            project.rawPreference = p.firstElement(named: "raw-preference")?.text
            project.preseed = decodePreseed(p.firstElement(named: "preseed"))
            if let b = p.firstElement(named: "buildimage") {
                project.buildimage = BuildImage(arch: b.value("arch"), size: b.value("size"),
                                                interpreter: b.value("interpreter"), console: b.value("console"),
                                                machine: b.value("machine"),
                                                packages: decodePackages(b.elements(named: "pkg-list")))
                project.buildimage?.triplet = b.value("triplet")
            }
        }
        if let t = root.firstElement(named: "target") {
            project.target = decodeTarget(t)
        }
        project.archive = root.firstElement(named: "archive")?.text.trimmingWhitespace()
        if let cdrom = root.firstElement(named: "src-cdrom") {
            project.sourceCdrom = true
            project.sourceCdromArchives = cdrom.elements(named: "archive").map {
                SourceCdromArchive(base64: $0.text.trimmingWhitespace(), volume: $0.attributeValue("volume"), location: $0.location)
            }
        }
        if let list = root.firstElement(named: "check-image-list") {
            project.checks = list.elements(named: "check").map(decodeCheck)
            project.checkScript = list.firstElement(named: "check-script").map { CheckScript(text: $0.text, location: $0.location) }
        }
        if let initvm = root.firstElement(named: "initvm") {
            project.initvm = decodeInitVM(initvm)
        }
        for (element, isBuildEnvironment) in [("fullpkgs", false), ("debootstrappkgs", true)] {
            guard let list = root.firstElement(named: element) else { continue }
            let packages = list.elements(named: "pkg").map { pkg in
                var pinned = PinnedPackage(name: pkg.text.trimmingWhitespace(), version: pkg.attributeValue("version") ?? "",
                                           arch: pkg.attributeValue("arch"), sha256: pkg.attributeValue("sha256"),
                                           auto: pkg.attributeValue("auto") == "true",
                                           sourceName: pkg.attributeValue("source-name"),
                                           sourceVersion: pkg.attributeValue("source-version"))
                pinned.md5 = pkg.attributeValue("md5")
                pinned.releaseOrigin = pkg.attributeValue("release-origin")
                pinned.releaseName = pkg.attributeValue("release-name")
                pinned.uri = pkg.attributeValue("uri")
                pinned.priority = pkg.attributeValue("prio")
                return pinned
            }
            if isBuildEnvironment { project.buildEnvironmentPackages = packages } else { project.fullPackages = packages }
        }
        return project
    }

    static func decodeMirror(_ m: XMLElement, noauth: Bool) -> Mirror {
        var mirror = Mirror(noauth: noauth)
        if let host = m.value("primary_host") {
            mirror.primary = PrimaryMirror(host: host, path: m.value("primary_path") ?? "",
                                           proto: m.value("primary_proto") ?? "http",
                                           key: m.firstElement(named: "primary_key")?.text.trimmingWhitespace(),
                                           proxy: m.value("primary_proxy"))
        }
        mirror.options = options(m.firstElement(named: "options"))
        mirror.cdrom = m.value("cdrom")
        for list in m.elements(named: "url-list") {
            for url in list.elements(named: "url") {
                let binary = url.firstElement(named: "binary")
                mirror.urls.append(MirrorURL(binary: url.value("binary"), source: url.value("source"),
                                             rawKey: url.firstElement(named: "raw-key")?.text,
                                             options: options(url.firstElement(named: "options")),
                                             pin: binary?.attributeValue("pin")?.trimmingWhitespace(),
                                             pinnedPackages: binary?.attributeValue("package")?.trimmingWhitespace(),
                                             location: url.location))
            }
        }
        return mirror
    }

    static func options(_ element: XMLElement?) -> [String] {
        element?.elements(named: "option").map { $0.text.trimmingWhitespace() }.filter { !$0.isEmpty } ?? []
    }

    static func decodePackages(_ lists: [XMLElement]) -> [PackageSpec] {
        lists.flatMap { $0.elements(named: "pkg") }.map { pkg in
            var spec = PackageSpec(name: pkg.text.trimmingWhitespace(), pin: pin(of: pkg), location: pkg.location)
            spec.onSourceCdrom = pkg.attributeValue("on_src_cd") != "False"
            spec.architecture = pkg.attributeValue("arch")?.trimmingWhitespace()
            return spec
        }
    }

    static let releaseKeys = ["release-name", "release-archive", "release-version", "release-component",
                              "release-origin", "release-label"]

    static func pin(of pkg: XMLElement) -> PackageSpec.Pin? {
        if let version = pkg.attributeValue("version") { return .version(version) }
        if let origin = pkg.attributeValue("origin") { return .origin(origin) }
        var release: [String: String] = [:]
        for key in releaseKeys {
            if let value = pkg.attributeValue(key) { release[String(key.dropFirst("release-".count))] = value }
        }
        if let legacy = pkg.attributeValue("pin"), release["name"] == nil { release["name"] = legacy }
        return release.isEmpty ? nil : .release(release)
    }

    static func decodeTarget(_ t: XMLElement) -> Target {
        var target = Target()
        target.hostname = t.value("hostname") ?? ""
        target.domain = t.value("domain")
        target.passwdHashed = t.value("passwd_hashed")
        target.console = t.value("console")
        if let d = t.firstElement(named: "debootstrap") {
            target.debootstrap = DebootstrapSpec(
                variant: d.value("variant"), include: commaList(d.value("include")),
                exclude: commaList(d.value("exclude")),
                tool: d.value("type").flatMap(DebootstrapSpec.Tool.init(rawValue:)))
        }
        target.packages = decodePackages(t.elements(named: "pkg-list"))
        // As ELBE: the element's presence counts, not its text; diet includes what tighten keeps.
        if t.firstElement(named: "diet") != nil {
            target.minimisation = .diet
        } else if t.firstElement(named: "tighten") != nil {
            target.minimisation = .tighten
        }
        target.setSelections = t.firstElement(named: "setsel") != nil
        target.hostSDKPackages = decodePackages(t.elements(named: "hostsdk-pkg-list")).map(\.name)
        target.sysrootBlacklist = t.elements(named: "pkg-blacklist").flatMap { $0.elements(named: "sysroot") }
            .flatMap { decodePackages([$0]).map(\.name) }
        if let r = t.value("install-recommends") {
            target.installRecommends = r != "false" && r != "0"
        } else {
            target.installRecommends = t.firstElement(named: "install-recommends") != nil
        }
        if let package = t.firstElement(named: "package") {
            let tar = package.firstElement(named: "tar")
            let squashfs = package.firstElement(named: "squashfs")
            target.outputs = RootfsOutputs(
                tar: tar.map { $0.value("name") ?? "" }, tarOptions: tar?.value("options"),
                cpio: package.firstElement(named: "cpio").map { $0.value("name") ?? "" },
                squashfs: squashfs.map { $0.value("name") ?? "" }, squashfsOptions: squashfs?.value("options"),
                baseImage: package.firstElement(named: "base-image").map { $0.value("name") ?? "" })
        }
        if let images = t.firstElement(named: "images") {
            for element in images.elements where element.name.local == "msdoshd" || element.name.local == "gpthd" {
                target.images.append(decodeImage(element))
            }
            target.mtdImages = images.elements(named: "mtd").map(decodeMtd)
        }
        if let fstab = t.firstElement(named: "fstab") {
            target.fstab = fstab.elements.compactMap(decodeFstab)
        }
        for list in t.elements(named: "finetuning") {
            target.finetuning += list.elements.compactMap(decodeFinetuning)
        }
        for list in t.elements(named: "project-finetuning") {
            target.projectFinetuning += list.elements.compactMap(decodeFinetuning)
        }
        if let pbuilder = t.firstElement(named: "pbuilder") {
            target.ownPackages = decodeOwnPackages(pbuilder)
        }
        return target
    }

    /// `target/pbuilder` children in document order; `<svn>` is refused by the ledger and left out here,
    /// and an `<archivedir>` has been packed into an `<archive>` on the client.
    static func decodeOwnPackages(_ pbuilder: XMLElement) -> [OwnPackageSource] {
        pbuilder.elements.compactMap { element in
            let text = element.text.trimmingWhitespace()
            switch element.name.local {
            case "git":
                let revision = element.attributeValue("revision")?.trimmingWhitespace()
                return OwnPackageSource(.git(url: text, revision: revision?.isEmpty == false ? revision : nil), location: element.location)
            case "src-pkg":
                let parts = text.split(separator: "=", maxSplits: 1).map { $0.trimmingWhitespace() }
                return OwnPackageSource(.sourcePackage(name: parts.first ?? "", version: parts.count > 1 && !parts[1].isEmpty ? parts[1] : nil),
                                        location: element.location)
            case "archive":
                return OwnPackageSource(.archive(base64: text), location: element.location)
            default:
                return nil
            }
        }
    }

    static func commaList(_ text: String?) -> [String] {
        (text ?? "").split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
    }

    static func decodeImage(_ e: XMLElement) -> DiskImage {
        let table: DiskImage.Table = e.name.local == "gpthd" ? .gpt : .msdos
        var image = DiskImage(table: table, name: e.value("name") ?? "",
                              size: e.value("size").flatMap { SizeSpec(parsing: $0) } ?? .bytes(0),
                              location: e.location)
        if let first = e.value("first_partition_sector"), let n = UInt64(first) { image.firstPartitionSector = n }
        if let grub = e.firstElement(named: "grub-install") { image.grubInstall = grub.text.trimmingWhitespace() }
        image.partitions = e.elements(named: "partition").map(decodePartition)
        if let ext = e.firstElement(named: "extended") {
            image.extended = ExtendedPartition(size: ext.value("size").flatMap { SizeSpec(parsing: $0) } ?? .bytes(0),
                                               logical: ext.elements(named: "logical").map(decodePartition),
                                               location: ext.location)
        }
        image.binaries = e.elements(named: "binary").map {
            BinaryBlob(path: $0.text.trimmingWhitespace(), offset: UInt64($0.attributeValue("offset") ?? "") ?? 0,
                       blockSize: UInt64($0.attributeValue("blocksize") ?? "") ?? 1)
        }
        return image
    }

    static func decodeMtd(_ e: XMLElement) -> MtdImage {
        var mtd = MtdImage(name: e.value("name") ?? "", number: e.value("nr").flatMap { Int($0) } ?? -1,
                           size: e.value("size").flatMap { SizeSpec(parsing: $0) } ?? .bytes(0), binary: e.value("binary"),
                           location: e.location)
        if let vg = e.firstElement(named: "ubivg") {
            mtd.volumeGroup = UbiVolumeGroup(
                label: vg.value("label") ?? "", minIOSize: vg.value("miniosize") ?? "",
                logicalEraseBlockSize: vg.value("logicaleraseblocksize") ?? "",
                physicalEraseBlockSize: vg.value("physicaleraseblocksize") ?? "",
                maxLogicalEraseBlockCount: vg.value("maxlogicaleraseblockcount") ?? "", subpageSize: vg.value("subpagesize"),
                volumes: vg.elements(named: "ubi").map { ubi in
                    UbiVolume(kind: UbiVolume.Kind(rawValue: ubi.value("type") ?? "") ?? .dynamic, label: ubi.value("label") ?? "",
                              id: ubi.value("id").flatMap { Int($0) } ?? -1, size: ubi.value("size").flatMap { SizeSpec(parsing: $0) },
                              binary: ubi.value("binary"), empty: ubi.firstElement(named: "empty") != nil, location: ubi.location)
                },
                location: vg.location)
        }
        return mtd
    }

    static func decodePartition(_ e: XMLElement) -> Partition {
        Partition(size: e.value("size").flatMap { SizeSpec(parsing: $0) } ?? .bytes(0), label: e.value("label") ?? "",
                  name: e.value("name"), binary: e.value("binary"),
                  bootable: e.firstElement(named: "bootable") != nil, biosgrub: e.firstElement(named: "biosgrub") != nil,
                  location: e.location)
    }

    static func decodeFstab(_ e: XMLElement) -> FstabEntry? {
        let source: FstabEntry.Source
        switch e.name.local {
        case "bylabel": source = .label(e.value("label") ?? "")
        case "bydev": source = .device(e.value("source") ?? "")
        default: return nil
        }
        let fs = e.firstElement(named: "fs")
        let tuning = fs?.firstElement(named: "fs-finetuning")
        let filesystem = Filesystem(type: fs?.value("type") ?? "", mkfsOptions: fs?.value("mkfs"),
                                    deviceCommands: tuning?.elements(named: "device-command").map { $0.text.trimmingWhitespace() } ?? [],
                                    pathCommands: tuning?.elements(named: "path-command").map { $0.text.trimmingWhitespace() } ?? [],
                                    passno: fs?.value("passno").flatMap { Int($0) })
        return FstabEntry(source: source, mountpoint: e.value("mountpoint") ?? "", filesystem: filesystem,
                          options: e.value("options"), noFstab: e.firstElement(named: "nofstab") != nil,
                          location: e.location)
    }

    static func bool(_ value: String?, default fallback: Bool) -> Bool {
        guard let value = value?.trimmingWhitespace() else { return fallback }
        return value == "true" || value == "1"
    }

    static func decodeFinetuning(_ e: XMLElement) -> FinetuningStep? {
        let text = e.text.trimmingWhitespace()
        let path = e.attributeValue("path") ?? ""
        let action: FinetuningAction
        switch e.name.local {
        case "rm": action = .remove(pattern: text, exclude: commaList(e.attributeValue("exclude")))
        case "mkdir": action = .makeDirectory(path: text, in: .target)
        case "buildenv_mkdir": action = .makeDirectory(path: text, in: .buildenv)
        case "mknod": action = .makeNode(path: text, options: e.attributeValue("opts") ?? "")
        case "cp": action = .copy(from: path, to: text, source: .target, destination: .target)
        case "buildenv_cp": action = .copy(from: path, to: text, source: .buildenv, destination: .buildenv)
        case "b2t_cp": action = .copy(from: path, to: text, source: .buildenv, destination: .target)
        case "t2b_cp": action = .copy(from: path, to: text, source: .target, destination: .buildenv)
        case "mv": action = .move(from: path, to: text, source: .target, destination: .target)
        case "buildenv_mv": action = .move(from: path, to: text, source: .buildenv, destination: .buildenv)
        case "t2p_mv": action = .move(from: path, to: text, source: .target, destination: .project)
        case "ln": action = .link(target: path, link: text)
        case "adduser":
            action = .addUser(UserSpec(
                name: text, shell: e.attributeValue("shell") ?? "/bin/sh",
                passwdHashed: e.attributeValue("passwd_hashed"),
                groups: commaList(e.attributeValue("groups")),
                uid: e.attributeValue("uid").flatMap { Int($0) }, gid: e.attributeValue("gid").flatMap { Int($0) },
                home: e.attributeValue("home"), system: bool(e.attributeValue("system"), default: false),
                createHome: bool(e.attributeValue("create_home"), default: true),
                createGroup: bool(e.attributeValue("create_group"), default: true)))
        case "addgroup":
            action = .addGroup(name: text, gid: e.attributeValue("gid").flatMap { Int($0) },
                               system: bool(e.attributeValue("system"), default: false))
        case "file":
            action = .file(FileSpec(destination: e.attributeValue("dst") ?? "", content: e.text,
                                    encoding: FileSpec.Encoding(rawValue: e.attributeValue("encoding") ?? "plain") ?? .plain,
                                    append: bool(e.attributeValue("append"), default: false),
                                    owner: e.attributeValue("owner"), group: e.attributeValue("group"),
                                    mode: e.attributeValue("mode")))
        case "raw_cmd": action = .rawCommand(text)
        case "command": action = .command(e.text, in: .target)
        case "buildenv_command": action = .command(e.text, in: .buildenv)
        case "purge": action = .purge(package: text)
        case "updated": action = .updated(text)
        case "artifact": action = .artifact(path: text, in: .target)
        case "rm_artifact": action = .removeArtifact(path: text)
        case "rm_apt_source": action = .removeAptSource(text)
        case "set_packer": action = .setPacker(e.attributeValue("packer") ?? "")
        case "img_convert":
            action = .imageConvert(source: text, destination: e.attributeValue("dst") ?? "",
                                   format: e.attributeValue("fmt") ?? "",
                                   keepSource: bool(e.attributeValue("keep_src"), default: false))
        case "losetup":
            action = .losetup(image: e.attributeValue("img") ?? "", actions: e.elements.compactMap(decodeImageAction))
        default: return nil
        }
        return FinetuningStep(action, location: e.location)
    }

    static func decodeImageAction(_ e: XMLElement) -> ImageAction? {
        let part = Int(e.attributeValue("part") ?? "") ?? 0
        let text = e.text.trimmingWhitespace()
        switch e.name.local {
        case "extract_partition": return .extractPartition(partition: part, artifact: text)
        case "copy_from_partition": return .copyFromPartition(partition: part, path: text, artifact: e.attributeValue("artifact") ?? "")
        case "copy_to_partition": return .copyToPartition(partition: part, artifact: e.attributeValue("artifact") ?? "", path: text)
        case "set_partition_type": return .setPartitionType(partition: part, type: e.attributeValue("type") ?? "")
        case "command": return .command(partition: part, script: e.text, mount: !bool(e.attributeValue("nomount"), default: false))
        default: return nil
        }
    }

    static func decodeCheck(_ e: XMLElement) -> ImageCheck {
        let actionElement = e.firstElement(named: "action")
        var action = ImageCheck.Action.serial([])
        if let login = actionElement?.firstElement(named: "login") {
            action = .login(password: login.text.trimmingWhitespace())
        } else if let serial = actionElement?.firstElement(named: "serial") {
            action = .serial(serial.elements.compactMap { step in
                switch step.name.local {
                case "expect": .expect(step.text.trimmingWhitespace())
                case "sendline": .sendline(step.text.trimmingWhitespace())
                case "EOF": .eof
                default: nil
                }
            })
        }
        let firmware = e.firstElement(named: "interpreter-firmware").map { f in
            FirmwareRequest(architecture: f.attributeValue("architecture") ?? "", machine: f.attributeValue("machine") ?? "",
                            interfaceTypes: f.attributeValue("interface_types") ?? "", features: f.attributeValue("features") ?? "")
        }
        return ImageCheck(image: e.value("img") ?? "", interpreter: e.value("interpreter") ?? "",
                          interpreterOptions: e.value("interpreter-opts") ?? "", action: action, firmware: firmware, location: e.location)
    }

    static func decodeInitVM(_ e: XMLElement) -> InitVMSpec {
        var spec = InitVMSpec(suite: e.value("suite"), buildtype: e.value("buildtype"),
                              packages: decodePackages(e.elements(named: "pkg-list")),
                              size: e.value("size"), memory: e.value("mem"),
                              maxCPUs: e.value("max-cpus").flatMap { Int($0) })
        if let mirror = e.firstElement(named: "mirror") {
            spec.mirror = decodeMirror(mirror, noauth: e.firstElement(named: "noauth") != nil)
        }
        spec.portForwards = e.firstElement(named: "portforwarding")?.elements(named: "forward").compactMap { f in
            guard let guest = f.value("buildenv").flatMap({ Int($0) }), let host = f.value("host").flatMap({ Int($0) })
            else { return nil }
            return PortForward(proto: f.value("proto") ?? "tcp", guestPort: guest, hostPort: host)
        } ?? []
        spec.finetuningCommands = e.firstElement(named: "finetuning")?.elements(named: "command").map(\.text) ?? []
        spec.preseed = decodePreseed(e.firstElement(named: "preseed"))
        spec.preferences = e.elements(named: "preference").map {
            AptPreference(pin: $0.attributeValue("pin") ?? "", priority: Int($0.text.trimmingWhitespace()) ?? 0)
        }
        spec.swapSize = e.value("swap-size")
        spec.imageFormat = e.value("img")
        return spec
    }

    static func decodePreseed(_ preseed: XMLElement?) -> [DebconfSelection] {
        preseed?.elements(named: "conf").map { conf in
            DebconfSelection(owner: conf.attributeValue("owner") ?? "", key: conf.attributeValue("key") ?? "",
                             type: conf.attributeValue("type") ?? "", value: conf.attributeValue("value") ?? "", location: conf.location)
        } ?? []
    }
}

extension XMLElement {
    /// The trimmed text of the first child element named `local`, or nil when there is none.
    func value(_ local: String) -> String? {
        firstElement(named: local)?.text.trimmingWhitespace()
    }
}
