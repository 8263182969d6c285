import Foundation
import HavelCore
import SystemKit

/// How the install stage runs dpkg for a target of another architecture (`--install-mode`).
public enum InstallMode: String, Sendable, Codable, CaseIterable {
    /// The host's dpkg unpacks every archive natively into the tree; only maintainer scripts, configuration and
    /// triggers run under qemu-user (`NativeUnpack`). Falls back to `emulated`, saying why, where it cannot apply.
    case fast
    /// dpkg itself and everything it runs under qemu-user, as mmdebstrap does on its own.
    case emulated
}

/// The fast install path: mmdebstrap runs as ever (its resolution, download, verification, hooks and order),
/// but the unpacking, which is the same work on every CPU, is done by the host's own dpkg
/// (`dpkg --root=TREE --force-architecture`): it reads the archives and writes the files and dpkg's database
/// natively, and runs each preinst chrooted in the tree (so under qemu-user). Configuration, triggers and every
/// other dpkg action stay with the target's dpkg inside the chroot, whose view of architectures is the target's.
///
/// Two places: mmdebstrap's essential install (`chroot TREE dpkg --install --force-depends ...`, through a
/// `chroot` wrapper first in its PATH) and apt's install of the rest (an essential hook runs the same
/// `apt-get install` mmdebstrap runs next, with a dpkg wrapper as `Dir::Bin::dpkg`; mmdebstrap's own run then
/// finds nothing left to do, or installs what is left under emulation). Nothing is placed in the tree.
///
/// The host's dpkg writes the target's database, so it must be of the target's dpkg series (1.21.x for bookworm,
/// the same database format; point releases differ only in fixes) and it reads the host's dpkg configuration. It
/// resolves owner names with the tree's users and groups, as the target's dpkg does, through a private view of
/// /etc (`with_tree_owners`). Where any of these would make a difference (another release, a path-exclude, a host
/// that cannot make that view), the target's dpkg unpacks under emulation and the log says why, decided before
/// anything is written; configuration still takes the native helpers (`NativeHelpers`, the target suite's own
/// builds) where they apply. A failed host unpack stops the build (naming `--install-mode emulated`) rather than
/// leave a tree that differs.
public enum NativeUnpack {
    /// The real chroot the wrappers hand everything else to.
    public static let realChroot = "/usr/sbin/chroot"
    /// Under the bootstrap's work directory: `bin/` (first in mmdebstrap's PATH, holding only `chroot`) and the
    /// dpkg wrapper for apt.
    public static let directoryName = "native-unpack"
    public static let hookName = "essential90-havel-native-unpack.sh"

    /// Why a request cannot take the fast path, or nil when it can.
    public static func obstacle(tool: DebootstrapSpec.Tool, variant: String?, runsNatively: Bool) -> String? {
        if runsNatively { return "the target's architecture runs natively here, nothing is emulated" }
        guard tool == .mmdebstrap else { return "debootstrap installs with the target's dpkg" }
        if variant == "extract" { return "variant extract installs no packages" }
        if variant == "custom" { return "variant custom installs its packages with plain dpkg; the fast path covers mmdebstrap's other variants" }
        guard FileManager.default.isExecutableFile(atPath: realChroot) else { return "\(realChroot) is missing" }
        return nil
    }

