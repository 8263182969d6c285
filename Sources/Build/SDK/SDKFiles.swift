// The files of an SDK besides its two trees: the environment-setup file, the CMake toolchain file, the
// target's pkg-config, and the self-extracting installer's script (which relocates the host tools into
// the directory it installs to with the SDK's own patchelf and dynamic loader). Also the one tree
// operation both trees need: absolute symbolic links made relative, so the SDK works wherever it lands.

import Foundation
import HavelCore
import SystemKit

struct SDKFiles: Sendable {
    var projectName: String
    var projectVersion: String
    var architecture: Architecture
    /// The cross tools' prefix (`buildimage/triplet`, or the architecture's own).
    var triplet: String
    /// The architecture the host tools run on.
    var hostArchitecture: Architecture

    /// The placeholder the installer replaces with the directory it installs to.
    static let directoryPlaceholder = "@HAVEL_SDK_DIR@"
    static let payloadMarker = "__HAVEL_SDK_PAYLOAD__"

    /// `name` with everything but letters, digits and `.+_-` made `_`, for file names.
    static func plain(_ name: String) -> String {
        String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || ".+_-".contains($0)) ? $0 : "_" })
    }

    var suffix: String { "\(triplet)-\(Self.plain(projectName))-\(Self.plain(projectVersion))" }
    /// ELBE's `setup-elbe-sdk-<triplet>-<name>-<version>.sh`, for Havel.
    var installerName: String { "setup-havel-sdk-\(suffix).sh" }
    var environmentName: String { "environment-setup-havel-\(suffix)" }
    var defaultDirectory: String { "/opt/havel-sdk-\(suffix)" }

    /// The kernel's ARCH for the target.
    var kernelArch: String {
        switch architecture {
        case .armel, .armhf: "arm"
        case .arm64: "arm64"
        case .powerpc, .ppc64el: "powerpc"
        case .amd64, .i386: "x86"
        case .riscv64: "riscv"
        }
    }

    /// The host's dynamic loader, relative to the host tree (the SDK's host tools are relocated to it).
    static func dynamicLoader(_ host: Architecture) -> String? {
        switch host {
        case .amd64: "lib64/ld-linux-x86-64.so.2"
        case .arm64: "lib/ld-linux-aarch64.so.1"
        default: nil
        }
    }

    /// The host part's default packages when the project has no `<hostsdk-pkg-list>` (ELBE's: the cross
    /// compiler and gdb-multiarch), plus what the toolchain files call: CMake, make and pkgconf.
    /// patchelf is always added: the installer relocates the host tools with it.
    static func hostPackages(listed: [String], triplet: String, hostArchitecture: Architecture) -> [String] {
        var packages = listed
        if packages.isEmpty {
            packages = [triplet == hostArchitecture.gnuTriplet ? "g++" : "g++-\(triplet)", "gdb-multiarch", "cmake", "make", "pkgconf"]
        }
        if !packages.contains("patchelf") { packages.append("patchelf") }
        return packages
    }

    var environmentSetup: String {
        let tuple = architecture.multiarchTuple
        return """
            # Havel SDK for \(projectName) \(projectVersion) (\(architecture.debianName), \(triplet)): source this file in a shell,
            #   . \(Self.directoryPlaceholder)/\(environmentName)
            if [ -n "${LD_LIBRARY_PATH:-}" ]; then
                echo "unset LD_LIBRARY_PATH first: it would mix the host's libraries with the SDK's" >&2
                return 1
            fi
            export HAVEL_SDK="\(Self.directoryPlaceholder)"
            export SDKTARGETSYSROOT="$HAVEL_SDK/sysroots/target"
            export PATH="$HAVEL_SDK/sysroots/host/usr/bin:$HAVEL_SDK/sysroots/host/usr/sbin:$PATH"
            export CROSS_COMPILE=\(triplet)-
            export TARGET_PREFIX=\(triplet)-
            export CC="\(triplet)-gcc --sysroot=$SDKTARGETSYSROOT"
            export CXX="\(triplet)-g++ --sysroot=$SDKTARGETSYSROOT"
            export CPP="\(triplet)-gcc -E --sysroot=$SDKTARGETSYSROOT"
            export LD="\(triplet)-ld --sysroot=$SDKTARGETSYSROOT"
            export AS=\(triplet)-as AR=\(triplet)-ar NM=\(triplet)-nm RANLIB=\(triplet)-ranlib STRIP=\(triplet)-strip
            export OBJCOPY=\(triplet)-objcopy OBJDUMP=\(triplet)-objdump
            export GDB=gdb-multiarch
            export PKG_CONFIG=\(triplet)-pkg-config
            export PKG_CONFIG_SYSROOT_DIR="$SDKTARGETSYSROOT"
            export PKG_CONFIG_LIBDIR="$SDKTARGETSYSROOT/usr/lib/\(tuple)/pkgconfig:$SDKTARGETSYSROOT/usr/lib/pkgconfig:$SDKTARGETSYSROOT/usr/share/pkgconfig"
            unset PKG_CONFIG_PATH
            export CMAKE_TOOLCHAIN_FILE="$HAVEL_SDK/toolchain.cmake"
            export CONFIGURE_FLAGS="--host=\(triplet) --build=\(hostArchitecture.gnuTriplet) --with-sysroot=$SDKTARGETSYSROOT"
            export CFLAGS="-O2 -pipe -g" CXXFLAGS="-O2 -pipe -g" LDFLAGS="-Wl,-O1 -Wl,--as-needed" CPPFLAGS=""
            export KCFLAGS="--sysroot=$SDKTARGETSYSROOT"
            export ARCH=\(kernelArch)
            # qemu-user (through binfmt_misc or called as qemu-\(architecture.qemuUserName)-static) finds the target's libraries here.
            export QEMU_LD_PREFIX="$SDKTARGETSYSROOT"

            """
    }

    /// Finds the SDK from its own place, so it needs no relocation.
    var toolchainCMake: String {
        let tuple = architecture.multiarchTuple
        let emulator = hostArchitecture == architecture ? "" : "set(CMAKE_CROSSCOMPILING_EMULATOR qemu-\(architecture.qemuUserName)-static -L ${CMAKE_SYSROOT})\n"
        return """
            # Havel SDK for \(projectName) \(projectVersion): CMake cross-compiling for \(architecture.debianName) (\(triplet)).
            # cmake -DCMAKE_TOOLCHAIN_FILE=<this file> ..., or source the environment-setup file (it sets CMAKE_TOOLCHAIN_FILE).
            get_filename_component(HAVEL_SDK "${CMAKE_CURRENT_LIST_DIR}" ABSOLUTE)
            set(CMAKE_SYSTEM_NAME Linux)
            set(CMAKE_SYSTEM_PROCESSOR \(architecture.unameMachine))
            set(CMAKE_SYSROOT "${HAVEL_SDK}/sysroots/target")
            set(CMAKE_LIBRARY_ARCHITECTURE \(tuple))
            set(CMAKE_C_COMPILER "${HAVEL_SDK}/sysroots/host/usr/bin/\(triplet)-gcc")
            set(CMAKE_CXX_COMPILER "${HAVEL_SDK}/sysroots/host/usr/bin/\(triplet)-g++")
            set(PKG_CONFIG_EXECUTABLE "${HAVEL_SDK}/sysroots/host/usr/bin/\(triplet)-pkg-config")
            set(CMAKE_FIND_ROOT_PATH "${CMAKE_SYSROOT}")
            set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
            set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
            set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
            set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
            \(emulator)
            """
    }

    /// `<triplet>-pkg-config` in the host tree: the host's pkgconf reading the sysroot's .pc files.
    var pkgConfigWrapper: String {
        let tuple = architecture.multiarchTuple
        return """
            #!/bin/sh
            # Havel SDK: pkg-config for \(architecture.debianName), reading the sysroot's .pc files.
            sdk=$(cd "$(dirname "$0")/../../../.." && pwd)
            sysroot="$sdk/sysroots/target"
            PKG_CONFIG_SYSROOT_DIR="$sysroot" \\
            PKG_CONFIG_LIBDIR="$sysroot/usr/lib/\(tuple)/pkgconfig:$sysroot/usr/lib/pkgconfig:$sysroot/usr/share/pkgconfig" \\
            PKG_CONFIG_PATH= exec "$sdk/sysroots/host/usr/bin/pkgconf" "$@"

            """
    }

    /// The installer's script; the xz-compressed tar of the SDK follows the marker line.
    func installerScript(loader: String) -> String {
        let hostTuple = hostArchitecture.multiarchTuple
        return """
            #!/bin/sh
            # Havel SDK installer: \(projectName) \(projectVersion) for \(architecture.debianName) (\(triplet)), host tools for \(hostArchitecture.debianName).
            # Usage: sh \(installerName) [-y] [-d DIRECTORY] [-l]
            #   -y  answer yes (install into \(defaultDirectory) unless -d is given)   -d  install into DIRECTORY   -l  list the files
            set -eu
            directory=""
            yes=no
            list=no
            while getopts "yd:lh" option; do
                case "$option" in
                y) yes=yes ;;
                d) directory=$OPTARG ;;
                l) list=yes ;;
                *) sed -n '3,4p' "$0" | cut -c3-; exit 2 ;;
                esac
            done
            line=$(grep -a -n -m 1 '^\(Self.payloadMarker)$' "$0" | cut -d: -f1)
            [ -n "$line" ] || { echo "this installer is damaged: it has no payload" >&2; exit 1; }
            payload() { tail -n +"$((line + 1))" "$0"; }
            command -v xz >/dev/null 2>&1 || { echo "xz is needed to unpack the SDK (apt-get install xz-utils)" >&2; exit 1; }
            if [ "$list" = yes ]; then payload | xz -dc | tar -t; exit 0; fi
            machine=$(uname -m)
            case "$machine" in
            \(hostArchitecture.unameMachine)) ;;
            *) echo "this SDK's tools run on \(hostArchitecture.unameMachine) hosts; this one is $machine" >&2; exit 1 ;;
            esac
            if [ -z "$directory" ]; then
                if [ "$yes" = yes ]; then
                    directory=\(defaultDirectory)
                else
                    printf 'Install the SDK into [%s]: ' \(defaultDirectory)
                    read -r directory || true
                    [ -n "$directory" ] || directory=\(defaultDirectory)
                fi
            fi
            case "$directory" in /*) ;; *) directory="$(pwd)/$directory" ;; esac
            case "$directory" in
            *[!A-Za-z0-9._+/-]*) echo "the SDK's directory may hold only letters, digits and . _ + - /: $directory" >&2; exit 1 ;;
            esac
            if [ -e "$directory/\(environmentName)" ] && [ "$yes" != yes ]; then
                printf '%s already holds this SDK; overwrite it? [y/N] ' "$directory"
                read -r answer || true
                case "$answer" in y|Y|yes) ;; *) echo "not installed"; exit 1 ;; esac
            fi
            mkdir -p "$directory"
            echo "unpacking the SDK into $directory"
            payload | xz -dc | tar -x -C "$directory" --no-same-owner
            host="$directory/sysroots/host"
            loader="$host/\(loader)"
            libraries="$host/usr/lib/\(hostTuple):$host/lib/\(hostTuple):$host/usr/lib:$host/lib"
            work=$(mktemp -d)
            trap 'rm -rf "$work"' EXIT
            # The host tools are Debian's, made for /usr: each executable is pointed at the SDK's own loader and libraries.
            cp "$host/usr/bin/patchelf" "$work/patchelf"
            patchelf() { "$loader" --library-path "$libraries" "$work/patchelf" "$@"; }
            relocated=0
            find "$host" -type f -perm /111 ! -name '*.so' ! -name '*.so.*' > "$work/files"
            while IFS= read -r file; do
                if patchelf --print-interpreter "$file" >/dev/null 2>&1; then
                    patchelf --set-interpreter "$loader" --force-rpath --set-rpath "$libraries" "$file"
                    relocated=$((relocated + 1))
                fi
            done < "$work/files"
            sed -i "s|\(Self.directoryPlaceholder)|$directory|g" "$directory/\(environmentName)"
            echo "$relocated host programs relocated; in each shell: . $directory/\(environmentName)"
            exit 0
            \(Self.payloadMarker)

            """
    }

    /// GNU ld scripts of the host tree (the cross libc's `libc.so` and the like) name their libraries by absolute
    /// path on the build system, which ld reads literally outside a sysroot: each such path becomes its bare file
    /// name, which ld finds on the library search path (the cross libraries' own directory, then the sysroot's).
    @discardableResult
    static func bareLinkerScripts(root: String) throws(HavelError) -> Int {
        var count = 0
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            guard relative.hasSuffix(".so") else { continue }
            let path = root + "/" + relative
            var status = stat()
            guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG, status.st_size < 16384,
                  let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8),
                  text.contains("GNU ld script") else { continue }
            let rewritten = bareNames(text)
            guard rewritten != text else { continue }
            try AtomicFile.write(rewritten, to: path)
            count += 1
        }
        return count
    }

    /// `GROUP ( /usr/x/lib/libc.so.6 AS_NEEDED ( /lib/ld.so.1 ) )` → `GROUP ( libc.so.6 AS_NEEDED ( ld.so.1 ) )`;
    /// comments and other words are kept.
    static func bareNames(_ script: String) -> String {
        var result = ""
        var path: String? = nil
        var previous: Character = " "
        for character in script {
            if var current = path {
                if current == "/" && character == "*" {
                    // A comment's opening, not a path.
                    result += "/*"
                    path = nil
                } else if character.isWhitespace || character == "(" || character == ")" {
                    result += current.split(separator: "/").last.map(String.init) ?? current
                    path = nil
                    result.append(character)
                } else {
                    current.append(character)
                    path = current
                }
            } else if character == "/" && (previous.isWhitespace || previous == "(") {
                path = "/"
            } else {
                result.append(character)
            }
            previous = character
        }
        if let path { result += path.split(separator: "/").last.map(String.init) ?? path }
        return result
    }

    /// Every absolute symbolic link under `directory` (inside the tree `root`) made relative; the count.
    /// A link leaving the tree is left alone.
    @discardableResult
    static func relativizeLinks(root: String, under directory: String = "") throws(HavelError) -> Int {
        let start = directory.isEmpty ? root : root + "/" + directory
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: start, isDirectory: &isDirectory), isDirectory.boolValue else { return 0 }
        var count = 0
        let enumerator = FileManager.default.enumerator(atPath: start)
        while let relative = enumerator?.nextObject() as? String {
            let path = start + "/" + relative
            var status = stat()
            guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFLNK else { continue }
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path), target.hasPrefix("/") else { continue }
            let inTree = (directory.isEmpty ? "" : directory + "/") + relative
            let linkDirectory = inTree.split(separator: "/").dropLast()
            let targetComponents = target.split(separator: "/")
            var common = 0
            while common < linkDirectory.count, common < targetComponents.count,
                  linkDirectory[linkDirectory.startIndex + common] == targetComponents[common] { common += 1 }
            let ups = Array(repeating: "..", count: linkDirectory.count - common)
            let rest = targetComponents.dropFirst(common).map(String.init)
            let relativeTarget = (ups + rest).joined(separator: "/")
            guard unlink(path) == 0, symlink(relativeTarget.isEmpty ? "." : relativeTarget, path) == 0 else {
                throw HavelError(.io, "cannot make the link \(path) relative: \(String(cString: strerror(errno)))")
            }
            count += 1
        }
        return count
    }
}
