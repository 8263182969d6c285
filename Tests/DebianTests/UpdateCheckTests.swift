// Tests for UpdateCheck: installed versions against Packages indices (a fixture, and the host's real mirror).
import Debian
import Foundation
import HavelCore
import SystemKit
import Testing

@Suite struct UpdateCheckTests {
    static let packages = """
        Package: bash
        Version: 5.2.15-2+b7
        Architecture: arm64
        Filename: pool/main/b/bash/bash_5.2.15-2+b7_arm64.deb

        Package: bash
        Version: 5.2.15-2+b2
        Architecture: arm64

        Package: bash
        Version: 9.9-1
        Architecture: amd64

        Package: tzdata
        Version: 2024a-0+deb12u1
        Architecture: all

        Package: libc6
        Version: 2.36-9+deb12u4
        Architecture: arm64

        Package: libc6
        Version: 2.36-9+deb12u10
        Architecture: arm64

        Package: zlib1g
        Version: 1:1.2.13.dfsg-1
        Architecture: arm64

        """

    @Test func listsNewerVersionsAndPackagesTheMirrorLost() {
        let available = PackagesIndex.parse(Self.packages, origin: "MIRROR_HOST/debian bookworm main")
        let installed = [
            PinnedPackage(name: "bash", version: "5.2.15-2+b2", arch: "arm64"),            // b7 is newer; amd64's 9.9 does not count
            PinnedPackage(name: "tzdata", version: "2024a-0+deb12u1", arch: "all"),         // current
            PinnedPackage(name: "libc6", version: "2.36-9+deb12u9", auto: true),           // u10 > u9 (not a string compare)
            PinnedPackage(name: "zlib1g", version: "1.2.13.dfsg-9", arch: "arm64"),         // epoch 1 beats a bigger upstream: newer
            PinnedPackage(name: "havel-gone", version: "1.0-1", auto: false),
            PinnedPackage(name: "libgone1", version: "1.0-1", auto: true),
            PinnedPackage(name: "newer-here", version: "2.0-1"),
        ]
        let extra = PackagesIndex.parse("Package: newer-here\nVersion: 1.0-1\nArchitecture: arm64\n", origin: "")
        let findings = UpdateCheck.compare(installed: installed, available: available + extra, architecture: "arm64")
        #expect(findings.map(\.description) == [
            "bash: 5.2.15-2+b2 -> 5.2.15-2+b7",
            "libc6: 2.36-9+deb12u9 -> 2.36-9+deb12u10",
            "zlib1g: 1.2.13.dfsg-9 -> 1:1.2.13.dfsg-1",
            "havel-gone: 1.0-1 is not in the repositories any more, but the pkg-list asks for it",
            "libgone1: 1.0-1 is not in the repositories any more (installed as a dependency)",
        ])
        #expect(findings[3].kind == .missing)
        #expect(findings[4].kind == .goneDependency)
    }

    @Test func upToDateGivesNothing() {
        let available = PackagesIndex.parse(Self.packages, origin: "")
        let installed = [PinnedPackage(name: "bash", version: "5.2.15-2+b7", arch: "arm64"), PinnedPackage(name: "libc6", version: "2.36-9+deb12u10")]
        #expect(UpdateCheck.compare(installed: installed, available: available, architecture: "arm64").isEmpty)
    }

    /// The host's mirror, when its apt sources name one and its bookworm Release can be fetched.
    static let mirror: (url: String?, skipReason: String) = {
        guard let mirror = try? HostAptSources.primaryMirror() else { return (nil, "needs a Debian mirror in the host's apt sources") }
        let url = "\(mirror.proto)://\(mirror.host)\(mirror.path)"
        // Synchronous on purpose: a trait's condition is evaluated before the test runs.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("havel-probe-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/lib/apt/apt-helper")
        probe.arguments = ["-o", "Acquire::Retries=0", "-o", "Acquire::http::Timeout=10", "download-file", url + "/dists/bookworm/Release", file]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        let ok = (try? probe.run()) != nil && { probe.waitUntilExit(); return probe.terminationStatus == 0 }()
        return ok ? (url, "") : (nil, "the host's Debian mirror does not answer (its bookworm Release cannot be fetched)")
    }()

    @Test(.enabled(if: mirror.url != nil, Comment(rawValue: mirror.skipReason)))
    func realMirrorHasNewerVersionsThanAncientOnes() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("havel-updates-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        let available = try await UpdateCheck.fetchIndexes(sourcesList: ["deb \(Self.mirror.url!) bookworm main"], architecture: "arm64",
                                                           foreignArchitectures: ["armhf", "all"], keys: [], workDirectory: work)
        // A multiarch tree's foreign packages are looked up in their own architecture's index.
        #expect(Set(available.filter { $0.name == "libc6" }.map(\.architecture)) == ["arm64", "armhf"])
        #expect(available.contains { $0.name == "bash" && $0.architecture == "arm64" })
        let current = try #require(available.first { $0.name == "bash" && $0.architecture == "arm64" })
        let installed = [PinnedPackage(name: "bash", version: "1.0-1", arch: "arm64"),
                         PinnedPackage(name: "base-files", version: try #require(available.first { $0.name == "base-files" }).version),
                         PinnedPackage(name: "libc6", version: "2.0-1", arch: "armhf"),
                         PinnedPackage(name: "havel-no-such-package", version: "1.0-1")]
        let findings = UpdateCheck.compare(installed: installed, available: available, architecture: "arm64")
        #expect(findings.map(\.name) == ["bash", "libc6", "havel-no-such-package"])
        #expect(findings.first?.kind == .newer(current.version))
        // A suite the mirror does not have fails with apt's reason, not with an empty list.
        let missing = work + "-missing"
        defer { try? FileManager.default.removeItem(atPath: missing) }
        await #expect(throws: HavelError.self) {
            try await UpdateCheck.fetchIndexes(sourcesList: ["deb \(Self.mirror.url!) havel-no-such-suite main"], architecture: "arm64",
                                               keys: [], workDirectory: missing)
        }
    }
}
