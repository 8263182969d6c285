import Foundation
import HavelCore
import SystemKit

/// Native helpers for the fast install path: while the target's dpkg configures packages in the chroot (postinst
/// scripts, triggers), the shell, the small tools those scripts start by the thousand and perl (debconf,
/// deb-systemd-helper) are served by builds of the same packages for the host's architecture (dash, coreutils, sed,
/// grep, findutils, mawk, diffutils, gzip, perl-base), which run at native speed instead of paying qemu-user's
/// start-up each time. Their work is the same on every CPU of the host's byte order; programs that tell the machine
/// (uname, arch, nproc) stay the target's. A target of another word size (armhf, armel on an amd64 host) gets
/// only the programs whose results do not depend on it (`wordSizeBound` are left out: C's long, long double and
/// time_t are narrower there).
///
/// The helpers come from the project's own sources, fetched with mmdebstrap's apt configuration (its keys, pins and
/// proxy) for the host's architecture, with the libraries they need; the .debs are kept in the package cache and
/// reused when their sha256 is the index's. They are patched (patchelf) to load their libraries from
/// `/usr/games/havel-native-helpers`; perl's compiled-in module directories of the host's architecture are replaced
/// by ones of the same length there. Nothing is placed in the tree: a dpkg run that only configures enters the
/// chroot through `unshare --mount`, and in that private mount namespace the helper directory is bound read-only over
/// the tree's `/usr/games` (base-files ships it empty; no configure step uses it) and each helper over the target's
/// program, when the tree holds the same source version of its package (a binNMU, a rebuild of the same source on
/// one architecture, fits) and the program's bytes are the package's own (its md5sums entry: no diversion, no local
/// edit), with the target program's time (scripts copy it). perl is served
/// only to a tree without perl modules of its architecture beyond perl-base's. The binds vanish with the namespace,
/// even when the build is killed; dpkg runs that unpack or remove never see them. After the install the tree is
/// searched for the helpers' path: a script that copied a helper into the tree fails the build.
public enum NativeHelpers {
    /// The packages whose programs are served natively, when the tree holds the host's version of them.
    public static let packages = ["dash", "coreutils", "sed", "grep", "findutils", "mawk", "diffutils", "gzip", "perl-base"]
    /// Programs that tell the machine, or load target code: they stay the target's.
    public static let excluded = ["uname", "arch", "nproc", "stdbuf", "who", "users", "pinky", "hostid", "chroot"]
    /// What a target of another word size keeps its own: whole packages (perl's integers, mawk's printf of
    /// integers through long) and programs (od's long, the long double of seq, numfmt, printf and sort -g, the
    /// time_t of date and touch, dd's size_t block sizes, xargs's pointer-sized argument accounting).
    public static let wordSizeBound = (packages: ["perl-base", "mawk"], programs: ["od", "seq", "numfmt", "printf", "sort", "date", "touch", "dd", "xargs"])
    /// The directory the helpers see inside the chroot; their interpreter and libraries are below it. Its name is
    /// what the search after the install looks for.
    public static let mountedAt = "/usr/games/havel-native-helpers"
    public static let fileName = "native-helpers.sh"
    public static let setupHookName = "setup90-havel-native-helpers.sh"

    /// The setup hook that records where mmdebstrap's apt configuration is (hooks alone are told), for the
    /// helpers' download.
    static func setupHook(aptConfigRecord: String) -> String {
        """
        #!/bin/sh
        # Havel, fast install path: the native helpers are fetched with mmdebstrap's apt configuration.
        printf '%s\\n' "${MMDEBSTRAP_APT_CONFIG:-}" > \(Command.shellQuote(aptConfigRecord))

        """
    }

