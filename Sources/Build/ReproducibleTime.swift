import Foundation

/// The default clamp for file times when SOURCE_DATE_EPOCH is not set: the date of the newest installed
/// package, read from the times its .deb gave its documentation (package builds set them), so that two
/// builds with the same package versions agree.
enum ReproducibleTime {
    static func newestPackage(in rootfs: String) -> Int? {
        let doc = rootfs + "/usr/share/doc"
        guard let packages = try? FileManager.default.contentsOfDirectory(atPath: doc) else { return nil }
        var newest: Int?
        var info = stat()
        for package in packages {
            for name in ["changelog.Debian.gz", "changelog.gz", "copyright"] {
                // lstat: a link in the tree is never followed out of it.
                if lstat("\(doc)/\(package)/\(name)", &info) == 0, (info.st_mode & S_IFMT) == S_IFREG {
                    newest = max(newest ?? 0, Int(info.st_mtim.tv_sec))
                    break
                }
            }
        }
        return newest
    }
}
