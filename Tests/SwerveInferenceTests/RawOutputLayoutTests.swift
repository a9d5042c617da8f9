import SwerveProto
import Testing
@testable import SwerveInference

/// The raw bytes `ModelInferResponse.serialize(..., raw: true, ...)` puts in
/// `raw_output_contents` must be exactly `TensorData.rawBytes` for every DataType, when a tensor's
/// values are handed over the way the server does (its `data`, as it is), and must read back
/// with `Tensor(rawBytes:dataType:shape:)`.
@Suite struct RawOutputLayoutTests {
    static func sample(_ dt: DataType) -> Tensor {
        switch dt {
        case .bool: Tensor(shape: [2, 3], data: .bool([true, false, true, false, false, true]))
        case .uint8: Tensor(shape: [5], data: .uint8([0, 1, 127, 128, 255]))
        case .int8: Tensor(shape: [5], data: .int8([.min, -1, 0, 1, .max]))
        case .int16: Tensor(shape: [1, 5], data: .int16([.min, -1, 0, 0x1234, .max]))
        case .int32: Tensor(shape: [4], data: .int32([.min, -1, 0x0102_0304, .max]))
        case .int64: Tensor(shape: [2, 2], data: .int64([.min, -1, 0x0102_0304_0506_0708, .max]))
        case .fp32: Tensor(shape: [4], data: .fp32([0, -0.0, 3.5, -.infinity]))
        case .fp64: Tensor(shape: [3], data: .fp64([.pi, -2.5e-300, .greatestFiniteMagnitude]))
        case .bytes: Tensor(shape: [4], data: .bytes([Array("a".utf8), [], [0, 0, 1], Array(repeating: 9, count: 260)]))
        }
    }

    static func rawResponse(_ tensors: [(String, Tensor)]) throws -> ModelInferResponse {
        let bytes = ModelInferResponse.serialize(modelName: "m", modelVersion: "1", id: "", raw: true, outputCount: tensors.count) { i in
            let (name, t) = tensors[i]
            return (name: name, shape: t.shape, values: t.data)
        }
        return try ModelInferResponse(serializedBytes: bytes)
    }

    @Test(arguments: DataType.allCases) func rawOutputMatchesTensorRawBytes(dataType: DataType) throws {
        for tensor in [Self.sample(dataType), Tensor(zeros: dataType, shape: [0, 2]), Tensor(zeros: dataType, shape: [])] {
            let response = try Self.rawResponse([("y", tensor)])
            let raw = try #require(response.rawOutputContents.first)
            #expect(response.rawOutputContents.count == 1)
            #expect(raw == tensor.data.rawBytes, "\(dataType.rawValue) shape \(tensor.shape)")
            if let size = dataType.byteSize { #expect(raw.count == tensor.elementCount * size) }
            let o = try #require(response.outputs.first)
            #expect(o.datatype == dataType.rawValue)
            #expect(o.shape == tensor.shape.map(Int64.init))
            #expect(o.contents == nil)
            #expect(try Tensor(rawBytes: raw, dataType: dataType, shape: tensor.shape) == tensor)
        }
    }

    @Test func everyDataTypeInOneResponse() throws {
        let tensors = DataType.allCases.map { ($0.rawValue.lowercased(), Self.sample($0)) }
        let response = try Self.rawResponse(tensors)
        #expect(response.outputs.map(\.name) == tensors.map(\.0))
        #expect(response.rawOutputContents == tensors.map { $0.1.data.rawBytes })
    }

    @Test func typedOutputReadsBackToTheSameValues() throws {
        // The typed (non-raw) form keeps narrow integers widened in int/uint contents.
        let tensors = DataType.allCases.map { ($0.rawValue, Self.sample($0)) }
        let bytes = ModelInferResponse.serialize(modelName: "m", modelVersion: "1", id: "", raw: false, outputCount: tensors.count) { i in
            (name: tensors[i].0, shape: tensors[i].1.shape, values: tensors[i].1.data)
        }
        let response = try ModelInferResponse(serializedBytes: bytes)
        #expect(response.rawOutputContents.isEmpty)
        for (i, (_, t)) in tensors.enumerated() {
            let c = try #require(response.outputs[i].contents)
            switch t.data {
            case .fp32(let v): #expect(c.fp32Contents == v)
            case .fp64(let v): #expect(c.fp64Contents == v)
            case .int64(let v): #expect(c.int64Contents == v)
            case .int32(let v): #expect(c.intContents == v)
            case .int16(let v): #expect(c.intContents == v.map(Int32.init))
            case .int8(let v): #expect(c.intContents == v.map(Int32.init))
            case .uint8(let v): #expect(c.uintContents == v.map(UInt32.init))
            case .bool(let v): #expect(c.boolContents == v)
            case .bytes(let v): #expect(c.bytesContents == v)
            case .uint16, .uint32, .uint64: Issue.record("the core made a \(t.data.elementType.rawValue) tensor")
            }
            #expect(response.outputs[i].datatype == t.dataType.rawValue)
            #expect(c.count == t.elementCount)
        }
    }
}
