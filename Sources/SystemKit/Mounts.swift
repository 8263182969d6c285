import Foundation
import HavelCore

/// The mount table, and unmounting what a crashed run left under a directory.
public enum Mounts {
    /// Mount points at or below `directory` (from /proc/self/mountinfo), deepest first.
    public static func mountPoints(under directory: String) -> [String] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        var points: [String] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { continue }
            let point = unescape(String(fields[4]))
            if point == directory || point.hasPrefix(prefix) { points.append(point) }
        }
        return points.sorted { $0.count > $1.count }
    }

    /// mountinfo escapes space, tab, newline and backslash as octal.
    static func unescape(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var bytes: [UInt8] = []
        var utf8 = Array(field.utf8)[...]
        while let byte = utf8.first {
            if byte == 0x5C, utf8.count >= 4, let value = UInt8(String(decoding: utf8.dropFirst().prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                utf8 = utf8.dropFirst(4)
            } else {
                bytes.append(byte)
                utf8 = utf8.dropFirst()
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Lazily unmounts everything below `directory`, deepest first; returns what was unmounted.
    @discardableResult
    public static func unmountAll(under directory: String, processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> [String] {
        let points = mountPoints(under: directory)
        for point in points {
            let result = try await processes.run(Command("umount", ["--lazy", point]))
            if !result.succeeded && mountPoints(under: point).contains(point) {
                throw HavelError(.io, "cannot unmount \(point) left by an earlier run: \(result.standardError.trimmingWhitespace())")
            }
        }
        return points
    }
}
