import SwerveProto
import Testing

@testable import SwerveClient
import SwerveTesting

/// The route key a cache-affine balancer hashes on (deploy/haproxy): stable, per request,
/// only on ModelInfer, only when asked for.
@Suite(.timeLimit(.minutes(1))) struct RouteKeyTests {
    @Test func routeKeyIsFNV1a64InHex() {
        // The published FNV-1a 64-bit test vectors: no per-process seed, so every client
        // process (and every language that implements FNV-1a) gets the same key.
        #expect(SwerveClient.routeKey(serializedRequest: []) == "cbf29ce484222325")
        #expect(SwerveClient.routeKey(serializedRequest: Array("a".utf8)) == "af63dc4c8601ec8c")
        #expect(SwerveClient.routeKey(serializedRequest: Array("foobar".utf8)) == "85944171f73967e8")
    }

    @Test func inferCallsCarryTheKeyOfTheirRequestWhenAsked() async throws {
        try await FakeInferenceServer.withServer { fake in
            let client = try await SwerveClient.connect(host: "127.0.0.1", port: fake.port, routeKey: true)
            let a = ["x": ClientTensor(shape: [1, 2], fp32: [1, 2])]
            let b = ["x": ClientTensor(shape: [1, 2], fp32: [1, 3])]
            _ = try await client.infer(model: "double", inputs: a)
            _ = try await client.infer(model: "double", inputs: a)
            _ = try await client.infer(model: "double", inputs: b)
            _ = try await client.serverLive()
            await client.close()
            let keys = fake.calls.withLock { calls in
                calls.map { call in call.metadata.first { $0.name == SwerveClient.routeKeyHeader }?.value }
            }
            let expectedA = SwerveClient.routeKey(
                serializedRequest: try SwerveClient.makeInferRequest(model: "double", inputs: a).serializedBytes())
            #expect(keys.count == 4)
            #expect(keys[0] == expectedA)
            #expect(keys[1] == expectedA)
            #expect(keys[2] != nil && keys[2] != expectedA)
            #expect(keys[3] == nil, "only ModelInfer carries the key")
        }
    }

    @Test func noKeyUnlessAsked() async throws {
        try await FakeInferenceServer.withServer { fake in
            let client = try await SwerveClient.connect(host: "127.0.0.1", port: fake.port)
            _ = try await client.infer(model: "double", inputs: ["x": ClientTensor(shape: [1, 2], fp32: [1, 2])])
            await client.close()
            let seen = fake.calls.withLock { $0.flatMap { $0.metadata.map(\.name) } }
            #expect(!seen.contains(SwerveClient.routeKeyHeader))
        }
    }
}