    /// What both wrappers check before the host's dpkg writes into the tree `$root` (sourced by them): each
    /// check prints why the host's dpkg must not, and succeeds, when it must not. Checked before anything is
    /// written, so a refusal leaves nothing half-done and the target's dpkg does the work instead. `ownerView`
    /// is an empty directory, the mount point of the host dpkg's view of the tree's users (`with_tree_owners`).
    public static func checks(ownerView: String) -> String {
        """
        # Havel, fast install path: when the host's dpkg must not unpack into the tree $root.
        real_chroot=\(realChroot)

        # The host's dpkg writes the target's database: it must be of the target's series (the same format).
        other_series() {
            local host target
            host=$(dpkg-query -W -f '${Version}' dpkg 2>/dev/null)
            target=${1:-$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Version}' dpkg 2>/dev/null)}
            [[ -n $host && -n $target && ${target%.*} == "${host%.*}" ]] && return 1
            echo "the host's dpkg is ${host:-missing}, the target's ${target:-missing} (another series: another database)"
        }

        # The host's dpkg reads the host's configuration, not the tree's: beyond options that change no file
        # (fsync, signatures, the log), a path-exclude or force option in either would make the trees differ.
        other_configuration() {
            local file line
            for file in /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d/* "$root/etc/dpkg/dpkg.cfg" "$root"/etc/dpkg/dpkg.cfg.d/*; do
                [[ -f $file ]] || continue
                while read -r line || [[ -n $line ]]; do
                    case $line in
                        '' | '#'* | force-unsafe-io | no-debsig | 'log '*) ;;
                        *) echo "$file sets '$line', which the other dpkg would not"; return 0 ;;
                    esac
                done <"$file"
            done
            return 1
        }

        # The host's dpkg resolves owner names (of the archives' files and of the tree's statoverride file) with
        # the tree's users and groups, as the target's dpkg in the chroot does: in a mount namespace of its own, the
        # host's /etc is overlaid with links to the tree's passwd and group (a user a preinst adds counts at once)
        # and an nsswitch.conf of files only; nscd is hidden. owner_view_missing says why that cannot be set up.
        owner_view=\(Command.shellQuote(ownerView))
        owner_view_script='
            set -e
            view=$1 root=$2
            shift 2
            # A link would be followed from the root of the host here, but from the root of the tree in the chroot.
            for file in passwd group; do
                if [ -L "$root/etc/$file" ]; then echo "/etc/$file in the tree is a link" >&2; exit 1; fi
            done
            mount -t tmpfs -o mode=0755 havel-owner-view "$view"
            mkdir "$view/upper" "$view/work"
            ln -s "$root/etc/passwd" "$view/upper/passwd"
            ln -s "$root/etc/group" "$view/upper/group"
            printf "passwd: files\\ngroup: files\\n" >"$view/upper/nsswitch.conf"
            mount -t overlay havel-owner-view -o "lowerdir=/etc,upperdir=$view/upper,workdir=$view/work" /etc
            if [ -d /run/nscd ]; then mount -t tmpfs havel-no-nscd /run/nscd; fi
            exec "$@"
        '
        with_tree_owners() {
            unshare --mount --propagation private -- bash -c "$owner_view_script" owner-view "$owner_view" "$root" "$@"
        }
        owner_view_missing() {
            local said
            said=$(with_tree_owners true 2>&1) && return 1
            echo "the host cannot give its dpkg the tree's users and groups (${said:-unshare or mount failed})"
        }

        # The host's dpkg, with the target's environment for the preinsts it runs in the chroot.
        host_dpkg() {
            with_tree_owners env --unset=APT_CONFIG --unset=HAVEL_TREE --unset=TMPDIR \\
                dpkg --root="$root" --force-architecture --force-depends --log="$root/var/log/dpkg.log" "$@"
        }

        """
    }

    /// The `chroot` wrapper for mmdebstrap's essential install; `checks` is the path of `checks()`.
    public static func chrootWrapper(checks: String) -> String {
        """
        #!/bin/bash
        # Havel, fast install path: mmdebstrap's essential install, "chroot TREE dpkg --install --force-depends
        # --status-fd=N DEB...", becomes the host's dpkg unpacking the archives natively into TREE (each preinst
        # still runs chrooted, under qemu-user), then the target's dpkg configuring them in the chroot, in the
        # same order. Every other chroot command goes to the real chroot unchanged.
        source \(Command.shellQuote(checks))
        if [[ $# -lt 6 || $2 != dpkg || $3 != --install || $4 != --force-depends || $5 != --status-fd=* ]]; then
            exec "$real_chroot" "$@"
        fi
        root=$1 status=$5
        debs=("${@:6}")
        emulate() {
            echo "havel: $1; the ${#debs[@]} essential packages are installed under emulation" >&2
            exec "$real_chroot" "$root" dpkg --install --force-depends "$status" "${debs[@]}"
        }
        names=() archives=() target_version=
        for deb in "${debs[@]}"; do
            read -r name version < <(dpkg-deb --showformat='${Package} ${Version}\\n' --show "$root$deb") && [[ -n $name ]] ||
                emulate "dpkg-deb cannot read $deb"
            names+=("$name")
            archives+=("$root$deb")
            [[ $name == dpkg ]] && target_version=$version
        done
        # The host's dpkg must not unpack: the target's does, and configuration still takes the native helpers.
        target_unpack() {
            helpers_fit || emulate "$1"
            echo "havel: $1; the target's dpkg unpacks the ${#debs[@]} essential packages under emulation" >&2
            helpers_start
            "$real_chroot" "$root" dpkg --no-triggers --force-depends "$status" --unpack "${debs[@]}" || exit 1
            in_target dpkg --force-depends "$status" --configure "${names[@]}"
        }
        reason=$(other_series "$target_version") && target_unpack "$reason"
        reason=$(other_configuration) && target_unpack "$reason"
        reason=$(owner_view_missing) && target_unpack "$reason"
        echo "havel: the host's dpkg unpacks the ${#debs[@]} essential packages natively; their scripts run under emulation" >&2
        helpers_start
        host_dpkg --no-triggers "$status" --unpack "${archives[@]}" || {
            echo "havel: the host's dpkg failed to unpack the essential packages; build with --install-mode emulated to install them under qemu-user" >&2
            exit 1
        }
        in_target dpkg --force-depends "$status" --configure "${names[@]}"

        """
    }

