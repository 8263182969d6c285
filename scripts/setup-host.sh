#!/bin/bash
# Installs what Havel needs on a Debian 12 host, as root. Idempotent: a second run installs nothing
# and does not touch the network. Used by `make run`, `make test` and CI.
set -euo pipefail

# Building Havel: zlib and libcrypt headers for the C modules.
build_packages=(zlib1g-dev libcrypt-dev pkg-config libsqlite3-dev binutils)
# Building root filesystems: bootstrap tools, qemu-user for foreign architectures (Havel registers
# it with binfmt_misc itself), archivers, and the tools that set up users in a tree.
tool_packages=(mmdebstrap debootstrap qemu-user-static arch-test zstd xz-utils bzip2 pigz tar util-linux passwd
               ca-certificates debian-archive-keyring
               # the fast install path's native helpers: host programs patched to run inside a foreign tree
               patchelf
               # disk images from plain files (Images): partition tables, filesystems filled from a tree
               fdisk e2fsprogs dosfstools mtools squashfs-tools erofs-utils btrfs-progs f2fs-tools
               # <mtd> images: mkfs.ubifs and ubinize
               mtd-utils
               # set_packer android-sparse: img2simg (and simg2img, which its test reads the result back with)
               android-sdk-libsparse-utils
               # tests: openssl verifies password hashes, tinyproxy (the binary, no service) is the
               # <primary_proxy> a build goes through; bench: bc
               openssl tinyproxy-bin bc
               # the havel chroot session test types into it through tmux
               tmux
               # make deb: lintian checks the package
               lintian
               # the mtd image test reads UBI images back with ubi_reader, installed by pip below
               python3-pip
               # boot checks: qemu-system for the image's architecture; their tests boot a Debian
               # kernel with a busybox initramfs (scripts/fetch-test-kernel.sh)
               qemu-system-x86 qemu-system-arm ovmf qemu-efi-aarch64 qemu-utils busybox-static cpio gzip procps
               # cpio rootfs archives are written by bsdtar from a sorted, clamped tar stream
               libarchive-tools
               # the binary CD (--cdroms): a signed apt repository (apt-ftparchive, gpg) in an ISO image
               apt-utils gnupg xorriso
               # <pbuilder> (own packages): pbuilder builds in a chroot tarball made by mmdebstrap; git clones
               # <git> sources, dpkg-dev makes the .dsc (build dependencies go inside the chroot, not here)
               pbuilder git dpkg-dev
               # the SBOM validation test: a venv for cyclonedx-python-lib and spdx-tools (below)
               python3-venv
               # the web page's browser test: Debian's chromium, headless, driven by Playwright (venv below)
               chromium)

missing=()
for pkg in "${build_packages[@]}" "${tool_packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup-host: missing packages: ${missing[*]}; run as root or: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "setup-host: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian kernel the BootCheck tests boot (cached; no network once it is there).
if [[ $(id -u) -eq 0 ]]; then
    "$(dirname "$0")/fetch-test-kernel.sh" ||
        echo "setup-host: warning: no test kernel could be fetched; the BootCheck boot tests will be skipped" >&2
elif [[ ! -s ${HAVEL_TEST_KERNEL_DIR:-/var/cache/havel/test-kernel}/vmlinuz ]]; then
    echo "setup-host: no test kernel; the BootCheck boot tests will be skipped (run scripts/fetch-test-kernel.sh as root)" >&2
fi

# SBOM validation (the SBOM integration test): cyclonedx-python-lib and spdx-tools in a venv of their own,
# installed once; a second run finds both importable and touches nothing.
sbom_venv=${HAVEL_SBOM_VENV:-/opt/havel-sbom-validators}
if [[ $(id -u) -eq 0 ]] && ! "$sbom_venv/bin/python" -c 'import cyclonedx.validation.json, spdx_tools.spdx.parser.parse_anything' 2>/dev/null; then
    echo "setup-host: installing the SBOM validators into $sbom_venv"
    { /usr/bin/python3 -m venv "$sbom_venv" &&
      "$sbom_venv/bin/python" -m pip install -q 'cyclonedx-python-lib[json-validation]' spdx-tools; } ||
        echo "setup-host: warning: no SBOM validators; the SBOM validation test will be skipped" >&2
fi

# The web page's browser test: Playwright from PyPI in a venv, pointed at Debian's chromium (its own
# browser download is never used).
browser_venv=${HAVEL_BROWSER_VENV:-/opt/havel-browser-test}
if [[ $(id -u) -eq 0 ]] && ! "$browser_venv/bin/python" -c 'import playwright.sync_api' 2>/dev/null; then
    echo "setup-host: installing Playwright into $browser_venv"
    { /usr/bin/python3 -m venv "$browser_venv" && "$browser_venv/bin/python" -m pip install -q playwright==1.65.3; } ||
        echo "setup-host: warning: no Playwright; the web page's browser test will be skipped" >&2
fi

# The mtd image test reads UBI images back with ubi_reader (PyPI; Debian 12 has no package of it).
if [[ ! -x /usr/local/bin/ubireader_display_info ]] && ! command -v ubireader_display_info >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && /usr/bin/python3 -m pip --version >/dev/null 2>&1; then
        /usr/bin/python3 -m pip install -q --break-system-packages ubi_reader ||
            echo "setup-host: warning: ubi_reader could not be installed; the mtd image test will be skipped" >&2
    else
        echo "setup-host: no ubireader_display_info; the mtd image test will be skipped (python3 -m pip install ubi_reader)" >&2
    fi
fi

swift_bin=${SWIFT:-swift}
if ! command -v "$swift_bin" >/dev/null 2>&1 && [[ ! -x /opt/swift/usr/bin/swift ]]; then
    echo "setup-host: Swift 6.2 or newer is needed (expected at /opt/swift/usr/bin/swift or on PATH)" >&2
    exit 1
fi
echo "setup-host: ready"
