import DaemonAPI
import Foundation
import GRDB
import HavelCore

/// A row of the `project` table.
struct ProjectRecord: Codable, Sendable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "project"

    var id: ProjectID?
    var name: String?
    var version: String?
    var status: String
    var reason: String?
    var created: Date
    var updated: Date
    var buildStarted: Date?
    var buildFinished: Date?

    mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }

    var projectStatus: ProjectStatus { ProjectStatus(rawValue: status) ?? .buildFailed }

    func info(queuePosition: Int? = nil) -> ProjectInfo {
        ProjectInfo(id: id ?? 0, name: name, version: version, status: projectStatus, reason: reason, created: created,
                    updated: updated, buildStarted: buildStarted, buildFinished: buildFinished,
                    queuePosition: projectStatus == .busy ? queuePosition : nil)
    }
}

/// A row of the `file` table: a result file of a project's last build.
struct FileRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "file"

    var projectId: ProjectID
    var path: String
    var size: Int64
}

/// The project database: havel.sqlite in WAL mode, changed only in short transactions, so that a
/// daemon killed at any moment leaves it readable and consistent.
final class ProjectStore: Sendable {
    let pool: DatabasePool
    let path: String
    /// The file as opened, to notice it deleted or replaced while the daemon runs.
    let file: DatabaseFile

    init(path: String) throws(HavelError) {
        self.path = path
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "havel"
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch {
            throw HavelError(.io, "cannot open the project database \(path): \(error)")
        }
        file = DatabaseFile(path: path)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "project") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("name", .text)
                table.column("version", .text)
                table.column("status", .text).notNull()
                table.column("reason", .text)
                table.column("created", .datetime).notNull()
                table.column("updated", .datetime).notNull()
                table.column("buildStarted", .datetime)
                table.column("buildFinished", .datetime)
            }
            try db.create(table: "file") { table in
                table.column("projectId", .integer).notNull().references("project", onDelete: .cascade)
                table.column("path", .text).notNull()
                table.column("size", .integer).notNull()
                table.primaryKey(["projectId", "path"])
            }
        }
        return migrator
    }

    /// Runs a write transaction, mapping database errors to HavelError. It runs to its end even when the
    /// calling task is cancelled (a cancelled build must still record that it failed).
    /// Refused when the file was deleted or replaced (two system calls; the write would be lost).
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(HavelError) -> T {
        if let problem = file.problem() {
            throw HavelError(.io, "\(problem); nothing was written. Restore the database and start the daemon again")
        }
        return try await access { try self.pool.write(body) }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(HavelError) -> T {
        try await access { try self.pool.read(body) }
    }

    /// A short blocking database access on a dispatch thread, so that neither cancellation interrupts it
    /// nor does it hold a thread of the cooperative pool.
    private func access<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws(HavelError) -> T {
        let result: Result<T, any Error> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: Result { try body() }) }
        }
        switch result {
        case .success(let value): return value
        case .failure(let error as HavelError): throw error
        case .failure(let error): throw HavelError(.io, "the project database \(path): \(error)")
        }
    }

    /// SQLite's own check of the whole file: "ok" when sound.
    func integrityCheck() async throws(HavelError) -> String {
        try await read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ") }
    }

    /// After a restart: every project still marked busy lost its build. Returns their ids.
    func failInterruptedBuilds(reason: String) async throws(HavelError) -> [ProjectID] {
        try await write { db in
            let busy = try ProjectRecord.filter(Column("status") == ProjectStatus.busy.rawValue).fetchAll(db)
            let now = Date()
            for var record in busy {
                record.status = ProjectStatus.buildFailed.rawValue
                record.reason = reason
                record.updated = now
                record.buildFinished = now
                try record.update(db)
            }
            return busy.compactMap(\.id)
        }
    }

    func create() async throws(HavelError) -> ProjectRecord {
        try await write { db in
            let now = Date()
            var record = ProjectRecord(status: ProjectStatus.empty.rawValue, created: now, updated: now)
            try record.insert(db)
            return record
        }
    }

    func all() async throws(HavelError) -> [ProjectRecord] {
        try await read { db in try ProjectRecord.order(Column("id")).fetchAll(db) }
    }

    func project(_ id: ProjectID) async throws(HavelError) -> ProjectRecord {
        let record = try await read { db in try ProjectRecord.fetchOne(db, key: id) }
        guard let record else { throw HavelError(.notFound, "project \(id) does not exist") }
        return record
    }

    /// Reads, checks and changes one project in one transaction; `change` throws to refuse.
    @discardableResult
    func update(_ id: ProjectID, _ change: @escaping @Sendable (inout ProjectRecord) throws(HavelError) -> Void) async throws(HavelError) -> ProjectRecord {
        try await write { db in
            guard var record = try ProjectRecord.fetchOne(db, key: id) else {
                throw HavelError(.notFound, "project \(id) does not exist")
            }
            try change(&record)
            record.updated = Date()
            try record.update(db)
            return record
        }
    }

    /// Deletes a project unless `check` refuses (it sees the row inside the transaction).
    func delete(_ id: ProjectID, check: @escaping @Sendable (ProjectRecord) throws(HavelError) -> Void) async throws(HavelError) {
        try await write { db in
            guard let record = try ProjectRecord.fetchOne(db, key: id) else {
                throw HavelError(.notFound, "project \(id) does not exist")
            }
            try check(record)
            _ = try ProjectRecord.deleteOne(db, key: id)
        }
    }

    func setFiles(_ id: ProjectID, _ files: [FileEntry]) async throws(HavelError) {
        try await write { db in
            try FileRecord.filter(Column("projectId") == id).deleteAll(db)
            for file in files {
                try FileRecord(projectId: id, path: file.path, size: Int64(file.size)).insert(db)
            }
        }
    }

    func files(_ id: ProjectID) async throws(HavelError) -> [FileEntry] {
        try await read { db in
            try FileRecord.filter(Column("projectId") == id).order(Column("path")).fetchAll(db)
                .map { FileEntry(path: $0.path, size: UInt64(max(0, $0.size))) }
        }
    }
}

/// The database file the store opened: its device and inode, and a descriptor of its own that keeps the
/// opened file readable, so that its link count shows a deletion even through another hard link.
final class DatabaseFile: Sendable {
    let path: String
    private let fd: Int32
    private let device: UInt64
    private let inode: UInt64

    init(path: String) {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        var status = stat()
        if fd >= 0 ? fstat(fd, &status) == 0 : stat(path, &status) == 0 {
            device = UInt64(status.st_dev)
            inode = UInt64(status.st_ino)
        } else {
            (device, inode) = (0, 0)
        }
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// Why the file at `path` is no longer the one opened, or nil while it is.
    func problem() -> String? {
        var current = stat()
        guard stat(path, &current) == 0 else { return "the project database \(path) was deleted while the daemon ran" }
        guard UInt64(current.st_dev) == device, UInt64(current.st_ino) == inode else {
            return "the project database \(path) was replaced while the daemon ran"
        }
        var opened = stat()
        if fd >= 0, fstat(fd, &opened) == 0, opened.st_nlink == 0 {
            return "the project database \(path) was deleted while the daemon ran"
        }
        return nil
    }
}
