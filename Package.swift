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
        // TLS for the gRPC listener (`swerve serve --tls-cert/--tls-key`) and the client.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
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
        .target(name: "SwerveProto", dependencies: ["CSwerveProto", "SwerveStatus"], swiftSettings: hotPath),

        // HTTP/2 + gRPC framing over nghttp2: bytes in, bytes out, server and client.
        .target(
            name: "SwerveTransport",
            dependencies: [
                "CNGHTTP2", "SwerveStatus",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath),

        // Tensors, kernels, ONNX graph compile/run. Knows no NIO and no wire format.
        .target(name: "SwerveInference", dependencies: ["SwerveProto", "SwerveStatus", "COpenBLAS", "CSwerveKernels"], swiftSettings: hotPath),

        // The on-disk model repository, the one definition of its format: layout and names,
        // version folders, config.json (ModelSettings), metadata.json (Lineage),
        // reference_stats.json, atomic publishing (DurableFiles) and the registry's steering.
        // Read by the server, written by the trainer and the CLI.
        .target(name: "SwerveRepository", dependencies: ["SwerveInference", "SwerveStatus"]),

        // Model manager, version policy, serving paths (static table, cache), dynamic batcher.
        .target(
            name: "SwerveServing",
            dependencies: [
                "SwerveInference", "SwerveRepository", "SwerveStatus", "SwerveProto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: hotPath),

        // Ingest, validate, train, evaluate, gate, publish (the companion training service).
        .target(
            name: "SwerveTraining",
            dependencies: [
                "SwerveInference", "SwerveProto", "SwerveRepository", "SwerveStatus",
                .product(name: "Logging", package: "swift-log"),
            ]),

        // What every Swerve service shares on top of the transport: unary calls decoded, run and
        // answered with the error's own status; termination signals; the control plane's guard
        // (admin token, read with SwerveInference's BoundedFile).
        .target(
            name: "SwerveRPC",
            dependencies: [
                "SwerveTransport", "SwerveProto", "SwerveStatus", "SwerveInference",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]),

        // The registry replicas follow (swerve.v1.Registry: Watch, FetchVersion, labels, version
        // status) over a repository folder, and the follower that keeps a replica's local folder in
        // line with it (`swerve serve --follow`). Knows nothing of training or of the model manager.
        .target(
            name: "SwerveRegistry",
            dependencies: [
                "SwerveRepository", "SwerveRPC", "SwerveTransport", "SwerveStatus", "SwerveProto", "SwerveClient", "SwerveInference",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]),

        // The inference server: KServe v2 (OIP) and health services, ServingInsights, the
        // metrics endpoint, lifecycle. Knows nothing of training.
        .target(
            name: "SwerveServer",
            dependencies: [
                "SwerveServing", "SwerveRepository", "SwerveRPC", "SwerveTransport", "SwerveStatus", "SwerveProto", "SwerveRegistry",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: hotPath),

        // The training service (`swerve trainer`, swerve.v1.Trainer): jobs, example logs, the
        // registry's steering, watch streams.
        .target(
            name: "SwerveTrainingServer",
            dependencies: [
                "SwerveTraining", "SwerveRepository", "SwerveRPC", "SwerveTransport", "SwerveStatus", "SwerveProto", "SwerveRegistry",
                .product(name: "Logging", package: "swift-log"),
            ]),

        // Client library for Swerve (and any KServe v2 gRPC server).
        .target(
            name: "SwerveClient",
            dependencies: [
                "SwerveTransport", "SwerveStatus", "SwerveProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),

        // The rollout controller (`swerve rollout`, `swerve label`): label stores (a repository
        // folder or a swerve.v1.Registry), replicas' evidence, the step state, the statistics
        // that compare a canary with stable. Testable with fakes, no server needed.
        .target(name: "SwerveRollout", dependencies: ["SwerveClient", "SwerveProto", "SwerveRepository", "SwerveStatus", "SwerveTransport"]),

        .executableTarget(
            name: "swerve",
            dependencies: [
                "SwerveRollout", "SwerveServer", "SwerveTrainingServer", "SwerveRegistry", "SwerveClient", "SwerveServing", "SwerveInference", "SwerveTraining", "SwerveRepository",
                "SwerveStatus",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            // jemalloc instead of glibc's malloc: the batcher's workers free what the event loops
            // allocated and the other way round, and glibc's arenas then contend on their locks
            // (a quarter of the server's futex calls at h2load 8x16); jemalloc's thread caches
            // take those frees without a lock: +16% req/s on the computed path (README).
            linkerSettings: [.linkedLibrary("jemalloc", .when(platforms: [.linux]))]),

        // What tests share: an in-process server and clients on ports the system picks, temporary
        // directories, waitUntil. Test targets only; the `swerve` executable never links it.
        .target(
            name: "SwerveTesting",
            dependencies: [
                "SwerveServer", "SwerveServing", "SwerveRepository", "SwerveProto", "SwerveClient", "SwerveTransport", "SwerveStatus",
                .product(name: "Logging", package: "swift-log"),
            ]),

        .testTarget(name: "SwerveProtoTests", dependencies: ["SwerveProto"]),
        .testTarget(
            name: "SwerveTransportTests",
            dependencies: [
                "SwerveTransport", "SwerveStatus", "SwerveTesting", "SwerveInference",
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
            name: "SwerveTrainingTests",
            dependencies: ["SwerveTraining", "SwerveRepository", "SwerveInference", "SwerveProto", "SwerveStatus", "SwerveTesting"],
            exclude: ["Fixtures"]),
        .testTarget(name: "SwerveRepositoryTests", dependencies: ["SwerveRepository", "SwerveInference", "SwerveProto", "SwerveTesting"]),
        // The registry service and a follower through the real transport, in process.
        .testTarget(
            name: "SwerveRegistryTests",
            dependencies: [
                "SwerveRegistry", "SwerveTesting", "SwerveClient", "SwerveRepository", "SwerveProto", "SwerveTransport", "SwerveStatus",
                "SwerveRPC", "SwerveInference",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "SwerveServingTests", dependencies: ["SwerveServing", "SwerveRepository", "SwerveInference", "SwerveTesting"]),
        // InferenceService through the real transport, in process; tensor coding directly.
        .testTarget(
            name: "SwerveServerTests",
            dependencies: [
                "SwerveServer", "SwerveTesting", "SwerveClient", "SwerveServing", "SwerveRepository", "SwerveInference",
                "SwerveProto", "SwerveTransport", "SwerveStatus",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .testTarget(name: "SwerveRolloutTests", dependencies: ["SwerveRollout", "SwerveRepository", "SwerveProto", "SwerveTesting"]),
        // The CLI's own pieces (the bench's Zipf sampler and request stream), through `@testable import swerve`.
        .testTarget(name: "SwerveCLITests", dependencies: ["swerve", "SwerveInference"]),
    ]
)

// libFuzzer targets (Fuzz/), only when SWERVE_FUZZ is set: `make fuzz` builds them into their own
// scratch path with `-sanitize=fuzzer,address` (Fuzz/run.sh). libFuzzer supplies `main`; each target
// defines `LLVMFuzzerTestOneInput` and reaches internal types through `@testable import`
// (the modules are built with `-enable-testing`), so no API is widened for them.
if let fuzz = Context.environment["SWERVE_FUZZ"], !fuzz.isEmpty {
    let fuzzFlags: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]
    package.targets += [
        .executableTarget(
            name: "FuzzDeframer", dependencies: ["SwerveTransport", "SwerveStatus"],
            path: "Fuzz/FuzzDeframer", swiftSettings: fuzzFlags),
        .executableTarget(
            name: "FuzzInferRequest", dependencies: ["SwerveProto"],
            path: "Fuzz/FuzzInferRequest", swiftSettings: fuzzFlags),
        .executableTarget(
            name: "FuzzTensorCoding",
            dependencies: [
                "SwerveServer", "SwerveServing", "SwerveRepository", "SwerveInference", "SwerveProto", "SwerveTesting",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Fuzz/FuzzTensorCoding", swiftSettings: fuzzFlags),
        .executableTarget(
            name: "FuzzONNX", dependencies: ["SwerveInference", "SwerveProto"],
            path: "Fuzz/FuzzONNX", swiftSettings: fuzzFlags),
    ]
}
