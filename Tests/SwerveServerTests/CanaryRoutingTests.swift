import Foundation
import SwerveClient
import SwerveProto
import SwerveRepository
import SwerveStatus
import SwerveTesting
import Testing

/// Labels over the wire: unversioned ModelInfer calls split between stable and canary by a hash
/// of their inputs, every response names the version that answered, labels work as
/// `model_version`, and RolloutStatistics reports each version's evidence.
@Suite struct CanaryRoutingTests {
    static let bcONNX = PackagePaths.exampleRepository.appendingPathComponent("breast_cancer_logreg/1/model.onnx")

    static func row(_ i: Int) -> WireTensor {
        .fp32("input", [1, 30], (0..<30).map { Float(($0 * 7 + i * 13) % 97) / 10 })
    }

    @Test func splitByInputHashAndEvidencePerVersion() async throws {
        let bytes = try [UInt8](Data(contentsOf: Self.bcONNX))
        try await withInProcessServer([.onnx(bytes, as: "bc", versions: [1, 2], config: #"{"serving_mode": "dynamic"}"#)]) { server in
            let registry = ModelRegistry(repository: server.repository)
            try registry.setLabels(model: "bc", ModelLabels(stable: 1, canary: 2, canaryPercent: 50))
            try server.manager.load(model: "bc")
            let client = server.client

            var first: [Int: String] = [:]
            for i in 0..<200 {
                let r = try await client.modelInfer(inferRequest("bc", [Self.row(i)], raw: i % 2 == 0))
                #expect(r.modelVersion == "1" || r.modelVersion == "2")
                first[i] = r.modelVersion
            }
            // The same input meets the same version, typed or raw alike.
            for i in 0..<40 {
                let r = try await client.modelInfer(inferRequest("bc", [Self.row(i)], raw: i % 2 == 0))
                #expect(r.modelVersion == first[i], "input \(i)")
            }
            let canary = first.values.filter { $0 == "2" }.count
            #expect(canary > 60 && canary < 140, "canary answered \(canary) of 200 at 50%")

            // Labels as model_version.
            #expect(try await client.modelInfer(inferRequest("bc", version: "canary", [Self.row(1)], raw: true)).modelVersion == "2")
            #expect(try await client.modelInfer(inferRequest("bc", version: "stable", [Self.row(1)], raw: true)).modelVersion == "1")
            #expect(try await client.modelReady(name: "bc", version: "canary"))
            let unknown = await statusThrown { _ = try await client.modelInfer(inferRequest("bc", version: "beta", [Self.row(1)], raw: true)) }
            #expect(unknown?.code == .notFound)
            // A client's malformed request says nothing of the version it met: not counted.
            let bad = await statusThrown {
                _ = try await client.modelInfer(inferRequest("bc", version: "canary", [.fp32("input", [1, 29], Array(repeating: 0, count: 29))], raw: true))
            }
            #expect(bad?.code == .invalidArgument)

            let stats = try await client.rolloutStatistics(name: "bc")
            #expect(stats.stable == 1 && stats.canary == 2 && stats.canaryPercent == 50 && stats.labelsGeneration == 1)
            #expect(stats.latencyBoundsMicros.count == 161)
            let v1 = try #require(stats.versions.first { $0.version == "1" })
            let v2 = try #require(stats.versions.first { $0.version == "2" })
            #expect(v1.labels == ["stable"] && v2.labels == ["canary"])
            #expect(v1.state == "READY" && v2.state == "READY")
            #expect(v1.requests + v2.requests == 242)
            #expect(v2.failures == 0 && v1.failures == 0)
            #expect(v2.requests == UInt64(canary + first.filter { $0.key < 40 && $0.value == "2" }.count + 1))
            for v in [v1, v2] {
                #expect(v.latencyCounts.count == 162 && v.latencyCounts.reduce(0, +) == v.requests)
                #expect(v.predictionKind == "class")
                #expect(v.classCounts.reduce(0, +) == v.requests - v.failures)
            }
            let none = await statusThrown { _ = try await client.rolloutStatistics(name: "nope") }
            #expect(none?.code == .notFound)
        }
    }

    @Test func labelsMovedOnDiskReachTheServerWithItsNextLoad() async throws {
        let bytes = try [UInt8](Data(contentsOf: Self.bcONNX))
        try await withInProcessServer([.onnx(bytes, as: "bc", versions: [1, 2, 3])]) { server in
            let client = server.client
            #expect(try await client.modelInfer(inferRequest("bc", [Self.row(0)], raw: true)).modelVersion == "3")
            let registry = ModelRegistry(repository: server.repository)
            try registry.setLabels(model: "bc", ModelLabels(stable: 1))
            try server.manager.load(model: "bc")
            #expect(try await client.modelInfer(inferRequest("bc", [Self.row(0)], raw: true)).modelVersion == "1")
            #expect(try await client.modelMetadata(name: "bc").versions.contains("1"))
            let idx = try await client.repositoryIndex()
            #expect(Set(idx.filter { $0.name == "bc" && $0.state == "READY" }.map(\.version)) == ["1", "3"])
        }
    }
}
