// ISO 9660 images of a directory (Rock Ridge and Joliet) made with xorriso, dated by SOURCE_DATE_EPOCH
// so that the same directory gives the same bytes; written under a temporary name and renamed when whole.

import Foundation
import HavelCore
import SystemKit

public enum IsoImage {
    /// A volume id ISO 9660 accepts: upper-case letters, digits and `_`, at most 32 characters.
    public static func volumeID(_ name: String) -> String {
        let id = String(name.uppercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" }.prefix(32))
        return id.isEmpty ? "HAVEL" : id
    }

    /// `directory` as an ISO image at `output`; every time in it is `epoch`, whatever the files' times.
    public static func write(_ directory: String, to output: String, volumeID: String, epoch: Int,
                             processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) {
        guard processes.which("xorriso") != nil else {
            throw HavelError(.hostNotReady, "writing an ISO image needs xorriso; run scripts/setup-host.sh (apt-get install xorriso)")
        }
        let temporary = output + ".partial"
        unlink(temporary)
        let command = Command("xorriso", ["-as", "mkisofs", "-quiet", "-r", "-J", "-V", Self.volumeID(volumeID),
                                               "--set_all_file_dates", "=\(epoch)", "-o", temporary, directory],
                              environment: ["SOURCE_DATE_EPOCH": String(epoch)])
        let result = try await processes.run(command)
        guard result.succeeded else {
            unlink(temporary)
            throw HavelError(.processFailed, "xorriso could not write \(output): \(result.standardError.split(separator: "\n").suffix(5).joined(separator: "\n"))")
        }
        try AtomicFile.publish(temporary, as: output)
    }
}
