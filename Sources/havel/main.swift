// havel: the executable. All commands live in HavelCLI.
import HavelCLI

#if canImport(Glibc)
import Glibc
#endif

// Writing to a closed terminal or pipe is an error to handle, not a reason to die mid-cleanup.
signal(SIGPIPE, SIG_IGN)
// The Swift runtime reads a program's arguments from /proc/self/cmdline: without /proc (a bare chroot or
// container) havel would see none, not even its own name, and print its help as if asked for nothing.
guard !CommandLine.arguments.isEmpty else {
    let message = "havel: cannot read its command line: /proc is not mounted here (mount -t proc proc /proc)\n"
    _ = message.withCString { write(2, $0, strlen($0)) }
    exit(2)
}
exit(await HavelMain.run(Array(CommandLine.arguments.dropFirst())))
