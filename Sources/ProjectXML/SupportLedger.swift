// SupportLedger: what Havel does with every element and attribute of ELBE's schema (`ElbeSchema`), in one
// table. An item is built, accepted with a documented difference, or not built; `SchemaChecker` warns on
// every not-built item a project uses (an error with --strict) and records it, and a build refuses those
// that change its output unless asked to go on. The README's list of what Havel does not build is
// printed from this table (`havel ledger`), and a test keeps every schema entry classified.
import HavelCore

/// What Havel does with one element or attribute of ELBE's schema.
public enum Support: Sendable, Equatable {
    /// Havel builds it as ELBE does.
    case built
    /// Accepted; Havel's result differs from ELBE's as said.
    case differs(String)
    /// Not built: what happens instead, and whether leaving it out changes the build's output (then a
    /// build refuses the project unless `--allow-unsupported`).
    case notBuilt(String, changesOutput: Bool)

    /// Built, as ELBE does or with a difference.
    var isBuilt: Bool {
        if case .notBuilt = self { return false }
        return true
    }
}

/// One use of a not-built item in a project file.
public struct UnsupportedUse: Sendable, Hashable {
    public var location: SourceLocation
    public var path: String
    /// `<tighten>` or `<binary pin="…">`.
    public var item: String
    public var instead: String
    public var changesOutput: Bool

    public var message: String {
        "\(item) is not built by Havel: \(instead)"
    }
}

public enum SupportLedger {
    /// The ledger's key for a child element (`target/tighten`) or an attribute (`binary-url/@pin`) of a schema type.
    static func key(type: String, child: String) -> String { type + "/" + child }
    static func key(type: String, attribute: String) -> String { type + "/@" + attribute }

    static func support(type: String, child: String) -> Support? { entries[key(type: type, child: child)] }
    static func support(type: String, attribute: String) -> Support? { entries[key(type: type, attribute: attribute)] }

    // Reasons shared by several entries.
    private static let elbeRecord = Support.differs("ELBE writes it into source.xml as a record of a build; Havel reads it as a record only and writes its own source.xml")
    private static let buildImage = Support.differs("describes the emulated machine ELBE builds in; Havel runs target programs through qemu-user and does not use it")
    private static let svn = Support.notBuilt("Subversion sources are not fetched; give the tree as <git> or <archive>/<archivedir>", changesOutput: true)
    private static let srcCdromSplit = Support.notBuilt("the source CD is one ISO image (src-cdrom.iso), never split into volumes", changesOutput: false)
    private static let srcCdromOptions = Support.notBuilt("the source CD's ISO volume descriptors are Havel's (volume id: the project name)", changesOutput: false)
    private static let srcCdromArchivedir = Support.notBuilt("a source CD's <archivedir> is not packed (planned); give the files as <src-cdrom><archive>", changesOutput: true)
    private static let minimisedTarget = Support.differs("the target also keeps the /etc files no package owns (passwd, group, shadow… made by maintainer scripts), which ELBE leaves out")