    /// apt's dpkg (`Dir::Bin::dpkg`) for the packages after the essential ones; the hook names the tree in
    /// HAVEL_TREE, as mmdebstrap names it to hooks and apt. A `--recursive` directory from apt becomes its archives.
    public static func aptDpkgWrapper(checks: String) -> String {
        """
        #!/bin/bash
        # Havel, fast install path: apt's dpkg for the packages after the essential ones. apt's unpack batches go
        # to the host's dpkg (the archives read and the files written natively, each preinst chrooted under
        # qemu-user); everything else (configure, triggers, removals, queries), and a batch the checks refuse, to
        # the target's dpkg in the chroot, with the tree's prefix taken off the paths apt names.
        source \(Command.shellQuote(checks))
        root=${HAVEL_TREE:?the tree, from the hook}
        # apt hands a large batch as "--recursive DIR" of numbered links to the archives, outside the tree: the
        # archives themselves, in the links' order (dpkg's own order for --recursive), are what both dpkgs get.
        args=() directory=
        for word; do
            if [[ -n $directory ]]; then
                directory=
                while IFS= read -r -d '' link; do
                    deb=$(readlink -f -- "$link")
                    [[ $deb == "$root"/*.deb ]] || { echo "havel: apt's archive $link is not in the tree" >&2; exit 1; }
                    args+=("$deb")
                done < <(find "$word" -maxdepth 1 -name '*.deb' -print0 | LC_ALL=C sort -z)
                continue
            fi
            [[ $word == --recursive || $word == -R ]] && { directory=yes; continue; }
            args+=("$word")
        done
        if [[ " ${args[*]} " == *" --unpack "* ]]; then
            debs=()
            for word in "${args[@]}"; do [[ $word == *.deb ]] && debs+=("${word##*/}"); done
            if reason=$(other_series || other_configuration || owner_view_missing); then
                echo "havel: $reason; ${debs[*]} unpacked under emulation" >&2
            else
                host_dpkg "${args[@]}" && exit 0
                echo "havel: the host's dpkg failed to unpack ${debs[*]}; build with --install-mode emulated to install them under qemu-user" >&2
                exit 1
            fi
        fi
        inside=() writes=
        for word in "${args[@]}"; do
            [[ $word == "$root"/* ]] && word=${word#"$root"}
            [[ $word == --unpack || $word == --install || $word == --remove || $word == --purge || $word == *.deb ]] && writes=yes
            inside+=("$word")
        done
        unset APT_CONFIG HAVEL_TREE TMPDIR
        # A run that only configures may use the native helpers; one that writes packages never sees them.
        [[ -z $writes && " ${inside[*]} " == *" --configure "* || -z $writes && " ${inside[*]} " == *" --triggers-only "* ]] &&
            in_target dpkg "${inside[@]}"
        exec "$real_chroot" "$root" dpkg "${inside[@]}"

        """
    }

