import Foundation
import SwerveClient
import SwerveProto
import SwerveStatus
import SwerveTesting
import Testing

/// Every RPC besides ModelInfer, through the real transport: server and model state, metadata and
/// configuration, statistics, the repository, health, and the serving paths.
@Suite("Control RPCs in process")
struct ControlRPCTests {
    static let breastCancer = TestModel.example("breast_cancer_logreg")
    /// A row of breast_cancer_logreg's 30 features.
    static let row = WireTensor.fp32("input", [1, 30], (0..<30).map { Float($0) / 30 })

    @Test func liveReadyAndServerMetadata() async throws {
        try await withInProcessServer([Self.breastCancer]) { server async throws in
            #expect(try await server.client.serverLive())
            #expect(try await server.client.serverReady())
            let metadata = try await server.client.serverMetadata()
            #expect(metadata.name == "swerve")
            #expect(!metadata.version.isEmpty)
            #expect(Set(metadata.extensions).isSuperset(of: ["model_repository", "model_configuration", "statistics", "health"]))
        }
    }

    /// Live before the models are loaded, ready only after (what `swerve serve` reports while it
    /// loads), and not ready once shutting down.
    @Test func readinessFollowsStartupAndShutdown() async throws {
        try await withInProcessServer([Self.breastCancer], loadModels: false) { server in
            #expect(try await server.client.serverLive())
            #expect(try await server.client.serverReady() == false)
            #expect(try await server.client.healthCheck() == .notServing)
            #expect(try await server.client.modelReady(name: "breast_cancer_logreg") == false)

            try server.manager.loadAll()
            server.service.setReady(true)
            #expect(try await server.client.serverReady())
            #expect(try await server.client.healthCheck() == .serving)
            #expect(try await server.client.modelReady(name: "breast_cancer_logreg"))

            server.service.beginShutdown()
            #expect(try await server.client.serverReady() == false)
            #expect(try await server.client.healthCheck() == .notServing)
        }
    }

    @Test func modelReadyByNameAndVersion() async throws {
        try await withInProcessServer([.fixture("lr_binary", as: "lr", versions: [1, 2], config: #"{"version_policy": {"all": {}}}"#)]) { server async throws in
            #expect(try await server.client.modelReady(name: "lr"))
            #expect(try await server.client.modelReady(name: "lr", version: "1"))
            #expect(try await server.client.modelReady(name: "lr", version: "2"))
            #expect(try await server.client.modelReady(name: "lr", version: "3") == false)
            #expect(try await server.client.modelReady(name: "no_such_model") == false)
        }
    }

    /// The example's metadata as its config.json declares it: -1 for the batch dimension.
    @Test func modelMetadata() async throws {
        try await withInProcessServer([Self.breastCancer]) { server in
            let m = try await server.client.modelMetadata(name: "breast_cancer_logreg")
            #expect(m.name == "breast_cancer_logreg")
            #expect(m.versions == ["1"])
            #expect(m.platform == "swerve_onnx")
            #expect(m.inputs == [TensorMetadata(name: "input", datatype: "FP32", shape: [-1, 30])])
            #expect(m.outputs == [
                TensorMetadata(name: "label", datatype: "INT64", shape: [-1]),
                TensorMetadata(name: "probabilities", datatype: "FP32", shape: [-1, 2]),
            ])
            #expect(try await server.client.modelMetadata(name: "breast_cancer_logreg", version: "1") == m)
        }
    }

