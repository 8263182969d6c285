import Foundation
import HavelCore
import Testing
@testable import BootCheck

/// Choosing a firmware from qemu's descriptors as ELBE does: precedence by directory, hiding by an empty
/// file, interface types and features with `!`, machine patterns.
@Suite struct QemuFirmwareTests {
    static func descriptor(_ description: String, interfaces: [String], features: [String], machines: [String] = ["pc-q35-*"],
                           architecture: String = "x86_64", device: String = "flash") -> String {
        func list(_ values: [String]) -> String { "[" + values.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
        return """
            {"description": "\(description)", "interface-types": \(list(interfaces)),
             "mapping": {"device": "\(device)", "executable": {"filename": "/fw/\(description)_CODE.fd", "format": "raw"},
                         "nvram-template": {"filename": "/fw/\(description)_VARS.fd", "format": "raw"}},
             "targets": [{"architecture": "\(architecture)", "machines": \(list(machines))}],
             "features": \(list(features)), "tags": []}
            """
    }

    struct Directories {
        let base = FileManager.default.temporaryDirectory.path + "/havel-firmware-test-\(UUID().uuidString.prefix(8))"
        var user: String { base + "/user" }
        var system: String { base + "/system" }
        init() throws {
            for directory in [base + "/user", base + "/system"] {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
        }
        func write(_ directory: String, _ name: String, _ text: String) throws {
            try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
        }
        func remove() { try? FileManager.default.removeItem(atPath: base) }
    }

    let uefiWithoutSMM = FirmwareRequest(architecture: "x86_64", machine: "pc-q35-7.2", interfaceTypes: "uefi !bios", features: "!requires-smm")

    @Test func theFirstMatchingDescriptorInNameOrderIsChosen() throws {
        let dirs = try Directories()
        defer { dirs.remove() }
        try dirs.write(dirs.system, "40-secure.json", Self.descriptor("secure", interfaces: ["uefi"], features: ["requires-smm", "secure-boot"]))
        try dirs.write(dirs.system, "50-bios.json", Self.descriptor("seabios", interfaces: ["bios"], features: []))
        try dirs.write(dirs.system, "60-plain.json", Self.descriptor("plain", interfaces: ["uefi"], features: ["acpi-s3"]))
        try dirs.write(dirs.system, "70-later.json", Self.descriptor("later", interfaces: ["uefi"], features: []))
        let choice = try QemuFirmware.choose(uefiWithoutSMM, directories: [dirs.user, dirs.system])
        #expect(choice.description == "plain")
        #expect(choice.code == "/fw/plain_CODE.fd")
        #expect(choice.variablesTemplate == "/fw/plain_VARS.fd")
        #expect(QemuFirmware.options(choice, variables: "/tmp/v.fd") ==
                ["-drive", "if=pflash,unit=0,readonly=on,format=raw,file=/fw/plain_CODE.fd",
                 "-drive", "if=pflash,unit=1,format=raw,file=/tmp/v.fd"])
        // Secure boot asked for: the 40- descriptor.
        var secure = uefiWithoutSMM
        secure.features = "secure-boot"
        #expect(try QemuFirmware.choose(secure, directories: [dirs.user, dirs.system]).description == "secure")
    }

    @Test func anEarlierDirectoryOverridesOrHidesADescriptor() throws {
        let dirs = try Directories()
        defer { dirs.remove() }
        try dirs.write(dirs.system, "60-plain.json", Self.descriptor("plain", interfaces: ["uefi"], features: []))
        try dirs.write(dirs.system, "70-other.json", Self.descriptor("other", interfaces: ["uefi"], features: []))
        try dirs.write(dirs.user, "60-plain.json", Self.descriptor("mine", interfaces: ["uefi"], features: []))
        #expect(try QemuFirmware.choose(uefiWithoutSMM, directories: [dirs.user, dirs.system]).description == "mine")
        try dirs.write(dirs.user, "60-plain.json", "")
        #expect(try QemuFirmware.choose(uefiWithoutSMM, directories: [dirs.user, dirs.system]).description == "other")
    }

    @Test func machineArchitectureAndDeviceMustFit() throws {
        let dirs = try Directories()
        defer { dirs.remove() }
        try dirs.write(dirs.system, "10-arm.json", Self.descriptor("aavmf", interfaces: ["uefi"], features: [], machines: ["virt-*"], architecture: "aarch64"))
        try dirs.write(dirs.system, "20-i440fx.json", Self.descriptor("i440fx", interfaces: ["uefi"], features: [], machines: ["pc-i440fx-*"]))
        try dirs.write(dirs.system, "30-memory.json", Self.descriptor("memory", interfaces: ["uefi"], features: [], device: "memory"))
        try dirs.write(dirs.system, "40-broken.json", "{ not json")
        do {
            _ = try QemuFirmware.choose(uefiWithoutSMM, directories: [dirs.user, dirs.system])
            Issue.record("a firmware was chosen though none fits")
        } catch {
            #expect(error.message.hasPrefix("no qemu firmware for architecture x86_64, machine pc-q35-7.2"), "\(error.message)")
            #expect(error.message.contains("40-broken.json: not a firmware descriptor"), "\(error.message)")
        }
        let arm = FirmwareRequest(architecture: "aarch64", machine: "virt-7.2", interfaceTypes: "uefi", features: "")
        #expect(try QemuFirmware.choose(arm, directories: [dirs.user, dirs.system]).description == "aavmf")
    }

    @Test func theSearchPathIsELBEs() {
        #expect(QemuFirmware.searchDirectories(environment: ["HOME": "/root"]) ==
                ["/root/.config/qemu/firmware", "/etc/qemu/firmware", "/usr/local/share/qemu/firmware", "/usr/share/qemu/firmware"])
        #expect(QemuFirmware.searchDirectories(environment: ["XDG_CONFIG_HOME": "/c", "XDG_DATA_DIRS": "/d/"]) ==
                ["/c/qemu/firmware", "/etc/qemu/firmware", "/d/qemu/firmware"])
    }
}
