// `havel check-build`'s SDK check, as ELBE's `check-build sdk`: each SDK installer of a build directory
// installed into a scratch directory, a hello-world cross-built with it (CMake from the SDK when it has
// CMake, else the environment's $CC) and run against the SDK's sysroot (through qemu-user for a foreign
// target), its output compared.

import Foundation
import HavelCore
import SystemKit

extension BuildCheck {
    static let sdkGreeting = "Hello from the Havel SDK"

    /// Installs the SDK (`$1`) into `$2/sdk` and builds `$2/hello/hello`; prints how it was built.
    static let sdkBuildScript = """
        set -eu
        installer="$1"
        work="$2"
        sh "$installer" -y -d "$work/sdk" > "$work/install.log" 2>&1 || { cat "$work/install.log" >&2; exit 1; }
        for file in "$work"/sdk/environment-setup-havel-*; do environment="$file"; done
        . "$environment"
        mkdir -p "$work/hello"
        cd "$work/hello"
        printf '#include <stdio.h>\\nint main(void) { printf("%s\\\\n"); return 0; }\\n' "\(sdkGreeting)" > hello.c
        if command -v cmake >/dev/null 2>&1; then
            printf 'cmake_minimum_required(VERSION 3.13)\\nproject(hello C)\\nadd_executable(hello hello.c)\\n' > CMakeLists.txt
            cmake -S . -B build > cmake.log 2>&1 || { cat cmake.log >&2; exit 1; }
            cmake --build build >> cmake.log 2>&1 || { cat cmake.log >&2; exit 1; }
            cp build/hello hello
            echo "CMake $(cmake --version | head -n 1 | sed 's/.* //')"
        else
            $CC $CFLAGS $LDFLAGS -o hello hello.c
            echo "\\$CC"
        fi
        """

    /// Every `setup-havel-sdk-*.sh` of the build: installed, used and its program run.
    public static func sdk(_ directory: BuildDirectory, host: HostFacts = .current, processes: any ProcessRunning = SystemProcesses()) async -> BuildCheckResult {
        await outcome("sdk") { () async throws(HavelError) -> String? in
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
                .filter { $0.hasPrefix("setup-havel-sdk-") && $0.hasSuffix(".sh") }.sorted()
            guard !names.isEmpty else { return "skipped: no setup-havel-sdk-*.sh (build with --sdk)" }
            let (_, architectureName) = try recorded(directory)
            guard let architecture = Architecture(rawValue: architectureName) else {
                throw HavelError(.invalidArgument, "state.json names an unknown architecture \(architectureName)")
            }
            var details: [String] = []
            for name in names {
                let work = try scratch("sdk")
                defer { try? FileManager.default.removeItem(atPath: work) }
                let built = try await processes.run(Command("/bin/sh", ["-c", sdkBuildScript, "sh", directory.path + "/" + name, work]))
                guard built.succeeded else {
                    throw HavelError(.invalidArgument, "\(name): " + String(built.standardError.suffix(1500)).trimmingWhitespace())
                }
                let sysroot = work + "/sdk/sysroots/target"
                let program = work + "/hello/hello"
                let run = host.runsNatively(architecture)
                    ? Command(program, environment: ["LD_LIBRARY_PATH": ""])
                    : Command("qemu-\(architecture.qemuUserName)-static", ["-L", sysroot, program])
                let ran = try await processes.run(run)
                guard ran.succeeded, ran.standardOutput == sdkGreeting + "\n" else {
                    throw HavelError(.invalidArgument, "\(name): the program built with the SDK printed \(ran.standardOutput.debugDescription) (\(ran.standardError.trimmingWhitespace()))")
                }
                let how = built.standardOutput.trimmingWhitespace()
                details.append("\(name): installed, a hello-world built with \(how) ran\(host.runsNatively(architecture) ? "" : " under qemu-\(architecture.qemuUserName)")")
            }
            return details.joined(separator: "; ")
        }
    }
}