    /// `native-helpers.sh prepare DIR` (make the helpers, or write why not in DIR/refused), `native-helpers.sh
    /// enter DIR ROOT COMMAND...` (inside `unshare --mount`: bind them and chroot), `native-helpers.sh scan ROOT`
    /// (fail when a helper was copied into the tree).
    public static func script() -> String {
        """
        #!/bin/bash
        # Havel, fast install path: host-architecture builds of the tree's dash, coreutils, sed, grep, findutils,
        # mawk, diffutils, gzip and perl serve the target's configure runs, bound over the target's programs in a
        # private mount namespace.
        set -u
        packages=(\(packages.joined(separator: " ")))
        mounted=\(mountedAt)
        place=${mounted%/*}

        elf_kind() { od -An -tx1 -j4 -N2 "$1" 2>/dev/null | tr -d ' \\n'; }

        # prepare DIR APT_CONFIG CACHE: the host-architecture builds of the helper packages and the libraries
        # they need, from the project's own sources with mmdebstrap's apt configuration (keys, pins, proxy), so
        # their versions are the tree's; .debs are kept in CACHE and reused when their sha256 is the index's.
        prepare() {
            local helpers=$1 apt_config=$2 cache=$3 pkg version path name file sum arch deb
            local store=$helpers/mount/${mounted##*/} work=$helpers/work
            rm -rf "$helpers"
            mkdir -p "$store/lib" "$store/bin" "$work/debs" "$work/lists/partial" "$work/apt-cache" "$cache"
            refuse() { echo "$1" >"$helpers/refused"; exit 0; }
            command -v patchelf >/dev/null || refuse "patchelf is missing (setup-host.sh installs it)"
            [[ -z $apt_config || -r $apt_config ]] || refuse "mmdebstrap's apt configuration is not at hand"
            arch=$(dpkg --print-architecture)
            : >"$work/status"
            local include=
            [[ -z $apt_config ]] || include="#include \"$apt_config\";"
            cat >"$work/apt.conf" <<CONFIGURATION
        $include
        #clear APT::Architectures;
        APT::Architecture "$arch";
        APT::Architectures { "$arch"; };
        Dir::State::Lists "$work/lists/";
        Dir::State::Status "$work/status";
        Dir::Cache "$work/apt-cache/";
        CONFIGURATION
            export APT_CONFIG=$work/apt.conf
            apt-get -q update >"$work/apt.log" 2>&1 || refuse "apt-get update for $arch failed: $(tail -1 "$work/apt.log")"
            local wanted=()
            mapfile -t wanted < <(apt-cache depends --recurse --important "${packages[@]}" 2>/dev/null |
                awk -v helpers=" ${packages[*]} " '/^[a-z0-9]/ && (index(helpers, " " $1 " ") || $1 ~ /^(lib|zlib)/) { print $1 }' | sort -u)
            [[ ${#wanted[@]} -gt 0 ]] || refuse "the project's sources have no $arch builds of ${packages[*]}"
            local missing=()
            while read -r pkg version file sum; do
                [[ -n $sum ]] || continue
                file=${pkg}_${version//:/%3a}_${file}.deb
                if [[ -f $cache/$file && $(sha256sum <"$cache/$file") == "$sum  -" ]]; then
                    cp "$cache/$file" "$work/debs/"
                else
                    missing+=("$pkg:$arch")
                fi
            done < <(apt-cache show --no-all-versions "${wanted[@]/%/:$arch}" 2>/dev/null | awk '
                /^Package:/ { p = $2 } /^Version:/ { v = $2 } /^Architecture:/ { a = $2 } /^SHA256:/ { s = $2 }
                /^$/ { if (p != "") print p, v, a, s; p = "" } END { if (p != "") print p, v, a, s }')
            if [[ ${#missing[@]} -gt 0 ]]; then
                (cd "$work/debs" && apt-get -q download "${missing[@]}") >>"$work/apt.log" 2>&1 ||
                    refuse "apt-get download of the $arch helpers failed: $(tail -1 "$work/apt.log")"
                cp -n "$work/debs/"*.deb "$cache/" 2>/dev/null || true
            fi
            unset APT_CONFIG
            # Every library into one directory; the loader under a fixed name.
            for deb in "$work/debs/"*.deb; do
                pkg=$(dpkg-deb -f "$deb" Package)
                mkdir -p "$work/tree/$pkg" && dpkg-deb -x "$deb" "$work/tree/$pkg" || refuse "cannot extract $deb"
            done
            find "$work/tree" \\( -path '*/lib/*-linux-*/*' -o -path '*/lib64/*' \\) \\( -type f -o -type l \\) -name '*.so*' \
                -exec cp -an -t "$store/lib/" {} + 2>/dev/null
            local loader
            loader=$(patchelf --print-interpreter "$work/tree/dash/bin/dash" 2>/dev/null || patchelf --print-interpreter "$work/tree/dash/usr/bin/dash") ||
                refuse "the $arch dash has no loader"
            [[ -e $store/lib/${loader##*/} ]] || refuse "the $arch libc6 has no ${loader##*/}"
            cp -L "$store/lib/${loader##*/}" "$store/lib/ld.so"
            : >"$helpers/programs"
            for pkg in "${packages[@]}"; do
                [[ -d $work/tree/$pkg ]] || continue
                # The source version: a binNMU (another +bN rebuild of the same source on one architecture) still fits.
                version=$(dpkg-deb --showformat='${source:Version}' --show "$work/debs/${pkg}_"*.deb)
                while read -r path; do
                    path=${path#.}
                    case $path in /bin/* | /sbin/* | /usr/bin/* | /usr/sbin/*) ;; *) continue ;; esac
                    file=$work/tree/$pkg$path
                    [[ -f $file && ! -L $file && $(head -c4 "$file" | od -An -c | tr -d ' ') == 177ELF ]] || continue
                    name=${path##*/}
                    case " \(excluded.joined(separator: " ")) " in *" $name "*) continue ;; esac
                    # Every library it needs is at hand, or it is not a helper.
                    "$store/lib/ld.so" --library-path "$store/lib" --list "$file" 2>&1 | grep -q 'not found' && continue
                    mkdir -p "$store/bin/$pkg"
                    cp "$file" "$store/bin/$pkg/$name" &&
                        patchelf --set-interpreter "$mounted/lib/ld.so" --force-rpath --set-rpath "$mounted/lib" "$store/bin/$pkg/$name" ||
                        refuse "patchelf cannot prepare $path"
                    echo "$pkg $version $path" >>"$helpers/programs"
                done < <(dpkg-deb --fsys-tarfile "$work/debs/${pkg}_"*.deb | tar -t)
            done
            [[ ! -e $store/bin/perl-base/perl ]] || perl_directories "$work/tree/perl-base" "$store" || {
                rm -rf "$store/bin/perl-base"
                grep -v '^perl-base ' "$helpers/programs" >"$helpers/programs.new"
                mv "$helpers/programs.new" "$helpers/programs"
            }
            [[ -s $helpers/programs ]] || refuse "none of the $arch helpers could be prepared"
            elf_kind "$store/lib/ld.so" >"$helpers/kind" || refuse "cannot read the ELF header of the $arch loader"
            rm -rf "$work/tree" "$work/lists" "$work/apt-cache" "$work/debs"
            touch "$helpers/ready"
        }

        # The helper perl looks for its modules of the host's architecture where the host has them
        # (/usr/lib/TRIPLET/perl-base, ...), which a foreign tree lacks: each such directory compiled into the
        # binary is replaced by one of the same length below $mounted, holding the helper perl-base's own
        # modules (the others empty: perl is served only to trees without further perl modules, see enter).
        perl_directories() {
            local extracted=$1 store=$2 directory tag replacement index=0 binary
            while read -r directory; do
                [[ ${#directory} -gt $((${#mounted} + 2)) ]] || return 1
                tag=p$index
                while [[ $(( ${#mounted} + 1 + ${#tag} )) -lt ${#directory} ]]; do tag+=_; done
                replacement=$mounted/$tag
                [[ ${#replacement} -eq ${#directory} ]] || return 1
                mkdir -p "$store/$tag"
                [[ ! -d $extracted$directory ]] || cp -a "$extracted$directory/." "$store/$tag/" || return 1
                for binary in "$store/bin/perl-base/"*; do
                    FROM=$directory TO=$replacement perl -0777 -pi -e 's{\\Q$ENV{FROM}\\E(?=\\0)}{$ENV{TO}}g' "$binary" || return 1
                done
                index=$((index + 1))
            done < <(grep -aoE '/usr/(local/)?lib/[a-z0-9_]+-linux-[a-z0-9_]+/perl[-a-z0-9_./]*' "$store/bin/perl-base/perl" | sort -u)
            [[ $index -gt 0 ]]
        }

        # perl is served only where the tree has no perl modules of its architecture beyond perl-base's.
        perl_alone() {
            local directory
            for directory in "$1"/usr/lib/*/perl5 "$1"/usr/lib/*/perl "$1"/usr/local/lib/*/perl*; do
                [[ -e $directory ]] && return 1
            done
            return 0
        }

        enter() {
            local helpers=$1 root=$2 pkg version path sum real
            shift 2
            local store=$helpers/mount/${mounted##*/}
            declare -A tree_version=() own_sum=()
            while read -r pkg version; do tree_version[$pkg]=$version; done < <(
                dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Package} ${source:Version}\\n' "${packages[@]}" 2>/dev/null)
            for pkg in "${packages[@]}"; do
                [[ -f $root/var/lib/dpkg/info/$pkg.md5sums ]] || continue
                while read -r sum path; do own_sum[/$path]=$sum; done <"$root/var/lib/dpkg/info/$pkg.md5sums"
            done
            if [[ -d $root$place && ! -L $root$place && ! -L $root/usr ]] && mount --bind "$helpers/mount" "$root$place" &&
                mount -o remount,bind,ro "$root$place"; then
                local served=0 skipped=() from=()
                local perl_ok=yes narrow=
                perl_alone "$root" || perl_ok=
                # A target of another word size: only what does not depend on it.
                [[ $(elf_kind "$root/usr/bin/dpkg") == "$(<"$helpers/kind")" ]] || narrow=yes
                while read -r pkg version path; do
                    [[ $pkg != perl-base || -n $perl_ok ]] || continue
                    if [[ -n $narrow ]]; then
                        case " \(wordSizeBound.packages.joined(separator: " ")) " in *" $pkg "*) continue ;; esac
                        case " \(wordSizeBound.programs.joined(separator: " ")) " in *" ${path##*/} "*) continue ;; esac
                    fi
                    if [[ ${tree_version[$pkg]:-} != "$version" ]]; then
                        [[ -z ${tree_version[$pkg]:-} || " ${skipped[*]} " == *" $pkg "* ]] || skipped+=("$pkg")
                        continue
                    fi
                    real=$(readlink -f -- "$root$path") && [[ $real == "$root"/* && -f $real ]] || continue
                    [[ -n ${own_sum[$path]:-} && $(md5sum <"$real") == "${own_sum[$path]}  -" ]] || continue
                    # Scripts copy the program's time (dash's postinst, update-alternatives): it is the target's.
                    touch --no-dereference --reference="$real" "$store/bin/$pkg/${path##*/}" &&
                        mount --bind "$store/bin/$pkg/${path##*/}" "$real" || continue
                    served=$((served + 1))
                    [[ " ${from[*]} " == *" $pkg "* ]] || from+=("$pkg")
                done <"$helpers/programs"
                if [[ ! -e $helpers/said ]]; then
                    local not=
                    [[ ${#skipped[@]} -eq 0 ]] || not="; not those of ${skipped[*]}, whose source version in the tree is another"
                    [[ -n $perl_ok || -n $narrow ]] || not+="; not perl, as the tree has perl modules beyond perl-base's"
                    [[ -z $narrow ]] || not+="; not \(wordSizeBound.packages.joined(separator: ", ")) nor \(wordSizeBound.programs.joined(separator: ", ")), whose results depend on the word size, which is another in this tree"
                    echo "havel: native helpers serve the target's scripts: $served programs of ${from[*]}$not" >&2
                    touch "$helpers/said"
                fi
            elif [[ ! -e $helpers/said ]]; then
                echo "havel: the native helpers cannot be mounted on the tree's $place; scripts run under emulation" >&2
                touch "$helpers/said"
            fi
            exec \(NativeUnpack.realChroot) "$root" "$@"
        }

        # A helper copied into the tree (cp of /bin/sh, say) would be a host program left in the target.
        scan() {
            local found
            found=$(find "$1" -xdev -type f -size -64M -print0 | xargs -0r grep -lsF -- "$mounted/lib" | head -5 | tr '\\n' ' ')
            [[ -z $found ]] && return 0
            echo "havel: a maintainer script copied a native helper into the tree ($found); build with --install-mode emulated" >&2
            return 1
        }

        # scan_initrd FILE...: an initramfs made with the helpers must not carry one (mkinitramfs copies programs).
        scan_initrd() {
            local file magic status
            for file; do
                magic=$(od -An -tx1 -N4 "$file" | tr -d ' \\n')
                case $magic in
                    1f8b*) status=(gzip -dc) ;;
                    28b52ffd) status=(zstd -dcq) ;;
                    fd377a58) status=(xz -dc) ;;
                    425a68*) status=(bzip2 -dc) ;;
                    02214c18) status=(lz4 -dc) ;;
                    5d00*) status=(xz --format=lzma -dc) ;;
                    30373037) status=(cat) ;;
                    *) echo "havel: cannot read $file (it starts $magic) to check it for native helpers; build with --install-mode emulated" >&2; return 1 ;;
                esac
                command -v "${status[0]}" >/dev/null || { echo "havel: ${status[0]} is missing to check $file for native helpers" >&2; return 1; }
                # One pass: how often the helpers' path occurs, and whether the whole file decompressed.
                local found
                found=$("${status[@]}" <"$file" | grep -caF -- "$mounted/lib"; exit "${PIPESTATUS[0]}") ||
                    { echo "havel: cannot decompress $file to check it for native helpers" >&2; return 1; }
                [[ $found == 0 ]] || { echo "havel: $file carries a native helper; build with --install-mode emulated" >&2; return 1; }
            done
        }

        command=$1
        shift
        "$command" "$@"

        """
    }

