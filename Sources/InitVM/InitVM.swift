// InitVM owns the build VM: making buildenv.img, the qemu process (KVM or TCG), forwards, start/stop/status/attach.
public enum InitVMModule {}
