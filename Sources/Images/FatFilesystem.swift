import HavelCore
import Logging
import SystemKit

/// Fills a FAT filesystem file from a staging tree with mtools, in a fixed order: all directories first
/// (`mmd`, parents before children, sorted), then each directory's regular files (`mcopy -p -m`, sorted).
/// `mcopy -s` would add entries in `readdir` order, which differs between trees with the same contents;
/// this order makes equal trees give equal filesystems.
///
/// FAT stores neither owners, modes, symbolic links nor device nodes: symbolic links, devices, FIFOs and
/// sockets are left out and logged. Names FAT cannot hold (`"*/:<>?\|`, control characters) and names that
/// differ only in case are errors. Times: file modification times from the tree (clamped by staging),
/// everything else at SOURCE_DATE_EPOCH, in UTC.
enum FatFiller {
    static let invalidCharacters = Set("\"*/:<>?\\|".unicodeScalars)

    static func environment(epoch: Int) -> [String: String] {
        ["MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": "/dev/null", "TZ": "UTC", "SOURCE_DATE_EPOCH": String(epoch),
         "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"]
    }

    static func fill(_ image: String, from staging: String, epoch: Int, context: String, processes: any ProcessRunning,
                     log: Logger) async throws(HavelError) {
        var directories: [String] = []
        var files: [String: [String]] = ["": []]
        var order: [String] = [""]
        var skipped: [String] = []
        var seen: [String: Set<String>] = [:]
        try TreeWalk.walk(staging) { entry throws(HavelError) in
            let parent = entry.path.contains("/") ? String(entry.path[..<entry.path.lastIndex(of: "/")!]) : ""
            let name = String(entry.path[(entry.path.lastIndex(of: "/").map { entry.path.index(after: $0) } ?? entry.path.startIndex)...])
            guard entry.isDirectory || entry.isRegular else {
                skipped.append("/" + entry.path)
                return
            }
            guard String(validating: entry.name.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self) != nil else {
                throw HavelError(.invalidProject, "\(context): the file name /\(entry.path) is not valid UTF-8 and cannot be stored on FAT")
            }
            if name.unicodeScalars.contains(where: { invalidCharacters.contains($0) || $0.value < 0x20 || $0.value == 0x7f }) {
                throw HavelError(.invalidProject, "\(context): /\(entry.path) has a character FAT cannot store in a name (one of \"*:<>?\\| or a control character)")
            }
            if name.utf16.count > 255 {
                throw HavelError(.invalidProject, "\(context): the name of /\(entry.path) is longer than the 255 characters FAT allows")
            }
            if !seen[parent, default: []].insert(name.uppercased()).inserted {
                throw HavelError(.invalidProject, "\(context): /\(entry.path) differs only in case from another name in its directory; FAT cannot hold both")
            }
            if entry.isDirectory {
                if name.contains("[") || name.contains("]") {
                    throw HavelError(.invalidProject, "\(context): the directory /\(entry.path) has [ or ] in its name, which mtools reads as a pattern")
                }
                directories.append(entry.path)
                files[entry.path] = []
                order.append(entry.path)
            } else {
                files[parent, default: []].append(staging + "/" + entry.path)
            }
        }
        if !skipped.isEmpty {
            log.warning("\(context): FAT cannot hold symbolic links, devices, FIFOs or sockets; left out: \(skipped.prefix(10).joined(separator: ", "))\(skipped.count > 10 ? " and \(skipped.count - 10) more" : "")")
        }
        let env = environment(epoch: epoch)
        for chunk in directories.chunked(200) {
            try await run(Command("mmd", ["-i", image] + chunk.map { "::/" + $0 }, environment: env), context: context, what: "creating directories", processes: processes)
        }
        for directory in order {
            guard let list = files[directory], !list.isEmpty else { continue }
            for chunk in list.chunked(200) {
                try await run(Command("mcopy", ["-p", "-m", "-i", image] + chunk + ["::/" + directory + (directory.isEmpty ? "" : "/")], environment: env),
                              context: context, what: "copying files into /\(directory)", processes: processes)
            }
        }
    }

    static func run(_ command: Command, context: String, what: String, processes: any ProcessRunning) async throws(HavelError) {
        let result = try await processes.run(command)
        guard result.succeeded else {
            let tail = (result.standardError + result.standardOutput).split(separator: "\n").suffix(5).joined(separator: "\n")
            throw HavelError(.processFailed, "\(context): \(command.executable) failed \(what) (\(result.termination)): \(tail)")
        }
    }
}

extension Array {
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