    /// ModelConfig in Triton's terms: dims without the batch dimension, TYPE_ names, the version
    /// policy and batching settings from config.json.
    @Test func modelConfig() async throws {
        try await withInProcessServer([Self.breastCancer]) { server in
            let c = try await server.client.modelConfig(name: "breast_cancer_logreg")
            #expect(c.name == "breast_cancer_logreg")
            #expect(c.platform == "swerve_onnx")
            #expect(c.maxBatchSize == 64)
            #expect(c.inputs == [ModelConfig.Tensor(name: "input", dataType: "TYPE_FP32", dims: [30])])
            #expect(c.outputs == [
                ModelConfig.Tensor(name: "label", dataType: "TYPE_INT64", dims: []),
                ModelConfig.Tensor(name: "probabilities", dataType: "TYPE_FP32", dims: [2]),
            ])
            #expect(c.versionPolicy == .latest(1))
            #expect(c.maxQueueDelayMicroseconds == 500)
            #expect(c.maxQueueSize == 1024)
        }
    }

    /// Counts after a known number of calls: successes with their rows, failures of a resolved
    /// model, and statistics for every model when no name is given.
    @Test func modelStatisticsCountCalls() async throws {
        try await withInProcessServer([Self.breastCancer, .fixture("lr_binary", as: "lr")]) { server in
            let before = try #require(try await server.client.modelStatistics(name: "breast_cancer_logreg").first)
            #expect(before.success.count == 0 && before.inferenceCount == 0)
            let three = WireTensor.fp32("input", [3, 30], (0..<90).map { Float($0) / 90 })
            for _ in 0..<4 { _ = try await server.client.modelInfer(inferRequest("breast_cancer_logreg", [three], raw: true)) }
            let wrongShape = WireTensor.fp32("input", [1, 29], Array(repeating: 0, count: 29))
            let status = await statusThrown { _ = try await server.client.modelInfer(inferRequest("breast_cancer_logreg", [wrongShape], raw: true)) }
            #expect(status?.code == .invalidArgument)

            let stats = try await server.client.modelStatistics(name: "breast_cancer_logreg")
            #expect(stats.count == 1)
            let s = try #require(stats.first)
            #expect(s.name == "breast_cancer_logreg" && s.version == "1")
            #expect(s.success.count == 4, "a call counts once its answer is sent")
            #expect(s.inferenceCount == 12, "inference_count counts rows")
            #expect(s.fail.count == 1)
            #expect(s.executionCount >= 1 && s.executionCount <= 4)
            #expect(s.lastInference > 0)

            let all = try await server.client.modelStatistics()
            #expect(Set(all.map(\.name)) == ["breast_cancer_logreg", "lr"])
            #expect(all.first { $0.name == "lr" }?.success.count == 0)
        }
    }

    @Test func repositoryIndexListsEveryVersionWithItsState() async throws {
        let models: [TestModel] = [
            Self.breastCancer, .fixture("lr_binary", as: "lr", versions: [1, 2, 3]),
            .onnx(Array("not onnx".utf8), as: "broken"),
        ]
        try await withInProcessServer(models) { server in
            let index = try await server.client.repositoryIndex()
            let states = Dictionary(grouping: index, by: \.name).mapValues { $0.map { "\($0.version):\($0.state)" }.sorted() }
            #expect(states["breast_cancer_logreg"] == ["1:READY"])
            // The default policy serves the latest version only.
            #expect(states["lr"]?.contains("3:READY") == true)
            #expect(states["lr"]?.contains("1:READY") == false)
            #expect(index.first { $0.name == "broken" }?.state == "UNAVAILABLE")

            let ready = try await server.client.repositoryIndex(readyOnly: true)
            #expect(ready.allSatisfy { $0.state == "READY" })
            #expect(Set(ready.map(\.name)) == ["breast_cancer_logreg", "lr"])
        }
    }

    /// RepositoryModelLoad picks up a model copied in at run time and a new version of a served
    /// one; RepositoryModelUnload takes a model out of service; loading brings it back.
    @Test func loadAndUnloadAtRunTime() async throws {
        try await withInProcessServer([Self.breastCancer]) { server in
            let reference = try ReferenceCase("lr_binary")
            #expect(try await server.client.modelReady(name: "late") == false)
            try TestModel.fixture("lr_binary", as: "late").install(into: server.repository)
            try await server.client.loadModel(name: "late")
            #expect(try await server.client.modelReady(name: "late"))
            let got = try outputs(of: try await server.client.modelInfer(inferRequest("late", reference.inputs, raw: true)))
            #expect(zip(got, reference.outputs).allSatisfy { mismatch($0, $1) == nil })

            // A second version on disk: a reload serves it (latest-1 policy).
            let v2 = server.repository.appendingPathComponent("late/2")
            try FileManager.default.createDirectory(at: v2, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: PackagePaths.inferenceFixture("lr_binary"), to: v2.appendingPathComponent("model.onnx"))
            try await server.client.loadModel(name: "late")
            #expect(try await server.client.modelMetadata(name: "late").versions == ["2"])
            #expect(try await server.client.modelInfer(inferRequest("late", reference.inputs, raw: true)).modelVersion == "2")

            try await server.client.unloadModel(name: "late")
            #expect(try await server.client.modelReady(name: "late") == false)
            let status = await statusThrown { _ = try await server.client.modelInfer(inferRequest("late", reference.inputs, raw: true)) }
            #expect(status?.code == .notFound || status?.code == .unavailable, "\(String(describing: status))")
            #expect(try await server.client.repositoryIndex(readyOnly: true).map(\.name) == ["breast_cancer_logreg"])
            // The other model never noticed.
            #expect(try await server.client.modelInfer(inferRequest("breast_cancer_logreg", [Self.row], raw: true)).outputs.count == 2)

            try await server.client.loadModel(name: "late")
            #expect(try await server.client.modelReady(name: "late"))
        }
    }

    @Test func healthCheck() async throws {
        try await withInProcessServer([Self.breastCancer]) { server in
            #expect(try await server.client.healthCheck() == .serving)
            #expect(try await server.client.healthCheck(service: "inference.GRPCInferenceService") == .serving)
            #expect(try await server.client.healthCheck(service: "breast_cancer_logreg") == .serving)
            let status = await statusThrown { _ = try await server.client.healthCheck(service: "no_such_model") }
            #expect(status?.code == .notFound, "\(String(describing: status))")
            try await server.client.unloadModel(name: "breast_cancer_logreg")
            #expect(try await server.client.healthCheck(service: "breast_cancer_logreg") == .notServing)
        }
    }

    /// Watch sends the current status at once, then the change when the model is unloaded.
    @Test func healthWatchSeesAChange() async throws {
        try await withInProcessServer([Self.breastCancer]) { server in
            let client = server.client
            let seen = try await withTimeout(.seconds(20), "the health watch reports NOT_SERVING after the unload") {
                var seen: [HealthCheckResponse.ServingStatus] = []
                for try await status in client.healthWatch(service: "breast_cancer_logreg") {
                    seen.append(status)
                    if seen.count == 1 { try await client.unloadModel(name: "breast_cancer_logreg") }
                    if status == .notServing { break }
                }
                return seen
            }
            #expect(seen == [.serving, .notServing])
        }
    }

    /// A watch ends when the server shuts down (after NOT_SERVING), rather than hanging.
    @Test func healthWatchEndsAtShutdown() async throws {
        try await withInProcessServer([Self.breastCancer]) { server in
            let watcher = try await server.makeClient()
            let seen = try await withTimeout(.seconds(20), "the health watch ends after the server begins shutting down") {
                var seen: [HealthCheckResponse.ServingStatus] = []
                for try await status in watcher.healthWatch() {
                    seen.append(status)
                    if seen.count == 1 { server.service.beginShutdown() }
                }
                return seen
            }
            await watcher.close()
            #expect(seen == [.serving, .notServing])
        }
    }

    /// PathStatistics: the example with only categorical inputs is served from a static table
    /// (one lookup per request), a fixture configured `cached` misses once then hits.
    @Test func pathStatistics() async throws {
        let cached = TestModel.fixture("lr_binary", as: "lr_cached",
                                       config: #"{"serving_mode": "cached", "response_cache": {"max_bytes": 1048576}}"#)
        try await withInProcessServer([.example("ad_conversion_onehot"), cached]) { server in
            func stats(_ name: String = "", _ version: String = "") async throws -> [String: VersionPathStatistics] {
                let bytes = try await server.connection.unary(
                    "/swerve.v1.ServingInsights/PathStatistics", PathStatisticsRequest(name: name, version: version).serializedBytes())
                return Dictionary(uniqueKeysWithValues: try PathStatisticsResponse(serializedBytes: bytes).models.map { ($0.name, $0) })
            }
            let ad = WireTensor.strings("input", [1, 3], ["mobile", "us", "tech"])
            for _ in 0..<2 { _ = try await server.client.modelInfer(inferRequest("ad_conversion_onehot", [ad], raw: false)) }
            let x = try ReferenceCase("lr_binary").inputs
            for _ in 0..<3 { _ = try await server.client.modelInfer(inferRequest("lr_cached", x, raw: true)) }

            let all = try await stats()
            #expect(Set(all.keys) == ["ad_conversion_onehot", "lr_cached"])
            let table = try #require(all["ad_conversion_onehot"])
            #expect((table.mode, table.activePath, table.version) == ("auto", "static", "1"))
            #expect(table.tableCells == 144, "3 devices × 8 countries × 6 categories")
            #expect(table.tableLookups == 2)
            #expect(table.tableFallbacks == 0)
            let cache = try #require(all["lr_cached"])
            #expect((cache.mode, cache.activePath) == ("cached", "cached"))
            #expect((cache.cacheMisses, cache.cacheHits) == (1, 2))
            #expect(cache.cacheCapacityBytes == 1_048_576)
            #expect(cache.tableCells == 0)

            #expect(try await stats("lr_cached", "1").keys.sorted() == ["lr_cached"])
            let status = await statusThrown { _ = try await stats("no_such_model") }
            #expect(status?.code == .notFound, "\(String(describing: status))")
        }
    }
}
