#!/bin/bash
# Installs what Havel needs on a Debian 12 host, as root. Idempotent: a second run installs nothing
# and does not touch the network. Used by `make run`, `make test` and CI.
set -euo pipefail

# Building Havel: zlib and libcrypt headers for the C modules.
build_packages=(zlib1g-dev libcrypt-dev pkg-config)
# Building root filesystems: bootstrap tools, qemu-user for foreign architectures (Havel registers
# it with binfmt_misc itself), archivers, and the tools that set up users in a tree.
tool_packages=(mmdebstrap debootstrap qemu-user-static arch-test zstd xz-utils bzip2 tar util-linux passwd
               ca-certificates debian-archive-keyring
               # tests: openssl verifies password hashes; bench: bc
               openssl bc)

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

swift_bin=${SWIFT:-swift}
if ! command -v "$swift_bin" >/dev/null 2>&1 && [[ ! -x /opt/swift/usr/bin/swift ]]; then
    echo "setup-host: Swift 6.2 or newer is needed (expected at /opt/swift/usr/bin/swift or on PATH)" >&2
    exit 1
fi
echo "setup-host: ready"
