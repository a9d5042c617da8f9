import Foundation
import SwerveInference
import SwerveTesting
import Testing
@testable import SwerveRepository

// MARK: Publisher

@Suite struct RegistryPublishTests {
    @Test func versionsIncreaseAndLoad() throws {
        let repo = try registryTestDirectory()
        defer { try? FileManager.default.removeItem(at: repo) }
        let v1 = try ModelPublisher.publish(onnx: registryTestModel(), repository: repo, name: "m", lineage: sampleLineage())
        let v2 = try ModelPublisher.publish(onnx: registryTestModel(bias: 2), repository: repo, name: "m", lineage: sampleLineage(),
                                            referenceStatistics: Data("{\"row_count\":0,\"numeric\":{},\"categorical\":{}}".utf8))
        #expect(v1 == 1)
        #expect(v2 == 2)
        #expect(servedVersions(repo, "m") == [1, 2])
        let bytes = try [UInt8](Data(contentsOf: repo.appendingPathComponent("m/2/model.onnx")))
        let compiled = try CompiledModel(onnxBytes: bytes)
        let out = try compiled.makeExecutor().run([Tensor(shape: [1, 2], data: .fp32([1, 2]))])
        #expect(out[0].data == .fp32([3, 4]))

        let registry = ModelRegistry(repository: repo)
        let lineage = try registry.lineage(of: "m", version: 2)
        #expect(lineage.version == 2)
        #expect(lineage.model == "m")
        #expect(lineage.status == .candidate)
        #expect(lineage.timestamps.published != nil)
        #expect(lineage.modelFingerprint == ContentFingerprint.sha256(bytes))
        #expect(lineage.rowCounts == .init(train: 800, validation: 100, holdout: 100))
        #expect(lineage.hyperparameters["learning_rate"] == .number(0.1))
        #expect(lineage.seed == 42)
        #expect(registry.referenceStatistics(of: "m", version: 2)?.rowCount == 0)
        #expect(registry.referenceStatistics(of: "m", version: 1) == nil)
        // No temporary folders left behind.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("m").path).filter { $0.hasPrefix(".tmp-") }
        #expect(leftovers.isEmpty)
    }

