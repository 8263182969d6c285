// Uploads owns project files on their way in: staged under <data>/uploads/, streamed there up to the size
// limit, ended when their project is deleted meanwhile, and staged files a killed daemon left removed at start.

import DaemonAPI
import Foundation
import HavelCore
import Hummingbird
import SystemKit

/// The uploads streaming in now, by project, so that deleting a project ends its uploads at once.
final class UploadsInFlight: @unchecked Sendable {
    private struct Entry {
        let project: ProjectID
        let task: Task<Int, any Error>
        var deleted = false
    }

    private let lock = NSLock()
    private var entries: [UUID: Entry] = [:]

    /// Runs `stream` (the upload of project `id`) as a task that `projectDeleted(id)` cancels; an upload ended
    /// that way throws that its project was deleted.
    func run(for id: ProjectID, _ stream: @escaping @Sendable () async throws -> Int) async throws -> Int {
        let key = UUID()
        let task = Task { try await stream() }
        lock.withLock { entries[key] = Entry(project: id, task: task) }
        let result = await withTaskCancellationHandler { await task.result } onCancel: { task.cancel() }
        let deleted = lock.withLock { entries.removeValue(forKey: key)?.deleted ?? false }
        if deleted { throw Self.deletedError(id) }
        return try result.get()
    }

    /// Ends every upload of project `id` (its project is being deleted).
    func projectDeleted(_ id: ProjectID) {
        let tasks = lock.withLock {
            var tasks: [Task<Int, any Error>] = []
            for (key, entry) in entries where entry.project == id {
                entries[key]?.deleted = true
                tasks.append(entry.task)
            }
            return tasks
        }
        for task in tasks { task.cancel() }
    }

    static func deletedError(_ id: ProjectID) -> HavelError {
        HavelError(.notFound, "project \(id) was deleted during its upload; nothing stored")
    }
}

extension HavelDaemon {
    /// Streams a request body into the open file `fd` (at `path`), at most `limit` bytes; returns how many.
    /// A body cut off (the connection closed, or idle past the connection timeout) throws.
    static func stage(_ body: RequestBody, into fd: Int32, path: String, limit: Int) async throws -> Int {
        var total = 0
        for try await buffer in body {
            total += buffer.readableBytes
            guard total <= limit else {
                throw APIError(.contentTooLarge, "the project file is larger than the \(ByteCount.format(UInt64(limit))) limit; "
                               + "nothing stored (havel daemon --max-project-size raises it)")
            }
            try buffer.withUnsafeReadableBytes { bytes throws(HavelError) in
                var offset = 0
                while offset < bytes.count {
                    let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0 && errno == EINTR { continue }
                    guard written > 0 else { throw HavelError(.io, "cannot write \(path): \(errnoText())") }
                    offset += written
                }
            }
        }
        // An upload ended by a delete of its project may see its body end early instead of an error.
        try Task.checkCancellation()
        guard total > 0 else { throw APIError(.badRequest, "the body is empty; send the project XML") }
        return total
    }

    /// Removes what uploads a killed daemon was receiving left in `directory` (no upload runs yet).
    static func removeStagedUploads(_ directory: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            unlink(directory + "/" + name)
        }
    }
}
