// ElbeSchema: the structure of ELBE project files (revision 6) as data: which children and attributes each
// element type allows, which are required, and what text each may hold. Derived from ELBE's dbsfed.xsd.
//
// Read the table like this:
// - `types` is keyed by type name. Complex types keep their XSD names ("project", "pkg-list", ...); leaves
//   of a plain or restricted simple type get short names ("string", "integer", "base64Binary", ...).
// - Element children are unqualified names. Attributes of the XML namespace (xml:base, xml:lang, ...),
//   of the XMLSchema-instance namespace (xsi:schemaLocation) and ELBE's `variant` are not listed here.
// - The table records which children may occur, not their order. The XSD fixes the order of children
//   in: images, msdoshd, gpthd, extended, ubivg, fstab, pbuilder, src-cdrom (sequence groups); all other
//   element-only types are unordered (`xs:all`, or a repeated choice).
// - Some repeatable children have an upper bound in the XSD: msdoshd/partition at most 4,
//   gpthd/partition at most 128.
// - A few names are accepted only because ELBE rewrites them before validating (see `preprocessedChildren`
//   and `preprocessedAttributes`); a validator should warn about them.

/// What the text content or an attribute value of an element must look like.
///
/// Whitespace: values derived from xs:string (string, size, sizeOrRemain, enumeration, volumeList)
/// keep surrounding whitespace in XSD, so " 1G" or "bookworm\n" does not match; integer, boolean,
/// dateTime and base64 ignore leading and trailing whitespace.
enum ValueKind: Sendable, Equatable {
    case none            // element-only content; non-whitespace text is an error
    case string          // any text (may be empty)
    case nonEmptyString
    case integer         // decimal integer, optional sign
    case unsignedInteger
    case integerRange(ClosedRange<Int>)  // decimal integer, optional sign, value within the range
    case boolean         // xs:boolean: true false 1 0
    case size            // \d+(k|M|G|kB|MB|GB|kiB|MiB|GiB)?   (no "remain")
    case sizeOrRemain    // the same or the word remain
    case dateTime
    case base64          // xs:base64Binary: base64 alphabet, whitespace between characters allowed
    case volumeList      // the word all, or a comma list of decimal integers with optional minus: 1,2,-3
    case enumeration([String])
    case mixed           // text and children allowed (e.g. CDATA scripts)
}

struct AttributeRule: Sendable { let kind: ValueKind; let required: Bool }

struct ChildRule: Sendable {
    let type: String        // key into ElbeSchema.types
    let required: Bool      // minOccurs >= 1
    let repeatable: Bool    // maxOccurs > 1 or unbounded
}

struct ElementType: Sendable {
    let children: [String: ChildRule]      // child element name -> rule
    let attributes: [String: AttributeRule]
    let text: ValueKind
}

extension ChildRule {
    /// minOccurs 1, maxOccurs 1
    static func required(_ type: String) -> ChildRule { ChildRule(type: type, required: true, repeatable: false) }
    /// minOccurs 0, maxOccurs 1
    static func optional(_ type: String) -> ChildRule { ChildRule(type: type, required: false, repeatable: false) }
    /// minOccurs 0, maxOccurs > 1
    static func many(_ type: String) -> ChildRule { ChildRule(type: type, required: false, repeatable: true) }
    /// minOccurs 1, maxOccurs > 1
    static func oneOrMore(_ type: String) -> ChildRule { ChildRule(type: type, required: true, repeatable: true) }
}

extension AttributeRule {
    static func required(_ kind: ValueKind) -> AttributeRule { AttributeRule(kind: kind, required: true) }
    static func optional(_ kind: ValueKind) -> AttributeRule { AttributeRule(kind: kind, required: false) }
}

/// Element-only content (children, attributes, no text).
private func node(_ children: [String: ChildRule], _ attributes: [String: AttributeRule] = [:]) -> ElementType {
    ElementType(children: children, attributes: attributes, text: .none)
}

/// Text-only content, optionally with attributes.
private func leaf(_ text: ValueKind, _ attributes: [String: AttributeRule] = [:]) -> ElementType {
    ElementType(children: [:], attributes: attributes, text: text)
}

enum ElbeSchema {
    static let rootElement = "RootFileSystem"
    static let rootType = "RootFileSystem"

