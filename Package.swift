// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "runner",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "runner", targets: ["runner"]),
        .library(name: "RunnerCore", targets: ["RunnerCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Hummingbird's own header types, for the status server's security headers.
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // The status server's connection limit is a channel handler of Hummingbird's pipeline.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(name: "CSystemShims"),
        // One-way: each target depends only on those above it.
        .target(name: "RunnerSupport"),
        .target(name: "PostgresClient", dependencies: ["CLibPQ", "RunnerSupport"]),
        .target(name: "Cron", dependencies: ["RunnerSupport"]),
        .target(
            name: "Redaction",
            dependencies: ["PostgresClient", "RunnerSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .target(name: "Processes", dependencies: ["CSystemShims", "Redaction", "RunnerSupport"]),
        .target(name: "EmbeddedPostgres", dependencies: ["PostgresClient", "Processes", "RunnerSupport"]),
        .target(
            name: "JobTable",
            dependencies: ["Cron", "RunnerSupport", .product(name: "Yams", package: "Yams")]
        ),
        .target(
            name: "Ledger",
            dependencies: [
                "PostgresClient", "EmbeddedPostgres", "JobTable", "RunnerSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "HTTPClients",
            dependencies: ["CCurl", "PostgresClient", "Redaction", "RunnerSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Outbox",
            dependencies: [
                "HTTPClients", "Ledger", "JobTable", "PostgresClient", "EmbeddedPostgres", "Redaction", "RunnerSupport", "CCrypto",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "RunnerCore",
            dependencies: [
                "RunnerSupport",
                "PostgresClient",
                "Cron",
                "Redaction",
                "Processes",
                "EmbeddedPostgres",
                "JobTable",
                "Ledger",
                "HTTPClients",
                "Outbox",
                "CCurl",
                "CCrypto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "RunnerServer",
            dependencies: [
                "RunnerCore", "JobTable", "Ledger", "HTTPClients", "Outbox",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "runner",
            dependencies: [
                "RunnerCore", "JobTable", "Ledger", "HTTPClients", "Outbox",
                "RunnerServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "BenchmarkSupport",
            dependencies: ["RunnerCore", "JobTable", "Ledger", "HTTPClients", "Outbox", "PostgresClient", "EmbeddedPostgres"],
            path: "Benchmarks/Support"
        ),
        .executableTarget(
            name: "cron-bench",
            dependencies: ["Cron"],
            path: "Benchmarks/CronBench"
        ),
        .executableTarget(
            name: "ledger-bench",
            dependencies: ["RunnerCore", "JobTable", "Ledger", "HTTPClients", "Outbox", "PostgresClient", "BenchmarkSupport"],
            path: "Benchmarks/LedgerBench"
        ),
        .executableTarget(
            name: "agent-bench",
            dependencies: [
                "RunnerCore", "JobTable", "Ledger", "HTTPClients", "Outbox", "RunnerSupport", "PostgresClient", "BenchmarkSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/AgentBench"
        ),
        .executableTarget(
            name: "delivery-bench",
            dependencies: [
                "RunnerCore", "JobTable", "Ledger", "HTTPClients", "Outbox", "RunnerSupport", "PostgresClient", "EmbeddedPostgres", "BenchmarkSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/DeliveryBench"
        ),
        .executableTarget(
            name: "migration-bench",
            dependencies: ["RunnerCore", "JobTable", "Ledger", "HTTPClients", "Outbox", "BenchmarkSupport"],
            path: "Benchmarks/MigrationBench"
        ),
        .executableTarget(
            name: "insight-bench",
            dependencies: [
                "RunnerCore", "JobTable", "Ledger", "HTTPClients", "Outbox", "RunnerSupport", "PostgresClient", "BenchmarkSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/InsightBench"
        ),
        .testTarget(
            name: "RunnerCoreTests",
            dependencies: [
                "RunnerSupport", "PostgresClient", "Cron", "Redaction", "Processes", "EmbeddedPostgres", "JobTable",
                "Ledger", "HTTPClients", "Outbox", "RunnerCore",
                "RunnerServer", "runner",
            ]
        ),
    ]
)
