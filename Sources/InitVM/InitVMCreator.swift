import DaemonAPI
import Debian
import Foundation
import HavelCore
import Logging
import SystemKit

/// Everything `initvm create` needs.
public struct CreateRequest: Sendable {
    public var directory: InitVMDirectory
    public var spec: InitVMSpec?
    public var settings: InitVMSettings
    /// apt lines for the initvm (see `InitVMSources`).
    public var sourceLines: [String]
    public var keys: [(fileName: String, armored: String)]
    /// The `havel` binary the guest runs as its daemon: statically linked against the Swift runtime.
    public var havelBinary: String
    /// Shared .deb cache (as builds use).
    public var packageCache: String
    /// Runs mmdebstrap and the image tools (a recording stand-in in tests).
    public var processes: any ProcessRunning = SystemProcesses()

    public init(directory: InitVMDirectory, spec: InitVMSpec?, settings: InitVMSettings, sourceLines: [String],
                keys: [(fileName: String, armored: String)], havelBinary: String, packageCache: String) {
        self.directory = directory
        self.spec = spec
        self.settings = settings
        self.sourceLines = sourceLines
        self.keys = keys
        self.havelBinary = havelBinary
        self.packageCache = packageCache
    }
}

/// How long each part of `create` took.
public struct CreateReport: Sendable {
    public var steps: [(name: String, seconds: Double)] = []
    public var imageBytes: UInt64 = 0
    public var kernelVersion: String = ""
    public var total: Double { steps.reduce(0) { $0 + $1.seconds } }
}

