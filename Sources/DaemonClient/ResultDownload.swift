// DaemonClient: result files go only where the client means them to: the daemon's file list is not trusted,
// every path must be a plain relative name below the output directory, never reached through a symbolic link.

import DaemonAPI
import Foundation
import HavelCore
import SystemKit

extension DaemonClient {
    /// The components of a path from the daemon's file list, refused unless each is a plain name
    /// (not empty, '.', '..', and without NUL) and the path is relative.
    public static func plainRelativeComponents(_ path: String) throws(HavelError) -> [String] {
        let components = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let refused = path.isEmpty || path.hasPrefix("/")
            || components.contains { $0.isEmpty || $0 == "." || $0 == ".." || $0.utf8.contains(0) }
        guard !refused else {
            throw HavelError(.io, "the daemon lists the result file \(path.debugDescription), which is not a plain relative path; nothing written for it")
        }
        return components
    }

    /// Downloads a result file of the file list to the same relative path below `directory`, creating the
    /// directories between; refuses a path that would leave `directory` or pass through a symbolic link.
    /// Returns where it was written and its size.
    @discardableResult
    public func download(_ id: ProjectID, path: String, into directory: String) async throws(HavelError) -> (path: String, size: UInt64) {
        let components = try Self.plainRelativeComponents(path)
        var current = directory
        for (index, component) in components.enumerated() {
            current += "/" + component
            var status = stat()
            let exists = lstat(current, &status) == 0
            if exists, status.st_mode & S_IFMT == S_IFLNK {
                throw HavelError(.io, "\(current) is a symbolic link; result files are not written through links, move it away")
            }
            guard index < components.count - 1 else { break }
            if !exists, mkdir(current, 0o755) != 0, errno != EEXIST {
                throw HavelError(.io, "cannot create \(current): \(errnoText())")
            }
            guard lstat(current, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
                throw HavelError(.io, "\(current) is not a directory; cannot put \(path) below it")
            }
        }
        return (current, try await download(id, path: path, to: current))
    }
}
