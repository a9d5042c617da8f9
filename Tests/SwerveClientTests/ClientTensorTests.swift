import SwerveProto
import SwerveTransport
import Testing

@testable import SwerveClient
import SwerveStatus

@Suite struct ClientTensorTests {
    @Test func fp32RawIsLittleEndianIEEE() throws {
        let t = ClientTensor(shape: [2], fp32: [1.0, -2.5])
        // 1.0 = 0x3F800000, -2.5 = 0xC0200000, least significant byte first.
        #expect(try t.rawBytes() == [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0])
    }

    @Test func bytesRawHasFourByteLittleEndianLengthPrefixes() throws {
        let t = ClientTensor(shape: [2], strings: ["ab", ""])
        #expect(try t.rawBytes() == [2, 0, 0, 0, 0x61, 0x62, 0, 0, 0, 0])
    }

    @Test func narrowIntegersUseTheirOwnWidth() throws {
        #expect(try ClientTensor(shape: [2], values: .int8([-1, 5])).rawBytes() == [0xFF, 5])
        #expect(try ClientTensor(shape: [1], values: .uint16([0x0102])).rawBytes() == [0x02, 0x01])
        #expect(try ClientTensor(shape: [2], values: .bool([true, false])).rawBytes() == [1, 0])
    }

    @Test func typedContentsWidenNarrowIntegers() throws {
        let int8 = try ClientTensor(shape: [2], values: .int8([-128, 127])).typedContents()
        #expect(int8.intContents == [-128, 127])
        #expect(int8.count == 2)
        let uint16 = try ClientTensor(shape: [1], values: .uint16([65535])).typedContents()
        #expect(uint16.uintContents == [65535])
        #expect(uint16.count == 1)
    }

    @Test func datatypeIsTheValuesElementType() {
        #expect(ClientTensor(shape: [1], values: .uint32([1])).datatype == "UINT32")
        #expect(ClientTensor(shape: [1], fp32: [1]).datatype == "FP32")
        #expect(ClientTensor(shape: [1], strings: ["a"]).datatype == "BYTES")
    }

    @Test func int32ValuesWidenInt8AndInt16() {
        #expect(ClientTensor(shape: [2], values: .int8([-1, 2])).int32Values == [-1, 2])
        #expect(ClientTensor(shape: [1], values: .int16([-300])).int32Values == [-300])
        #expect(ClientTensor(shape: [1], values: .uint16([3])).int32Values == nil)
    }

    @Test(arguments: [
        ClientTensor(shape: [2, 2], fp32: [0.5, -1, .infinity, 3e-38]),
        ClientTensor(shape: [3], fp64: [1e300, -0.0, 2]),
        ClientTensor(shape: [2], int64: [Int64.min, Int64.max]),
        ClientTensor(shape: [2], int32: [Int32.min, 7]),
        ClientTensor(shape: [2], values: .int16([-32768, 32767])),
        ClientTensor(shape: [3], values: .int8([-128, 0, 127])),
        ClientTensor(shape: [2], values: .uint8([0, 255])),
        ClientTensor(shape: [2], values: .uint16([0, 65535])),
        ClientTensor(shape: [2], values: .uint32([0, UInt32.max])),
        ClientTensor(shape: [1], values: .uint64([UInt64.max])),
        ClientTensor(shape: [2, 1], bool: [true, false]),
        ClientTensor(shape: [3], strings: ["", "héllo", "x"]),
        ClientTensor(shape: [], fp32: [4]),
    ])
    func rawAndTypedRoundTrip(_ tensor: ClientTensor) throws {
        let fromRaw = try ClientTensor(datatype: tensor.datatype, shape: tensor.shape, rawBytes: try tensor.rawBytes())
        #expect(fromRaw == tensor)
        let fromTyped = try ClientTensor(datatype: tensor.datatype, shape: tensor.shape, contents: try tensor.typedContents())
        #expect(fromTyped == tensor)
    }

