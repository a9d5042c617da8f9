import Foundation
import Logging
import SwerveClient
import SwerveProto
import SwerveRepository
import SwerveServing
import SwerveStatus
import SwerveTesting
import Testing
@testable import SwerveServer

#if canImport(Glibc)
import Glibc
#endif

/// ServerReady and gRPC health mean "serving what the repository says should be served"
/// (strict readiness, the default), through the real transport.
@Suite("Readiness in process")
struct ReadinessTests {
    static let breastCancer = TestModel.example("breast_cancer_logreg")
    static let lr = TestModel.fixture("lr_binary", as: "lr")

    /// Unloading every model makes the server not ready (it serves nothing), loading one back
    /// makes it ready again; a Watch on "" sees both transitions.
    @Test func unloadingEveryModelIsNotReady() async throws {
        try await withInProcessServer([Self.breastCancer, Self.lr]) { server async throws in
            let client = server.client
            #expect(try await client.serverReady())
            let watcher = try await server.makeClient()
            let seen = try await withTimeout(.seconds(30), "the watch on \"\" sees NOT_SERVING and SERVING again") {
                var seen: [HealthCheckResponse.ServingStatus] = []
                for try await status in watcher.healthWatch(service: "") {
                    seen.append(status)
                    if seen.count == 1 {
                        try await client.unloadModel(name: "breast_cancer_logreg")
                        // One model left: still ready (an unloaded model is no longer expected).
                        #expect(try await client.serverReady())
                        try await client.unloadModel(name: "lr")
                    }
                    if status == .notServing {
                        #expect(try await client.serverReady() == false)
                        #expect(try await client.healthCheck() == .notServing)
                        #expect(try await client.healthCheck(service: "inference.GRPCInferenceService") == .notServing)
                        try await client.loadModel(name: "lr")
                    }
                    if seen.count > 1 && status == .serving { break }
                }
                return seen
            }
            await watcher.close()
            #expect(seen == [.serving, .notServing, .serving])
            #expect(try await client.serverReady())
            #expect(try await client.healthCheck(service: "lr") == .serving)
            #expect(try await client.healthCheck(service: "breast_cancer_logreg") == .notServing)
        }
    }

    /// A model that fails to load keeps a strict server not ready, with the reason in the index;
    /// unloading it (explicit model control) leaves the rest, which is ready.
    @Test func failedModelKeepsStrictServerNotReady() async throws {
        let broken = TestModel.onnx(Array("not an onnx model".utf8), as: "broken")
        try await withInProcessServer([Self.breastCancer, broken]) { server async throws in
            let client = server.client
            #expect(try await client.serverReady() == false)
            #expect(try await client.healthCheck() == .notServing)
            #expect(try await client.healthCheck(service: "breast_cancer_logreg") == .serving)
            #expect(try await client.healthCheck(service: "broken") == .notServing)
            let reason = server.service.readiness().reason
            #expect(reason.hasPrefix("model 'broken' version 1 failed to load"), "\(reason)")
            let entry = try #require(try await client.repositoryIndex().first { $0.name == "broken" })
            #expect(entry.state == "UNAVAILABLE" && !entry.reason.isEmpty)

            try await client.unloadModel(name: "broken")
            #expect(try await client.serverReady())
            #expect(try await client.healthCheck() == .serving)
        }
    }

    /// A FIFO model.onnx: start-up ends, the other model serves, RepositoryModelLoad of the FIFO
    /// model fails at once with the reason, and loads of the other model still work.
    @Test func fifoModelDoesNotHangTheServer() async throws {
        try await withInProcessServer([Self.breastCancer], loadModels: false) { server async throws in
            let folder = server.repository.appendingPathComponent("pipe/1")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let fifo = folder.appendingPathComponent("model.onnx").path
            #expect(mkfifo(fifo, 0o644) == 0)
            defer { let fd = open(fifo, O_RDWR | O_NONBLOCK); if fd >= 0 { close(fd) } }

            try await withTimeout(.seconds(60), "start-up with a FIFO model.onnx ends") { try server.manager.loadAll() }
            server.service.setReady(true)
            #expect(try await server.client.modelReady(name: "breast_cancer_logreg"))
            #expect(try await server.client.serverReady() == false, "strict: 'pipe' is expected and failed")

            let status = await statusThrown { try await server.client.loadModel(name: "pipe", timeout: .seconds(30)) }
            #expect(status?.code == .failedPrecondition, "\(String(describing: status))")
            #expect(status?.message.contains("is a FIFO (named pipe), not a regular file") == true, "\(String(describing: status))")
            try await server.client.loadModel(name: "breast_cancer_logreg", timeout: .seconds(30))
            try await server.client.unloadModel(name: "pipe", timeout: .seconds(30))
            #expect(try await server.client.serverReady())
        }
    }

    /// Without strict readiness one ready model is enough, but none is never enough.
    @Test func nonStrictReadiness() throws {
        let dir = try TemporaryDirectory(prefix: "swerve-readiness")
        try Self.breastCancer.install(into: dir.url)
        try TestModel.onnx(Array("garbage".utf8), as: "broken").install(into: dir.url)
        var logger = Logger(label: "readiness-test")
        logger.logLevel = .critical
        let manager = ModelManager(repository: ModelRepository(root: dir.url), logger: logger)
        defer { manager.shutdown() }
        let lax = InferenceService(manager: manager, logger: logger, strictReadiness: false)
        let strict = InferenceService(manager: manager, logger: logger, strictReadiness: true)
        #expect(lax.readiness() == .init(ready: false, reason: "loading models at start-up"))
        try manager.loadAll()
        lax.setReady(true)
        strict.setReady(true)
        #expect(lax.isReady)
        #expect(!strict.isReady)
        try manager.unload(model: "breast_cancer_logreg")
        #expect(lax.readiness() == .init(ready: false, reason: "no model version is ready"))
        lax.beginShutdown()
        #expect(lax.readiness() == .init(ready: false, reason: "draining: shutting down after a termination signal"))
    }
}
