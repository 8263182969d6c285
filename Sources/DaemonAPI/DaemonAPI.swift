// DaemonAPI owns the contract between the Havel daemon (inside the initvm) and its clients: the
// routes, the Codable requests and responses both sides use, and the framing of a followed log
// (`LogEvents`: server-sent events with byte offsets, keep-alives and an end event).

import Foundation
import HavelCore

/// The routes, relative to the API's base URL (`http://127.0.0.1:PORT`). Every route but `health`
/// needs the token (`DaemonAuth`); errors come as `ErrorResponse` with a 4xx/5xx status.
public enum DaemonRoute {
    /// GET, no token needed: `HealthResponse`. Used by `initvm status` to tell booting from ready.
    public static let health = "/health"
    /// GET: `ProjectList`. POST (body `CreateProjectRequest`, may be empty): 201 with the new `ProjectInfo`.
    public static let projects = "/projects"

    /// GET: `ProjectInfo`. DELETE: 204 (409 while busy).
    public static func project(_ id: ProjectID) -> String { "/projects/\(id)" }
    /// PUT, body the project XML (preprocessed): `ProjectInfo`, status `needs_build` (400 with the
    /// diagnostics if the project is invalid, 409 while busy).
    public static func source(_ id: ProjectID) -> String { "/projects/\(id)/source" }
    /// POST (body `BuildRequest`, may be empty): 202 with `ProjectInfo`, status `busy` (queued or running);
    /// 409 if busy or without a source; 400 if the project uses items Havel does not build that change the
    /// output and the request does not allow them.
    public static func build(_ id: ProjectID) -> String { "/projects/\(id)/build" }
    /// POST (body `CancelRequest`, may be empty): cancels the project's build. A waiting build leaves the
    /// queue; a running one is cancelled and every process of it killed (through its cgroup, where the
    /// daemon can make one). 200 with `CancelResponse` once the build has ended (status `cancelled`), 202
    /// if a running build has not ended yet within the daemon's wait; 404 for an unknown project; 409 when
    /// the project has no build queued or running.
    public static func cancel(_ id: ProjectID) -> String { "/projects/\(id)/cancel" }
    /// POST: back to `needs_build` (or `empty` without a source), build results removed; 409 while busy.
    public static func reset(_ id: ProjectID) -> String { "/projects/\(id)/reset" }
    /// GET: the build log as text/plain from byte `offset` on; with `?follow=true` it streams until the
    /// build ends. Asked with `Accept: text/event-stream`, a followed log comes as `LogEvents` instead: one
    /// event per line with its end offset as the id, a keep-alive comment whenever the log is quiet, and an
    /// `end` event once the build has ended (`Last-Event-ID` resumes like `offset`).
    public static func log(_ id: ProjectID, follow: Bool = false, offset: UInt64 = 0) -> String {
        var query: [String] = []
        if follow { query.append("follow=true") }
        if offset > 0 { query.append("offset=\(offset)") }
        return "/projects/\(id)/log" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
    }
    /// GET: `ProjectRepositoryListing`, the packages of the project's repository (repo/ of its build
    /// directory: what `<pbuilder>` built and what was uploaded; its files download through `file`).
    public static func repository(_ id: ProjectID) -> String { "/projects/\(id)/repo" }
    /// POST, body a .deb of at most `maximumPackageUpload` bytes named by `name` (a plain file name ending in
    /// .deb): adds it to the project's repository, signed again with the project's key; `ProjectRepositoryListing`.
    /// 400 for a file that is no .deb of the project's architecture (or all), 409 while busy or without a project file.
    public static func repositoryPackage(_ id: ProjectID, name: String) -> String { "/projects/\(id)/repo/" + percentEncode(name) }
    public static let maximumPackageUpload = 512 << 20
    /// GET: `FileList`, the files of the last build relative to its build directory.
    public static func files(_ id: ProjectID) -> String { "/projects/\(id)/files" }
    /// GET: one file's bytes (application/octet-stream). The path is relative to the build directory;
    /// `..`, absolute paths and links leaving it are refused (400), missing files are 404.
    public static func file(_ id: ProjectID, path: String) -> String {
        "/projects/\(id)/files/" + path.split(separator: "/", omittingEmptySubsequences: false)
            .map { percentEncode(String($0)) }.joined(separator: "/")
    }

    /// Percent-encodes a path component (everything but unreserved characters).
    public static func percentEncode(_ component: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        var result = ""
        for byte in component.utf8 {
            let scalar = Unicode.Scalar(byte)
            if byte < 0x80, allowed.contains(scalar) {
                result.unicodeScalars.append(scalar)
            } else {
                result += String(format: "%%%02X", byte)
            }
        }
        return result
    }
}

/// Projects are numbered by the daemon; a number is never used twice.
public typealias ProjectID = Int64