    /// Children that the XSD does not allow but that ELBE's preprocessing turns into allowed ones
    /// (type name -> child names). All are deprecated spellings except `archivedir`, which is the
    /// normal way to write an archive that preprocessing packs into `archive`.
    static let preprocessedChildren: [String: Set<String>] = [
        "RootFileSystem": ["archivedir"],          // -> archive
        "src-cdrom": ["archivedir"],               // -> archive@volume
        "pbuilder": ["archivedir"],                // -> archive
        "target": ["debootstrapvariant", "passwd"],// -> debootstrap/variant+include, passwd_hashed
        "url": ["key"],                            // URL of a key, downloaded -> raw-key
        "fs": ["tune2fs"],                         // -> fs-finetuning/device-command
    ]

    /// Attributes that the XSD does not allow but that preprocessing rewrites (type name -> attributes).
    /// (`pkg@pin` is deprecated too, but the XSD still lists it; preprocessing renames it to release-name.)
    static let preprocessedAttributes: [String: Set<String>] = [
        "adduser": ["passwd"],                     // plain text -> passwd_hashed
    ]

    /// Children of the root that ELBE writes itself while building (the lockfile part of source.xml).
    static let buildGeneratedRootChildren: Set<String> = [
        "debootstrappkgs", "initvmpkgs", "fullpkgs", "initvm_sources_list", "initvm_apt_prefs",
        "sources_list", "apt_prefs", "elbe_version",
    ]