/// Makes `buildenv.img` without an installer: mmdebstrap builds a host-arch tree with a kernel,
/// the build tools and the daemon; `mke2fs -d` turns the tree into ext4 in a sparse raw file, and
/// `qemu-img convert` makes that qcow2. No loop devices, no mounts; the tree is gone afterwards.
public enum InitVMCreator {
    /// Each step is logged as it begins (info), mmdebstrap's output as tool lines.
    public static func create(_ request: CreateRequest, log: Logger) async throws(HavelError) -> CreateReport {
        let directory = request.directory
        let processes = request.processes
        guard geteuid() == 0 else { throw HavelError(.hostNotReady, "havel initvm create needs root (mmdebstrap --mode=root)") }
        for tool in ["mmdebstrap", "mke2fs", "qemu-img", "unshare"] where processes.which(tool) == nil {
            throw HavelError(.hostNotReady, "\(tool): command not found; install it (scripts/setup-host.sh installs everything)")
        }
        guard HostArchitecture.current == .amd64 else {
            throw HavelError(.unsupported, "the initvm is an amd64 VM made natively; this host is \(HostArchitecture.current?.debianName ?? "not a Debian architecture Havel knows")")
        }
        if directory.exists {
            throw HavelError(.invalidArgument, "\(directory.image) exists already; run havel initvm destroy --directory \(directory.path) first")
        }
        guard FileManager.default.isReadableFile(atPath: request.havelBinary) else {
            throw HavelError(.notFound, "the havel binary \(request.havelBinary) cannot be read; pass --havel-binary")
        }
        try QemuCommandLine.checkSocketPaths(directory)

        var report = CreateReport()
        var clock = ContinuousClock.now
        func finishStep(_ name: String) {
            let now = ContinuousClock.now
            report.steps.append((name, seconds(now - clock)))
            clock = now
        }

        try makeDirectory(directory.path, mode: 0o755)
        let work = directory.work
        try? removeTree(work)
        try makeDirectory(work, mode: 0o700)
        let tree = work + "/tree"
        let raw = directory.path + "/buildenv.raw"
        var succeeded = false
        defer {
            // Whatever happened, no tree and no raw image stay behind; a failed create leaves no image.
            try? FileManager.default.removeItem(atPath: raw)
            try? removeTree(work)
            if !succeeded {
                for file in [directory.image, directory.kernel, directory.initrd, directory.settings] {
                    try? FileManager.default.removeItem(atPath: file)
                }
            }
        }

        log.info("checking the havel binary \(request.havelBinary)")
        let binaryNeeds = try await BinaryDependencies.needs(of: request.havelBinary, processes: processes)
        if !binaryNeeds.swiftRuntime.isEmpty {
            log.info("\(request.havelBinary) links the Swift runtime dynamically: its \(binaryNeeds.swiftRuntime.count) libraries go into the initvm at the same paths")
        }

        let token = try APIToken.create(at: directory.token)

        // The payload: files the customize hook copies into the tree.
        let payload = work + "/payload"
        for file in ImageRecipe.payloadFiles(token: token, swapBytes: request.settings.swapBytes) {
            try writeFile(payload + file.path, file.contents, mode: file.mode)
        }
        try makeDirectory(payload + "/usr/local/bin", mode: 0o755)
        try await copyBinary(request.havelBinary, to: payload + InitVMDefaults.guestBinary, processes: processes)
        for library in binaryNeeds.swiftRuntime {
            try makeDirectory(payload + (library as NSString).deletingLastPathComponent, mode: 0o755)
            try await copyBinary(library, to: payload + library, processes: processes, mode: 0o644)
        }

        let packages = ImageRecipe.packages(extra: binaryNeeds.packages + (request.spec?.packages.map(\.name) ?? []))
        var bootstrap = BootstrapRequest(
            tool: .mmdebstrap, architecture: .amd64, suite: request.settings.suite, variant: "minbase",
            packages: packages, exclude: [], sourceLines: request.sourceLines,
            preferences: AptSources.preferences(packages: request.spec?.packages ?? [], preferences: request.spec?.preferences ?? [], raw: nil),
            keys: request.keys, installRecommends: false, packageCache: request.packageCache, listsDirectory: work + "/lists")
        bootstrap.debconfSelections = request.spec?.preseed ?? []
        let mmdebstrap = try Mmdebstrap.prepare(bootstrap, workDirectory: work, output: tree)
        // Runs after Havel's own hooks (setup00, essential00) and before customize99 (cache, lists).
        let hook = ImageRecipe.customizeHook(payload: payload, finetuning: request.spec?.finetuningCommands ?? [],
                                             initramfsCommands: InitramfsDeferral.finishCommands)
        try writeFile(work + "/hooks/customize50-initvm.sh", hook, mode: 0o755)
        finishStep("prepare")

        // A private mount namespace: whatever mmdebstrap mounts in the tree vanishes with it, even if it is killed.
        let command = mmdebstrap.inPrivateMountNamespace()
        log.info("installing \(packages.count) packages and a kernel with mmdebstrap (\(request.settings.suite))")
        let tail = LineTail(limit: 80)
        let status = try await processes.stream(command) { line in
            tail.append(line)
            log.tool(line)
        }
        guard status == .exited(0) else {
            let lines = tail.all
            let reason = BootstrapFailure.explain(lines, suite: request.settings.suite, architecture: .amd64, sources: request.sourceLines)
            throw HavelError(.processFailed, "mmdebstrap failed with \(status)" + (reason.map { ": " + $0 } ?? ":\n" + lines.suffix(8).joined(separator: "\n")))
        }
        finishStep("mmdebstrap")

        // mmdebstrap removes the resolv.conf and hostname it copied in from the host: the guest's own.
        try? FileManager.default.removeItem(atPath: tree + "/etc/resolv.conf")
        try writeFile(tree + "/etc/resolv.conf", ImageRecipe.resolvConf, mode: 0o644)
        try writeFile(tree + "/etc/hostname", InitVMDefaults.hostname + "\n", mode: 0o644)

        log.info("keeping the kernel and initramfs beside the image")
        report.kernelVersion = try copyKernel(from: tree, to: directory)

        log.info("making the ext4 filesystem (\(ByteCount.format(request.settings.imageSize)), sparse) from the tree")
        try await processes.check(Command("mke2fs", [
            "-q", "-F", "-t", "ext4", "-L", InitVMDefaults.filesystemLabel, "-E", "root_owner=0:0",
            "-d", tree, raw, "\(request.settings.imageSize / 1024)k",
        ]))
        try removeTree(tree)
        finishStep("mke2fs")
        if request.settings.diskFormat == "raw" {
            do {
                try FileManager.default.moveItem(atPath: raw, toPath: directory.image)
            } catch {
                throw HavelError(.io, "cannot move \(raw) to \(directory.image): \(error.localizedDescription)")
            }
        } else {
            log.info("converting to qcow2")
            try await processes.check(Command("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, directory.image]))
            try? FileManager.default.removeItem(atPath: raw)
            finishStep("qemu-img")
        }
        try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: directory.image)

        var settings = request.settings
        settings.created = Date()
        try settings.write(directory.settings)
        report.imageBytes = allocatedBytes(directory.image)
        succeeded = true
        return report
    }

    /// The daemon binary (or a library of it) goes in without its debug symbols (a debug build halves),
    /// or as it is without `strip`; symbolic links are followed.
    static func copyBinary(_ binary: String, to destination: String, processes: any ProcessRunning, mode: Int = 0o755) async throws(HavelError) {
        var stripped = false
        if processes.which("strip") != nil {
            stripped = (try? await processes.run(Command("strip", ["--strip-debug", "-o", destination, binary])))?.termination == .exited(0)
        }
        if !stripped {
            try? FileManager.default.removeItem(atPath: destination)
            do {
                try FileManager.default.copyItem(atPath: (binary as NSString).resolvingSymlinksInPath, toPath: destination)
            } catch {
                throw HavelError(.io, "cannot copy \(binary) into the initvm: \(error.localizedDescription)")
            }
        }
        do {
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: destination)
        } catch {
            throw HavelError(.io, "cannot set the mode of \(destination): \(error.localizedDescription)")
        }
    }

