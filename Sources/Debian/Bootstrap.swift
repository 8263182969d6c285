import Foundation
import HavelCore
import SystemKit

/// Everything a bootstrap tool needs to make a target tree with the project's packages installed.
public struct BootstrapRequest: Sendable {
    public var tool: DebootstrapSpec.Tool
    public var architecture: Architecture
    public var suite: String
    public var variant: String?
    /// debootstrap/include plus the pkg-list, in order, without duplicates.
    public var packages: [String]
    public var exclude: [String]
    public var sourceLines: [String]
    public var preferences: String
    public var keys: [(fileName: String, armored: String)]
    public var installRecommends: Bool
    /// Shared directory of downloaded .debs, hard-linked in and out of the tree.
    public var packageCache: String
    /// The hooks copy the apt package lists to `<listsDirectory>/var/lib/apt/lists/` for the reports.
    public var listsDirectory: String
    /// debconf answers given before any package beyond the essential set is configured.
    public var debconfSelections: [DebconfSelection] = []
    /// More architectures apt in the tree knows (multiarch), such as the host architecture of a cross-build chroot.
    public var foreignArchitectures: [String] = []
    /// apt preferences for the install only: the setup hook writes them to `installPreferencesFile`, and the caller
    /// removes that file from the finished tree.
    public var installPreferences: String? = nil
    public static let installPreferencesFile = "/etc/apt/preferences.d/havel-install"
    /// The only apt source while installing (a binary CD, `--from-cdrom`): mmdebstrap writes `sourceLines` into
    /// the tree as usual, a setup hook sets this line in their place, and a customize hook puts them back.
    public var installSourceOverride: String? = nil
    /// The fast install path (`NativeUnpack`): the host's dpkg unpacks, the target's configures.
    public var nativeUnpack = false

    public init(tool: DebootstrapSpec.Tool, architecture: Architecture, suite: String, variant: String?, packages: [String],
                exclude: [String], sourceLines: [String], preferences: String, keys: [(fileName: String, armored: String)],
                installRecommends: Bool, packageCache: String, listsDirectory: String) {
        self.tool = tool
        self.architecture = architecture
        self.suite = suite
        self.variant = variant
        self.packages = packages
        self.exclude = exclude
        self.sourceLines = sourceLines
        self.preferences = preferences
        self.keys = keys
        self.installRecommends = installRecommends
        self.packageCache = packageCache
        self.listsDirectory = listsDirectory
    }

    /// The packages to install for a project: debootstrap/include, then the pkg-list (`name:arch` for a
    /// package of another architecture).
    public static func packages(for project: Project) -> [String] {
        var seen = Set<String>()
        return (project.target.debootstrap.include + pkgListNames(for: project)).filter { seen.insert($0).inserted }
    }

    /// The pkg-list as apt names it: `name`, or `name:arch` for `<pkg arch>` of another architecture than the target's.
    public static func pkgListNames(for project: Project) -> [String] {
        guard let target = project.architecture else { return project.target.packages.map(\.name) }
        return project.target.packages.map { $0.aptName(target: target) }
    }

    /// The architectures besides the target's that the pkg-list installs packages of (multiarch).
    public static func foreignArchitectures(for project: Project) -> [String] {
        guard let target = project.architecture else { return [] }
        return PackageSpec.foreignArchitectures(project.target.packages, target: target)
    }
}

/// Drives mmdebstrap: one run that bootstraps and installs every package into a directory.
/// Hooks place apt preferences and keys before anything is installed, share a .deb cache through
/// hard links, and keep the package lists for the reports.
public enum Mmdebstrap {
    public static let mergedUsrHooks = "/usr/share/mmdebstrap/hooks/merged-usr"