    /// The essential hook that installs the remaining packages (`packages`, as mmdebstrap names them to apt)
    /// with the dpkg wrapper at `aptDpkg`, when the target's dpkg is of the host's series.
    public static func essentialHook(aptDpkg: String, checks: String, packages: [String]) -> String {
        """
        #!/bin/bash
        # Havel, fast install path: the packages after the essential ones, installed with the same apt-get install
        # mmdebstrap runs next, but with apt's unpacking done by the host's dpkg. mmdebstrap's own run then finds
        # them installed (whatever this left out, it installs under emulation).
        set -eu
        source \(Command.shellQuote(checks))
        root=$1
        if reason=$(other_series); then
            # The target's dpkg unpacks; apt's run is still worth making here when the native helpers can configure.
            if ! helpers_fit; then
                echo "havel: $reason; the remaining packages are installed under emulation" >&2
                exit 0
            fi
            echo "havel: $reason; the target's dpkg unpacks the remaining packages under emulation, the native helpers serve their scripts" >&2
        else
            echo "havel: the host's dpkg unpacks the remaining packages natively; their scripts run under emulation" >&2
        fi
        [[ \(packages.count) -gt 0 ]] || { bash "$helpers_script" scan "$root"; exit; }
        HAVEL_TREE=$root APT_CONFIG=$MMDEBSTRAP_APT_CONFIG apt-get -o Dir::Bin::dpkg=\(Command.shellQuote(aptDpkg)) \\
            -o Dpkg::Use-Pty=false --yes install \\
            \(packages.map(Command.shellQuote).joined(separator: " ")) || {
            echo "havel: the fast install path failed; build with --install-mode emulated to install everything under qemu-user" >&2
            exit 1
        }
        # No native helper may stay in the tree: a script that copied one fails the build here.
        bash "$helpers_script" scan "$root"

        """
    }

    /// What mmdebstrap 1.x hands apt after the essential install: the `--include` list, build-essential for
    /// buildd, and the priority pattern of the variant (its `run_install`), in that order.
    public static func remainingPackages(variant: String?, include: [String], suite: String, architecture: Architecture) -> [String] {
        var packages = include
        let normalised: String
        switch variant ?? "debootstrap" {
        case "-", "debootstrap": normalised = "important"
        case "minbase": normalised = "required"
        case let other: normalised = other
        }
        if normalised == "buildd" { packages.append("build-essential") }
        let priority: String? = switch normalised {
        case "required", "buildd": "?and(?priority(required),?not(?essential))"
        case "important": "?and(?or(?priority(required),?priority(important)),?not(?essential))"
        case "standard": "?and(?or(~prequired,~pimportant,~pstandard),?not(?essential))"
        default: nil
        }
        if let priority {
            packages.append("?narrow(?or(?archive(^\(suite)$),?codename(^\(suite)$)),?architecture(\(architecture.debianName)),\(priority))")
        }
        return packages
    }

    /// Writes the wrappers and the hook into `workDirectory` and `hooks`; returns the PATH mmdebstrap runs with.
    static func prepare(workDirectory: String, hooks: String, cache: String, packages: [String]) throws -> String {
        let directory = workDirectory + "/" + directoryName
        let bin = directory + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let checksFile = directory + "/checks.sh"
        let ownerView = directory + "/owner-view"
        try FileManager.default.createDirectory(atPath: ownerView, withIntermediateDirectories: true)
        let aptDpkg = directory + "/dpkg-for-apt"
        let helpersScript = directory + "/" + NativeHelpers.fileName
        try NativeHelpers.script().write(toFile: helpersScript, atomically: true, encoding: .utf8)
        let aptConfigRecord = directory + "/apt-config"
        try (checks(ownerView: ownerView) + NativeHelpers.inTarget(script: helpersScript, directory: directory + "/helpers",
                                               aptConfigRecord: aptConfigRecord, cache: cache + "/native-helpers"))
            .write(toFile: checksFile, atomically: true, encoding: .utf8)
        try NativeHelpers.setupHook(aptConfigRecord: aptConfigRecord)
            .write(toFile: hooks + "/" + NativeHelpers.setupHookName, atomically: true, encoding: .utf8)
        try chrootWrapper(checks: checksFile).write(toFile: bin + "/chroot", atomically: true, encoding: .utf8)
        try aptDpkgWrapper(checks: checksFile).write(toFile: aptDpkg, atomically: true, encoding: .utf8)
        try essentialHook(aptDpkg: aptDpkg, checks: checksFile, packages: packages)
            .write(toFile: hooks + "/" + hookName, atomically: true, encoding: .utf8)
        for file in [bin + "/chroot", aptDpkg, hooks + "/" + hookName, hooks + "/" + NativeHelpers.setupHookName] {
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: file)
        }
        return bin + ":" + (Command.baseEnvironment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin")
    }
}
