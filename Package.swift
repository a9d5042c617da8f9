// swift-tools-version:6.0
import PackageDescription

// Dependencies point one way: swerve → SwerveServer/SwerveClient → SwerveServing →
// SwerveInference → SwerveProto → CSwerveProto; SwerveTransport → CNGHTTP2.
// The request path's targets skip Swift's run-time exclusivity checks in release builds (they
// showed up as a few percent of the server's time under load); debug builds, which the
// tests run, keep them.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "swerve",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "swerve", targets: ["swerve"]),
        .library(name: "SwerveClient", targets: ["SwerveClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // C libraries, each touched by exactly one Swift module.
        .systemLibrary(
            name: "CNGHTTP2", pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"])]),
        .systemLibrary(
            name: "COpenBLAS",
            providers: [.apt(["libopenblas-dev"])]),
        .target(name: "CSwerveKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(
            name: "CSwerveProto",
            linkerSettings: [.linkedLibrary("protobuf-c")]),

        // gRPC status codes and the one way from any error to a status (`RPCErrorConvertible`).
        // A leaf: every layer's error type states its status here without knowing the wire.
        .target(name: "SwerveStatus"),

        // Swift types over the protobuf-c structs; the only importer of CSwerveProto.
        .target(name: "SwerveProto", dependencies: ["CSwerveProto"], swiftSettings: hotPath),

        // HTTP/2 + gRPC framing over nghttp2: bytes in, bytes out, server and client.
        .target(
            name: "SwerveTransport",
            dependencies: [
                "CNGHTTP2", "SwerveStatus",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath),

        // Tensors, kernels, ONNX graph compile/run. Knows no NIO and no wire format.
        .target(name: "SwerveInference", dependencies: ["SwerveProto", "COpenBLAS", "CSwerveKernels"], swiftSettings: hotPath),

        // Repository, version policy, model manager, dynamic batcher.
        .target(
            name: "SwerveServing",
            dependencies: [
                "SwerveInference",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: hotPath),

        // Ingest, validate, train, evaluate, gate, publish (the companion training service).
        .target(
            name: "SwerveTraining",
            dependencies: [
                "SwerveInference", "SwerveProto",
                .product(name: "Logging", package: "swift-log"),
            ]),

        // RPC services, error → status mapping, health, metrics endpoint, lifecycle.
        .target(
            name: "SwerveServer",
            dependencies: [
                "SwerveServing", "SwerveTransport", "SwerveStatus", "SwerveProto", "SwerveTraining",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: hotPath),

        // Client library for Swerve (and any KServe v2 gRPC server).
        .target(
            name: "SwerveClient",
            dependencies: [
                "SwerveTransport", "SwerveStatus", "SwerveProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),

        .executableTarget(
            name: "swerve",
            dependencies: [
                "SwerveServer", "SwerveClient", "SwerveServing", "SwerveInference", "SwerveTraining", "SwerveStatus",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]),

        // What tests share: an in-process server and clients on ports the system picks, temporary
        // directories, waitUntil. Test targets only; the `swerve` executable never links it.
        .target(
            name: "SwerveTesting",
            dependencies: [
                "SwerveServer", "SwerveServing", "SwerveClient", "SwerveTransport", "SwerveStatus",
                .product(name: "Logging", package: "swift-log"),
            ]),

        .testTarget(name: "SwerveProtoTests", dependencies: ["SwerveProto"]),
        .testTarget(
            name: "SwerveTransportTests",
            dependencies: [
                "SwerveTransport", "SwerveStatus",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]),
        .testTarget(
            name: "SwerveInferenceTests", dependencies: ["SwerveInference", "SwerveProto"],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "SwerveClientTests",
            dependencies: [
                "SwerveClient", "SwerveTransport", "SwerveStatus", "SwerveProto", "SwerveTesting",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "SwerveTrainingTests", dependencies: ["SwerveTraining", "SwerveInference", "SwerveProto", "SwerveTesting"],
            exclude: ["Fixtures"]),
        .testTarget(name: "SwerveServingTests", dependencies: ["SwerveServing", "SwerveInference"]),
        // InferenceService through the real transport, in process; tensor coding directly.
        .testTarget(
            name: "SwerveServerTests",
            dependencies: [
                "SwerveServer", "SwerveTesting", "SwerveClient", "SwerveServing", "SwerveInference", "SwerveProto",
                "SwerveTransport", "SwerveStatus",
            ]),
        // The CLI's own pieces (the bench's Zipf sampler and request stream), through `@testable import swerve`.
        .testTarget(name: "SwerveCLITests", dependencies: ["swerve", "SwerveInference"]),
    ]
)