    /// Copies /boot/vmlinuz-V and /boot/initrd.img-V (the newest V) out of the tree; returns V.
    static func copyKernel(from tree: String, to directory: InitVMDirectory) throws(HavelError) -> String {
        let boot = tree + "/boot"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: boot)) ?? []
        let versions = names.filter { $0.hasPrefix("vmlinuz-") }.map { String($0.dropFirst("vmlinuz-".count)) }
            .sorted(by: kernelVersionOrder)
        guard let version = versions.last else {
            throw HavelError(.notFound, "the initvm tree has no kernel in /boot (linux-image-amd64 not installed?)")
        }
        guard FileManager.default.fileExists(atPath: boot + "/initrd.img-" + version) else {
            throw HavelError(.notFound, "the initvm tree has no /boot/initrd.img-\(version): the initramfs was not generated")
        }
        for (source, destination) in [("vmlinuz-", directory.kernel), ("initrd.img-", directory.initrd)] {
            try? FileManager.default.removeItem(atPath: destination)
            do {
                try FileManager.default.copyItem(atPath: boot + "/" + source + version, toPath: destination)
                try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: destination)
            } catch {
                throw HavelError(.io, "cannot copy \(boot)/\(source)\(version) to \(destination): \(error.localizedDescription)")
            }
        }
        return version
    }

    static func kernelVersionOrder(_ a: String, _ b: String) -> Bool {
        guard let x = DebianVersion(a), let y = DebianVersion(b) else { return a < b }
        return x < y
    }

    /// Removes a tree Havel made; refuses while anything is mounted inside it.
    static func removeTree(_ path: String) throws(HavelError) {
        guard FileManager.default.fileExists(atPath: path) else { return }
        let mounted = Mounts.mountPoints(under: path)
        guard mounted.isEmpty else {
            throw HavelError(.io, "cannot remove \(path): \(mounted.joined(separator: ", ")) still mounted")
        }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            throw HavelError(.io, "cannot remove \(path): \(error.localizedDescription)")
        }
    }

    static func makeDirectory(_ path: String, mode: Int) throws(HavelError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: mode])
        } catch {
            throw HavelError(.io, "cannot create \(path): \(error.localizedDescription)")
        }
    }

    static func writeFile(_ path: String, _ contents: String, mode: Int) throws(HavelError) {
        try makeDirectory((path as NSString).deletingLastPathComponent, mode: 0o755)
        guard FileManager.default.createFile(atPath: path, contents: Data(contents.utf8), attributes: [.posixPermissions: mode]) else {
            throw HavelError(.io, "cannot write \(path)")
        }
        // createFile keeps an existing file's mode.
        try? FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    /// The bytes a (sparse) file really occupies.
    static func allocatedBytes(_ path: String) -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else { return 0 }
        return UInt64(info.st_blocks) * 512
    }
}