    /// Every child and attribute of every type in `ElbeSchema.types`, and nothing else (a test checks both).
    static let entries: [String: Support] = [
        // The root
        "RootFileSystem/initvm": .built, "RootFileSystem/project": .built,
        "RootFileSystem/check-image-list": .built, "RootFileSystem/target": .built,
        "RootFileSystem/archive": .built,
        "RootFileSystem/debootstrappkgs": elbeRecord, "RootFileSystem/initvmpkgs": elbeRecord,
        "RootFileSystem/initvm_sources_list": elbeRecord, "RootFileSystem/initvm_apt_prefs": elbeRecord,
        "RootFileSystem/sources_list": elbeRecord, "RootFileSystem/apt_prefs": elbeRecord,
        "RootFileSystem/elbe_version": elbeRecord,
        "RootFileSystem/fullpkgs": .notBuilt("the versions it lists are not installed; the pkg-list is resolved against the mirror (pin a version with <pkg version=\"…\">)", changesOutput: false),
        "RootFileSystem/src-cdrom": .built,
        "RootFileSystem/archivedir": .built,
        "RootFileSystem/@created": .built, "RootFileSystem/@revision": .built,

        // Mirrors
        "mirror/options": .built, "mirror/primary_host": .built, "mirror/primary_path": .built,
        "mirror/primary_proto": .built, "mirror/primary_key": .built,
        "mirror/primary_proxy": .built,
        "mirror/cdrom": .differs("a binary CD at an absolute path (an ISO image, read with xorriso, or a directory holding its files), signed by its own archive-key.asc or Debian's keyring, is one more package source while installing; its line is not left in the target (ELBE writes copy:///cdrom/targetrepo there), and the daemon refuses it"),
        "mirror/host": .notBuilt("the SDK's host tools come from the primary mirror, not from this one", changesOutput: false),
        "mirror/host_key": .notBuilt("the SDK's host tools come from the primary mirror, checked with its keys", changesOutput: false),
        "mirror/url-list": .built,
        "mirror-options/option": .built,
        "url-list/url": .built,
        "url/binary": .built, "url/source": .built, "url/raw-key": .built, "url/options": .built,
        "url/key": .built,
        "binary-url/@pin": .built,
        "binary-url/@package": .built,

        // The initvm
        "initvm/buildtype": .built, "initvm/mirror": .built, "initvm/noauth": .built, "initvm/preference": .built,
        "initvm/suite": .built, "initvm/pkg-list": .built, "initvm/preseed": .built, "initvm/size": .built,
        "initvm/mem": .built, "initvm/swap-size": .built, "initvm/max-cpus": .built, "initvm/img": .built,
        "initvm/portforwarding": .built, "initvm/finetuning": .built,
        "initvm-finetuning/command": .built,
        "portforwarding/forward": .built,
        "forward/proto": .built, "forward/buildenv": .built, "forward/host": .built,

        // The project
        "project/name": .built, "project/version": .built, "project/description": .built,
        "project/buildtype": .built, "project/mirror": .built, "project/noauth": .built,
        "project/preference": .built, "project/raw-preference": .built, "project/suite": .built,
        "project/buildimage": .built, "project/preseed": .built,
        "preference/@pin": .built,
        "buildimage/arch": buildImage, "buildimage/size": buildImage, "buildimage/interpreter": buildImage,
        "buildimage/interpreterversion": buildImage, "buildimage/kinitrd": buildImage,
        "buildimage/console": buildImage, "buildimage/machine": buildImage, "buildimage/NIC": buildImage,
        "buildimage/portforwarding": buildImage,
        "buildimage/triplet": .built,
        "buildimage/pkgversionlist": .notBuilt("the version list is not read; pin versions with <pkg version=\"…\">", changesOutput: true),
        "buildimage/pkg-list": .built,
        "NIC/model": buildImage, "NIC/MAC": buildImage,
        "preseed/conf": .built,
        "conf/@owner": .built, "conf/@key": .built, "conf/@type": .built, "conf/@value": .built,

        // Package lists
        "pkg-list/pkg": .built,
        "fullpkg-list/pkg": elbeRecord,
        "blacklist/sysroot": .built,
        "pkg/@origin": .built, "pkg/@release-name": .built, "pkg/@release-archive": .built,
        "pkg/@release-version": .built, "pkg/@release-component": .built, "pkg/@release-origin": .built,
        "pkg/@release-label": .built, "pkg/@pin": .built, "pkg/@version": .built,
        "pkg/@uri": elbeRecord, "pkg/@auto": elbeRecord, "pkg/@md5": elbeRecord, "pkg/@sha1": elbeRecord,
        "pkg/@sha256": elbeRecord, "pkg/@sha512": elbeRecord, "pkg/@prio": elbeRecord,
        "pkg/@source-name": elbeRecord, "pkg/@source-version": elbeRecord,
        "pkg/@arch": .built,
        "pkg/@on_src_cd": .built,

        // Checks
        "check-image-list/check": .built,
        "check-image-list/check-script": .built,
        "check-img/img": .built, "check-img/interpreter": .built, "check-img/interpreter-opts": .built,
        "check-img/action": .built,
        "check-img/interpreter-firmware": .differs("chosen from qemu's firmware descriptors as ELBE chooses it; a fresh copy of its variables template is attached for each boot, which ELBE leaves out"),
        "interpreter-firmware/@architecture": .built, "interpreter-firmware/@machine": .built,
        "interpreter-firmware/@interface_types": .built, "interpreter-firmware/@features": .built,
        "check-img-action/login": .built, "check-img-action/serial": .built,
        "serial/expect": .built, "serial/sendline": .built, "serial/EOF": .built,
        "check-script/@location": .differs("read into the project by preprocessing, as ELBE does, but only a plain relative name inside the project file's directory (ELBE reads any path)"),

        // The target
        "target/hostname": .built, "target/domain": .built, "target/passwd_hashed": .built,
        "target/console": .built, "target/debootstrap": .built, "target/package": .built,
        "target/images": .built, "target/fstab": .built, "target/install-recommends": .built,
        "target/finetuning": .built, "target/project-finetuning": .built, "target/pkg-list": .built,
        "target/passwd": .built, "target/debootstrapvariant": .built,
        "target/tighten": minimisedTarget, "target/diet": minimisedTarget,
        "target/setsel": .differs("the pkg-list reaches dpkg --set-selections on its standard input and leaves no file in the target; ELBE writes var/cache/elbe/pkg-selections and passes its name, which dpkg refuses (--set-selections takes no arguments)"),
        "target/pbuilder": .built,
        "target/pkg-blacklist": .built,
        "target/hostsdk-pkg-list": .differs("the SDK's host part (havel build --sdk) holds these packages and patchelf, which its installer relocates with; without the list: the cross compiler, gdb-multiarch, CMake, make and pkgconf (ELBE's default has the first two)"),
        "debootstrap/variant": .built, "debootstrap/include": .built, "debootstrap/exclude": .built,
        "debootstrap/type": .built,
        "debootstrapvarianttype/@includepkgs": .built,
        "package/tar": .built, "package/cpio": .built, "package/squashfs": .built,
        "package/base-image": .differs("written as ELBE writes it, a second tarball of the tree without the <tar> options; Havel compresses by the name's suffix (.tar, .tar.gz, .tar.xz, .tar.bz2, .tar.zst) and gzips a name without one, as ELBE gzips every name"),
        "tar/name": .built,
        "tar/options": .differs("passed to tar after Havel's own (sorted names, clamped times, compression by name); only options that choose what is packed or how are accepted, others are refused at their line"),
        "base-image/name": .built,
        "cpio/name": .built, "squashfs/name": .built, "squashfs/options": .differs("passed to mksquashfs after Havel's fixed times; options that read or run something on the build host (-p, -pf, -ef, -sort, -action…) are refused at their line"),
        "pbuilder/src-pkg": .differs("all <pbuilder> sources are built in Build-Depends order (ELBE: document order) into the signed project repository repo/; a src-pkg is downloaded from the project's deb-src lines (the mirror's and url-list sources)"), "pbuilder/git": .differs("https, http, git and file URLs only"), "pbuilder/svn": svn,
        "pbuilder/archive": .built, "pbuilder/archivedir": .differs("each is packed on the client into its own <archive> (ELBE combines them into one)"),
        "git_src/@revision": .built, "svn_src/@revision": svn,

        // Disk images
        "images/mtd": .differs("a UBI image made by mkfs.ubifs and ubinize as ELBE does, made reproducible (seeded UUID and image sequence, inode times at the epoch, the tree read from a tmpfs filled in name order)"),
        "images/msdoshd": .built, "images/gpthd": .built,
        "images/passno": .notBuilt("fstab pass numbers come from each <fs><passno>", changesOutput: true),
        "mtd/name": .built, "mtd/nr": .built, "mtd/size": .built, "mtd/ubivg": .built,
        "mtd/binary": .notBuilt("ignored, as ELBE ignores it; content goes into <ubi><binary> volumes", changesOutput: false),
        "ubivg/label": .built, "ubivg/miniosize": .built, "ubivg/maxlogicaleraseblockcount": .built,
        "ubivg/logicaleraseblocksize": .built, "ubivg/physicaleraseblocksize": .built, "ubivg/subpagesize": .built,
        "ubivg/ubi": .built,
        "ubi/type": .built, "ubi/label": .built, "ubi/id": .built, "ubi/size": .built,
        "ubi/binary": .differs("`/x` is read from the target tree (ELBE: from its build environment), confined to it with links resolved inside; a relative name from the build directory, as ELBE; no glob"),
        "ubi/empty": .differs("a dynamic volume is left without content; a static one holds the 5 bytes `EMPTY` (ubinize needs content), which ELBE writes into every empty volume"),
        "msdoshd/name": .built, "msdoshd/size": .built, "msdoshd/first_partition_sector": .built,
        "msdoshd/grub-install": .built, "msdoshd/binary": .built, "msdoshd/partition": .built,
        "msdoshd/extended": .built,
        "gpthd/name": .built, "gpthd/size": .built, "gpthd/first_partition_sector": .built,
        "gpthd/grub-install": .built, "gpthd/binary": .built, "gpthd/partition": .built,
        "binaryblob/@offset": .built, "binaryblob/@blocksize": .built,
        "partition/size": .built, "partition/label": .built, "partition/name": .built,
        "partition/binary": .built, "partition/bootable": .built, "partition/biosgrub": .built,
        "extended/size": .built, "extended/logical": .built,

        // fstab and filesystems
        "fstab/bylabel": .built, "fstab/bydev": .built,
        "bylabel/label": .built, "bylabel/mountpoint": .built, "bylabel/fs": .built,
        "bylabel/options": .built, "bylabel/nofstab": .built,
        "bydev/source": .built, "bydev/mountpoint": .built, "bydev/fs": .built, "bydev/options": .built,
        "fs/type": .built, "fs/mkfs": .built, "fs/fs-finetuning": .built, "fs/passno": .built, "fs/tune2fs": .built,
        "fs-finetuning/device-command": .built, "fs-finetuning/path-command": .built,

        // Finetuning
        "finetuning/addgroup": .built, "finetuning/adduser": .built, "finetuning/file": .built,
        "finetuning/rm": .built, "finetuning/cp": .built, "finetuning/ln": .built,
        "finetuning/buildenv_cp": .built, "finetuning/b2t_cp": .built, "finetuning/t2b_cp": .built,
        "finetuning/mv": .built, "finetuning/buildenv_mv": .built, "finetuning/t2p_mv": .built,
        "finetuning/mkdir": .built, "finetuning/buildenv_mkdir": .built, "finetuning/mknod": .built,
        "finetuning/purge": .built, "finetuning/raw_cmd": .built, "finetuning/command": .built,
        "finetuning/buildenv_command": .built, "finetuning/artifact": .built, "finetuning/rm_apt_source": .built,
        "finetuning/updated": .notBuilt("no repository of the installed packages is kept for `elbe updated`; the step is skipped", changesOutput: false),
        "addgroup/@gid": .built, "addgroup/@system": .built,
        "adduser/@shell": .built, "adduser/@passwd_hashed": .built, "adduser/@groups": .built,
        "adduser/@uid": .built, "adduser/@gid": .built, "adduser/@home": .built, "adduser/@system": .built,
        "adduser/@create_home": .built, "adduser/@create_group": .built, "adduser/@passwd": .built,
        "file/@dst": .built, "file/@encoding": .built, "file/@append": .built, "file/@owner": .built,
        "file/@group": .built, "file/@mode": .built,
        "rm/@exclude": .built,
        "cpmv/@path": .built,
        "mknod/@opts": .built,

        // Project finetuning
        "project-finetuning/t2p_mv": .built, "project-finetuning/artifact": .built,
        "project-finetuning/rm_artifact": .built, "project-finetuning/losetup": .built,
        "project-finetuning/img_convert": .built, "project-finetuning/set_packer": .built,
        "losetup/extract_partition": .built, "losetup/copy_from_partition": .built,
        "losetup/copy_to_partition": .built, "losetup/set_partition_type": .built, "losetup/command": .built,
        "losetup/@img": .built,
        "extract_partition/@part": .built,
        "copy_from_partition/@part": .built, "copy_from_partition/@artifact": .built,
        "copy_to_partition/@part": .built, "copy_to_partition/@artifact": .built,
        "set_partition_type/@part": .built, "set_partition_type/@type": .built,
        "partition-command/@part": .built, "partition-command/@nomount": .built,
        "img_convert/@dst": .built, "img_convert/@fmt": .built, "img_convert/@keep_src": .built,
        "set_packer/@packer": .built,

        // The source CD and archive directories
        "src-cdrom/size": srcCdromSplit, "src-cdrom/src-opts": srcCdromOptions, "src-cdrom/archive": .built,
        "src-cdrom/archivedir": srcCdromArchivedir,
        "iso-opts/abstract": srcCdromOptions, "iso-opts/app": srcCdromOptions, "iso-opts/biblio": srcCdromOptions,
        "iso-opts/copyright": srcCdromOptions, "iso-opts/publisher": srcCdromOptions, "iso-opts/preparer": srcCdromOptions,
        "iso-opts/sysid": srcCdromOptions, "iso-opts/volid": srcCdromOptions, "iso-opts/volset": srcCdromOptions,
        "iso-opts/@strict": srcCdromOptions,
        "src-cdrom-archive/@volume": .differs("the source CD is one volume: an archive for all, 0 or -1 is unpacked onto it, one for other volumes only is left out with a warning"),
        "archivedir/@keep-attributes": .built,
        "src-cdrom-archivedir/@keep-attributes": srcCdromArchivedir, "src-cdrom-archivedir/@volume": srcCdromSplit,
    ]

