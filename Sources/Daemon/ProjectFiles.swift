import Build
import DaemonAPI
import Foundation
import HavelCore
import SystemKit

/// A project's place on disk: `<data>/projects/<id>/` with the uploaded `source.xml` and `build/`
/// (a `BuildDirectory`). Downloads are confined to `build/`.
struct ProjectDirectory: Sendable {
    let path: String

    init(data: String, id: ProjectID) {
        path = data + "/projects/\(id)"
    }

    var source: String { path + "/source.xml" }
    var build: BuildDirectory { BuildDirectory(path + "/build") }

    /// The result files of the build directory, relative to it: everything but the trees
    /// (rootfs/, buildenv/), scratch (.work, .old-*) and anything that is not a regular file.
    func resultFiles() -> [FileEntry] {
        var result: [FileEntry] = []
        let root = build.path
        func walk(_ relative: String) {
            let directory = relative.isEmpty ? root : root + "/" + relative
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
            for name in names.sorted() {
                if relative.isEmpty, ["rootfs", "buildenv", ".work"].contains(name) || name.hasPrefix(".old-") { continue }
                if name.hasSuffix(".tmp") || name.hasSuffix(".partial") { continue }
                let path = relative.isEmpty ? name : relative + "/" + name
                var status = stat()
                guard lstat(root + "/" + path, &status) == 0 else { continue }
                switch status.st_mode & S_IFMT {
                case S_IFREG: result.append(FileEntry(path: path, size: UInt64(status.st_size)))
                case S_IFDIR: walk(path)
                default: continue
                }
            }
        }
        walk("")
        return result
    }

    /// Opens a file of the build directory for reading. `requested` is the raw (still percent-encoded)
    /// part of the URL after `files/`: an absolute path, `..`, `.`, empty components or NUL are refused;
    /// symbolic links are followed only while they stay inside the build directory.
    func openResult(_ requested: Substring) throws(APIError) -> (fd: Int32, size: Int, path: String) {
        guard !requested.isEmpty else { throw APIError(.badRequest, "no file named; GET files lists them") }
        var components: [String] = []
        for raw in requested.split(separator: "/", omittingEmptySubsequences: false) {
            guard let component = String(raw).removingPercentEncoding else {
                throw APIError(.badRequest, "file path \(requested) is not properly percent-encoded")
            }
            components.append(component)
        }
        let path = components.joined(separator: "/")
        if path.hasPrefix("/") || components.first == "" {
            throw APIError(.badRequest, "file path \(path) is absolute; give a path relative to the build directory")
        }
        for component in components {
            if component == ".." { throw APIError(.badRequest, "file path \(path) contains '..'; it must stay inside the build directory") }
            if component.isEmpty || component == "." || component.contains("/") || component.utf8.contains(0) {
                throw APIError(.badRequest, "file path \(path) is not a plain relative path")
            }
        }
        let root = build.path
        guard let realRoot = Self.realPath(root) else { throw APIError(.notFound, "project has no build results yet") }
        let candidate = root + "/" + path
        guard let real = Self.realPath(candidate) else { throw APIError(.notFound, "file \(path) does not exist") }
        guard real.hasPrefix(realRoot + "/") else {
            throw APIError(.badRequest, "file \(path) is a link that leaves the build directory")
        }
        let fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let code = errno
            throw APIError(code == ENOENT ? .notFound : .badRequest, "cannot open file \(path): \(errnoText(code))")
        }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw APIError(.badRequest, "file \(path) is not a regular file")
        }
        return (fd, Int(status.st_size), path)
    }

    static func realPath(_ path: String) -> String? {
        guard let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        return String(cString: real)
    }
}
