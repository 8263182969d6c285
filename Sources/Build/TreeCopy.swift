import Foundation
import HavelCore
import SystemKit

/// Whole-tree copies for the stage cache: `cp -a` keeps owners, modes, times, hard links, device
/// nodes and extended attributes (file capabilities), and shares blocks where the filesystem can.
enum TreeCopy {
    static func copy(_ source: String, to destination: String, processes: any ProcessRunning) async throws(HavelError) {
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw HavelError(.io, "cannot copy \(source) to \(destination): the destination exists")
        }
        try await processes.check(Command("cp", ["-a", "--reflink=auto", "--", source, destination]))
    }
}