    @Test func refusesModelThatDoesNotLoad() throws {
        let repo = try registryTestDirectory()
        defer { try? FileManager.default.removeItem(at: repo) }
        #expect(throws: StorageError.self) {
            try ModelPublisher.publish(onnx: [1, 2, 3, 4], repository: repo, name: "m", lineage: sampleLineage())
        }
        #expect(servedVersions(repo, "m").isEmpty)
        #expect(throws: StorageError.self) {
            try ModelPublisher.publish(onnx: registryTestModel(), repository: repo, name: "../x", lineage: sampleLineage())
        }
    }

    @Test func crashBeforeRenameLeavesRepositoryValid() throws {
        let repo = try registryTestDirectory()
        defer { try? FileManager.default.removeItem(at: repo) }
        _ = try ModelPublisher.publish(onnx: registryTestModel(), repository: repo, name: "m", lineage: sampleLineage())
        // A publisher that died after staging: a complete-looking folder that was never renamed.
        let stale = repo.appendingPathComponent("m/.tmp-x")
        try FileManager.default.createDirectory(at: stale, withIntermediateDirectories: true)
        try Data(registryTestModel()).write(to: stale.appendingPathComponent("model.onnx"))
        // And one that failed inside publish itself.
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try ModelPublisher.publish(onnx: registryTestModel(), repository: repo, name: "m", lineage: sampleLineage(),
                                       options: .init(beforeRename: { _ in throw Boom() }))
        }
        #expect(servedVersions(repo, "m") == [1])
        #expect(ModelRegistry(repository: repo).versions(of: "m") == [1])

        // A fresh temp folder survives the next publish; one older than the limit is removed.
        let v = try ModelPublisher.publish(onnx: registryTestModel(), repository: repo, name: "m", lineage: sampleLineage())
        #expect(v == 2)
        #expect(FileManager.default.fileExists(atPath: stale.path))
        let v3 = try ModelPublisher.publish(onnx: registryTestModel(), repository: repo, name: "m", lineage: sampleLineage(),
                                            options: .init(staleTemporaryAge: 0))
        #expect(v3 == 3)
        #expect(!FileManager.default.fileExists(atPath: stale.path))
        #expect(servedVersions(repo, "m") == [1, 2, 3])
    }

    @Test func renameCollisionTakesNextNumber() throws {
        let repo = try registryTestDirectory()
        defer { try? FileManager.default.removeItem(at: repo) }
        _ = try ModelPublisher.publish(onnx: registryTestModel(), repository: repo, name: "m", lineage: sampleLineage())
        // A writer that ignores the lock creates version 2 while we hold it, just before our rename.
        let v = try ModelPublisher.publish(onnx: registryTestModel(), repository: repo, name: "m", lineage: sampleLineage(),
                                           options: .init(beforeRename: { staged in
            let intruder = staged.deletingLastPathComponent().appendingPathComponent("2")
            if !FileManager.default.fileExists(atPath: intruder.path) {
                try FileManager.default.createDirectory(at: intruder, withIntermediateDirectories: false)
                try Data(registryTestModel(bias: 9)).write(to: intruder.appendingPathComponent("model.onnx"))
            }
        }))
        #expect(v == 3)
        #expect(try ModelRegistry(repository: repo).lineage(of: "m", version: 3).version == 3)
        // The intruder's version is untouched.
        #expect(try Data(contentsOf: repo.appendingPathComponent("m/2/model.onnx")) == Data(registryTestModel(bias: 9)))
    }

    @Test func concurrentPublishersGetDistinctVersions() async throws {
        let repo = try registryTestDirectory()
        defer { try? FileManager.default.removeItem(at: repo) }
        let versions = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<8 {
                group.addTask {
                    try ModelPublisher.publish(onnx: registryTestModel(bias: Float(i)), repository: repo, name: "m", lineage: sampleLineage())
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(versions.sorted() == Array(1...8))
        #expect(servedVersions(repo, "m") == Array(1...8))
        let registry = ModelRegistry(repository: repo)
        for v in 1...8 { #expect(try registry.lineage(of: "m", version: v).version == v) }
    }
}

// MARK: Registry

@Suite struct RegistryLifecycleTests {
    @Test func promoteAndRollbackRewritePolicyAndStatuses() throws {
        let repo = try registryTestDirectory()
        defer { try? FileManager.default.removeItem(at: repo) }
        for _ in 0..<3 { _ = try ModelPublisher.publish(onnx: registryTestModel(), repository: repo, name: "m", lineage: sampleLineage()) }
        // Other config keys survive.
        let config = repo.appendingPathComponent("m/config.json")
        try Data(#"{"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_us": 250}}"#.utf8).write(to: config)
        let registry = ModelRegistry(repository: repo)
        #expect(try registry.servingVersion(of: "m") == 3)  // default policy: latest

        try registry.setStatus(.validated, model: "m", version: 2, reason: "gates passed")
        try registry.promote(model: "m", version: 2)
        #expect(try registry.repository.settings(of: "m").versionPolicy == .specific([2]))
        let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as! [String: Any]
        #expect((obj["max_batch_size"] as? NSNumber)?.intValue == 8)
        #expect(((obj["dynamic_batching"] as? [String: Any])?["max_queue_delay_us"] as? NSNumber)?.intValue == 250)
        #expect(try registry.lineage(of: "m", version: 2).status == .serving)
        #expect(try registry.lineage(of: "m", version: 3).status == .validated)  // was serving under "latest"

        try registry.promote(model: "m", version: 3)
        #expect(try registry.lineage(of: "m", version: 2).status == .validated)
        try registry.rollback(model: "m", to: 2, reason: "error rate")
        #expect(try registry.repository.settings(of: "m").versionPolicy == .specific([2]))
        #expect(try registry.servingVersion(of: "m") == 2)
        let rolled = try registry.lineage(of: "m", version: 3)
        #expect(rolled.status == .rolledBack)
        #expect(rolled.statusHistory.last?.reason == "error rate")
        #expect(try registry.lineage(of: "m", version: 2).status == .serving)
        #expect(try registry.lineage(of: "m", version: 1).status == .candidate)
        let entries = registry.entries(of: "m")
        #expect(entries.map(\.version) == [1, 2, 3])
        #expect(entries.map(\.isServed) == [false, true, false])
        #expect(try registry.servingMetrics(of: "m")?.version == 2)

        #expect(throws: StorageError.self) { try registry.promote(model: "m", version: 7) }
        // No temporary files left next to config.json or metadata.json.
        let hidden = try FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("m").path).filter { $0.contains(".tmp-") }
        #expect(hidden.isEmpty)
    }

    @Test func rejectedCandidatesStayOutOfServedTree() throws {
        let repo = try registryTestDirectory()
        defer { try? FileManager.default.removeItem(at: repo) }
        let registry = ModelRegistry(repository: repo)
        let file = try registry.recordRejected(model: "fresh", lineage: sampleLineage(["accuracy": 0.4]), reasons: ["overall: accuracy = 0.4 fails accuracy >= 0.8"])
        #expect(file.path.contains("/.rejected/fresh/"))
        // No model folder was created, so the server sees no model "fresh".
        #expect(registry.modelNames().isEmpty)
        #expect(servedVersions(repo, "fresh").isEmpty)
        let records = registry.rejected(model: "fresh")
        #expect(records.count == 1)
        #expect(records[0].lineage.status == .rejected)
        #expect(records[0].lineage.rejectionReasons == ["overall: accuracy = 0.4 fails accuracy >= 0.8"])
    }

    @Test func lineageRoundTripsAndToleratesSparseRecords() throws {
        var l = sampleLineage()
        l.transition(to: .validated, reason: "ok", at: Date(timeIntervalSince1970: 1_700_000_200))  // ISO 8601 keeps whole seconds
        let back = try Lineage.decode(l.jsonData())
        #expect(back == l)
        let json = String(decoding: try l.jsonData(), as: UTF8.self)
        #expect(json.contains("\"data_fingerprint\""))
        #expect(json.contains("\"slice_metrics\""))
        let sparse = try Lineage.decode(Data(#"{"source": "external", "status": "serving"}"#.utf8))
        #expect(sparse.status == .serving)
        #expect(sparse.metrics.isEmpty)
    }

    @Test func sha256MatchesKnownVectors() {
        #expect(ContentFingerprint.sha256([UInt8]()) == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(ContentFingerprint.sha256(Array("abc".utf8)) == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(ContentFingerprint.sha256(million) == "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // Fed in pieces of every awkward size, across block boundaries, the digest is the same.
        var g = SplitMix64(seed: 3)
        let data = (0..<5_000).map { _ in UInt8(truncatingIfNeeded: g.next()) }
        let whole = SHA256.hash(data)
        for piece in [1, 7, 63, 64, 65, 129, 1000] {
            var h = SHA256()
            var i = 0
            while i < data.count {
                h.update(Array(data[i..<min(data.count, i + piece)]))
                i += piece
            }
            #expect(h.finalize() == whole, "pieces of \(piece)")
        }
    }
}
