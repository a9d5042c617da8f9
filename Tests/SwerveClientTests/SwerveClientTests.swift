import SwerveProto
import SwerveTransport
import Testing

@testable import SwerveClient
import SwerveStatus
import SwerveTesting

/// The client against a stand-in KServe v2 server over real loopback sockets.
@Suite(.timeLimit(.minutes(1))) struct SwerveClientTests {
    @Test func controlCallsUseTheKServeMethodPaths() async throws {
        try await FakeInferenceServer.withServer { fake in
            let client = try await SwerveClient.connect(host: "127.0.0.1", port: fake.port)
            #expect(try await client.serverLive())
            #expect(try await client.serverReady())
            #expect(try await client.modelReady(name: "double"))
            #expect(try await client.modelReady(name: "other") == false)
            let metadata = try await client.modelMetadata(name: "double")
            #expect(metadata.inputs == [TensorMetadata(name: "x", datatype: "FP32", shape: [-1, 2])])
            let index = try await client.repositoryIndex()
            #expect(index.map(\.state) == ["READY", "UNAVAILABLE"])
            #expect(try await client.healthCheck() == .serving)
            await client.close()
            #expect(
                fake.methods == [
                    "/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady",
                    "/inference.GRPCInferenceService/ModelReady", "/inference.GRPCInferenceService/ModelReady",
                    "/inference.GRPCInferenceService/ModelMetadata", "/inference.GRPCInferenceService/RepositoryIndex",
                    "/grpc.health.v1.Health/Check",
                ])
        }
    }

    @Test(arguments: [true, false]) func inferRoundTripsRawAndTyped(raw: Bool) async throws {
        try await FakeInferenceServer.withServer { fake in
            let client = try await SwerveClient.connect(host: "127.0.0.1", port: fake.port)
            let result = try await client.infer(
                model: "double",
                inputs: [
                    "x": ClientTensor(shape: [2, 2], fp32: [0.5, 1, -2, 3]),
                    "n": ClientTensor(shape: [3], int64: [1, -2, Int64.max / 2]),
                    "s": ClientTensor(shape: [2], strings: ["a", "bc"]),
                ],
                raw: raw)
            #expect(result.modelName == "double")
            #expect(result.outputNames == ["n_out", "s_out", "x_out"])
            #expect(result["x_out"] == ClientTensor(shape: [2, 2], fp32: [1, 2, -4, 6]))
            #expect(result["n_out"]?.int64Values == [2, -4, Int64.max / 2 * 2])
            #expect(result["s_out"]?.stringValues == ["a", "bc"])
            await client.close()
        }
    }

    @Test func serverErrorsSurfaceAsGRPCStatus() async throws {
        try await FakeInferenceServer.withServer { fake in
            let client = try await SwerveClient.connect(host: "127.0.0.1", port: fake.port)
            await #expect(throws: GRPCStatus(.notFound, "unknown model 'nope'")) {
                _ = try await client.infer(model: "nope", inputs: ["x": ClientTensor(shape: [1], fp32: [1])])
            }
            await #expect(throws: GRPCStatus(.notFound, "unknown model 'nope'")) {
                _ = try await client.modelMetadata(name: "nope")
            }
            // Refused before anything is sent: the server sees no ModelInfer.
            await #expect(throws: GRPCStatus.self) {
                _ = try await client.infer(model: "double", inputs: ["x": ClientTensor(shape: [3], fp32: [1])])
            }
            #expect(fake.methods.filter { $0.hasSuffix("/ModelInfer") }.count == 1)
            await client.close()
        }
    }

    @Test func unreachableServerIsUnavailable() async throws {
        // Bind a server to learn a free port, stop it, then connect there.
        var port = 0
        try await FakeInferenceServer.withServer { port = $0.port }
        await #expect {
            _ = try await SwerveClient.connect(host: "127.0.0.1", port: port, connections: 2)
        } throws: { error in
            (error as? GRPCStatus)?.code == .unavailable
        }
    }

    @Test func callsAreSpreadOverAllConnections() async throws {
        try await FakeInferenceServer.withServer { fake in
            let client = try await SwerveClient.connect(host: "127.0.0.1", port: fake.port, connections: 3)
            #expect(client.connectionCount == 3)
            // The server registers a connection on accept, which may trail the client's connect.
            try await waitUntil("the server has registered all 3 connections") { fake.server.activeConnectionCount >= 3 }
            #expect(fake.server.activeConnectionCount == 3)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<60 {
                    group.addTask {
                        let r = try await client.infer(model: "double", inputs: ["x": ClientTensor(shape: [1], fp32: [Float(i)])])
                        #expect(r["x_out"]?.fp32Values == [Float(2 * i)])
                    }
                }
                try await group.waitForAll()
            }
            await client.close()
        }
    }

    @Test func metadataIsSentWithEveryCall() async throws {
        try await FakeInferenceServer.withServer { fake in
            let client = try await SwerveClient.connect(
                host: "127.0.0.1", port: fake.port, metadata: [("authorization", "Bearer t0ken")])
            _ = try await client.serverLive()
            await client.close()
            let seen = fake.calls.withLock { $0.first?.metadata ?? [] }
            #expect(seen.contains { $0.name == "authorization" && $0.value == "Bearer t0ken" })
        }
    }

    @Test func healthWatchYieldsEachStatus() async throws {
        try await FakeInferenceServer.withServer { fake in
            let client = try await SwerveClient.connect(host: "127.0.0.1", port: fake.port)
            var seen: [HealthCheckResponse.ServingStatus] = []
            for try await status in client.healthWatch() { seen.append(status) }
            #expect(seen == [.notServing, .serving])
            await client.close()
        }
    }
}