    /// Writes the hook directory and keyring into `workDirectory` and returns the command that makes
    /// the finished tree in `output` (a directory that must not exist or be empty).
    public static func prepare(_ request: BootstrapRequest, workDirectory: String, output: String) throws(HavelError) -> Command {
        let hooks = workDirectory + "/hooks"
        let keyring = workDirectory + "/keyring"
        let payload = workDirectory + "/payload"
        let include = request.packages + request.exclude.map { $0 + "-" }
        var path: String? = nil
        do {
            for dir in [hooks, keyring, payload + "/keys", request.packageCache, request.listsDirectory] {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            }
            try request.preferences.write(toFile: payload + "/preferences", atomically: true, encoding: .utf8)
            try (request.installPreferences ?? "").write(toFile: payload + "/install-preferences", atomically: true, encoding: .utf8)
            for key in request.keys {
                try key.armored.write(toFile: payload + "/keys/" + key.fileName, atomically: true, encoding: .utf8)
            }
            try setupHook(payload: payload, cache: request.packageCache)
                .write(toFile: hooks + "/setup00-havel.sh", atomically: true, encoding: .utf8)
            // The extract variant runs no essential or customize hooks: its .debs and lists are kept by an extract hook.
            let extractOnly = request.variant == "extract"
            let keeping = extractOnly ? "extract99-havel.sh" : "customize99-havel.sh"
            try customizeHook(cache: request.packageCache, lists: request.listsDirectory)
                .write(toFile: hooks + "/" + keeping, atomically: true, encoding: .utf8)
            var scripts = ["setup00-havel.sh", keeping]
            if !extractOnly {
                try InitramfsDeferral.essentialHook.write(toFile: hooks + "/essential00-havel.sh", atomically: true, encoding: .utf8)
                scripts.append("essential00-havel.sh")
            }
            if mergesUsrByLinks(request) {
                try mergedUsrLinksHook(request.architecture)
                    .write(toFile: hooks + "/setup01-havel-merged-usr.sh", atomically: true, encoding: .utf8)
                scripts.append("setup01-havel-merged-usr.sh")
            }
            if let line = request.installSourceOverride {
                try sourceOverrideHooks(line: line, saved: payload + "/project-sources.list")
                    .setup.write(toFile: hooks + "/setup02-havel-source-override.sh", atomically: true, encoding: .utf8)
                try sourceOverrideHooks(line: line, saved: payload + "/project-sources.list")
                    .customize.write(toFile: hooks + "/customize90-havel-source-override.sh", atomically: true, encoding: .utf8)
                scripts += ["setup02-havel-source-override.sh", "customize90-havel-source-override.sh"]
            }
            if !request.debconfSelections.isEmpty {
                try DebconfSelection.selections(request.debconfSelections).write(toFile: payload + "/debconf-selections", atomically: true, encoding: .utf8)
                try DebconfPreseed.essentialHook(selections: payload + "/debconf-selections")
                    .write(toFile: hooks + "/essential10-havel-debconf.sh", atomically: true, encoding: .utf8)
                scripts.append("essential10-havel-debconf.sh")
            }
            if request.nativeUnpack {
                path = try NativeUnpack.prepare(
                    workDirectory: workDirectory, hooks: hooks, cache: request.packageCache,
                    packages: NativeUnpack.remainingPackages(variant: request.variant, include: include, suite: request.suite,
                                                             architecture: request.architecture))
            }
            for script in scripts {
                try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: hooks + "/" + script)
            }
            // apt outside the tree checks signatures against this keyring: the host's trusted keys plus the project's.
            for source in ["/etc/apt/trusted.gpg.d", "/usr/share/keyrings/debian-archive-keyring.gpg"] {
                try copyKeys(from: source, to: keyring)
            }
            for key in request.keys {
                try key.armored.write(toFile: keyring + "/" + key.fileName, atomically: true, encoding: .utf8)
            }
        } catch let error as HavelError {
            throw error
        } catch {
            throw HavelError(.io, "cannot prepare the bootstrap in \(workDirectory): \(error.localizedDescription)")
        }

