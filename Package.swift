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
        .target(name: "CSystemShims"),
        .target(
            name: "RunnerCore",
            dependencies: [
                "CLibPQ",
                "CCurl",
                "CSystemShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        .executableTarget(
            name: "runner",
            dependencies: [
                "RunnerCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "BenchmarkSupport",
            dependencies: ["RunnerCore"],
            path: "Benchmarks/Support"
        ),
        .executableTarget(
            name: "cron-bench",
            dependencies: ["RunnerCore"],
            path: "Benchmarks/CronBench"
        ),
        .executableTarget(
            name: "ledger-bench",
            dependencies: ["RunnerCore", "BenchmarkSupport"],
            path: "Benchmarks/LedgerBench"
        ),
        .executableTarget(
            name: "agent-bench",
            dependencies: ["RunnerCore", "BenchmarkSupport", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/AgentBench"
        ),
        .executableTarget(
            name: "delivery-bench",
            dependencies: ["RunnerCore", "BenchmarkSupport", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/DeliveryBench"
        ),
        .executableTarget(
            name: "insight-bench",
            dependencies: ["RunnerCore", "BenchmarkSupport", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/InsightBench"
        ),
        .testTarget(
            name: "RunnerCoreTests",
            dependencies: ["RunnerCore", "runner"]
        ),
    ]
)
