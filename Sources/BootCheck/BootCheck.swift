// BootCheck owns booting an image in qemu-system and driving its serial console, with a JUnit report.
public enum BootCheckModule {}
