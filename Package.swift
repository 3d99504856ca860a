// swift-tools-version: 6.1
import PackageDescription

/// One target per layer of ARCHITECTURE.md; each imports only the layers below it.
let package = Package(
    name: "vos",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "vos", targets: ["vos"]),
        .executable(name: "vos-bench", targets: ["vos-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // The node's embedded registry (cordon flags, event log): SQLite, an existing engine.
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        .target(name: "CVOSShim"),
        .target(
            name: "VOSLinux",
            dependencies: ["CVOSShim", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(name: "VOSInjection", dependencies: ["VOSLinux", "CVOSShim"]),
        .target(name: "VOSImage", dependencies: ["VOSLinux"]),
        .target(
            name: "VOSCheckpoint",
            dependencies: [
                "VOSLinux", "VOSInjection", "VOSImage", "CVOSShim",
            ]
        ),
        .target(name: "VOSCapsule", dependencies: ["VOSCheckpoint", "VOSImage", "VOSLinux", "CVOSShim", .product(name: "Crypto", package: "swift-crypto")]),
        // Live migration: dirty tracking, pre-copy, post-copy pages, the authenticated transport.
        .target(
            name: "VOSMigration",
            dependencies: [
                "VOSCapsule", "VOSCheckpoint", "VOSImage", "VOSInjection", "VOSLinux", "CVOSShim",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Per-page bookkeeping of a GiB pre-copy: debug builds (the tests) would spend
            // seconds per round in it; optimised even there.
            swiftSettings: [.unsafeFlags(["-O"])]
        ),
        // The node daemon: control socket, peers, membership, migrations in and out.
        .target(
            name: "VOSNode",
            dependencies: [
                "VOSMigration", "VOSCapsule", "VOSCheckpoint", "VOSImage", "VOSLinux", "CVOSShim",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "VOSCommands",
            dependencies: [
                "VOSNode", "VOSMigration",
                "VOSCapsule", "VOSCheckpoint", "VOSImage", "VOSLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "vos", dependencies: ["VOSCommands", "VOSCheckpoint"]),
        .executableTarget(
            name: "vos-bench",
            dependencies: [
                "VOSCapsule", "VOSCheckpoint", "VOSImage", "VOSLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/vos-bench"
        ),
        // Stock applications for the tests: plain programs that know nothing of vOS.
        .executableTarget(name: "vos-test-counter", path: "Sources/TestPrograms/counter"),
        .executableTarget(name: "vos-test-memhog", path: "Sources/TestPrograms/memhog"),
        .executableTarget(name: "vos-test-threads", path: "Sources/TestPrograms/threads"),
        .executableTarget(name: "vos-test-state", path: "Sources/TestPrograms/state"),
        .executableTarget(name: "vos-test-fds", path: "Sources/TestPrograms/fds"),
        .executableTarget(name: "vos-test-unsupported", path: "Sources/TestPrograms/unsupported"),
        .executableTarget(name: "vos-test-swiftcounter", path: "Sources/TestPrograms/swiftcounter"),
        .executableTarget(name: "vos-test-tree", path: "Sources/TestPrograms/tree"),
        .executableTarget(name: "vos-test-shm", path: "Sources/TestPrograms/shm"),
        .executableTarget(name: "vos-test-unix", path: "Sources/TestPrograms/unix"),
        .executableTarget(name: "vos-test-sysv", path: "Sources/TestPrograms/sysv"),
        .executableTarget(name: "vos-test-dirtier", path: "Sources/TestPrograms/dirtier"),
        // The benchmark's fixed work (CPU- or syscall-bound) for the capsule runtime overhead.
        .executableTarget(name: "vos-test-work", path: "Sources/TestPrograms/work"),
        .testTarget(name: "VOSImageTests", dependencies: ["VOSImage"]),
        .testTarget(name: "VOSLinuxTests", dependencies: ["VOSLinux"]),
        .testTarget(name: "VOSNodeTests", dependencies: ["VOSNode"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "VOSLinux", "VOSMigration",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                "vos", "vos-test-counter", "vos-test-memhog", "vos-test-threads", "vos-test-state",
                "vos-test-fds", "vos-test-unsupported", "vos-test-swiftcounter", "vos-test-tree", "vos-test-shm",
                "vos-test-unix",
                "vos-test-sysv", "vos-test-dirtier",
            ]
        ),
    ],
    swiftLanguageModes: [.v5]
)
