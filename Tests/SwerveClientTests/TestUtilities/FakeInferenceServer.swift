import Logging
import SwerveProto
import SwerveTransport
import Synchronization
import SwerveStatus

/// A stand-in KServe v2 server on a real loopback socket: answers the inference and health
/// methods from fixed tables, and records every call's method and metadata.
///
/// ModelInfer on model "double" returns each input doubled (FP32/FP64/INT64/INT32) or as is,
/// named "<input>_out", raw when the request was raw and typed otherwise; any other model is
/// NOT_FOUND.
final class FakeInferenceServer: Sendable {
    let server: GRPCServer
    let calls = Mutex<[(method: String, metadata: [(name: String, value: String)])]>([])

    private init(server: GRPCServer) {
        self.server = server
    }

    var port: Int { server.port }
    var methods: [String] { calls.withLock { $0.map(\.method) } }

    static func withServer(_ body: (FakeInferenceServer) async throws -> Void) async throws {
        let recorder = CallRecorder()
        var configuration = GRPCServerConfiguration()
        configuration.port = 0
        configuration.eventLoopThreads = 2
        var logger = Logger(label: "fake")
        logger.logLevel = .error
        let server = GRPCServer(configuration: configuration, handler: FakeHandler(recorder: recorder), logger: logger)
        try await server.start()
        let fake = FakeInferenceServer(server: server)
        recorder.sink.withLock { $0 = fake }
        do {
            try await body(fake)
        } catch {
            await server.shutdownGracefully(timeout: .seconds(5))
            throw error
        }
        await server.shutdownGracefully(timeout: .seconds(5))
    }
}

final class CallRecorder: Sendable {
    let sink = Mutex<FakeInferenceServer?>(nil)
    func record(_ call: GRPCServerCall) {
        guard let fake = sink.withLock({ $0 }) else { return }
        fake.calls.withLock { $0.append((call.method, call.metadata)) }
    }
}

struct FakeHandler: GRPCCallHandler {
    let recorder: CallRecorder

    func handle(_ call: GRPCServerCall) {
        recorder.record(call)
        do {
            switch call.method {
            case "/inference.GRPCInferenceService/ServerLive":
                call.respond(ServerLiveResponse(live: true).serializedBytes())
            case "/inference.GRPCInferenceService/ServerReady":
                call.respond(ServerReadyResponse(ready: true).serializedBytes())
            case "/inference.GRPCInferenceService/ModelReady":
                let request = try ModelReadyRequest(serializedBytes: call.message)
                call.respond(ModelReadyResponse(ready: request.name == "double").serializedBytes())
            case "/inference.GRPCInferenceService/ModelMetadata":
                let request = try ModelMetadataRequest(serializedBytes: call.message)
                guard request.name == "double" else { return call.finish(GRPCStatus(.notFound, "unknown model '\(request.name)'")) }
                var response = ModelMetadataResponse()
                response.name = "double"
                response.versions = ["1"]
                response.platform = "fake"
                response.inputs = [TensorMetadata(name: "x", datatype: "FP32", shape: [-1, 2])]
                response.outputs = [TensorMetadata(name: "x_out", datatype: "FP32", shape: [-1, 2])]
                call.respond(response.serializedBytes())
            case "/inference.GRPCInferenceService/RepositoryIndex":
                call.respond(
                    RepositoryIndexResponse(models: [
                        .init(name: "double", version: "1", state: "READY", reason: ""),
                        .init(name: "broken", version: "1", state: "UNAVAILABLE", reason: "bad file"),
                    ]).serializedBytes())
            case "/inference.GRPCInferenceService/ModelInfer":
                let request = try ModelInferRequest(serializedBytes: call.message)
                guard request.modelName == "double" else { return call.finish(GRPCStatus(.notFound, "unknown model '\(request.modelName)'")) }
                call.respond(try Self.double(request).serializedBytes())
            case "/grpc.health.v1.Health/Check":
                call.respond(HealthCheckResponse(status: .serving).serializedBytes())
            case "/grpc.health.v1.Health/Watch":
                call.send(HealthCheckResponse(status: .notServing).serializedBytes())
                call.send(HealthCheckResponse(status: .serving).serializedBytes())
                call.finish(.ok)
            default:
                call.finish(GRPCStatus(.unimplemented, "unknown method \(call.method)"))
            }
        } catch {
            call.finish(GRPCStatus(.invalidArgument, "\(error)"))
        }
    }

    static func double(_ request: ModelInferRequest) throws -> ModelInferResponse {
        var response = ModelInferResponse()
        response.modelName = request.modelName
        response.modelVersion = "1"
        response.id = request.id
        let raw = !request.rawInputContents.isEmpty
        for (i, input) in request.inputs.enumerated() {
            var output = ModelInferResponse.OutputTensor(name: input.name + "_out", datatype: input.datatype, shape: input.shape)
            if raw {
                var bytes = request.rawInputContents[i]
                switch input.datatype {
                case "FP32":
                    bytes.withUnsafeMutableBytes { p in
                        for k in stride(from: 0, to: p.count, by: 4) {
                            let v = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: k, as: UInt32.self)))
                            p.storeBytes(of: (v * 2).bitPattern.littleEndian, toByteOffset: k, as: UInt32.self)
                        }
                    }
                case "INT64":
                    bytes.withUnsafeMutableBytes { p in
                        for k in stride(from: 0, to: p.count, by: 8) {
                            let v = Int64(littleEndian: p.loadUnaligned(fromByteOffset: k, as: Int64.self))
                            p.storeBytes(of: (v &* 2).littleEndian, toByteOffset: k, as: Int64.self)
                        }
                    }
                default: break
                }
                response.rawOutputContents.append(bytes)
            } else {
                var contents = input.contents ?? InferTensorContents()
                contents.fp32Contents = contents.fp32Contents.map { $0 * 2 }
                contents.fp64Contents = contents.fp64Contents.map { $0 * 2 }
                contents.int64Contents = contents.int64Contents.map { $0 &* 2 }
                contents.intContents = contents.intContents.map { $0 &* 2 }
                output.contents = contents
            }
            response.outputs.append(output)
        }
        return response
    }
}
