import Foundation
import SwerveClient
import SwerveProto
import SwerveStatus
import SwerveTesting
import Testing

/// ModelStatistics field by field, with the semantics of Triton's grpc_service.proto, after a
/// known sequence of calls on each serving path: the batcher (batches of known sizes), the response
/// cache (hits and misses), the static table (lookups and a fallback), and failures.
@Suite("ModelStatistics semantics")
struct ModelStatisticsTests {
    static let bcONNX = PackagePaths.exampleRepository.appendingPathComponent("breast_cancer_logreg/1/model.onnx")

    static func bcRows(_ n: Int, seed: Float) -> WireTensor {
        .fp32("input", [Int64(n), 30], (0..<(n * 30)).map { Float($0 % 30) / 30 + seed })
    }

    /// Invariants every snapshot must keep, whatever the traffic.
    static func checkInvariants(_ s: ModelStatistics, _ label: String) {
        let executions = s.batchStats.reduce(UInt64(0)) { $0 + $1.computeInfer.count }
        #expect(s.executionCount == executions, "\(label): execution_count is the sum of batch_stats counts")
        let rows = s.batchStats.reduce(UInt64(0)) { $0 + $1.batchSize * $1.computeInfer.count }
        #expect(s.inferenceCount == rows, "\(label): inference_count is the rows of the executions")
        for b in s.batchStats {
            #expect(b.computeInput.count == b.computeInfer.count && b.computeInfer.count == b.computeOutput.count, "\(label)")
        }
        #expect(s.computeInput.count == s.computeInfer.count && s.computeInfer.count == s.computeOutput.count,
                "\(label): perf_analyzer refuses unequal compute counts")
        #expect(s.queue.count == s.success.count, "\(label): every successful request, hits included, counts in queue")
        #expect(s.computeInfer.count + s.cacheHit.count == s.success.count, "\(label): a successful request is computed or a hit")
        let parts = s.queue.ns + s.computeInput.ns + s.computeInfer.ns + s.computeOutput.ns + s.cacheHit.ns
        #expect(s.success.ns >= parts, "\(label): a request's stages lie within its duration (no coalescing here)")
    }

    @Test func fieldsAfterAKnownSequence() async throws {
        let bcBytes = try [UInt8](Data(contentsOf: Self.bcONNX))
        let models: [TestModel] = [
            .onnx(bcBytes, as: "bc_dynamic", config: #"{"serving_mode": "dynamic", "max_batch_size": 64}"#),
            .onnx(bcBytes, as: "bc_cached", config: #"{"serving_mode": "cached", "max_batch_size": 64, "response_cache": {"max_bytes": 1048576}}"#),
            .example("ad_conversion_onehot"),
        ]
        try await withInProcessServer(models) { server in
            let client = server.client
            let startedMs = UInt64(Date().timeIntervalSince1970 * 1000)
            func stats(_ name: String) async throws -> ModelStatistics {
                let all = try await client.modelStatistics(name: name)
                #expect(all.count == 1)
                return try #require(all.first)
            }
            let fresh = try await stats("bc_dynamic")
            #expect(fresh == { var z = ModelStatistics(); z.name = "bc_dynamic"; z.version = "1"; return z }(), "all zero before any call")

            // The batcher: calls one after another, so each runs alone as one execution of its rows.
            for n in [3, 3, 5] { _ = try await client.modelInfer(inferRequest("bc_dynamic", [Self.bcRows(n, seed: 0)], raw: true)) }
            let wrongShape = WireTensor.fp32("input", [1, 29], Array(repeating: 0, count: 29))
            let bad = await statusThrown { _ = try await client.modelInfer(inferRequest("bc_dynamic", [wrongShape], raw: true)) }
            #expect(bad?.code == .invalidArgument)
            let d = try await stats("bc_dynamic")
            #expect((d.success.count, d.fail.count) == (3, 1))
            #expect(d.success.ns > 0 && d.fail.ns > 0)
            #expect((d.queue.count, d.computeInput.count, d.computeInfer.count, d.computeOutput.count) == (3, 3, 3, 3),
                    "queue and compute count requests, not batches")
            #expect(d.computeInfer.ns > 0)
            #expect((d.executionCount, d.inferenceCount) == (3, 11))
            #expect(d.batchStats.map(\.batchSize) == [3, 5])
            #expect(d.batchStats.map(\.computeInfer.count) == [2, 1])
            #expect((d.cacheHit, d.cacheMiss) == (StatisticDuration(), StatisticDuration()), "no cache on a dynamic model")
            #expect(d.lastInference >= startedMs && d.lastInference <= UInt64(Date().timeIntervalSince1970 * 1000) + 1000)
            Self.checkInvariants(d, "bc_dynamic")

            // The response cache: A misses then hits twice, B misses then hits once.
            let a = Self.bcRows(2, seed: 1), b = Self.bcRows(4, seed: 2)
            for x in [a, a, a, b, b] { _ = try await client.modelInfer(inferRequest("bc_cached", [x], raw: true)) }
            let c = try await stats("bc_cached")
            #expect((c.success.count, c.fail.count) == (5, 0), "success includes cache hits")
            #expect((c.cacheHit.count, c.cacheMiss.count) == (3, 2))
            #expect(c.cacheHit.ns > 0 && c.cacheMiss.ns > 0, "hit and miss carry their lookup durations")
            #expect(c.queue.count == 5, "queue counts cache hits too")
            #expect((c.computeInput.count, c.computeInfer.count, c.computeOutput.count) == (2, 2, 2), "hits are not computed")
            #expect((c.executionCount, c.inferenceCount) == (2, 6), "inference_count leaves cache hits out")
            #expect(c.batchStats.map(\.batchSize) == [2, 4])
            Self.checkInvariants(c, "bc_cached")

            // The static table: three lookups (1, 1 and 2 rows), then a row outside the domain,
            // which the batcher computes.
            let inDomain1 = WireTensor.strings("input", [1, 3], ["mobile", "us", "tech"])
            let inDomain2 = WireTensor.strings("input", [2, 3], ["desktop", "de", "food", "tablet", "jp", "games"])
            let outside = WireTensor.strings("input", [1, 3], ["smart-tv", "zz", "??"])
            for x in [inDomain1, inDomain1, inDomain2, outside] {
                _ = try await client.modelInfer(inferRequest("ad_conversion_onehot", [x], raw: false))
            }
            let t = try await stats("ad_conversion_onehot")
            #expect((t.success.count, t.fail.count, t.queue.count) == (4, 0, 4))
            #expect((t.cacheHit.count, t.cacheMiss.count) == (0, 0), "a table lookup is no cache hit")
            #expect(t.computeInfer.count == 4)
            #expect((t.executionCount, t.inferenceCount) == (4, 5), "lookups count as executions of their rows")
            #expect(t.batchStats.map(\.batchSize) == [1, 2])
            #expect(t.batchStats.map(\.computeInfer.count) == [3, 1])
            Self.checkInvariants(t, "ad_conversion_onehot")

            // A failure after the model resolved adds to fail and nothing else.
            let wrongType = WireTensor.fp32("input", [1, 3], [0, 0, 0])
            let refused = await statusThrown { _ = try await client.modelInfer(inferRequest("ad_conversion_onehot", [wrongType], raw: true)) }
            #expect(refused?.code == .invalidArgument)
            var expected = t
            expected.fail.count += 1
            var after = try await stats("ad_conversion_onehot")
            #expect(after.fail.ns > t.fail.ns)
            after.fail.ns = expected.fail.ns
            #expect(after == expected, "only fail changed")

            // The config tells perf_analyzer which versions have a response cache.
            #expect(try await client.modelConfig(name: "bc_cached").responseCache)
            #expect(try await client.modelConfig(name: "bc_dynamic").responseCache == false)
            #expect(try await client.modelConfig(name: "ad_conversion_onehot").responseCache == false, "a static table is no response cache")
        }
    }
}