    /// The items Havel does not build or builds differently, as Markdown tables, for the README and
    /// `havel ledger`. Items inside one that is not built go with it.
    public static func markdown() -> String {
        var notBuilt = ["| Item | What Havel does instead | `havel build` |", "|---|---|---|"]
        var differs = ["| Item | How Havel's result differs |", "|---|---|"]
        let reached = typesReachedThroughBuiltItems()
        for (key, support) in entries.sorted(by: { $0.key < $1.key }) where reached.contains(typeName(of: key)) {
            switch support {
            case .built: break
            case .differs(let how): differs.append("| \(display(key)) | \(how) |")
            case .notBuilt(let instead, let changesOutput):
                notBuilt.append("| \(display(key)) | \(instead) | \(changesOutput ? "refuses it without `--allow-unsupported`" : "warns") |")
            }
        }
        return "Not built:\n\n" + notBuilt.joined(separator: "\n") + "\n\nAccepted, with a difference:\n\n"
            + differs.joined(separator: "\n") + "\n"
    }

    static func typeName(of key: String) -> String { String(key.prefix { $0 != "/" }) }

    /// The schema types a project reaches from its root through built elements only (built as ELBE does, or
    /// with a difference).
    static func typesReachedThroughBuiltItems() -> Set<String> {
        var reached: Set<String> = [ElbeSchema.rootType]
        var queue = [ElbeSchema.rootType]
        while let typeName = queue.popLast() {
            for (child, rule) in ElbeSchema.types[typeName]?.children ?? [:]
            where support(type: typeName, child: child)?.isBuilt == true && reached.insert(rule.type).inserted {
                queue.append(rule.type)
            }
        }
        return reached
    }

    /// `target/tighten` → `<tighten>` in `<target>`; `binary-url/@pin` → attribute `pin` of a `<url>`'s `<binary>`.
    static func display(_ key: String) -> String {
        let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
        let type = parts[0], name = parts[1]
        let element = elementNames[type] ?? type
        return name.hasPrefix("@") ? "`<\(element) \(name.dropFirst())=…>`" : "`<\(element)><\(name)>`"
    }

    /// Schema types whose elements carry another name in a project file.
    static let elementNames: [String: String] = [
        "binary-url": "binary", "fullpkg-list": "fullpkgs", "blacklist": "pkg-blacklist", "check-img": "check",
        "check-img-action": "action", "debootstrapvarianttype": "debootstrapvariant", "git_src": "git",
        "svn_src": "svn", "binaryblob": "binary", "cpmv": "cp", "initvm-finetuning": "finetuning",
        "partition-command": "command", "iso-opts": "src-opts", "src-cdrom-archive": "archive",
        "src-cdrom-archivedir": "archivedir", "mirror-options": "options",
    ]
}