public struct HealthResponse: Codable, Sendable, Equatable {
    public var status: String
    public var havelVersion: String
    /// What cancelling a build reaches on this daemon: `cgroup` (every process of the build, through a
    /// cgroup of its own) or `process-group` (no writable cgroup2: the running command's process group only).
    /// Absent in the answers of older daemons.
    public var buildConfinement: String?

    public static let cgroupConfinement = "cgroup"
    public static let processGroupConfinement = "process-group"

    public init(status: String, havelVersion: String, buildConfinement: String? = nil) {
        self.status = status
        self.havelVersion = havelVersion
        self.buildConfinement = buildConfinement
    }
}

/// Where the daemon listens unless told otherwise (`havel daemon --listen`, `havel control --url`).
public enum DaemonDefaults {
    public static let port = 7588
    public static var url: String { "http://127.0.0.1:\(port)" }
}

/// The header carrying the token created at `initvm create` (stored 0600 beside buildenv.img).
public enum DaemonAuth {
    public static let header = "Authorization"
    public static func value(token: String) -> String { "Bearer " + token }
    public static let tokenFileName = "api-token"
}

/// Where a project is in its life.
public enum ProjectStatus: String, Codable, Sendable, CaseIterable {
    /// Created, no project file uploaded yet.
    case empty
    /// A project file is there; not built since it was uploaded or reset.
    case needsBuild = "needs_build"
    /// A build is queued or running.
    case busy
    case buildDone = "build_done"
    /// The build failed or the daemon stopped during it; `reason` says which.
    case buildFailed = "build_failed"
    /// The build was cancelled (`POST /projects/{id}/cancel`); `reason` says by whom.
    case cancelled
}

public struct ProjectInfo: Codable, Sendable, Equatable {
    public var id: ProjectID
    /// From the uploaded project file (nil until one is uploaded).
    public var name: String?
    public var version: String?
    public var status: ProjectStatus
    /// Why the last build failed.
    public var reason: String?
    public var created: Date
    public var updated: Date
    public var buildStarted: Date?
    public var buildFinished: Date?
    /// While busy: builds ahead of this one in the queue (0: running).
    public var queuePosition: Int?
    /// What the running or last build did, as far as this daemon saw it (nil after a restart or before a build).
    public var progress: BuildProgress?

    public init(id: ProjectID, name: String?, version: String?, status: ProjectStatus, reason: String?, created: Date,
                updated: Date, buildStarted: Date?, buildFinished: Date?, queuePosition: Int? = nil) {
        self.id = id
        self.name = name
        self.version = version
        self.status = status
        self.reason = reason
        self.created = created
        self.updated = updated
        self.buildStarted = buildStarted
        self.buildFinished = buildFinished
        self.queuePosition = queuePosition
    }
}

/// A build's stages and progress, kept by the daemon from the build's log records: which stages ran and
/// how long each took (the running one without seconds), packages set up, bytes fetched, the last warnings.
public struct BuildProgress: Codable, Sendable, Equatable {
    public struct Stage: Codable, Sendable, Equatable {
        public var name: String
        /// nil while the stage runs.
        public var seconds: Double?
        public var cached: Bool

        public init(name: String, seconds: Double? = nil, cached: Bool = false) {
            self.name = name
            self.seconds = seconds
            self.cached = cached
        }
    }

    /// The most warnings kept (the build log has them all).
    public static let warningsKept = 20

    public var stages: [Stage] = []
    public var packagesDone = 0
    public var packagesTotal = 0
    public var fetchedBytes: UInt64 = 0
    /// What the running tool does now (mmdebstrap's phases).
    public var detail: String?
    public var warnings: [String] = []

    public init() {}

    /// The stage that runs now, if any.
    public var runningStage: String? { stages.last.flatMap { $0.seconds == nil ? $0.name : nil } }
}

public struct ProjectList: Codable, Sendable, Equatable {
    public var projects: [ProjectInfo]

    public init(projects: [ProjectInfo]) {
        self.projects = projects
    }
}

public struct CreateProjectRequest: Codable, Sendable, Equatable {
    public init() {}
}

/// How a build is asked for; an empty body asks for the defaults.
public struct BuildRequest: Codable, Sendable, Equatable {
    /// Build although the project uses items Havel does not build that change the output (`--allow-unsupported`).
    public var allowUnsupported: Bool
    /// Also write bin-cdrom.iso, the binary CD (`--cdroms`).
    public var binaryCdrom: Bool
    /// Cross-build the `<pbuilder>` packages of a foreign target in a host chroot (`--cross`).
    public var crossBuild: Bool
    /// Do not build the `<pbuilder>` packages; install from the project repository as it is (`--skip-pbuilder`).
    public var skipPbuilder: Bool
    /// Also write the SDK installer (`--sdk`).
    public var sdk: Bool
    /// Build only the `<pbuilder>` packages into the project repository (`havel pbuilder build` in the build VM).
    public var pbuilderOnly: Bool
    /// Only the `<pbuilder>` packages' build chroot: "create" (from the stage cache when it holds it) or
    /// "update" (made afresh), as `havel pbuilder create|update` and ELBE's build_pbuilder/update_pbuilder.
    public var pbuilderChroot: String?
    /// How a foreign target's packages are installed: "fast" (the default) or "emulated" (`--install-mode`).
    public var installMode: String?