    @Test func mismatchesAreInvalidArgument() {
        // Values of the wrong type or out of range for the datatype cannot be built at all: each
        // datatype has its own case. What is left to check is the shape.
        let cases: [ClientTensor] = [
            ClientTensor(shape: [3], fp32: [1, 2]),  // count vs shape
            ClientTensor(shape: [-1], fp32: [1]),  // negative dimension
            ClientTensor(shape: [Int64.max, 4], fp32: [1]),  // element count overflows
        ]
        for tensor in cases {
            for encode in [{ _ = try tensor.rawBytes() }, { _ = try tensor.typedContents() }] {
                do {
                    try encode()
                    Issue.record("\(tensor) encoded")
                } catch let status as GRPCStatus {
                    #expect(status.code == .invalidArgument)
                } catch {
                    Issue.record("unexpected \(error)")
                }
            }
        }
    }

    @Test func undecodableDatatypesAndContentsAreInvalidArgument() throws {
        func expectInvalid(_ message: String, _ decode: () throws -> ClientTensor) {
            #expect(throws: GRPCStatus(.invalidArgument, message)) { _ = try decode() }
        }
        expectInvalid("datatype FP16 is not supported by this client") { try ClientTensor(datatype: "FP16", shape: [1], rawBytes: [0, 0]) }
        expectInvalid("unknown datatype 'COMPLEX'") { try ClientTensor(datatype: "COMPLEX", shape: [1], contents: InferTensorContents()) }
        var wide = InferTensorContents()
        wide.intContents = [200]
        expectInvalid("INT8 value out of range") { try ClientTensor(datatype: "INT8", shape: [1], contents: wide) }
        #expect(try ClientTensor(datatype: "INT16", shape: [1], contents: wide).values == .int16([200]))
        expectInvalid("FP32 values must be in the fp32_contents field of contents only") {
            try ClientTensor(datatype: "FP32", shape: [1], contents: wide)
        }
        expectInvalid("negative dimension in shape [-1]") { try ClientTensor(datatype: "FP32", shape: [-1], rawBytes: []) }
    }

    @Test func truncatedRawContentsAreRejected() {
        #expect(throws: GRPCStatus.self) { try ClientTensor(datatype: "FP32", shape: [2], rawBytes: [0, 0, 0, 0, 0]) }
        // A BYTES length prefix that runs past the end.
        #expect(throws: GRPCStatus.self) { try ClientTensor(datatype: "BYTES", shape: [1], rawBytes: [9, 0, 0, 0, 1]) }
        // Fewer BYTES elements than the shape holds.
        #expect(throws: GRPCStatus.self) { try ClientTensor(datatype: "BYTES", shape: [2], rawBytes: [1, 0, 0, 0, 1]) }
    }

    @Test func makeInferRequestOrdersInputsByNameAndFillsOneRawEntryEach() throws {
        let request = try SwerveClient.makeInferRequest(
            model: "m", version: "3",
            inputs: ["b": ClientTensor(shape: [1], int64: [7]), "a": ClientTensor(shape: [1], fp32: [1])],
            outputs: ["y"])
        #expect(request.modelName == "m")
        #expect(request.modelVersion == "3")
        #expect(request.inputs.map(\.name) == ["a", "b"])
        #expect(request.inputs.map(\.datatype) == ["FP32", "INT64"])
        #expect(request.rawInputContents == [[0, 0, 0x80, 0x3F], [7, 0, 0, 0, 0, 0, 0, 0]])
        #expect(request.inputs.allSatisfy { $0.contents == nil })
        #expect(request.outputs.map(\.name) == ["y"])

        let typed = try SwerveClient.makeInferRequest(model: "m", inputs: ["a": ClientTensor(shape: [1], fp32: [1])], raw: false)
        #expect(typed.rawInputContents.isEmpty)
        #expect(typed.inputs[0].contents?.fp32Contents == [1])
    }

    @Test func inferResultRejectsMismatchedRawOutputs() {
        var response = ModelInferResponse()
        response.outputs = [
            .init(name: "a", datatype: "FP32", shape: [1]),
            .init(name: "b", datatype: "FP32", shape: [1]),
        ]
        response.rawOutputContents = [[0, 0, 0, 0]]
        #expect(throws: GRPCStatus(.internal, "response has 2 outputs but 1 raw output contents")) { try InferResult(response) }
        response.rawOutputContents = [[0, 0, 0, 0], [0, 0, 0]]
        #expect(throws: GRPCStatus.self) { try InferResult(response) }
    }
}
