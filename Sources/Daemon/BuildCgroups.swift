// BuildCgroups owns the daemon's use of cgroup v2: whether child groups can be made under the daemon's own
// group (warned about once at start), one group per build named for its daemon and project, the groups a
// killed daemon left removed at start, and who asked for a build's cancellation.

import DaemonAPI
import Foundation
import HavelCore
import Logging
import SystemKit

/// The cgroups of one daemon's builds: `havel-build-<daemon tag>-<project id>-<short uuid>` under the
/// daemon's own group. The tag comes from the data directory, which one daemon holds at a time, so a
/// daemon starting cleans only what an earlier daemon of the same data left, never another daemon's builds.
struct BuildCgroups: Sendable {
    /// Where build groups go; nil when they cannot be made here.
    let hierarchy: CgroupHierarchy?
    /// Why builds run without a cgroup (cancellation then stops the running command's process group only).
    let unavailableReason: String?
    /// The name prefix of this daemon's build groups.
    let prefix: String

    static let namePrefix = "havel-build-"

    /// Finds the hierarchy and tries making a group under the daemon's own (`probe`).
    init(dataDirectory: String, probe: Result<CgroupHierarchy, HavelError> = CgroupHierarchy.writable()) {
        prefix = Self.namePrefix + Self.tag(dataDirectory) + "-"
        switch probe {
        case .success(let found):
            hierarchy = found
            unavailableReason = nil
        case .failure(let problem):
            hierarchy = nil
            unavailableReason = problem.message
        }
    }

    /// 8 hex digits of the FNV-1a hash of the data directory's path.
    static func tag(_ dataDirectory: String) -> String {
        var hash: UInt32 = 0x811c9dc5
        for byte in dataDirectory.utf8 { hash = (hash ^ UInt32(byte)) &* 0x01000193 }
        return String(format: "%08x", hash)
    }

    /// How cancellation reaches a build's processes, for the cancel answer and the log.
    var cancellationReach: String {
        if let hierarchy { return "every process of the build, through its cgroup under \(hierarchy.ownDirectory)" }
        return "the running command's process group only (no cgroup: \(unavailableReason ?? "unknown"))"
    }

    /// What /health says cancellation reaches: `cgroup` or `process-group` (no paths or reasons: /health
    /// answers without a token; the warning at start and the cancel answer say why).
    var confinement: String { hierarchy == nil ? HealthResponse.processGroupConfinement : HealthResponse.cgroupConfinement }

    /// A new group for a build of project `id`; nil without cgroups.
    func make(for id: ProjectID) throws(HavelError) -> ProcessCgroup? {
        guard let hierarchy else { return nil }
        return try ProcessCgroup.create(under: hierarchy.ownDirectory, name: prefix + "\(id)-" + UUID().uuidString.prefix(8).lowercased())
    }

    /// Kills what is in the groups an earlier daemon of this data directory left and removes them.
    /// Returns the groups removed and the problems met.
    func removeStale() async -> (removed: [String], problems: [String]) {
        guard let hierarchy else { return ([], []) }
        var removed: [String] = []
        var problems: [String] = []
        for group in hierarchy.childGroups(prefix: prefix) {
            do throws(HavelError) {
                try await group.remove()
                removed.append(group.path)
            } catch {
                problems.append(error.message)
            }
        }
        return (removed, problems)
    }
}

/// Who asked to cancel each running build, until the build records it.
final class CancellationBook: @unchecked Sendable {
    private let lock = NSLock()
    private var requesters: [ProjectID: String] = [:]

    func set(_ id: ProjectID, by requester: String) {
        lock.withLock { requesters[id] = requester }
    }

    /// Who cancelled the build of `id`, forgetting it; nil if nobody did.
    func take(_ id: ProjectID) -> String? {
        lock.withLock { requesters.removeValue(forKey: id) }
    }
}
