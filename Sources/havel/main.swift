// havel: the executable. All commands live in HavelCLI.
import HavelCLI

#if canImport(Glibc)
import Glibc
#endif

// Writing to a closed terminal or pipe is an error to handle, not a reason to die mid-cleanup.
signal(SIGPIPE, SIG_IGN)
exit(await HavelMain.run(Array(CommandLine.arguments.dropFirst())))
