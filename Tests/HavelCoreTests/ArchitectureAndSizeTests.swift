import HavelCore
import Testing

@Suite struct ArchitectureTests {
    @Test(arguments: [
        ("armel", Architecture.armel, "arm"), ("armhf", .armhf, "arm"), ("aarch64", .arm64, "aarch64"),
        ("ppc", .powerpc, "ppc"), ("ppc64el", .ppc64el, "ppc64le"), ("amd64", .amd64, "x86_64"),
        ("i386", .i386, "i386"), ("riscv64", .riscv64, "riscv64"),
    ])
    func buildtypeMapsToDebianAndQemu(buildtype: String, arch: Architecture, qemu: String) {
        #expect(Architecture(buildtype: buildtype) == arch)
        #expect(arch.qemuUserName == qemu)
        #expect(arch.buildtype == buildtype)
    }

    @Test func unknownBuildtypeIsNil() {
        #expect(Architecture(buildtype: "arm64") == nil)
        #expect(Architecture(buildtype: "") == nil)
    }

    @Test func nativeCompatibility() {
        #expect(Architecture.i386.runsNatively(on: .amd64))
        #expect(!Architecture.arm64.runsNatively(on: .amd64))
        #expect(Architecture.armhf.runsNatively(on: .arm64))
    }
}

@Suite struct SizeSpecTests {
    @Test(arguments: [
        ("512", UInt64(512)), ("64kB", 64_000), ("64k", 64_000), ("4kiB", 4096), ("100MiB", 100 << 20),
        ("50M", 50_000_000), ("2MB", 2_000_000), ("1GiB", 1 << 30), ("80G", 80_000_000_000), ("3GB", 3_000_000_000),
    ])
    func parsesUnits(text: String, bytes: UInt64) {
        #expect(SizeSpec(parsing: text) == .bytes(bytes))
    }

    @Test(arguments: ["", "MiB", "12XB", "1.5GiB", "-1", "10 MiB", "remainder", "99999999999999999999GiB"])
    func rejectsNonsense(text: String) {
        #expect(SizeSpec(parsing: text) == nil)
    }

    @Test func remainOnlyWhereAllowed() {
        #expect(SizeSpec(parsing: "remain") == .remain)
        #expect(SizeSpec(parsing: "remain", allowRemain: false) == nil)
    }

    @Test func formatsBinarySizes() {
        #expect(ByteCount.format(512) == "512 B")
        #expect(ByteCount.format(1 << 30) == "1 GiB")
        #expect(ByteCount.format(1_572_864) == "1.5 MiB")
    }
}
