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
/// the same database format; point releases differ only in fixes): where it is not (another release), or where
/// the host's dpkg refuses an archive, that install runs under emulation and the log says so.
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
        if let variant, ["extract", "custom"].contains(variant) { return "variant \(variant) installs no packages" }
        guard FileManager.default.isExecutableFile(atPath: realChroot) else { return "\(realChroot) is missing" }
        return nil
    }

    /// The `chroot` wrapper for mmdebstrap's essential install.
    public static func chrootWrapper() -> String {
        """
        #!/bin/bash
        # Havel, fast install path: mmdebstrap's essential install, "chroot TREE dpkg --install --force-depends
        # --status-fd=N DEB...", becomes the host's dpkg unpacking the archives natively into TREE (each preinst
        # still runs chrooted, under qemu-user), then the target's dpkg configuring them in the chroot, in the
        # same order. Every other chroot command goes to the real chroot unchanged.
        real=\(realChroot)
        if [[ $# -lt 6 || $2 != dpkg || $3 != --install || $4 != --force-depends || $5 != --status-fd=* ]]; then
            exec "$real" "$@"
        fi
        root=$1 status=$5
        debs=("${@:6}")
        emulate() {
            echo "havel: $1; the ${#debs[@]} essential packages are installed under emulation" >&2
            exec "$real" "$root" dpkg --install --force-depends "$status" "${debs[@]}"
        }
        host_version=$(dpkg-query -W -f '${Version}' dpkg 2>/dev/null) || emulate "the host has no dpkg"
        names=() target_version=
        for deb in "${debs[@]}"; do
            read -r name version < <(dpkg-deb --showformat='${Package} ${Version}\\n' --show "$root$deb") && [[ -n $name ]] ||
                emulate "dpkg-deb cannot read $deb"
            names+=("$name")
            [[ $name == dpkg ]] && target_version=$version
        done
        [[ -n $target_version && ${target_version%.*} == "${host_version%.*}" ]] ||
            emulate "the host's dpkg is $host_version, the target's ${target_version:-not among them} (another series: another database)"
        echo "havel: the host's dpkg $host_version unpacks the ${#debs[@]} essential packages natively; their scripts run under emulation" >&2
        dpkg --root="$root" --force-architecture --force-depends --no-triggers --log="$root/var/log/dpkg.log" "$status" \\
            --unpack "${debs[@]/#/$root}" || emulate "the host's dpkg could not unpack them"
        exec "$real" "$root" dpkg --force-depends "$status" --configure "${names[@]}"

        """
    }

    /// apt's dpkg (`Dir::Bin::dpkg`) for the packages after the essential ones; the hook names the tree in
    /// HAVEL_TREE, as mmdebstrap names it to hooks and apt.
    public static func aptDpkgWrapper() -> String {
        """
        #!/bin/bash
        # Havel, fast install path: apt's dpkg for the packages after the essential ones. apt's unpack batches go
        # to the host's dpkg (the archives read and the files written natively, each preinst chrooted under
        # qemu-user); everything else (configure, triggers, removals, queries) to the target's dpkg in the chroot,
        # with the tree's prefix taken off the paths apt names.
        root=${HAVEL_TREE:?the tree, from the hook}
        if [[ " $* " == *" --unpack "* ]]; then
            dpkg --root="$root" --force-architecture --force-depends --log="$root/var/log/dpkg.log" "$@" && exit 0
            debs=()
            for word; do [[ $word == *.deb ]] && debs+=("${word##*/}"); done
            echo "havel: the host's dpkg could not unpack ${debs[*]}; they are unpacked under emulation" >&2
        fi
        inside=()
        for word; do
            [[ $word == "$root"/* ]] && word=${word#"$root"}
            inside+=("$word")
        done
        exec env --unset=APT_CONFIG --unset=TMPDIR \(realChroot) "$root" dpkg "${inside[@]}"

        """
    }

    /// The essential hook that installs the remaining packages (`packages`, as mmdebstrap names them to apt)
    /// with the dpkg wrapper at `aptDpkg`, when the target's dpkg is the host's.
    public static func essentialHook(aptDpkg: String, packages: [String]) -> String {
        """
        #!/bin/sh
        # Havel, fast install path: the packages after the essential ones, installed with the same apt-get install
        # mmdebstrap runs next, but with apt's unpacking done by the host's dpkg. mmdebstrap's own run then finds
        # them installed (whatever this left out, it installs under emulation).
        set -eu
        root=$1
        host=$(dpkg-query -W -f '${Version}' dpkg)
        target=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Version}' dpkg 2>/dev/null || true)
        if [ -z "$target" ] || [ "${target%.*}" != "${host%.*}" ]; then
            echo "havel: the host's dpkg is $host, the target's ${target:-missing} (another series: another database); the remaining packages are installed under emulation" >&2
            exit 0
        fi
        [ \(packages.count) -gt 0 ] || exit 0
        echo "havel: the host's dpkg unpacks the remaining packages natively; their scripts run under emulation" >&2
        HAVEL_TREE=$root APT_CONFIG="$MMDEBSTRAP_APT_CONFIG" apt-get -o Dir::Bin::dpkg=\(Command.shellQuote(aptDpkg)) --yes install \\
            \(packages.map(Command.shellQuote).joined(separator: " ")) || {
            echo "havel: the fast install path failed; build with --install-mode emulated to install everything under qemu-user" >&2
            exit 1
        }

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
    static func prepare(workDirectory: String, hooks: String, packages: [String]) throws -> String {
        let directory = workDirectory + "/" + directoryName
        let bin = directory + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let aptDpkg = directory + "/dpkg-for-apt"
        try chrootWrapper().write(toFile: bin + "/chroot", atomically: true, encoding: .utf8)
        try aptDpkgWrapper().write(toFile: aptDpkg, atomically: true, encoding: .utf8)
        try essentialHook(aptDpkg: aptDpkg, packages: packages).write(toFile: hooks + "/" + hookName, atomically: true, encoding: .utf8)
        for file in [bin + "/chroot", aptDpkg, hooks + "/" + hookName] {
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: file)
        }
        return bin + ":" + (Command.baseEnvironment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin")
    }
}
