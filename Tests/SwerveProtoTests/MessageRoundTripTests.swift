import Testing
@testable import SwerveProto

@Suite struct MessageRoundTripTests {
    @Test func modelInferRequestRoundTrips() throws {
        var r = ModelInferRequest()
        r.modelName = "m"; r.modelVersion = "3"; r.id = "req-é"
        r.parameters = ["priority": .int64(2), "flag": .bool(true), "s": .string("x"), "d": .double(1.5)]
        var c = InferTensorContents(); c.fp32Contents = [1, 2.5, -3]
        r.inputs = [.init(name: "x", datatype: "FP32", shape: [1, 3], contents: c),
                    .init(name: "y", datatype: "BYTES", shape: [2], parameters: ["p": .uint64(7)])]
        r.outputs = [.init(name: "label")]
        r.rawInputContents = [[], [1, 2, 3]]
        let back = try ModelInferRequest(serializedBytes: r.serializedBytes())
        #expect(back == r)
    }

    @Test func modelInferResponseRoundTrips() throws {
        var r = ModelInferResponse()
        r.modelName = "m"; r.modelVersion = "1"
        var c = InferTensorContents(); c.int64Contents = [1, -2]; c.bytesContents = [[0, 255], []]
        r.outputs = [.init(name: "label", datatype: "INT64", shape: [2], contents: c)]
        r.rawOutputContents = [[9, 9, 9, 9]]
        #expect(try ModelInferResponse(serializedBytes: r.serializedBytes()) == r)
    }

    @Test func controlMessagesRoundTrip() throws {
        var md = ModelMetadataResponse()
        md.name = "m"; md.versions = ["1", "2"]; md.platform = "onnx"
        md.inputs = [.init(name: "x", datatype: "FP32", shape: [-1, 30])]
        #expect(try ModelMetadataResponse(serializedBytes: md.serializedBytes()) == md)

        var st = ModelStatistics(); st.name = "m"; st.version = "1"; st.inferenceCount = 5; st.success = .init(count: 2, ns: 100)
        var b = ModelStatistics.Batch(batchSize: 4); b.computeInfer = .init(count: 1, ns: 9); st.batchStats = [b]
        let sr = ModelStatisticsResponse(modelStats: [st])
        #expect(try ModelStatisticsResponse(serializedBytes: sr.serializedBytes()) == sr)

        let ix = RepositoryIndexResponse(models: [.init(name: "a", version: "1", state: "UNAVAILABLE", reason: "unsupported operator 'Conv'")])
        #expect(try RepositoryIndexResponse(serializedBytes: ix.serializedBytes()) == ix)

        var cfg = ModelConfig(); cfg.name = "m"; cfg.maxBatchSize = 8; cfg.versionPolicy = .specific([1, 3])
        cfg.inputs = [.init(name: "x", dataType: "TYPE_FP32", dims: [30])]; cfg.maxQueueSize = 10; cfg.maxQueueDelayMicroseconds = 100
        cfg.parameters = ["serving_mode": "dynamic"]
        #expect(try ModelConfigResponse(serializedBytes: ModelConfigResponse(config: cfg).serializedBytes()).config == cfg)
        cfg.responseCache = true
        #expect(try ModelConfigResponse(serializedBytes: ModelConfigResponse(config: cfg).serializedBytes()).config.responseCache)

        #expect(try HealthCheckResponse(serializedBytes: HealthCheckResponse(status: .notServing).serializedBytes()).status == .notServing)
        #expect(try ModelReadyRequest(serializedBytes: ModelReadyRequest(name: "x", version: "2").serializedBytes()) == ModelReadyRequest(name: "x", version: "2"))
    }

    @Test func garbageIsRejected() {
        #expect(throws: ProtoDecodingError.self) { try ModelInferRequest(serializedBytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]) }
        // field 1 (model_name, a string) sent as a varint: wrong wire type.
        #expect(throws: ProtoDecodingError.self) { try ModelInferRequest(serializedBytes: [0x08, 0x01]) }
        // a length that runs past the end.
        #expect(throws: ProtoDecodingError.self) { try ModelInferRequest(serializedBytes: [0x0A, 0x10, 0x41]) }
    }

    @Test func stringsWithNULBytesAreRejected() throws {
        // model_name = "dense\0junk": protobuf-c would read it as "dense".
        let name: [UInt8] = Array("dense".utf8) + [0] + Array("junk".utf8)
        #expect(throws: ProtoDecodingError.self) { try ModelInferRequest(serializedBytes: [0x0A, UInt8(name.count)] + name) }
        // inputs[0].name = "x\0y" inside a nested message.
        let input: [UInt8] = [0x0A, 3, UInt8(ascii: "x"), 0, UInt8(ascii: "y")]
        #expect(throws: ProtoDecodingError.self) { try ModelInferRequest(serializedBytes: [0x2A, UInt8(input.count)] + input) }
        #expect(throws: ProtoDecodingError.self) { try ModelReadyRequest(serializedBytes: [0x12, 3, UInt8(ascii: "1"), 0, UInt8(ascii: "2")]) }
        // NUL inside raw tensor bytes (field 7) is data, not a string.
        var ok = ModelInferRequest(); ok.modelName = "m"; ok.rawInputContents = [[0, 0, 0, 0]]
        #expect(try ModelInferRequest(serializedBytes: ok.serializedBytes()) == ok)
    }

    @Test func emptyBytesDecodeToDefaults() throws {
        #expect(try ModelInferRequest(serializedBytes: []) == ModelInferRequest())
        _ = try ServerLiveRequest(serializedBytes: [])
    }
}
