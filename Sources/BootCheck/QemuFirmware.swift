import Foundation
import HavelCore
import SystemKit

/// qemu's firmware descriptors (the JSON files of qemu's docs/interop/firmware.json, such as Debian's
/// /usr/share/qemu/firmware/60-edk2-x86_64.json) and the choice of one for a check's
/// `<interpreter-firmware>`, as ELBE's check-build makes it: descriptors are looked up by file name in the
/// user's, /etc's and the data directories' `qemu/firmware` (an earlier directory's file of the same name
/// wins, an empty one hides it), in file-name order, and the first that matches is taken. Only flash
/// firmware is used; its code is attached read-only and, unlike ELBE, a fresh copy of its variables
/// template is attached writable for each boot.
public enum QemuFirmware {
    /// The chosen firmware: what qemu is started with.
    public struct Choice: Sendable, Equatable {
        public var descriptor: String
        public var description: String
        public var code: String
        public var codeFormat: String
        public var variablesTemplate: String?
        public var variablesFormat: String?
    }

    struct Descriptor: Decodable {
        struct Target: Decodable {
            var architecture: String
            var machines: [String]
        }
        struct FlashFile: Decodable {
            var filename: String
            var format: String?
        }
        struct Mapping: Decodable {
            var device: String
            var executable: FlashFile?
            var nvramTemplate: FlashFile?
            enum CodingKeys: String, CodingKey { case device, executable, nvramTemplate = "nvram-template" }
        }
        var description: String?
        var interfaceTypes: [String]
        var features: [String]
        var targets: [Target]
        var mapping: Mapping
        enum CodingKeys: String, CodingKey { case description, interfaceTypes = "interface-types", features, targets, mapping }
    }

    /// Where descriptors are looked for, most important first.
    public static func searchDirectories(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var directories: [String] = []
        if let config = environment["XDG_CONFIG_HOME"], !config.isEmpty {
            directories.append(config + "/qemu/firmware")
        } else if let home = environment["HOME"], !home.isEmpty {
            directories.append(home + "/.config/qemu/firmware")
        }
        directories.append("/etc/qemu/firmware")
        let data = environment["XDG_DATA_DIRS"].flatMap { $0.isEmpty ? nil : $0 } ?? "/usr/local/share/:/usr/share/"
        for directory in data.split(separator: ":") where !directory.isEmpty {
            var base = String(directory)
            while base.hasSuffix("/") { base.removeLast() }
            directories.append(base + "/qemu/firmware")
        }
        return directories
    }

    /// The first descriptor that satisfies `request`, or an error naming the request and the directories searched.
    public static func choose(_ request: FirmwareRequest, directories: [String] = searchDirectories()) throws(HavelError) -> Choice {
        let names = Set(directories.flatMap { (try? FileManager.default.contentsOfDirectory(atPath: $0)) ?? [] })
            .filter { $0.hasSuffix(".json") }.sorted()
        var skipped: [String] = []
        for name in names {
            guard let path = directories.map({ $0 + "/" + name }).first(where: { FileManager.default.fileExists(atPath: $0) }) else { continue }
            // Descriptors are a few hundred bytes: read at most 1 MiB of one, whatever its size says.
            guard let handle = FileHandle(forReadingAtPath: path) else {
                skipped.append("\(path): cannot be read")
                continue
            }
            let bytes = (try? handle.read(upToCount: (1 << 20) + 1)) ?? Data()
            try? handle.close()
            if bytes.isEmpty { continue }                   // an empty file hides descriptors of that name
            guard bytes.count <= 1 << 20 else {
                skipped.append("\(path): larger than 1 MiB")
                continue
            }
            let descriptor: Descriptor
            do {
                descriptor = try JSONDecoder().decode(Descriptor.self, from: bytes)
            } catch {
                skipped.append("\(path): not a firmware descriptor")
                continue
            }
            guard matches(descriptor, request), descriptor.mapping.device == "flash", let code = descriptor.mapping.executable else { continue }
            return Choice(descriptor: path, description: descriptor.description ?? name, code: code.filename,
                          codeFormat: code.format ?? "raw", variablesTemplate: descriptor.mapping.nvramTemplate?.filename,
                          variablesFormat: descriptor.mapping.nvramTemplate.map { $0.format ?? "raw" })
        }
        throw HavelError(.notFound, "no qemu firmware for architecture \(request.architecture), machine \(request.machine), "
                         + "interface types \"\(request.interfaceTypes)\", features \"\(request.features)\" in "
                         + directories.joined(separator: ", ") + " (only flash firmware is used; Debian's ovmf and qemu-efi-aarch64 install descriptors)"
                         + (skipped.isEmpty ? "" : "; skipped: " + skipped.joined(separator: "; ")))
    }

    static func matches(_ descriptor: Descriptor, _ request: FirmwareRequest) -> Bool {
        satisfied(request.interfaceTypes, by: descriptor.interfaceTypes) && satisfied(request.features, by: descriptor.features)
            && descriptor.targets.contains { target in
                target.architecture == request.architecture && target.machines.contains { fnmatch($0, request.machine, 0) == 0 }
            }
    }

    /// `uefi !bios`: every plain word is in `available`, no word after `!` is.
    static func satisfied(_ wanted: String, by available: [String]) -> Bool {
        for word in wanted.split(whereSeparator: \.isWhitespace) {
            if word.hasPrefix("!") {
                if available.contains(String(word.dropFirst())) { return false }
            } else if !available.contains(String(word)) {
                return false
            }
        }
        return true
    }

    /// The qemu options that attach `choice`: its code read-only, and `variables` (a copy of the template
    /// made for this boot) writable.
    public static func options(_ choice: Choice, variables: String?) -> [String] {
        var options = ["-drive", "if=pflash,unit=0,readonly=on,format=\(choice.codeFormat),file=\(choice.code)"]
        if let variables {
            options += ["-drive", "if=pflash,unit=1,format=\(choice.variablesFormat ?? "raw"),file=\(variables)"]
        }
        return options
    }
}
