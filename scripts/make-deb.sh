#!/bin/bash
# Makes havel_<version>_<arch>.deb from a havel binary linked with the Swift runtime inside
# (--static-swift-stdlib): the binary, man pages from the commands' help (swift-argument-parser's
# generate-manual tool), bash/zsh/fish completions, the daemon's systemd unit (disabled: nothing enables
# it), the user's guide and the project-file reference. `make deb` gives it the release build; the package
# test gives it the static debug build that `make test` has already made.
#   scripts/make-deb.sh BINARY OUT_DIR      prints the .deb's path
set -euo pipefail

binary=${1:?usage: make-deb.sh BINARY OUT_DIR}
out=${2:?usage: make-deb.sh BINARY OUT_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
swift=${SWIFT:-swift}

if ldd "$binary" 2>/dev/null | grep -q libswiftCore; then
    echo "make-deb: $binary links the Swift runtime dynamically; build it with --static-swift-stdlib" >&2
    exit 1
fi

version=$("$binary" --version)
arch=$(dpkg --print-architecture)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$work/pkg

install -D -m 0755 "$binary" "$pkg/usr/bin/havel"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$pkg/usr/bin/havel"

# Man pages: one per command, named as git names its own (havel-build.1, havel-initvm-submit.1, ...),
# written by swift-argument-parser's generate-manual from the binary's help and dated by the last commit, so
# that one commit gives the same pages. It is run directly: `swift package plugin generate-manual` would
# take SwiftPM's lock on .build, which `swift test` holds while the package test runs this script.
date=$(git -C "$root" log -1 --format=%cs 2>/dev/null || date -u +%F)
manual=${GENERATE_MANUAL:-$root/.build/debug/generate-manual}
if [[ ! -x $manual ]]; then
    (cd "$root" && "$swift" build --product generate-manual >&2)
fi
mkdir "$work/man"
"$manual" "$binary" --multi-page --date "$date" --authors "The Havel authors" --output-directory "$work/man" >&2
install -d "$pkg/usr/share/man/man1"
for page in "$work"/man/*.1; do
    name=$(basename "$page" .1)
    # NAME holds the page's one-word name (havel-build) for whatis; the synopsis still shows "havel build".
    perl -pe 's/^(\.(?:Dt|Xr) )(\S+)/$1.($2 =~ tr{.}{-}r)/e;
              if (!defined $name && /^\.Nm "(.*)"$/) { $name = $1; $_ = ".Nm " . ($name =~ tr{ }{-}r) . "\n"; }
              elsif (defined $name && /^\.Nm$/) { $_ = ".Nm \"$name\"\n"; }' "$page" |
        gzip -9n > "$pkg/usr/share/man/man1/${name//./-}.1.gz"
done

install -d "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" \
    "$pkg/usr/share/fish/vendor_completions.d"
# bash sources the file: no #! line.
"$binary" --generate-completion-script bash | sed '1{/^#!/d}' > "$pkg/usr/share/bash-completion/completions/havel"
"$binary" --generate-completion-script zsh > "$pkg/usr/share/zsh/vendor-completions/_havel"
"$binary" --generate-completion-script fish > "$pkg/usr/share/fish/vendor_completions.d/havel.fish"

install -D -m 0644 "$root/packaging/havel-daemon.service" "$pkg/lib/systemd/system/havel-daemon.service"
install -D -m 0644 "$root/packaging/lintian-overrides" "$pkg/usr/share/lintian/overrides/havel"

doc=$pkg/usr/share/doc/havel
install -D -m 0644 "$root/packaging/copyright" "$doc/copyright"
install -m 0644 "$root/docs/guide.md" "$root/docs/project-file-reference.md" "$root/README.md" "$doc/"
# The guide links README.md one directory up; in the package the three sit side by side.
sed -i 's|](\.\./README\.md)|](README.md)|g' "$doc/guide.md"
gzip -9n "$doc/README.md" "$doc/project-file-reference.md"
sed -i 's|](project-file-reference\.md)|](project-file-reference.md.gz)|g; s|](README\.md)|](README.md.gz)|g' "$doc/guide.md"
{
    echo "havel ($version) unstable; urgency=medium"
    echo
    echo "  * Built from commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)."
    echo
    echo " -- The Havel authors <havel@example.org>  $(date -u -R -d "$date")"
} | gzip -9n > "$doc/changelog.gz"

# Depends: what every build runs (bootstrap, emulation, the image and packing tools, passwords; dpkg, tar,
# gzip and util-linux are essential);
# Recommends: what some projects need (other filesystems, boot checks, the build VM, CDs, own packages).
shlibs=$(cd "$work" && mkdir -p debian && printf 'Source: havel\n\nPackage: havel\nArchitecture: any\n' > debian/control &&
         dpkg-shlibdeps -O "$pkg/usr/bin/havel" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
depends="$shlibs, mmdebstrap, qemu-user-static, apt, zstd, pigz, xz-utils, e2fsprogs, fdisk, dosfstools, mtools, passwd, gpgv, ca-certificates, debian-archive-keyring"
recommends="debootstrap, arch-test, patchelf, bzip2, squashfs-tools, erofs-utils, btrfs-progs, f2fs-tools, mtd-utils, android-sdk-libsparse-utils, libarchive-tools, qemu-system-x86, qemu-system-arm, qemu-utils, ovmf, qemu-efi-aarch64, gnupg, apt-utils, xorriso, pbuilder, git, dpkg-dev"

install -d "$pkg/DEBIAN"
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: havel
Version: $version
Architecture: $arch
Maintainer: The Havel authors <havel@example.org>
Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
Depends: $depends
Recommends: $recommends
Section: devel
Priority: optional
Description: build Debian root filesystems and disk images from ELBE project files
 Havel reads the XML project files of ELBE (the Embedded Linux Build
 Environment) and builds from them Debian-based root filesystems, disk
 images and their deliverables (reports, licences, SBOM, source and binary
 CDs, an SDK) for boards of any Debian architecture, with mmdebstrap and
 qemu-user. It can also run its builds inside a build VM (the initvm)
 reached over an HTTP API.
CONTROL
(cd "$pkg" && find . -type f ! -path ./DEBIAN/\* -printf '%P\0' | sort -z | xargs -0 md5sum) > "$pkg/DEBIAN/md5sums"
find "$pkg" -exec touch -h -d "$date 00:00:00 UTC" {} +

mkdir -p "$out"
deb=$out/havel_${version}_${arch}.deb
SOURCE_DATE_EPOCH=$(date -u -d "$date" +%s) dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >&2
echo "$deb"
