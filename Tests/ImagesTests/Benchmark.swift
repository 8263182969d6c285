import Foundation
import HavelCore
import Images
import SystemKit
import Testing

/// Run by bench/image-creation (it makes the tree and sets HAVEL_IMAGE_BENCH_TREE): a 2 GiB msdos image with a
/// 256 MiB vfat /boot and an ext4 root filling the rest, made from that tree; prints the wall-clock seconds.
@Suite struct ImageCreationBenchmark {
    static let tree = ProcessInfo.processInfo.environment["HAVEL_IMAGE_BENCH_TREE"]

    @Test(.enabled(if: tree != nil, "set HAVEL_IMAGE_BENCH_TREE (bench/image-creation does)"))
    func twoGiBTwoPartitions() async throws {
        let root = try #require(Self.tree)
        let base = (root as NSString).deletingLastPathComponent
        let image = DiskImage(table: .msdos, name: "bench.img", size: .bytes(2 << 30), partitions: [
            Partition(size: .bytes(256 << 20), label: "boot", bootable: true),
            Partition(size: .remain, label: "rootfs"),
        ])
        let fstab = [
            FstabEntry(source: .label("rootfs"), mountpoint: "/", filesystem: Filesystem(type: "ext4")),
            FstabEntry(source: .label("boot"), mountpoint: "/boot", filesystem: Filesystem(type: "vfat")),
        ]
        let rounds = Int(ProcessInfo.processInfo.environment["HAVEL_IMAGE_BENCH_ROUNDS"] ?? "") ?? 1
        for round in 1...rounds {
            let output = base + "/out"
            try? FileManager.default.removeItem(atPath: output)
            let request = ImageRequest(image: image, fstab: fstab, rootfs: root, outputDirectory: output, workDirectory: base + "/work",
                                       projectDirectory: base, sourceDateEpoch: 1_700_000_000, seed: "bench 1.0")
            let clock = ContinuousClock()
            let start = clock.now
            let log = LogRecorder()
            let built = try await ImageBuilder.build(request, log: log.logger)
            for line in log.lines { print("  " + line) }
            let elapsed = clock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print(String(format: "image-creation round %d: %@ (2 GiB, %d partitions) in %.2f s", round, built.path, built.partitions.count, seconds))
        }
    }
}