    static let types: [String: ElementType] = [
        // MARK: root
        "RootFileSystem": node([
            "initvm": .optional("initvm"),
            "project": .optional("project"),
            "check-image-list": .optional("check-image-list"),
            "target": .optional("target"),
            "archive": .optional("base64Binary"),
            "debootstrappkgs": .optional("fullpkg-list"),
            "initvmpkgs": .optional("fullpkg-list"),
            "initvm_sources_list": .optional("string"),
            "initvm_apt_prefs": .optional("string"),
            "fullpkgs": .optional("fullpkg-list"),
            "sources_list": .optional("string"),
            "apt_prefs": .optional("string"),
            "elbe_version": .optional("string"),
            "src-cdrom": .optional("src-cdrom"),
            "archivedir": .many("archivedir"),                  // preprocessed
        ], [
            "created": .optional(.dateTime),
            "revision": .required(.integerRange(6...6)),
        ]),

        // MARK: shared leaves
        "string": leaf(.string),                                // rfs:string and xs:string
        "integer": leaf(.integer),
        "base64Binary": leaf(.base64),
        "empty": leaf(.none),                                   // no text, no children
        "memory": leaf(.size),
        "part_size": leaf(.sizeOrRemain),

        // MARK: mirrors
        "mirror": node([
            "options": .optional("mirror-options"),
            "primary_host": .optional("string"),
            "primary_path": .optional("string"),
            "primary_proto": .optional("string"),
            "primary_key": .optional("string"),
            "primary_proxy": .optional("string"),
            "cdrom": .optional("string"),
            "host": .optional("string"),
            "host_key": .optional("string"),
            "url-list": .optional("url-list"),
        ]),
        "mirror-options": node(["option": .many("string")]),
        "url-list": node(["url": .many("url")]),
        "url": node([
            "binary": .optional("binary-url"),
            "source": .optional("string"),
            "raw-key": .optional("string"),
            "options": .optional("mirror-options"),
            "key": .optional("string"),                         // preprocessed (deprecated)
        ]),
        "binary-url": leaf(.string, ["pin": .optional(.string), "package": .optional(.string)]),

        // MARK: initvm
        "initvm": node([
            "buildtype": .optional("string"),
            "mirror": .required("mirror"),
            "noauth": .optional("string"),
            "preference": .optional("preference"),
            "suite": .required("suite-initvm"),
            "pkg-list": .optional("pkg-list"),
            "preseed": .optional("preseed"),
            "size": .optional("string"),
            "mem": .optional("memory"),
            "swap-size": .optional("memory"),
            "max-cpus": .optional("integer"),
            "img": .optional("string"),
            "portforwarding": .optional("portforwarding"),
            "finetuning": .optional("initvm-finetuning"),
        ]),
        "suite-initvm": leaf(.enumeration(["sid", "bullseye", "bookworm", "trixie"])),
        "initvm-finetuning": node(["command": .many("string")]),
        "portforwarding": node(["forward": .many("forward")]),
        "forward": node([
            "proto": .required("fw_proto"),
            "buildenv": .required("integer"),
            "host": .required("integer"),
        ]),
        "fw_proto": leaf(.enumeration(["tcp", "udp"])),

        // MARK: project
        "project": node([
            "name": .optional("string"),
            "version": .optional("string"),
            "description": .optional("string"),
            "buildtype": .optional("string"),
            "mirror": .required("mirror"),
            "noauth": .optional("string"),
            "preference": .optional("preference"),
            "raw-preference": .optional("raw-preference"),
            "suite": .required("string"),
            "buildimage": .optional("buildimage"),
            "preseed": .optional("preseed"),
        ]),
        "preference": leaf(.string, ["pin": .required(.string)]),
        "raw-preference": leaf(.string),
        "buildimage": node([
            "arch": .optional("string"),
            "size": .optional("string"),
            "interpreter": .optional("string"),
            "interpreterversion": .optional("string"),
            "kinitrd": .optional("string"),
            "console": .optional("string"),
            "machine": .optional("string"),
            "triplet": .optional("string"),
            "NIC": .optional("NIC"),
            "portforwarding": .optional("portforwarding"),
            "pkgversionlist": .optional("string"),
            "pkg-list": .optional("pkg-list"),
        ]),
        "NIC": node(["model": .optional("string"), "MAC": .optional("string")]),
        "preseed": node(["conf": .many("conf")]),
        "conf": leaf(.string, [
            "owner": .required(.string),
            "key": .required(.string),
            "type": .required(.string),
            "value": .required(.string),
        ]),

        // MARK: packages
        "pkg-list": node(["pkg": .many("pkg")]),
        "fullpkg-list": node(["pkg": .many("pkg")]),
        "blacklist": node(["sysroot": .many("pkg-list")]),
        "pkg": leaf(.string, [
            "origin": .optional(.string),
            "release-name": .optional(.string),
            "release-archive": .optional(.string),
            "release-version": .optional(.string),
            "release-component": .optional(.string),
            "release-origin": .optional(.string),
            "release-label": .optional(.string),
            "uri": .optional(.string),
            "pin": .optional(.string),                          // deprecated, -> release-name
            "version": .optional(.string),
            "auto": .optional(.boolean),
            "md5": .optional(.string),
            "sha1": .optional(.string),
            "sha256": .optional(.string),
            "sha512": .optional(.string),
            "prio": .optional(.string),
            "arch": .optional(.string),
            "on_src_cd": .optional(.string),
            "source-name": .optional(.string),
            "source-version": .optional(.string),
        ]),

        // MARK: image checks
        "check-image-list": node([
            "check": .optional("check-img"),
            "check-script": .optional("check-script"),
        ]),
        "check-img": node([
            "img": .required("string"),
            "interpreter": .required("string"),
            "interpreter-opts": .required("string"),
            "interpreter-firmware": .optional("interpreter-firmware"),
            "action": .required("check-img-action"),
        ]),
        "interpreter-firmware": leaf(.none, [
            "architecture": .required(.string),
            "machine": .required(.string),
            "interface_types": .required(.string),
            "features": .required(.string),
        ]),
        "check-img-action": node([                              // choice: one of login, serial, or nothing
            "login": .optional("string"),
            "serial": .optional("serial"),
        ]),
        "serial": node([
            "expect": .many("string"),
            "sendline": .many("string"),
            "EOF": .many("string"),                             // once per choice, but the choice repeats
        ]),
        "check-script": leaf(.string, ["location": .optional(.string)]),

        // MARK: target
        "target": node([
            "hostname": .required("string"),
            "domain": .optional("string"),
            "passwd_hashed": .optional("string"),
            "console": .optional("string"),
            "debootstrap": .optional("debootstrap"),
            "package": .optional("package"),
            "images": .optional("images"),
            "fstab": .optional("fstab"),
            "tighten": .optional("string"),
            "diet": .optional("string"),
            "setsel": .optional("string"),
            "install-recommends": .optional("string"),
            "finetuning": .optional("finetuning"),
            "project-finetuning": .optional("project-finetuning"),
            "pbuilder": .optional("pbuilder"),
            "pkg-list": .optional("pkg-list"),
            "pkg-blacklist": .optional("blacklist"),
            "hostsdk-pkg-list": .optional("pkg-list"),
            "passwd": .optional("string"),                      // preprocessed (deprecated)
            "debootstrapvariant": .optional("debootstrapvarianttype"), // preprocessed (deprecated)
        ]),
        "debootstrap": node([
            "variant": .optional("debootstrap_variant"),
            "include": .optional("string"),
            "exclude": .optional("string"),
            "type": .optional("bootstrap_type"),
        ]),
        "debootstrap_variant": leaf(.enumeration(["minbase", "buildd", "fakechroot"])),
        "bootstrap_type": leaf(.enumeration(["debootstrap", "mmdebstrap", "base-image"])),
        // Removed from the XSD; preprocessing turns it into debootstrap/variant (+ include).
        "debootstrapvarianttype": leaf(.enumeration(["minbase", "buildd", "fakechroot"]),
                                       ["includepkgs": .optional(.string)]),
        "package": node([
            "tar": .optional("tar"),
            "base-image": .optional("base-image"),
            "cpio": .optional("cpio"),
            "squashfs": .optional("squashfs"),
        ]),
        "tar": node(["name": .optional("string"), "options": .optional("string")]),
        "base-image": node(["name": .optional("string")]),
        "cpio": node(["name": .optional("string")]),
        "squashfs": node(["name": .optional("string"), "options": .optional("string")]),
        "pbuilder": node([
            "src-pkg": .many("string"),
            "git": .many("git_src"),
            "svn": .many("svn_src"),
            "archive": .many("base64Binary"),
            "archivedir": .many("archivedir"),                  // preprocessed
        ]),
        "git_src": leaf(.string, ["revision": .optional(.string)]),
        "svn_src": leaf(.string, ["revision": .optional(.string)]),

        // MARK: images
        "images": node([
            "mtd": .many("mtd"),
            "msdoshd": .many("msdoshd"),
            "gpthd": .many("gpthd"),
            "passno": .optional("string"),
        ]),
        "mtd": node([
            "name": .required("string"),
            "nr": .required("integer"),
            "size": .required("part_size"),
            "binary": .optional("string"),
            "ubivg": .optional("ubivg"),
        ]),
        "ubivg": node([
            "label": .required("string"),
            "miniosize": .required("string"),
            "maxlogicaleraseblockcount": .required("string"),
            "logicaleraseblocksize": .required("string"),
            "physicaleraseblocksize": .required("string"),
            "subpagesize": .optional("string"),
            "ubi": .oneOrMore("ubi"),
        ]),
        "ubi": node([
            "type": .required("ubi_type"),
            "label": .required("string"),
            "id": .required("integer"),
            "size": .required("part_size"),
            "binary": .optional("string"),
            "empty": .optional("string"),
        ]),
        "ubi_type": leaf(.enumeration(["static", "dynamic"])),
        "msdoshd": node([
            "name": .required("string"),
            "size": .required("part_size"),
            "first_partition_sector": .optional("part_size"),
            "grub-install": .optional("string"),
            "binary": .many("binaryblob"),
            "partition": .many("partition"),                    // at most 4
            "extended": .optional("extended"),
        ]),
        "gpthd": node([
            "name": .required("string"),
            "size": .required("part_size"),
            "first_partition_sector": .optional("part_size"),
            "grub-install": .optional("string"),
            "binary": .many("binaryblob"),
            "partition": .many("partition"),                    // at most 128
        ]),
        "binaryblob": leaf(.string, [                           // xs:int attributes
            "offset": .optional(.integerRange(Int(Int32.min)...Int(Int32.max))),
            "blocksize": .optional(.integerRange(Int(Int32.min)...Int(Int32.max))),
        ]),
        "partition": node([
            "size": .required("part_size"),
            "label": .required("string"),
            "name": .optional("string"),
            "binary": .optional("string"),
            "bootable": .optional("string"),
            "biosgrub": .optional("string"),
        ]),
        "extended": node([
            "size": .required("part_size"),
            "logical": .many("partition"),
        ]),

        // MARK: fstab
        "fstab": node(["bylabel": .many("bylabel"), "bydev": .many("bydev")]),
        "bylabel": node([
            "label": .required("string"),
            "mountpoint": .required("string"),
            "fs": .required("fs"),
            "options": .optional("string"),
            "nofstab": .optional("empty"),
        ]),
        "bydev": node([
            "source": .required("string"),
            "mountpoint": .required("string"),
            "fs": .required("fs"),
            "options": .optional("string"),
        ]),
        "fs": node([
            "type": .required("fs_type"),
            "mkfs": .optional("string"),
            "fs-finetuning": .optional("fs-finetuning"),
            "passno": .optional("string"),
            "tune2fs": .optional("string"),                     // preprocessed (deprecated)
        ]),
        "fs_type": leaf(.enumeration([
            "ext2", "ext3", "ext4", "f2fs", "ubifs", "tmpfs", "debugfs", "configfs", "devpts", "proc",
            "sysfs", "vfat", "btrfs", "devtmpfs", "swap", "erofs", "squashfs",
        ])),
        "fs-finetuning": node(["device-command": .many("string"), "path-command": .many("string")]),

        // MARK: target finetuning (a repeated choice: any number of actions in any order)
        "finetuning": node([
            "addgroup": .many("addgroup"),
            "adduser": .many("adduser"),
            "file": .many("file"),
            "rm": .many("rm"),
            "cp": .many("cpmv"),
            "ln": .many("cpmv"),
            "buildenv_cp": .many("cpmv"),
            "b2t_cp": .many("cpmv"),
            "t2b_cp": .many("cpmv"),
            "mv": .many("cpmv"),
            "buildenv_mv": .many("cpmv"),
            "t2p_mv": .many("cpmv"),
            "mkdir": .many("string"),
            "buildenv_mkdir": .many("string"),
            "mknod": .many("mknod"),
            "purge": .many("string"),
            "raw_cmd": .many("string"),
            "command": .many("string"),
            "buildenv_command": .many("string"),
            "updated": .many("string"),
            "artifact": .many("string"),
            "rm_apt_source": .many("string"),
        ]),
        "addgroup": leaf(.string, ["gid": .optional(.string), "system": .optional(.boolean)]),
        "adduser": leaf(.string, [
            "shell": .required(.string),
            "passwd_hashed": .optional(.string),
            "groups": .optional(.string),
            "uid": .optional(.string),
            "gid": .optional(.string),
            "home": .optional(.string),
            "system": .optional(.boolean),
            "create_home": .optional(.boolean),
            "create_group": .optional(.boolean),
            "passwd": .optional(.string),                       // preprocessed (deprecated)
        ]),
        "file": leaf(.string, [
            "dst": .required(.string),
            "encoding": .optional(.string),
            "append": .optional(.boolean),
            "owner": .optional(.string),
            "group": .optional(.string),
            "mode": .optional(.string),
        ]),
        "rm": leaf(.string, ["exclude": .optional(.string)]),
        "cpmv": leaf(.string, ["path": .required(.string)]),
        "mknod": leaf(.string, ["opts": .required(.string)]),

        // MARK: project finetuning (a repeated choice)
        "project-finetuning": node([
            "t2p_mv": .many("cpmv"),
            "artifact": .many("string"),
            "rm_artifact": .many("string"),
            "losetup": .many("losetup"),
            "img_convert": .many("img_convert"),
            "set_packer": .many("set_packer"),
        ]),
        "losetup": node([
            "extract_partition": .many("extract_partition"),
            "copy_from_partition": .many("copy_from_partition"),
            "copy_to_partition": .many("copy_to_partition"),
            "set_partition_type": .many("set_partition_type"),
            "command": .many("partition-command"),
        ], ["img": .required(.string)]),
        "extract_partition": leaf(.string, ["part": .required(.integer)]),
        "copy_from_partition": leaf(.string, ["part": .required(.integer), "artifact": .required(.string)]),
        "copy_to_partition": leaf(.string, ["part": .required(.integer), "artifact": .required(.string)]),
        "set_partition_type": leaf(.none, ["part": .required(.integer), "type": .required(.string)]),
        "partition-command": leaf(.string, ["part": .required(.integer), "nomount": .optional(.boolean)]),
        "img_convert": leaf(.string, [
            "dst": .required(.string),
            "fmt": .required(.string),
            "keep_src": .optional(.boolean),
        ]),
        "set_packer": leaf(.string, ["packer": .required(.enumeration([
            "none", "gzip", "zstd", "tar", "tarxz", "targz", "tarzstd", "android-sparse",
        ]))]),

        // MARK: source CD-ROM
        "src-cdrom": node([
            "size": .optional("memory"),
            "src-opts": .optional("iso-opts"),
            "archive": .many("src-cdrom-archive"),
            "archivedir": .many("src-cdrom-archivedir"),        // preprocessed
        ]),
        "iso-opts": node([
            "abstract": .optional("string"),
            "app": .optional("string"),
            "biblio": .optional("string"),
            "copyright": .optional("string"),
            "publisher": .optional("string"),
            "preparer": .optional("string"),
            "sysid": .optional("string"),
            "volid": .optional("string"),
            "volset": .optional("string"),
        ], ["strict": .optional(.boolean)]),
        "src-cdrom-archive": leaf(.base64, ["volume": .optional(.volumeList)]),

        // MARK: archivedir (not in the XSD; a URL or relative path that preprocessing packs into archive)
        "archivedir": leaf(.string, ["keep-attributes": .optional(.boolean)]),
        "src-cdrom-archivedir": leaf(.string, [
            "keep-attributes": .optional(.boolean),
            "volume": .optional(.volumeList),
        ]),
    ]
}
