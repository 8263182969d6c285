import Debian
import Reports
import Testing

private let installed = [
    InstalledPackage(name: "bash", version: "5.2.15-2+b8", architecture: "arm64", sourceVersion: "5.2.15-2", essential: true),
    InstalledPackage(name: "less", version: "590-2.1~deb12u2", architecture: "arm64"),
    InstalledPackage(name: "libc6", version: "2.36-9+deb12u10", architecture: "arm64", sourceName: "glibc"),
    InstalledPackage(name: "libc6", version: "2.36-9+deb12u10", architecture: "armhf", sourceName: "glibc"),
    InstalledPackage(name: "tzdata", version: "2025b-0+deb12u1", architecture: "all", autoInstalled: true),
]

private let hashes = [
    "bash 5.2.15-2+b8 arm64": "aa01",
    "less 590-2.1~deb12u2 arm64": "bb02",
    "libc6 2.36-9+deb12u10 arm64": "cc03",
    "libc6 2.36-9+deb12u10 armhf": "dd04",
    "tzdata 2025b-0+deb12u1 all": "ee05",
]

private let pins = [
    PinnedPackageRecord(name: "bash", version: "5.2.15-2+b8", arch: "arm64", sha256: "AA01"),
    PinnedPackageRecord(name: "less", version: "590-2.1~deb12u2", arch: "arm64", sha256: "bb02"),
    PinnedPackageRecord(name: "libc6", version: "2.36-9+deb12u10", arch: "arm64", sha256: "cc03"),
    PinnedPackageRecord(name: "libc6", version: "2.36-9+deb12u10", arch: "armhf", sha256: "dd04"),
    PinnedPackageRecord(name: "tzdata", version: "2025b-0+deb12u1", arch: "all", sha256: "ee05"),
]

private func errors(_ text: String) -> [String] {
    text.split(separator: "\n").filter { $0.hasPrefix("ERROR: ") }.map(String.init)
}

@Suite struct PackageValidationTests {
    @Test func requestedPackagesPresentAndMatching() {
        let requested = [RequestedPackage(name: "bash"), RequestedPackage(name: "less", versionGlob: "590*"),
                         RequestedPackage(name: "libc6:armhf", versionGlob: "2.36-*")]
        let result = PackageValidation.validate(requested: requested, installed: installed, hashes: [:], pinned: [])
        #expect(result.passed)
        #expect(result.text.hasPrefix("Havel package validation\n"))
        #expect(errors(result.text).isEmpty)
        #expect(result.text.contains("\nrequested packages: 3, all installed\n"))
        #expect(result.text.hasSuffix("\nvalidation passed: 3 packages checked\n"))
        #expect(!result.text.contains("Pinned"))
    }

    @Test func missingAndMismatchingRequestedPackages() {
        let requested = [RequestedPackage(name: "bash"), RequestedPackage(name: "vim"),
                         RequestedPackage(name: "less", versionGlob: "600*"),
                         RequestedPackage(name: "libc6:riscv64"),
                         RequestedPackage(name: "tzdata:arm64", versionGlob: "2025*")]
        let result = PackageValidation.validate(requested: requested, installed: installed, hashes: [:], pinned: [])
        #expect(!result.passed)
        #expect(errors(result.text) == [
            "ERROR: package vim is not installed",
            "ERROR: package less version 590-2.1~deb12u2 does not match 600*",
            "ERROR: package libc6:riscv64 is not installed",
        ])
        #expect(result.text.hasSuffix("\nvalidation FAILED: 3 errors\n"))
    }

    @Test func globAgainstSeveralArchitectures() {
        let other = installed + [InstalledPackage(name: "zlib1g", version: "1:1.2.13.dfsg-1", architecture: "arm64")]
        let result = PackageValidation.validate(requested: [RequestedPackage(name: "libc6", versionGlob: "2.35*"),
                                                            RequestedPackage(name: "zlib1g", versionGlob: "1:1.2.*")],
                                                installed: other, hashes: [:], pinned: [])
        #expect(errors(result.text) == ["ERROR: package libc6 version 2.36-9+deb12u10, 2.36-9+deb12u10 does not match 2.35*"])
        #expect(result.text.hasSuffix("validation FAILED: 1 error\n"))
    }

    @Test func rebuildWithExactPinsPasses() {
        let result = PackageValidation.validate(requested: [RequestedPackage(name: "bash")], installed: installed,
                                                hashes: hashes, pinned: pins)
        #expect(result.passed, "\(result.text)")
        #expect(result.text.contains("Pinned package list"))
        #expect(result.text.contains("\npinned packages: 5, all match\n"))
        #expect(result.text.hasSuffix("validation passed: 4 packages checked\n"))
    }

    @Test func rebuildReportsEveryDifference() {
        var pinned = pins
        pinned[1].version = "590-2"                                    // less: other version
        pinned[2].sha256 = "ffff"                                      // libc6 arm64: other hash
        pinned[4].sha256 = nil                                         // tzdata: pin without hash
        pinned.remove(at: 3)                                           // libc6 armhf: installed but not pinned
        pinned.append(PinnedPackageRecord(name: "nano", version: "7.2-1", arch: "arm64", sha256: "0101"))
        var knownHashes = hashes
        knownHashes["bash 5.2.15-2+b8 arm64"] = nil                    // bash: hash unknown

        let result = PackageValidation.validate(requested: [], installed: installed, hashes: knownHashes, pinned: pinned)
        #expect(!result.passed)
        #expect(errors(result.text) == [
            "ERROR: package bash (arm64) 5.2.15-2+b8: sha256 of the installed .deb is unknown",
            "ERROR: package less (arm64) version 590-2.1~deb12u2 does not match pinned version 590-2",
            "ERROR: package libc6 (arm64) 2.36-9+deb12u10 sha256 cc03 does not match pinned sha256 ffff",
            "ERROR: pinned package nano (arm64) 7.2-1 is not installed",
            "ERROR: pinned package tzdata (all) 2025b-0+deb12u1 has no sha256",
            "ERROR: package libc6 (armhf) 2.36-9+deb12u10 is installed but not pinned",
        ])
        #expect(result.text.hasSuffix("\nvalidation FAILED: 6 errors\n"))
    }

    @Test func pinsWithoutArchitectureMatchTheOnlyInstalledPackage() {
        var pinned = pins
        pinned[0].arch = ""                                            // bash: one installed, matches
        pinned[2].arch = ""                                            // libc6: two installed, ambiguous
        let result = PackageValidation.validate(requested: [], installed: installed, hashes: hashes, pinned: pinned)
        #expect(errors(result.text) == [
            "ERROR: pinned package libc6 2.36-9+deb12u10 names no architecture, and libc6 is installed for arm64, armhf",
            "ERROR: package libc6 (arm64) 2.36-9+deb12u10 is installed but not pinned",
        ])
    }

    @Test func nothingRequestedNothingPinned() {
        let result = PackageValidation.validate(requested: [], installed: installed, hashes: [:], pinned: [])
        #expect(result.passed)
        #expect(result.text.hasSuffix("validation passed: 0 packages checked\n"))
    }
}
