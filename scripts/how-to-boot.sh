#!/bin/sh
# Prints, after `make run`, where the default example's image is and how to boot it by hand (docs/guide.md
# says the same). Says nothing for a build directory without sdcard.img (another EXAMPLE=).
set -eu
dir=${1:?usage: how-to-boot.sh BUILD_DIR}
[ -f "$dir/sdcard.img" ] || exit 0
cat <<TEXT

The image is $dir/sdcard.img; the boot check logged in to it (check.xml, check-*.log).
Boot it by hand on its serial console (log in as root, password havel; Ctrl-A X quits qemu):

  cp /usr/share/AAVMF/AAVMF_VARS.fd /tmp/vars.fd
  qemu-system-aarch64 -M virt -cpu max -m 1G -nographic -nic none \\
    -drive if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd \\
    -drive if=pflash,format=raw,file=/tmp/vars.fd \\
    -drive format=raw,file=$dir/sdcard.img,if=virtio,snapshot=on

or with the kernel and initrd in $dir/artifacts/, without firmware:

  qemu-system-aarch64 -M virt -cpu max -m 1G -nographic -nic none \\
    -kernel $dir/artifacts/vmlinuz -initrd $dir/artifacts/initrd.img \\
    -append "root=LABEL=rootfs console=ttyAMA0" \\
    -drive format=raw,file=$dir/sdcard.img,if=virtio,snapshot=on

Inside the tree: .build/debug/havel chroot $dir
TEXT