        let architectures = [request.architecture.debianName] + request.foreignArchitectures
        var arguments = ["--mode=root", "--verbose", "--architectures=\(architectures.joined(separator: ","))"]
        if let variant = request.variant { arguments.append("--variant=\(variant)") }
        if !include.isEmpty { arguments.append("--include=" + include.joined(separator: ",")) }
        arguments.append("--aptopt=APT::Install-Recommends \"\(request.installRecommends ? "true" : "false")\"")
        arguments.append("--aptopt=Acquire::Retries \"3\"")
        arguments.append("--keyring=\(keyring)")
        // bullseye and older keep /usr unmerged here: the hook would install usr-is-merged, which they lack.
        if Suite.hasUsrIsMerged(request.suite), FileManager.default.fileExists(atPath: mergedUsrHooks) {
            arguments.append("--hook-dir=\(mergedUsrHooks)")
        }
        arguments.append("--hook-dir=\(hooks)")
        // Keep the .debs of Essential packages so the customize hook can put them in the cache.
        arguments.append("--skip=essential/unlink")
        arguments += [request.suite, output]
        arguments += request.sourceLines
        var environment = ["DEBIAN_FRONTEND": "noninteractive", "TMPDIR": workDirectory]
        if let path { environment["PATH"] = path }
        return Command("mmdebstrap", arguments, environment: environment)
    }

    /// Releases without usr-is-merged get /usr merged by Havel's own setup hook, as their debootstrap
    /// merges it (not for the buildd variant, which debootstrap leaves unmerged).
    static func mergesUsrByLinks(_ request: BootstrapRequest) -> Bool {
        !Suite.hasUsrIsMerged(request.suite) && request.variant != "buildd"
    }

    static func mergedUsrLinksHook(_ architecture: Architecture) -> String {
        let directories = (["bin", "sbin", "lib"] + architecture.mergedUsrExtraLinks).joined(separator: " ")
        return """
        #!/bin/sh
        # Havel: /usr merged before the first package is unpacked, as debootstrap does for this release.
        set -eu
        for dir in \(directories); do
            mkdir -p "$1/usr/$dir"
            ln -s "usr/$dir" "$1/$dir"
        done

        """
    }

    static func copyKeys(from source: String, to keyring: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else { return }
        let files = isDirectory.boolValue ?
            try FileManager.default.contentsOfDirectory(atPath: source).map { source + "/" + $0 } : [source]
        for file in files where file.hasSuffix(".gpg") || file.hasSuffix(".asc") {
            let destination = keyring + "/" + (file as NSString).lastPathComponent
            if !FileManager.default.fileExists(atPath: destination) {
                try FileManager.default.copyItem(atPath: file, toPath: destination)
            }
        }
    }

    static func setupHook(payload: String, cache: String) -> String {
        """
        #!/bin/sh
        # Havel: apt preferences and keys before the first package is installed; cached .debs linked in.
        set -eu
        root="$1"
        mkdir -p "$root/etc/apt/preferences.d" "$root/etc/apt/trusted.gpg.d" "$root/var/cache/apt/archives"
        if [ -s \(Command.shellQuote(payload))/preferences ]; then
            cp \(Command.shellQuote(payload))/preferences "$root/etc/apt/preferences.d/havel"
        fi
        if [ -s \(Command.shellQuote(payload))/install-preferences ]; then
            cp \(Command.shellQuote(payload))/install-preferences "$root\(BootstrapRequest.installPreferencesFile)"
        fi
        for key in \(Command.shellQuote(payload))/keys/*.asc; do
            [ -e "$key" ] && cp "$key" "$root/etc/apt/trusted.gpg.d/"
        done
        find \(Command.shellQuote(cache)) -maxdepth 1 -name '*.deb' -type f -print0 |
            xargs -0 -r cp -l -n -t "$root/var/cache/apt/archives/" 2>/dev/null ||
        find \(Command.shellQuote(cache)) -maxdepth 1 -name '*.deb' -type f -print0 |
            xargs -0 -r cp -n -t "$root/var/cache/apt/archives/"

        """
    }

    /// The setup hook moves the tree's sources.list (as mmdebstrap wrote it from the project's lines) aside and
    /// writes `line` as the only source; the customize hook puts the project's back, byte for byte.
    static func sourceOverrideHooks(line: String, saved: String) -> (setup: String, customize: String) {
        let setup = """
            #!/bin/sh
            # Havel: the packages come from one source only while installing (--from-cdrom).
            set -eu
            [ -z "$(ls -A "$1/etc/apt/sources.list.d" 2>/dev/null)" ] || { echo "havel: sources.list.d is not empty" >&2; exit 1; }
            mv "$1/etc/apt/sources.list" \(Command.shellQuote(saved))
            printf '%s\\n' \(Command.shellQuote(line)) > "$1/etc/apt/sources.list"

            """
        let customize = """
            #!/bin/sh
            # Havel: the project's apt sources back in the tree (--from-cdrom).
            set -eu
            mv \(Command.shellQuote(saved)) "$1/etc/apt/sources.list"

            """
        return (setup, customize)
    }

    static func customizeHook(cache: String, lists: String) -> String {
        """
        #!/bin/sh
        # Havel: new .debs back into the shared cache; the package lists and their Release files kept for the reports.
        set -eu
        root="$1"
        find "$root/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -type f -print0 |
            xargs -0 -r cp -l -n -t \(Command.shellQuote(cache))/ 2>/dev/null ||
        find "$root/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -type f -print0 |
            xargs -0 -r cp -n -t \(Command.shellQuote(cache))/
        mkdir -p \(Command.shellQuote(lists))/var/lib/apt/lists
        find "$root/var/lib/apt/lists" -maxdepth 1 \\( -name '*_Packages' -o -name '*_InRelease' -o -name '*_Release' \\) -type f \\
            -exec cp -t \(Command.shellQuote(lists))/var/lib/apt/lists/ {} +

        """
    }
}

