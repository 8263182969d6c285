#!/bin/bash
# Puts a Debian amd64 kernel (vmlinuz) into a cache directory for the BootCheck tests, which boot it
# in qemu-system-x86_64 with a small busybox initramfs. The kernel comes through apt from the
# configured Debian mirror: the package linux-image-cloud-amd64 depends on (apt-get download, then
# dpkg-deb -x). Idempotent: once the kernel is there, a second run does not touch the network.
#
#   scripts/fetch-test-kernel.sh [DIR]     DIR defaults to $HAVEL_TEST_KERNEL_DIR or /var/cache/havel/test-kernel
set -euo pipefail

dir=${1:-${HAVEL_TEST_KERNEL_DIR:-/var/cache/havel/test-kernel}}
meta=linux-image-cloud-amd64

if [[ -s "$dir/vmlinuz" ]]; then
    echo "fetch-test-kernel: $dir/vmlinuz is there ($(cat "$dir/VERSION" 2>/dev/null || echo unknown version))"
    exit 0
fi

if [[ $(dpkg --print-architecture) != amd64 ]] && ! dpkg --print-foreign-architectures | grep -qx amd64; then
    echo "fetch-test-kernel: apt here knows no amd64 packages; the BootCheck tests that boot a kernel will be skipped" >&2
    exit 0
fi

for tool in apt-get apt-cache dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "fetch-test-kernel: $tool is missing" >&2; exit 1; }
done

# The package lists may not have been fetched yet on a fresh machine.
if ! apt-cache show "$meta" >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "fetch-test-kernel: apt does not know $meta; run 'apt-get update' as root first" >&2
        exit 1
    fi
    apt-get update -qq
fi

# The versioned kernel package the meta package points to (linux-image-6.1.0-NN-cloud-amd64).
package=$(apt-cache depends "$meta" | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
if [[ -z "$package" ]]; then
    echo "fetch-test-kernel: cannot tell which kernel package $meta depends on" >&2
    exit 1
fi

mkdir -p "$dir"
work=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt downloads as the unprivileged _apt user when it can; let it write here.
if [[ $(id -u) -eq 0 ]] && id _apt >/dev/null 2>&1; then chown _apt "$work"; fi

echo "fetch-test-kernel: downloading $package"
(cd "$work" && apt-get download -q "$package" >/dev/null)
deb=$(ls "$work"/*.deb)
dpkg-deb -x "$deb" "$work/tree"

kernel=$(ls "$work"/tree/boot/vmlinuz-* | head -n 1)
[[ -s "$kernel" ]] || { echo "fetch-test-kernel: $deb holds no /boot/vmlinuz-*" >&2; exit 1; }
version=$(basename "$kernel"); version=${version#vmlinuz-}

cp "$work"/tree/boot/config-"$version" "$dir/config" 2>/dev/null || true
echo "$package $(dpkg-deb -f "$deb" Version) ($version)" >"$dir/VERSION"
cp "$kernel" "$dir/vmlinuz.new"
mv "$dir/vmlinuz.new" "$dir/vmlinuz"      # last: its presence means the cache is complete
echo "fetch-test-kernel: $dir/vmlinuz is $(cat "$dir/VERSION")"
