// havel: the executable. All commands live in HavelCLI.
import HavelCLI

#if canImport(Glibc)
import Glibc
#endif

exit(await HavelMain.run(Array(CommandLine.arguments.dropFirst())))
