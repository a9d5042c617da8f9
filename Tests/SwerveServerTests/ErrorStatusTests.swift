import SwerveClient
import SwerveProto
import SwerveStatus
import SwerveTesting
import Testing

/// What a client sees for bad calls: the status code, a message, and a server that goes on
/// answering good calls. (Statuses are checked only as they arrive on the wire.)
@Suite("Error statuses in process")
struct ErrorStatusTests {
    /// `lr` takes FP32 `X` [-1, 30] (max batch 64); `two` takes INT64 `cat` [-1, 2] and FP32 `num` [-1, 3].
    static let models: [TestModel] = [.fixture("lr_binary", as: "lr"), .fixture("ct_onehot_int64", as: "two")]

    static let x3 = WireTensor.fp32("X", [3, 30], (0..<90).map { Float($0) / 90 })
    static let cat = WireTensor.int64("cat", [3, 2], [0, 1, 1, 0, 2, 1])
    static let num = WireTensor.fp32("num", [3, 3], [0.5, 1, 2, 0, 0, 0, -1, 3, 9])

    struct BadRequest: Sendable, CustomTestStringConvertible {
        var name: String
        var code: GRPCStatusCode
        var make: @Sendable () -> ModelInferRequest
        var testDescription: String { name }
        init(_ name: String, _ code: GRPCStatusCode, _ make: @escaping @Sendable () -> ModelInferRequest) {
            self.name = name
            self.code = code
            self.make = make
        }
    }

    static func with(_ t: WireTensor, _ change: (inout WireTensor) -> Void) -> WireTensor {
        var t = t
        change(&t)
        return t
    }

    static let badRequests: [BadRequest] = [
        BadRequest("unknown model", .notFound) { inferRequest("no_such_model", [x3], raw: true) },
        BadRequest("unknown version", .notFound) { inferRequest("lr", version: "7", [x3], raw: true) },
        BadRequest("version not a number", .notFound) { inferRequest("lr", version: "latest", [x3], raw: false) },
        BadRequest("wrong input name", .invalidArgument) { inferRequest("lr", [with(x3) { $0.name = "input" }], raw: true) },
        BadRequest("missing input", .invalidArgument) { inferRequest("two", [cat], raw: true) },
        BadRequest("extra input", .invalidArgument) { inferRequest("lr", [x3, with(x3) { $0.name = "Y" }], raw: true) },
        BadRequest("duplicate input", .invalidArgument) { inferRequest("two", [cat, num, cat], raw: false) },
        BadRequest("no inputs", .invalidArgument) { inferRequest("lr", [], raw: false) },
        BadRequest("FP64 for FP32, raw", .invalidArgument) {
            inferRequest("lr", [WireTensor(name: "X", datatype: "FP64", shape: [3, 30], values: .fp64((0..<90).map(Double.init)))], raw: true)
        },
        BadRequest("FP64 for FP32, typed", .invalidArgument) {
            inferRequest("lr", [WireTensor(name: "X", datatype: "FP64", shape: [3, 30], values: .fp64((0..<90).map(Double.init)))], raw: false)
        },
        BadRequest("FP32 for INT64", .invalidArgument) {
            inferRequest("two", [WireTensor(name: "cat", datatype: "FP32", shape: [3, 2], values: .fp32([0, 1, 1, 0, 2, 1])), num], raw: true)
        },
        BadRequest("unknown datatype", .invalidArgument) { inferRequest("lr", [with(x3) { $0.datatype = "FP33" }], raw: true) },
        BadRequest("wrong feature dimension", .invalidArgument) {
            inferRequest("lr", [WireTensor.fp32("X", [3, 29], Array(repeating: 0, count: 87))], raw: true)
        },
        BadRequest("wrong rank", .invalidArgument) { inferRequest("lr", [with(x3) { $0.shape = [3, 5, 6] }], raw: true) },
        BadRequest("rank 1", .invalidArgument) { inferRequest("lr", [with(x3) { $0.shape = [90] }], raw: false) },
        BadRequest("shape vs raw length", .invalidArgument) { inferRequest("lr", [with(x3) { $0.shape = [4, 30] }], raw: true) },
        BadRequest("shape vs typed count", .invalidArgument) { inferRequest("lr", [with(x3) { $0.shape = [2, 30] }], raw: false) },
        BadRequest("negative dimension", .invalidArgument) { inferRequest("lr", [with(x3) { $0.shape = [-3, 30] }], raw: true) },
        BadRequest("element count overflows", .invalidArgument) { inferRequest("lr", [with(x3) { $0.shape = [1 << 62, 30] }], raw: true) },
        BadRequest("batch over max_batch_size", .invalidArgument) {
            inferRequest("lr", [WireTensor.fp32("X", [65, 30], Array(repeating: 0, count: 65 * 30))], raw: true)
        },
        BadRequest("unknown requested output", .invalidArgument) { inferRequest("lr", [x3], raw: true, outputs: ["nope"]) },
        BadRequest("raw entries not one per input", .invalidArgument) {
            var r = inferRequest("lr", [x3], raw: true)
            r.rawInputContents.append(x3.rawBytes)
            return r
        },
        BadRequest("raw and typed contents for one input", .invalidArgument) {
            var r = inferRequest("lr", [x3], raw: false)
            r.rawInputContents = [x3.rawBytes]
            return r
        },
        BadRequest("raw for one input, typed for the other", .invalidArgument) {
            var r = inferRequest("two", [cat, num], raw: false)
            r.inputs[0].contents = nil
            r.rawInputContents = [cat.rawBytes]
            return r
        },
        BadRequest("values in another field than the datatype's", .invalidArgument) {
            var r = inferRequest("lr", [x3], raw: false)
            var c = InferTensorContents()
            c.fp64Contents = (0..<90).map(Double.init)
            r.inputs[0].contents = c
            return r
        },
        BadRequest("no contents at all", .invalidArgument) {
            var r = inferRequest("lr", [x3], raw: false)
            r.inputs[0].contents = nil
            return r
        },
    ]

