// Tests of the ISO writer: what it names the volume, that it is readable, and that it is reproducible.

import Foundation
import HavelCore
import SystemKit
import Testing
@testable import Images

@Suite struct IsoImageTests {
    @Test func volumeIDsAreWhatISO9660Accepts() {
        #expect(IsoImage.volumeID("my-project 1.0") == "MY_PROJECT_1_0")
        #expect(IsoImage.volumeID(String(repeating: "a", count: 40)).count == 32)
        #expect(IsoImage.volumeID("") == "HAVEL")
    }

    @Test(.enabled(if: ProcessRunner.which("xorriso") != nil, "needs xorriso (scripts/setup-host.sh installs it)"))
    func theSameDirectoryGivesTheSameImageAndItReadsBack() async throws {
        let base = "/tmp/havel-iso-test-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let processes = SystemProcesses()
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let made = try await processes.run(Command("sh", ["-ec", """
            mkdir -p in/dists/x out; echo hello > in/README.txt; echo index > in/dists/x/Release
            find in -exec touch -h -d @1700000000 {} +
            """], workingDirectory: base))
        #expect(made.succeeded)
        try await IsoImage.write(base + "/in", to: base + "/a.iso", volumeID: "test", epoch: 1_700_000_000)
        try await Task.sleep(for: .seconds(1.5))
        #expect(utime(base + "/in/README.txt", nil) == 0)
        try await IsoImage.write(base + "/in", to: base + "/b.iso", volumeID: "test", epoch: 1_700_000_000)
        #expect(FileManager.default.contents(atPath: base + "/a.iso") == FileManager.default.contents(atPath: base + "/b.iso"))
        #expect(!FileManager.default.fileExists(atPath: base + "/a.iso.partial"))
        let extract = try await processes.run(Command("xorriso", ["-osirrox", "on", "-indev", base + "/a.iso", "-extract", "/", base + "/out"]))
        #expect(extract.succeeded, "\(extract.standardError)")
        #expect(try String(contentsOfFile: base + "/out/dists/x/Release", encoding: .utf8) == "index\n")
    }
}
