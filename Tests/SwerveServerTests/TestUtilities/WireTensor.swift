import Foundation
import SwerveProto

/// A tensor as the Open Inference Protocol carries it, encoded and decoded here by the tests
/// themselves (little-endian raw bytes, typed `contents` fields) rather than by SwerveClient, so the
/// server is checked against an independent reading of the protocol.
struct WireTensor: Equatable, CustomStringConvertible {
    enum Values: Equatable {
        case fp32([Float]), fp64([Double]), int64([Int64]), int32([Int32]), int16([Int16]), int8([Int8]), uint8([UInt8])
        case bool([Bool]), bytes([[UInt8]])

        var count: Int {
            switch self {
            case .fp32(let v): v.count
            case .fp64(let v): v.count
            case .int64(let v): v.count
            case .int32(let v): v.count
            case .int16(let v): v.count
            case .int8(let v): v.count
            case .uint8(let v): v.count
            case .bool(let v): v.count
            case .bytes(let v): v.count
            }
        }
    }

    var name: String
    var datatype: String
    var shape: [Int64]
    var values: Values

    var description: String { "\(name) \(datatype) \(shape)" }

    static func fp32(_ name: String, _ shape: [Int64], _ v: [Float]) -> WireTensor { .init(name: name, datatype: "FP32", shape: shape, values: .fp32(v)) }
    static func int64(_ name: String, _ shape: [Int64], _ v: [Int64]) -> WireTensor { .init(name: name, datatype: "INT64", shape: shape, values: .int64(v)) }
    static func int8(_ name: String, _ shape: [Int64], _ v: [Int8]) -> WireTensor { .init(name: name, datatype: "INT8", shape: shape, values: .int8(v)) }
    static func int16(_ name: String, _ shape: [Int64], _ v: [Int16]) -> WireTensor { .init(name: name, datatype: "INT16", shape: shape, values: .int16(v)) }
    static func uint8(_ name: String, _ shape: [Int64], _ v: [UInt8]) -> WireTensor { .init(name: name, datatype: "UINT8", shape: shape, values: .uint8(v)) }
    static func strings(_ name: String, _ shape: [Int64], _ v: [String]) -> WireTensor {
        .init(name: name, datatype: "BYTES", shape: shape, values: .bytes(v.map { Array($0.utf8) }))
    }

    /// The typed `contents`, in the field the protocol assigns to the datatype (the 8- and 16-bit
    /// integers widened into `int_contents` / `uint_contents`).
    var contents: InferTensorContents {
        var c = InferTensorContents()
        switch values {
        case .fp32(let v): c.fp32Contents = v
        case .fp64(let v): c.fp64Contents = v
        case .int64(let v): c.int64Contents = v
        case .int32(let v): c.intContents = v
        case .int16(let v): c.intContents = v.map(Int32.init)
        case .int8(let v): c.intContents = v.map(Int32.init)
        case .uint8(let v): c.uintContents = v.map(UInt32.init)
        case .bool(let v): c.boolContents = v
        case .bytes(let v): c.bytesContents = v
        }
        return c
    }

    /// The raw form: elements little-endian back to back; BYTES elements each after a 4-byte
    /// little-endian length.
    var rawBytes: [UInt8] {
        var out: [UInt8] = []
        func put<T: FixedWidthInteger>(_ x: T) { withUnsafeBytes(of: x.littleEndian) { out += $0 } }
        switch values {
        case .fp32(let v): v.forEach { put($0.bitPattern) }
        case .fp64(let v): v.forEach { put($0.bitPattern) }
        case .int64(let v): v.forEach(put)
        case .int32(let v): v.forEach(put)
        case .int16(let v): v.forEach(put)
        case .int8(let v): v.forEach(put)
        case .uint8(let v): out = v
        case .bool(let v): out = v.map { $0 ? 1 : 0 }
        case .bytes(let v): for e in v { put(UInt32(e.count)); out += e }
        }
        return out
    }

    var inputTensor: ModelInferRequest.InputTensor { .init(name: name, datatype: datatype, shape: shape) }