    @Test(arguments: badRequests)
    func badInferRequest(_ bad: BadRequest) async throws {
        try await withInProcessServer(Self.models) { server in
            let status = await statusThrown { _ = try await server.client.modelInfer(bad.make()) }
            #expect(status?.code == bad.code, "\(bad.name): \(String(describing: status))")
            #expect(status?.message.isEmpty == false, "\(bad.name): a status without a message")
            // The same connection still serves.
            let good = try await server.client.modelInfer(inferRequest("lr", [Self.x3], raw: true))
            #expect(good.outputs.map(\.name) == ["label", "probabilities"])
        }
    }

    @Test func unknownModelOrVersionIsNotFoundForMetadataAndConfig() async throws {
        try await withInProcessServer(Self.models) { server in
            let calls: [(String, @Sendable () async throws -> Void)] = [
                ("metadata, unknown model", { _ = try await server.client.modelMetadata(name: "no_such_model") }),
                ("metadata, unknown version", { _ = try await server.client.modelMetadata(name: "lr", version: "9") }),
                ("config, unknown model", { _ = try await server.client.modelConfig(name: "no_such_model") }),
                ("config, unknown version", { _ = try await server.client.modelConfig(name: "lr", version: "9") }),
                ("statistics, unknown model", { _ = try await server.client.modelStatistics(name: "no_such_model") }),
                ("load, unknown model", { try await server.client.loadModel(name: "no_such_model") }),
            ]
            for (what, call) in calls {
                let status = await statusThrown(call)
                #expect(status?.code == .notFound, "\(what): \(String(describing: status))")
            }
        }
    }

    /// Bytes that are not a protobuf message (a length past the end, a wire type that does not
    /// exist, a varint that never ends) are INVALID_ARGUMENT on every method that decodes a request;
    /// so is a ModelInferRequest whose first input (field 5) is cut short inside.
    @Test(arguments: [
        ([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], methodsDecodingARequest),
        ([0x0f, 0x00], methodsDecodingARequest),
        ([0x08, 0xff, 0xff, 0xff], methodsDecodingARequest),
        ([0x2a, 0x05, 0x0a, 0xff, 0xff, 0xff, 0x7f], [SwerveClient.Method.modelInfer]),
    ] as [([UInt8], [String])])
    func malformedProtobufIsInvalidArgument(bytes: [UInt8], methods: [String]) async throws {
        try await withInProcessServer(Self.models) { server in
            for method in methods {
                let status = await statusThrown { _ = try await server.connection.unary(method, bytes) }
                #expect(status?.code == .invalidArgument, "\(method) \(bytes): \(String(describing: status))")
            }
            let live = try await server.client.serverLive()
            #expect(live, "the server went down")
        }
    }

    static let methodsDecodingARequest = [
        SwerveClient.Method.modelInfer, SwerveClient.Method.modelMetadata, SwerveClient.Method.modelReady,
        SwerveClient.Method.modelConfig, SwerveClient.Method.repositoryModelLoad, SwerveClient.Method.healthCheck,
    ]

    @Test func unknownMethodIsUnimplemented() async throws {
        try await withInProcessServer() { server in
            for method in ["/inference.GRPCInferenceService/NoSuchMethod", "/inference.NoSuchService/ModelInfer", "/grpc.health.v1.Health/Nope"] {
                let status = await statusThrown { _ = try await server.connection.unary(method, []) }
                #expect(status?.code == .unimplemented, "\(method): \(String(describing: status))")
            }
        }
    }

    /// A model whose file is not ONNX stays in the index as UNAVAILABLE with the reason, is not
    /// ready, answers UNAVAILABLE, and does not stop the others from serving. The server is not
    /// ready (strict readiness: a model the repository says to serve is not served).
    @Test func aModelThatFailedToLoadIsUnavailable() async throws {
        let broken = TestModel.onnx(Array("not an onnx file".utf8), as: "broken")
        try await withInProcessServer([broken, .fixture("lr_binary", as: "lr")]) { server in
            let entries = try await server.client.repositoryIndex().filter { $0.name == "broken" }
            #expect(entries.count == 1)
            #expect(entries.first?.state == "UNAVAILABLE")
            #expect(entries.first?.reason.isEmpty == false)
            #expect(try await server.client.modelReady(name: "broken") == false)
            let status = await statusThrown { _ = try await server.client.modelInfer(inferRequest("broken", [Self.x3], raw: true)) }
            #expect(status?.code == .unavailable, "\(String(describing: status))")
            #expect(try await server.client.healthCheck(service: "broken") == .notServing)
            #expect(try await server.client.serverReady() == false)
            #expect(try await server.client.modelInfer(inferRequest("lr", [Self.x3], raw: true)).outputs.count == 2)
        }
    }
}
