// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "runner",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "runner", targets: ["runner"]),
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
            name: "Engine",
            dependencies: [
                "RunnerSupport", "PostgresClient", "Cron", "Redaction", "Processes", "EmbeddedPostgres", "JobTable",
                "Ledger", "HTTPClients", "Outbox",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        // The products' agents: each registers its own through the engine's Agent protocol.
        .target(
            name: "ZOARK",
            dependencies: [
                "Engine", "JobTable", "Ledger", "Outbox", "HTTPClients", "PostgresClient", "RunnerSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Agents/ZOARK"
        ),
        .target(
            name: "VectorOS",
            dependencies: [
                "Engine", "JobTable", "Ledger", "Outbox", "HTTPClients", "PostgresClient", "RunnerSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Agents/VectorOS"
        ),
        // Every product's agents together: what the command line and the tests run with.
        .target(
            name: "StandardAgents",
            dependencies: ["ZOARK", "VectorOS", "Engine", "JobTable"],
            path: "Sources/Agents/Standard"
        ),
        // The demo's job table and sample data of both products.
        .target(name: "Demo"),
        .target(
            name: "StatusServer",
            dependencies: [
                "Engine", "JobTable", "Ledger", "HTTPClients", "Outbox",
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
                "Engine", "ZOARK", "VectorOS", "StandardAgents", "Demo", "JobTable", "Ledger", "HTTPClients", "Outbox",
                "StatusServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "BenchmarkSupport",
            dependencies: ["Engine", "ZOARK", "VectorOS", "Demo", "JobTable", "Ledger", "HTTPClients", "Outbox", "PostgresClient", "EmbeddedPostgres"],
            path: "Benchmarks/Support"
        ),
        .executableTarget(
            name: "cron-bench",
            dependencies: ["Cron"],
            path: "Benchmarks/CronBench"
        ),
        .executableTarget(
            name: "ledger-bench",
            dependencies: ["Engine", "ZOARK", "VectorOS", "Demo", "JobTable", "Ledger", "HTTPClients", "Outbox", "PostgresClient", "BenchmarkSupport"],
            path: "Benchmarks/LedgerBench"
        ),
        .executableTarget(
            name: "agent-bench",
            dependencies: [
                "Engine", "ZOARK", "VectorOS", "Demo", "JobTable", "Ledger", "HTTPClients", "Outbox", "RunnerSupport", "PostgresClient", "BenchmarkSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/AgentBench"
        ),
        .executableTarget(
            name: "delivery-bench",
            dependencies: [
                "Engine", "ZOARK", "VectorOS", "Demo", "JobTable", "Ledger", "HTTPClients", "Outbox", "RunnerSupport", "PostgresClient", "EmbeddedPostgres", "BenchmarkSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/DeliveryBench"
        ),
        .executableTarget(
            name: "migration-bench",
            dependencies: ["Engine", "ZOARK", "VectorOS", "Demo", "JobTable", "Ledger", "HTTPClients", "Outbox", "BenchmarkSupport"],
            path: "Benchmarks/MigrationBench"
        ),
        .executableTarget(
            name: "insight-bench",
            dependencies: [
                "Engine", "ZOARK", "VectorOS", "Demo", "JobTable", "Ledger", "HTTPClients", "Outbox", "RunnerSupport", "PostgresClient", "BenchmarkSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/InsightBench"
        ),
        // What the tests share: the test cluster, the local SMTP and HTTP servers, the runner
        // process, seeds. Plain imports (package access), so a release build of every target works.
        .target(
            name: "TestSupport",
            dependencies: [
                "RunnerSupport", "PostgresClient", "Redaction", "EmbeddedPostgres", "JobTable", "Ledger", "HTTPClients",
                "Outbox", "Engine", "ZOARK", "VectorOS", "StandardAgents", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TestSupport"
        ),
        // One test target per part; each depends on what it tests and on TestSupport.
        .testTarget(name: "PostgresTests", dependencies: ["TestSupport", "PostgresClient", "EmbeddedPostgres", "Redaction", "Processes", "RunnerSupport", "Engine"]),
        .testTarget(name: "CronTests", dependencies: ["TestSupport", "Cron", "RunnerSupport", "Engine"]),
        .testTarget(name: "JobTableTests", dependencies: ["TestSupport", "StandardAgents", "JobTable", "Cron", "RunnerSupport", "Engine", "ZOARK"]),
        .testTarget(name: "LedgerTests", dependencies: ["TestSupport", "StandardAgents", "Ledger", "JobTable", "PostgresClient", "RunnerSupport", "Engine", "Outbox"]),
        .testTarget(
            name: "OutboxTests",
            dependencies: [
                "TestSupport", "StandardAgents", "Outbox", "HTTPClients", "Ledger", "JobTable", "PostgresClient", "EmbeddedPostgres",
                "RunnerSupport", "Engine", "ZOARK", "VectorOS",
            ]
        ),
        .testTarget(
            name: "EngineTests",
            dependencies: [
                "TestSupport", "StandardAgents", "Engine", "Ledger", "JobTable", "PostgresClient", "Processes", "Redaction", "RunnerSupport",
            ]
        ),
        .testTarget(
            name: "AgentsTests",
            dependencies: [
                "TestSupport", "ZOARK", "VectorOS", "Engine", "Outbox", "HTTPClients", "Ledger", "JobTable", "Cron",
                "PostgresClient", "EmbeddedPostgres", "RunnerSupport",
            ]
        ),
        .testTarget(
            name: "CommandLineTests",
            dependencies: [
                "TestSupport", "StandardAgents", "runner", "Engine", "ZOARK", "VectorOS", "Demo", "Ledger", "JobTable", "Cron",
                "PostgresClient", "EmbeddedPostgres", "Processes", "Redaction", "RunnerSupport",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
    ]
)