    /// Where the install prepares its helpers below its work directory `bootstrapWork` (`ready` in it when they are).
    public static func directory(bootstrapWork: String) -> String {
        bootstrapWork + "/" + NativeUnpack.directoryName + "/helpers"
    }

    /// Writes this Havel's helper script beside `directory(bootstrapWork:)`, for helpers kept from an earlier install
    /// and copied there (a rebuild from the stage cache makes its initramfs with them). Whether they apply is decided
    /// as ever, program by program, when the tree is entered.
    public static func writeScript(bootstrapWork: String) throws(HavelError) {
        let parent = (directory(bootstrapWork: bootstrapWork) as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            try script().write(toFile: parent + "/" + fileName, atomically: true, encoding: .utf8)
        } catch {
            throw HavelError(.io, "cannot write the native helpers' script into \(parent): \(error.localizedDescription)")
        }
    }

    /// The words that enter a tree with the helpers prepared by this build's install (as `chroot` would: the tree
    /// and the command follow), when it prepared them; `bootstrapWork` is the install's work directory.
    public static func enterCommand(bootstrapWork: String) -> (enter: [String], scan: [String])? {
        let helpers = directory(bootstrapWork: bootstrapWork)
        guard FileManager.default.fileExists(atPath: helpers + "/ready") else { return nil }
        let script = (helpers as NSString).deletingLastPathComponent + "/" + fileName
        return (["bash", script, "enter", helpers], ["bash", script])
    }

