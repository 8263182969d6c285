// swift-tools-version: 6.2
// Havel: an embedded Linux build environment that reads ELBE project files.
import PackageDescription

let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
    name: "Havel",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "havel", targets: ["havel"]),
    ],
    // Exact versions: two builds of one Havel commit link the same libraries. (Package.resolved cannot serve:
    // the build machines' package copies carry other commit ids than upstream, so it is not committed.)
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", exact: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", exact: "1.8.1"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", exact: "2.1.1"),
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/swift-server/async-http-client", exact: "1.37.0"),
    ],
    targets: [
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CCrypt", path: "Sources/CCrypt", providers: [.apt(["libcrypt-dev"])]),
        .target(name: "HavelCore", swiftSettings: strict),
        .target(name: "ProjectXML", dependencies: ["HavelCore", "CZlib", "CCrypt"], swiftSettings: strict),
        .target(name: "SystemKit", dependencies: [
            "HavelCore",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Subprocess", package: "swift-subprocess"),
            .product(name: "SystemPackage", package: "swift-system"),
        ], swiftSettings: strict),
        .target(name: "Debian", dependencies: ["HavelCore", "SystemKit", "Chroot", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .target(name: "Chroot", dependencies: ["HavelCore", "SystemKit", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .target(name: "Reports", dependencies: ["HavelCore", "ProjectXML", "Debian", "SystemKit"], swiftSettings: strict),
        .target(name: "Images", dependencies: ["HavelCore", "SystemKit", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .target(name: "QEMU", dependencies: ["HavelCore", "SystemKit"], swiftSettings: strict),
        .target(name: "BootCheck", dependencies: ["HavelCore", "SystemKit", "QEMU", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .target(name: "Build", dependencies: ["HavelCore", "ProjectXML", "SystemKit", "Debian", "Chroot", "Reports", "Images", "BootCheck",
                                        .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        .target(name: "DaemonAPI", dependencies: ["HavelCore", "SystemKit"], swiftSettings: strict),
        .target(name: "Daemon", dependencies: [
            "HavelCore", "ProjectXML", "SystemKit", "Debian", "Build", "DaemonAPI",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Mustache", package: "swift-mustache"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),
        .target(name: "DaemonClient", dependencies: [
            "HavelCore", "DaemonAPI", "SystemKit",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ], swiftSettings: strict),
        .target(name: "InitVM", dependencies: ["HavelCore", "SystemKit", "Debian", "DaemonAPI", "DaemonClient", "QEMU",
                                         .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        .target(name: "HavelCLI", dependencies: [
            "HavelCore", "ProjectXML", "SystemKit", "Debian", "Chroot", "Build", "BootCheck",
            "DaemonAPI", "Daemon", "DaemonClient", "InitVM",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .executableTarget(name: "havel", dependencies: ["HavelCLI"], swiftSettings: strict),

        // Fixtures shared by test targets (not a test target itself: it has no tests).
        .target(name: "TestFixtures", dependencies: ["SystemKit"], path: "Tests/TestFixtures", swiftSettings: strict),
        .testTarget(name: "HavelCoreTests", dependencies: ["HavelCore"], swiftSettings: strict),
        .testTarget(name: "ProjectXMLTests", dependencies: ["ProjectXML", "HavelCore"],
                    resources: [.copy("Fixtures")], swiftSettings: strict),
        .testTarget(name: "SystemKitTests", dependencies: ["SystemKit"], swiftSettings: strict),
        .testTarget(name: "DebianTests", dependencies: ["Debian"], swiftSettings: strict),
        .testTarget(name: "ChrootTests", dependencies: ["Chroot", "SystemKit"], swiftSettings: strict),
        .testTarget(name: "ReportsTests", dependencies: ["Reports", "Debian", "ProjectXML"], swiftSettings: strict),
        .testTarget(name: "ImagesTests", dependencies: ["Images", "SystemKit", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "QEMUTests", dependencies: ["QEMU", "SystemKit"], swiftSettings: strict),
        .testTarget(name: "BootCheckTests", dependencies: ["BootCheck", "QEMU", "SystemKit", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "DaemonTests", dependencies: [
            "Daemon", "DaemonAPI", "DaemonClient", "Build", "ProjectXML", "SystemKit",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ], exclude: ["Browser"], swiftSettings: strict),
        .testTarget(name: "InitVMTests", dependencies: ["InitVM", "SystemKit", "DaemonAPI", "TestFixtures"], swiftSettings: strict),
        .testTarget(name: "BuildTests", dependencies: ["Build", "ProjectXML", "SystemKit", "Reports", "Debian", "BootCheck", "Images", "TestFixtures", .product(name: "Logging", package: "swift-log")],
                    swiftSettings: strict),
        .testTarget(name: "HavelCLITests", dependencies: ["HavelCLI", "ProjectXML", "SystemKit", "Debian", "Build", "Images", "InitVM"], swiftSettings: strict),
    ]
)