/// `<preseed>`: debconf answers loaded into the tree's debconf database after the essential packages
/// (debconf among them) are in and before the rest are configured, so their questions find the answers.
public enum DebconfPreseed {
    /// The mmdebstrap essential hook (the tree is `$1`).
    public static func essentialHook(selections: String) -> String {
        """
        #!/bin/sh
        # Havel: the project's debconf answers, before the remaining packages are configured.
        set -eu
        if ! chroot "$1" sh -c 'command -v debconf-set-selections' >/dev/null; then
            echo "havel: <preseed> needs debconf in the tree after the essential packages; use variant minbase or larger" >&2
            exit 1
        fi
        chroot "$1" debconf-set-selections < \(Command.shellQuote(selections))

        """
    }
}

/// update-initramfs under qemu-user takes minutes and a kernel install runs it twice (its postinst and
/// the initramfs-tools trigger). Havel diverts it to a no-op while packages are installed and runs it
/// once when the tree is finished, after the archive and finetuning, so their initramfs settings count.
public enum InitramfsDeferral {
    public static let tool = "/usr/sbin/update-initramfs"
    public static let diverted = "/usr/sbin/update-initramfs.havel-deferred"
    /// The script that puts the no-op in place: run inside the tree, or from the host with the tree as `$1`.
    public static func deferScript(inChroot: Bool) -> String {
        let root = inChroot ? "" : "$1"
        let run = inChroot ? "" : "chroot \"$1\" "
        return """
            set -eu
            \(run)dpkg-divert --quiet --local --rename --divert \(diverted) --add \(tool)
            cat > "\(root)\(tool)" <<'HAVEL_STUB'
            #!/bin/sh
            # Havel: initramfs generation is deferred until the tree is finished.
            exit 0
            HAVEL_STUB
            chmod 755 "\(root)\(tool)"

            """
    }

    static var essentialHook: String { "#!/bin/sh\n# Havel: defer update-initramfs until the tree is finished.\n" + deferScript(inChroot: false) }

