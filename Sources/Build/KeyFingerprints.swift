// KeyFingerprints owns reading the fingerprints of armored OpenPGP keys (a url-list entry's raw-key) with
// gpg in a throw-away home directory, so report.txt can say which keys a build trusted.
import Foundation
import HavelCore
import SystemKit

public enum KeyFingerprints {
    /// The primary keys' fingerprints in `armored`, in the order gpg lists them.
    public static func of(armored: String, processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> [String] {
        var template = Array((FileManager.default.temporaryDirectory.path + "/havel-gpg-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw HavelError(.io, "cannot make a temporary gpg home directory: \(String(cString: strerror(errno)))")
        }
        let home = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: home) }
        let keyFile = home + "/key.asc"
        do {
            try Data(armored.utf8).write(to: URL(fileURLWithPath: keyFile))
        } catch {
            throw HavelError(.io, "cannot write \(keyFile): \(error.localizedDescription)")
        }
        let result = try await processes.run(Command("gpg", ["--homedir", home, "--batch", "--no-autostart", "--with-colons",
                                                             "--with-fingerprint", "--show-keys", keyFile]))
        guard result.succeeded else {
            throw HavelError(.invalidProject, "gpg cannot read the key: \(result.standardError.trimmingWhitespace())")
        }
        return parse(colons: result.standardOutput)
    }

    /// The first `fpr` record after each `pub` record of gpg's colon listing (the others are subkeys').
    static func parse(colons: String) -> [String] {
        var fingerprints: [String] = []
        var wantPrimary = false
        for line in colons.split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            if fields.first == "pub" { wantPrimary = true }
            else if fields.first == "fpr", wantPrimary, fields.count > 9 {
                fingerprints.append(String(fields[9]))
                wantPrimary = false
            }
        }
        return fingerprints
    }
}