    public init(allowUnsupported: Bool = false, binaryCdrom: Bool = false, crossBuild: Bool = false, skipPbuilder: Bool = false, sdk: Bool = false,
                pbuilderOnly: Bool = false, pbuilderChroot: String? = nil, installMode: String? = nil) {
        self.allowUnsupported = allowUnsupported
        self.binaryCdrom = binaryCdrom
        self.crossBuild = crossBuild
        self.skipPbuilder = skipPbuilder
        self.sdk = sdk
        self.pbuilderOnly = pbuilderOnly
        self.pbuilderChroot = pbuilderChroot
        self.installMode = installMode
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        allowUnsupported = try container.decodeIfPresent(Bool.self, forKey: .allowUnsupported) ?? false
        binaryCdrom = try container.decodeIfPresent(Bool.self, forKey: .binaryCdrom) ?? false
        crossBuild = try container.decodeIfPresent(Bool.self, forKey: .crossBuild) ?? false
        skipPbuilder = try container.decodeIfPresent(Bool.self, forKey: .skipPbuilder) ?? false
        sdk = try container.decodeIfPresent(Bool.self, forKey: .sdk) ?? false
        pbuilderOnly = try container.decodeIfPresent(Bool.self, forKey: .pbuilderOnly) ?? false
        pbuilderChroot = try container.decodeIfPresent(String.self, forKey: .pbuilderChroot)
        installMode = try container.decodeIfPresent(String.self, forKey: .installMode)
    }
}

/// One package of a project repository.
public struct RepositoryPackage: Codable, Sendable, Equatable {
    public var name: String
    public var version: String
    public var architecture: String
    public var source: String

    public init(name: String, version: String, architecture: String, source: String) {
        self.name = name
        self.version = version
        self.architecture = architecture
        self.source = source
    }
}

/// The packages of a project repository, sorted by name, version and architecture.
public struct ProjectRepositoryListing: Codable, Sendable, Equatable {
    public var packages: [RepositoryPackage]

    public init(packages: [RepositoryPackage]) { self.packages = packages }
}

/// How a cancellation is asked for; an empty body is an anonymous one.
public struct CancelRequest: Codable, Sendable, Equatable {
    /// Who cancels, as the client names them (`user@host`); the build log records it.
    public var requester: String?
    /// How long the answer may wait for a running build to end, in seconds (0 to 40; absent: 40). When the
    /// build has not ended by then, the answer is 202 with the outcome `cancelling`.
    public var waitSeconds: Int?

    public init(requester: String? = nil, waitSeconds: Int? = nil) {
        self.requester = requester
        self.waitSeconds = waitSeconds
    }

    /// The longest requester name kept.
    public static let maximumRequesterLength = 200
    /// The longest a cancel answer waits for a running build to end (below the client's 60 s deadline).
    public static let maximumWaitSeconds = 40
}

/// What a cancellation did.
public struct CancelResponse: Codable, Sendable, Equatable {
    public enum Outcome: String, Codable, Sendable {
        /// The build was waiting in the queue and never started.
        case removedFromQueue = "removed_from_queue"
        /// The build was running; it was cancelled and has ended.
        case cancelledRunning = "cancelled_running"
        /// The build was running and is cancelled, but had not ended when the daemon stopped waiting (202).
        case cancelling
    }

    public var outcome: Outcome
    /// One sentence saying what happened, with how the build's processes were ended.
    public var message: String
    public var project: ProjectInfo

    public init(outcome: Outcome, message: String, project: ProjectInfo) {
        self.outcome = outcome
        self.message = message
        self.project = project
    }
}

/// A result file of a build, relative to the build directory (`report.txt`, `artifacts/x`).
public struct FileEntry: Codable, Sendable, Equatable {
    public var path: String
    public var size: UInt64

    public init(path: String, size: UInt64) {
        self.path = path
        self.size = size
    }
}

public struct FileList: Codable, Sendable, Equatable {
    public var files: [FileEntry]

    public init(files: [FileEntry]) {
        self.files = files
    }
}

/// Every error response: `{ "error": "message" }`, plus the project's findings for an invalid upload.
public struct ErrorResponse: Codable, Sendable, Equatable {
    public var error: String
    public var diagnostics: [String]?

    public init(error: String, diagnostics: [String]? = nil) {
        self.error = error
        self.diagnostics = diagnostics
    }
}

/// The JSON both sides write and read: ISO 8601 dates, sorted keys.
public enum DaemonJSON {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}

extension HavelError.Code {
    /// No token or the wrong one (HTTP 401).
    public static let unauthorized = HavelError.Code(rawValue: "unauthorized")
    /// The request does not fit the project's state: busy, no project file yet (HTTP 409).
    public static let conflict = HavelError.Code(rawValue: "conflict")
}
