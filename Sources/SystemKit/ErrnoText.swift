import Glibc
import SystemPackage

/// What a failed system call's errno means, for messages ("No such file or directory"), through
/// swift-system's `Errno`: the one place Havel turns an errno into words.
public func errnoText(_ code: Int32 = errno) -> String {
    Errno(rawValue: code).description
}