    /// Reads an output from its typed `contents` or, when given, its raw bytes.
    init(_ output: ModelInferResponse.OutputTensor, raw: [UInt8]?) throws {
        name = output.name
        datatype = output.datatype
        shape = output.shape
        if let raw {
            values = try Self.decodeRaw(raw, datatype: datatype)
        } else {
            let c = output.contents ?? InferTensorContents()
            switch datatype {
            case "FP32": values = .fp32(c.fp32Contents)
            case "FP64": values = .fp64(c.fp64Contents)
            case "INT64": values = .int64(c.int64Contents)
            case "INT32": values = .int32(c.intContents)
            case "INT16": values = .int16(try c.intContents.map { try Self.narrow($0) })
            case "INT8": values = .int8(try c.intContents.map { try Self.narrow($0) })
            case "UINT8": values = .uint8(try c.uintContents.map { try Self.narrow($0) })
            case "BOOL": values = .bool(c.boolContents)
            case "BYTES": values = .bytes(c.bytesContents)
            default: throw WireError("output \(output.name): unexpected datatype \(datatype)")
            }
            guard c.count == values.count else { throw WireError("output \(output.name): values in more than one contents field") }
        }
    }

    init(name: String, datatype: String, shape: [Int64], values: Values) {
        self.name = name
        self.datatype = datatype
        self.shape = shape
        self.values = values
    }

    private static func narrow<From: BinaryInteger, To: FixedWidthInteger>(_ x: From) throws -> To {
        guard let y = To(exactly: x) else { throw WireError("\(x) does not fit \(To.self)") }
        return y
    }

    static func decodeRaw(_ raw: [UInt8], datatype: String) throws -> Values {
        func read<T: FixedWidthInteger>(_: T.Type) throws -> [T] {
            let size = MemoryLayout<T>.size
            guard raw.count % size == 0 else { throw WireError("\(raw.count) raw bytes are not whole \(datatype) elements") }
            return stride(from: 0, to: raw.count, by: size).map { i in
                raw[i..<i + size].reversed().reduce(T.zero) { $0 << 8 | T(truncatingIfNeeded: $1) }
            }
        }
        switch datatype {
        case "FP32": return .fp32(try read(UInt32.self).map(Float.init(bitPattern:)))
        case "FP64": return .fp64(try read(UInt64.self).map(Double.init(bitPattern:)))
        case "INT64": return .int64(try read(Int64.self))
        case "INT32": return .int32(try read(Int32.self))
        case "INT16": return .int16(try read(Int16.self))
        case "INT8": return .int8(raw.map { Int8(bitPattern: $0) })
        case "UINT8": return .uint8(raw)
        case "BOOL": return .bool(raw.map { $0 != 0 })
        case "BYTES":
            var out: [[UInt8]] = []
            var i = 0
            while i < raw.count {
                guard i + 4 <= raw.count else { throw WireError("BYTES length prefix cut short at \(i)") }
                let n = Int(raw[i..<i + 4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
                i += 4
                guard i + n <= raw.count else { throw WireError("BYTES element of \(n) bytes cut short at \(i)") }
                out.append(Array(raw[i..<i + n]))
                i += n
            }
            return .bytes(out)
        default: throw WireError("unexpected datatype \(datatype)")
        }
    }
}

struct WireError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A ModelInfer request carrying `inputs` as raw bytes or typed contents.
func inferRequest(
    _ model: String, version: String = "", _ inputs: [WireTensor], raw: Bool, outputs: [String] = [], id: String = ""
) -> ModelInferRequest {
    var request = ModelInferRequest()
    request.modelName = model
    request.modelVersion = version
    request.id = id
    for tensor in inputs {
        var input = tensor.inputTensor
        if raw {
            request.rawInputContents.append(tensor.rawBytes)
        } else {
            input.contents = tensor.contents
        }
        request.inputs.append(input)
    }
    request.outputs = outputs.map { ModelInferRequest.RequestedOutput(name: $0) }
    return request
}

/// The response's outputs, in order, read from raw contents when it has them and typed contents
/// otherwise.
func outputs(of response: ModelInferResponse) throws -> [WireTensor] {
    let raw = !response.rawOutputContents.isEmpty
    if raw && response.rawOutputContents.count != response.outputs.count {
        throw WireError("\(response.rawOutputContents.count) raw outputs for \(response.outputs.count) outputs")
    }
    return try response.outputs.enumerated().map { i, output in
        if raw && output.contents != nil { throw WireError("output \(output.name) has both raw and typed contents") }
        return try WireTensor(output, raw: raw ? response.rawOutputContents[i] : nil)
    }
}
