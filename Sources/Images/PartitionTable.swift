import Foundation
import HavelCore
import Logging
import SystemKit

/// The partition table, written by `sfdisk` into the image file and read back with `sfdisk --json`.
enum PartitionTable {
    /// The sfdisk script for the plan: every start and size explicit, in 512-byte sectors.
    static func script(_ plan: ImagePlan) -> String {
        var lines: [String] = []
        switch plan.image.table {
        case .msdos:
            lines.append("label: dos")
        case .gpt:
            lines.append("label: gpt")
            // parted's (and so ELBE's) first usable sector; sfdisk would otherwise say 2048.
            lines.append("first-lba: 34")
        }
        lines += ["label-id: \(plan.diskID)", "unit: sectors", "sector-size: 512", ""]
        for slot in plan.slots {
            var fields = ["start=\(slot.placed.startSector)", "size=\(slot.placed.sectorCount)", "type=\(slot.typeCode)"]
            if slot.bootableFlag { fields.append("bootable") }
            if let uuid = slot.gptUUID { fields.append("uuid=\(uuid)") }
            if let name = slot.gptName { fields.append("name=\"\(name)\"") }
            if let attributes = slot.gptAttributes { fields.append("attrs=\"\(attributes)\"") }
            lines.append(fields.joined(separator: ", "))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func write(_ plan: ImagePlan, to image: String, processes: any ProcessRunning, log: Logger) async throws(HavelError) {
        let text = script(plan)
        let result = try await processes.run(Command("sfdisk", ["--quiet", "--no-reread", "--no-tell-kernel", "--wipe", "never",
                                                                    "--wipe-partitions", "never", image]), input: Array(text.utf8))
        guard result.succeeded else {
            throw HavelError(.processFailed, "image \(plan.name): sfdisk could not write the \(plan.image.table.rawValue) partition table: \(result.standardError.trimmingWhitespace())\nscript:\n\(text)")
        }
    }

    struct Dump: Decodable {
        struct Table: Decodable {
            var label: String
            var id: String?
            var partitions: [Entry]?
        }
        struct Entry: Decodable {
            var node: String
            var start: UInt64
            var size: UInt64
            var type: String
            var bootable: Bool?
            var uuid: String?
            var name: String?
            var attrs: String?
        }
        var partitiontable: Table
    }

    /// The partition number of an sfdisk node: the image path as it was given, then the number
    /// ("sda.img2"; "disk-v2.img10" is partition 10, not 210).
    static func number(of node: String, image: String) -> Int? {
        node.hasPrefix(image) ? Int(node.dropFirst(image.count)) : nil
    }

    static func read(_ image: String, processes: any ProcessRunning) async throws(HavelError) -> Dump {
        let result = try await processes.run(Command("sfdisk", ["--json", image]))
        guard result.succeeded else {
            throw HavelError(.processFailed, "sfdisk --json \(image) failed: \(result.standardError.trimmingWhitespace())")
        }
        do {
            return try JSONDecoder().decode(Dump.self, from: Data(result.standardOutput.utf8))
        } catch {
            throw HavelError(.internalError, "cannot read the output of sfdisk --json \(image)", cause: error)
        }
    }

    /// Reads the table back and compares every partition with the plan.
    static func verify(_ plan: ImagePlan, image: String, when: String, processes: any ProcessRunning) async throws(HavelError) {
        let dump: Dump
        do {
            dump = try await read(image, processes: processes)
        } catch {
            throw HavelError(.invalidProject, "image \(plan.name): the partition table cannot be read back \(when): \(error.message)")
        }
        let table = dump.partitiontable
        var problems: [String] = []
        let expectedLabel = plan.image.table == .msdos ? "dos" : "gpt"
        if table.label != expectedLabel { problems.append("the table is \(table.label), not \(expectedLabel)") }
        if table.id?.lowercased() != plan.diskID.lowercased() { problems.append("the disk id is \(table.id ?? "missing"), not \(plan.diskID)") }
        var found: [Int: Dump.Entry] = [:]
        for entry in table.partitions ?? [] {
            if let number = number(of: entry.node, image: image) { found[number] = entry }
        }
        for slot in plan.slots {
            let n = slot.placed.number
            guard let entry = found.removeValue(forKey: n) else {
                problems.append("partition \(n) is missing")
                continue
            }
            if entry.start != slot.placed.startSector || entry.size != slot.placed.sectorCount {
                problems.append("partition \(n) lies at \(entry.start)+\(entry.size), not \(slot.placed.startSector)+\(slot.placed.sectorCount)")
            }
            if entry.type.lowercased() != slot.typeCode.lowercased() { problems.append("partition \(n) has type \(entry.type), not \(slot.typeCode)") }
            if (entry.bootable ?? false) != slot.bootableFlag { problems.append("partition \(n) bootable flag is \(entry.bootable ?? false)") }
            if let uuid = slot.gptUUID, entry.uuid?.lowercased() != uuid.lowercased() { problems.append("partition \(n) has uuid \(entry.uuid ?? "none"), not \(uuid)") }
            if plan.image.table == .gpt, (entry.name ?? "") != (slot.gptName ?? "") {
                problems.append("partition \(n) is named \(entry.name ?? "nothing"), not \(slot.gptName ?? "nothing")")
            }
        }
        for number in found.keys.sorted() { problems.append("partition \(number) is not planned") }
        guard problems.isEmpty else {
            throw HavelError(.internalError, "image \(plan.name): the partition table read back \(when) does not match: \(problems.joined(separator: "; "))")
        }
    }
}


/// A partition as an image's own table describes it (read with `sfdisk --json`).
public struct TablePartition: Sendable, Equatable {
    public var number: Int
    public var startBytes: UInt64
    public var sizeBytes: UInt64
    /// The msdos type code or the GPT type GUID.
    public var type: String
}

public enum DiskImageTable {
    /// Every partition of the image file's table, in table order.
    public static func partitions(of image: String, processes: any ProcessRunning = SystemProcesses()) async throws(HavelError) -> [TablePartition] {
        let dump = try await PartitionTable.read(image, processes: processes)
        return (dump.partitiontable.partitions ?? []).compactMap { entry in
            PartitionTable.number(of: entry.node, image: image).map {
                TablePartition(number: $0, startBytes: entry.start * DiskImage.sectorSize, sizeBytes: entry.size * DiskImage.sectorSize,
                               type: entry.type)
            }
        }
    }
}
