// Chroot owns entering a target rootfs: qemu-user, mounts in a private namespace, policy-rc.d, resolv.conf.
public enum ChrootModule {}