    /// The shell functions the wrappers use (appended to `NativeUnpack.checks()`): `in_target COMMAND...` runs
    /// a configure-only dpkg run in the chroot with the helpers where they apply, else as plain chroot.
    static func inTarget(script: String, directory: String, aptConfigRecord: String, cache: String) -> String {
        """
        # Native helpers (NativeHelpers): prepared once per build (helpers_start, in the background while the
        # essential packages are unpacked), used where the tree's programs are of the host's byte order (of another
        # word size, only those that do not depend on it: enter decides).
        helpers_script=\(Command.shellQuote(script))
        helpers=\(Command.shellQuote(directory))
        helpers_pid=
        helpers_say() { [[ -e $helpers/said ]] || { echo "havel: $1" >&2; mkdir -p "$helpers" && touch "$helpers/said"; }; }
        helpers_fit() {
            [[ $(od -An -tx1 -j5 -N1 "$root/usr/bin/dpkg" 2>/dev/null | tr -d ' \\n') == "$(od -An -tx1 -j5 -N1 /usr/bin/dpkg | tr -d ' \\n')" ]] && return 0
            helpers_say "no native helpers: the target's byte order is not the host's"
            return 1
        }
        helpers_start() {
            [[ -e $helpers/ready || -e $helpers/refused ]] && return 0
            helpers_fit || return 0
            bash "$helpers_script" prepare "$helpers" "$(cat \(Command.shellQuote(aptConfigRecord)) 2>/dev/null)" \(Command.shellQuote(cache)) >&2 &
            helpers_pid=$!
        }
        helpers_apply() {
            helpers_fit || return 1
            [[ -n $helpers_pid ]] || helpers_start
            [[ -z $helpers_pid ]] || wait "$helpers_pid" || true
            helpers_pid=
            [[ -e $helpers/ready || -e $helpers/refused ]] || { mkdir -p "$helpers" && echo "preparing them failed" >"$helpers/refused"; }
            [[ -e $helpers/ready ]] && return 0
            helpers_say "no native helpers: $(<"$helpers/refused")"
            return 1
        }
        in_target() {
            helpers_apply && exec unshare --mount --propagation private -- bash "$helpers_script" enter "$helpers" "$root" "$@"
            exec "$real_chroot" "$root" "$@"
        }

        """
    }
}