    /// Commands that undo the deferral and, when a kernel is installed, generate every initramfs once.
    public static let finishCommands = """
        set -e
        if [ -e \(diverted) ] || dpkg-divert --list \(tool) | grep -q havel-deferred; then
            rm -f \(tool)
            dpkg-divert --quiet --local --rename --divert \(diverted) --remove \(tool)
        fi
        if [ -x \(tool) ] && ls /lib/modules/*/modules.dep >/dev/null 2>&1; then
            \(tool) -c -k all
        fi
        """
}

/// Turns the output of apt, mmdebstrap and debootstrap into one sentence saying what went wrong.
public enum BootstrapFailure {
    public static func explain(_ lines: [String], suite: String, architecture: Architecture, sources: [String]) -> String? {
        let mirrors = sources.joined(separator: "; ")
        let missingKeys = lines.flatMap { line in
            line.components(separatedBy: "NO_PUBKEY ").dropFirst().compactMap { $0.split(separator: " ").first.map(String.init) }
        }
        if !missingKeys.isEmpty {
            let keys = Array(NSOrderedSet(array: missingKeys)) as? [String] ?? missingKeys
            return "a repository's signature cannot be verified: missing key \(keys.joined(separator: ", ")); give the repository's key as <raw-key> in its url-list entry or as <primary_key>, or set <noauth/>"
        }
        for line in lines.reversed() {
            if let range = line.range(of: "Unable to locate package ") {
                let name = line[range.upperBound...].trimmingWhitespace()
                return "package \(name) was not found in \(suite) for \(architecture.debianName) (sources: \(mirrors)); check the name in the pkg-list or the mirror's components"
            }
            if line.contains("Version '"), line.contains("' for '"), line.contains("was not found") {
                return line.replacingOccurrences(of: "E: ", with: "") + " (a version pin in the pkg-list names a version the mirror does not have)"
            }
            if line.contains("signatures couldn't be verified") || line.contains("is not signed") {
                return "a repository's signature cannot be verified; give its key as <raw-key> in its url-list entry or as <primary_key>, or set <noauth/> (\(line.trimmingWhitespace()))"
            }
            if line.contains("Failed to fetch") || line.contains("does not have a Release file") {
                return "cannot download from the mirror: " + line.replacingOccurrences(of: "E: ", with: "").replacingOccurrences(of: "W: ", with: "").trimmingWhitespace()
            }
            if line.contains("Could not resolve") || line.contains("Temporary failure resolving") {
                return "the mirror's host name cannot be resolved: \(line.trimmingWhitespace())"
            }
            if line.contains("Could not connect") || line.contains("Connection refused") || line.contains("Unable to connect") {
                return "the mirror cannot be reached: \(line.trimmingWhitespace())"
            }
            if line.contains("Unmet dependencies") || line.contains("unmet dependencies") {
                return "the package list cannot be installed together (unmet dependencies); see the log for apt's explanation"
            }
        }
        return nil
    }
}

/// Drives debootstrap, for projects that ask for it (`<debootstrap><type>debootstrap</type>`): the
/// base system from the primary mirror, then the pkg-list with apt inside the tree (see `Builder`).
public enum Debootstrap {
    /// The debootstrap command; `keyring` is a binary keyring for gpgv, nil with noauth.
    public static func command(_ request: BootstrapRequest, mirror: String, keyring: String?, output: String) -> Command {
        var arguments = ["--arch=\(request.architecture.debianName)"]
        if let variant = request.variant { arguments.append("--variant=\(variant)") }
        // debootstrap's include installs with dpkg only (no apt resolution): the pkg-list goes through apt afterwards.
        let include = request.packages
        if !include.isEmpty { arguments.append("--include=" + include.joined(separator: ",")) }
        if !request.exclude.isEmpty { arguments.append("--exclude=" + request.exclude.joined(separator: ",")) }
        if let keyring { arguments.append("--keyring=\(keyring)") } else { arguments.append("--no-check-gpg") }
        arguments.append("--cache-dir=\(request.packageCache)")
        arguments += [request.suite, output, mirror]
        return Command("debootstrap", arguments, environment: ["DEBIAN_FRONTEND": "noninteractive"])
    }
}