func seconds(_ duration: Duration) -> Double {
    let value = duration.inSeconds
    return (value * 10).rounded() / 10
}


/// What a havel binary needs in the guest to run there (from `ldd` and `dpkg-query -S` on the host):
/// the Debian packages holding its shared libraries, and, for a binary built without
/// `--static-swift-stdlib` (a development build), the Swift runtime's libraries, which no package holds
/// and which go into the guest at the same paths so the binary finds them as it does here.
public enum BinaryDependencies {
    public struct Needs: Sendable, Equatable {
        public var packages: [String] = []
        /// Absolute paths of the Swift runtime's libraries (those beside libswiftCore.so).
        public var swiftRuntime: [String] = []
    }

    public static func needs(of binary: String, processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> Needs {
        let ldd = try await processes.run(Command("ldd", [binary]))
        if let missing = ldd.standardOutput.split(separator: "\n").first(where: { $0.contains("=> not found") }) {
            let library = missing.split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? missing
            throw HavelError(.notFound, "\(binary) needs \(library), which this host does not have")
        }
        let libraries = libraryPaths(lddOutput: ldd.standardOutput)
        var needs = Needs()
        needs.swiftRuntime = swiftRuntimeLibraries(libraries)
        let packaged = libraries.filter { !needs.swiftRuntime.contains($0) }
        guard !packaged.isEmpty else { return needs }
        var queries: [String] = []
        for library in packaged {
            queries.append(library)
            if library.hasPrefix("/usr/") { queries.append(String(library.dropFirst(4))) } else { queries.append("/usr" + library) }
        }
        let result = try await processes.run(Command("dpkg-query", ["-S"] + queries))
        let found = owners(dpkgOutput: result.standardOutput)
        let missing = packaged.filter { library in
            !found.paths.contains(library) && !found.paths.contains("/usr" + library) && !found.paths.contains(String(library.dropFirst(4)))
        }
        if !missing.isEmpty {
            throw HavelError(.notFound, "\(binary) needs \(missing.joined(separator: ", ")), which no Debian package on this host provides")
        }
        needs.packages = found.packages
        return needs
    }

    /// The libraries in the directory of libswiftCore.so (the toolchain's runtime), none without it.
    static func swiftRuntimeLibraries(_ libraries: [String]) -> [String] {
        guard let core = libraries.first(where: { ($0 as NSString).lastPathComponent.hasPrefix("libswiftCore") }) else { return [] }
        let directory = (core as NSString).deletingLastPathComponent
        return libraries.filter { ($0 as NSString).deletingLastPathComponent == directory }
    }

    static func libraryPaths(lddOutput: String) -> [String] {
        lddOutput.split(separator: "\n").compactMap { line -> String? in
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if let arrow = words.firstIndex(of: "=>"), arrow + 1 < words.count, words[arrow + 1].hasPrefix("/") {
                return words[arrow + 1]
            }
            if let first = words.first, first.hasPrefix("/"), !first.contains("ld-linux") { return first }
            return nil
        }
    }

    static func owners(dpkgOutput: String) -> (packages: [String], paths: Set<String>) {
        var packages: [String] = []
        var paths = Set<String>()
        for line in dpkgOutput.split(separator: "\n") {
            guard let separator = line.range(of: ": /") else { continue }
            paths.insert("/" + line[separator.upperBound...])
            for name in line[..<separator.lowerBound].split(separator: ",") {
                let package = name.trimmingWhitespace().split(separator: ":").first.map(String.init) ?? ""
                if !package.isEmpty, !packages.contains(package) { packages.append(package) }
            }
        }
        return (packages, paths)
    }
}
