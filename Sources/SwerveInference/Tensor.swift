#if canImport(Glibc)
import Glibc
#endif
/// Element types a tensor can hold, named as KServe v2 names them.
public enum DataType: String, Sendable, CaseIterable {
    case bool = "BOOL"
    case uint8 = "UINT8"
    case int8 = "INT8"
    case int16 = "INT16"
    case int32 = "INT32"
    case int64 = "INT64"
    case fp32 = "FP32"
    case fp64 = "FP64"
    case bytes = "BYTES"

    /// The datatype named by these UTF-8 bytes (e.g. a request's `datatype`), compared in place:
    /// the same answer as `init(rawValue:)` without a String switch per request.
    public init?(utf8 name: UnsafeRawBufferPointer) {
        for (candidate, bytes) in Self.wireNames where bytes.count == name.count {
            if bytes.withUnsafeBytes({ memcmp($0.baseAddress!, name.baseAddress!, name.count) }) == 0 {
                self = candidate
                return
            }
        }
        return nil
    }

    /// Every datatype with its name's UTF-8 bytes, made once.
    private static let wireNames: [(DataType, [UInt8])] = allCases.map { ($0, Array($0.rawValue.utf8)) }

    /// Bytes per element; nil for BYTES, whose elements vary in length.
    public var byteSize: Int? {
        switch self {
        case .bool, .uint8, .int8: 1
        case .int16: 2
        case .int32, .fp32: 4
        case .int64, .fp64: 8
        case .bytes: nil
        }
    }

    /// The type for an ONNX `TensorProto.DataType` code; nil for types Swerve does not serve
    /// (FLOAT16, UINT16/32/64, complex…).
    public init?(onnxElemType: Int32) {
        switch onnxElemType {
        case 1: self = .fp32
        case 2: self = .uint8
        case 3: self = .int8
        case 5: self = .int16
        case 6: self = .int32
        case 7: self = .int64
        case 8: self = .bytes
        case 9: self = .bool
        case 11: self = .fp64
        default: return nil
        }
    }

    /// The ONNX `TensorProto.DataType` code.
    public var onnxElemType: Int32 {
        switch self {
        case .fp32: 1
        case .uint8: 2
        case .int8: 3
        case .int16: 5
        case .int32: 6
        case .int64: 7
        case .bytes: 8
        case .bool: 9
        case .fp64: 11
        }
    }
}

/// The elements of a tensor, row-major.
public enum TensorData: Sendable, Equatable {
    case fp32([Float])
    case fp64([Double])
    case int64([Int64])
    case int32([Int32])
    case int16([Int16])
    case int8([Int8])
    case uint8([UInt8])
    case bool([Bool])
    case bytes([[UInt8]])

    /// The element type.
    public var dataType: DataType {
        switch self {
        case .fp32: .fp32
        case .fp64: .fp64
        case .int64: .int64
        case .int32: .int32
        case .int16: .int16
        case .int8: .int8
        case .uint8: .uint8
        case .bool: .bool
        case .bytes: .bytes
        }
    }

    /// The number of elements.
    public var count: Int {
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

/// A dense, row-major tensor value.
public struct Tensor: Sendable, Equatable {
    /// Dimensions, outermost first; `[]` is a scalar.
    public var shape: [Int]
    public var data: TensorData

    /// The element type.
    public var dataType: DataType { data.dataType }
    /// The product of `shape`.
    public var elementCount: Int { shape.reduce(1, *) }

    /// A tensor; the element count of `data` must equal the product of `shape`.
    public init(shape: [Int], data: TensorData) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(
            shape.reduce(1, *) == data.count,
            "shape \(shape) holds \(shape.reduce(1, *)) elements but data has \(data.count)")
        self.shape = shape
        self.data = data
    }

    /// A tensor of `shape` filled with zeros (empty byte strings, false).
    public init(zeros dataType: DataType, shape: [Int]) {
        let n = shape.reduce(1, *)
        let data: TensorData =
            switch dataType {
            case .fp32: .fp32(Array(repeating: 0, count: n))
            case .fp64: .fp64(Array(repeating: 0, count: n))
            case .int64: .int64(Array(repeating: 0, count: n))
            case .int32: .int32(Array(repeating: 0, count: n))
            case .int16: .int16(Array(repeating: 0, count: n))
            case .int8: .int8(Array(repeating: 0, count: n))
            case .uint8: .uint8(Array(repeating: 0, count: n))
            case .bool: .bool(Array(repeating: false, count: n))
            case .bytes: .bytes(Array(repeating: [], count: n))
            }
        self.init(shape: shape, data: data)
    }

    /// Joins tensors along dimension 0 (the batch dimension). All parts must have the same
    /// element type and the same trailing dimensions; there must be at least one part.
    public static func concatenateRows(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty, "concatenateRows needs at least one tensor")
        if parts.count == 1 { return parts[0] }
        let first = parts[0]
        precondition(!first.shape.isEmpty, "cannot concatenate scalars along dimension 0")
        let trailing = first.shape.dropFirst()
        for p in parts {
            precondition(p.dataType == first.dataType, "concatenateRows: \(p.dataType) vs \(first.dataType)")
            precondition(p.shape.dropFirst() == trailing, "concatenateRows: shape \(p.shape) vs \(first.shape)")
        }
        let rows = parts.reduce(0) { $0 + $1.shape[0] }
        func join<T>(_ extract: (TensorData) -> [T]) -> [T] {
            var out: [T] = []
            out.reserveCapacity(rows * trailing.reduce(1, *))
            for p in parts { out.append(contentsOf: extract(p.data)) }
            return out
        }
        let data: TensorData =
            switch first.data {
            case .fp32: .fp32(join { if case .fp32(let v) = $0 { v } else { [] } })
            case .fp64: .fp64(join { if case .fp64(let v) = $0 { v } else { [] } })
            case .int64: .int64(join { if case .int64(let v) = $0 { v } else { [] } })
            case .int32: .int32(join { if case .int32(let v) = $0 { v } else { [] } })
            case .int16: .int16(join { if case .int16(let v) = $0 { v } else { [] } })
            case .int8: .int8(join { if case .int8(let v) = $0 { v } else { [] } })
            case .uint8: .uint8(join { if case .uint8(let v) = $0 { v } else { [] } })
            case .bool: .bool(join { if case .bool(let v) = $0 { v } else { [] } })
            case .bytes: .bytes(join { if case .bytes(let v) = $0 { v } else { [] } })
            }
        return Tensor(shape: [rows] + trailing, data: data)
    }

    /// The rows `range` of dimension 0, as a new tensor.
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(!shape.isEmpty, "a scalar has no rows")
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[0], "rows \(range) out of 0..<\(shape[0])")
        let width = shape.dropFirst().reduce(1, *)
        let elements = (range.lowerBound * width)..<(range.upperBound * width)
        let data: TensorData =
            switch data {
            case .fp32(let v): .fp32(Array(v[elements]))
            case .fp64(let v): .fp64(Array(v[elements]))
            case .int64(let v): .int64(Array(v[elements]))
            case .int32(let v): .int32(Array(v[elements]))
            case .int16(let v): .int16(Array(v[elements]))
            case .int8(let v): .int8(Array(v[elements]))
            case .uint8(let v): .uint8(Array(v[elements]))
            case .bool(let v): .bool(Array(v[elements]))
            case .bytes(let v): .bytes(Array(v[elements]))
            }
        var newShape = shape
        newShape[0] = range.count
        return Tensor(shape: newShape, data: data)
    }

    /// The elements as little-endian bytes, the layout of KServe's `raw_input_contents`:
    /// fixed-size types packed, BOOL one byte each, BYTES elements each a 4-byte little-endian
    /// length followed by the bytes.
    public func rawBytes() -> [UInt8] {
        func packed<T>(_ values: [T]) -> [UInt8] {
            values.withUnsafeBytes { Array($0) }  // every supported platform is little-endian
        }
        switch data {
        case .fp32(let v): return packed(v)
        case .fp64(let v): return packed(v)
        case .int64(let v): return packed(v)
        case .int32(let v): return packed(v)
        case .int16(let v): return packed(v)
        case .int8(let v): return packed(v)
        case .uint8(let v): return v
        case .bool(let v): return v.map { $0 ? 1 : 0 }
        case .bytes(let v):
            var out: [UInt8] = []
            out.reserveCapacity(v.reduce(0) { $0 + 4 + $1.count })
            for element in v {
                let n = UInt32(element.count)
                out.append(contentsOf: [UInt8(n & 0xff), UInt8((n >> 8) & 0xff), UInt8((n >> 16) & 0xff), UInt8(n >> 24)])
                out.append(contentsOf: element)
            }
            return out
        }
    }

    /// A tensor from the layout `rawBytes()` produces. Throws `invalidInput` when the byte count
    /// does not match `shape` (or a BYTES length prefix runs past the end).
    public init(rawBytes: [UInt8], dataType: DataType, shape: [Int]) throws {
        try self = rawBytes.withUnsafeBytes { try Tensor(rawBytes: $0, dataType: dataType, shape: shape) }
    }

    /// A tensor from the layout `rawBytes()` produces, read from `rawBytes` without keeping it.
    public init(rawBytes: UnsafeRawBufferPointer, dataType: DataType, shape: [Int]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw InferenceError(.invalidInput, "negative dimension in shape \(shape)")
        }
        let count = shape.reduce(1, *)
        if let size = dataType.byteSize, rawBytes.count != count * size {
            throw InferenceError(
                .invalidInput,
                "\(dataType.rawValue) tensor of shape \(shape) needs \(count * size) bytes, got \(rawBytes.count)")
        }
        @inline(__always) func load<T>(_: T.Type) -> [T] {
            [T](unsafeUninitializedCapacity: count) { buffer, initialized in
                if count > 0 {
                    UnsafeMutableRawBufferPointer(buffer).copyMemory(from: rawBytes)
                }
                initialized = count
            }
        }
        let data: TensorData
        switch dataType {
        case .fp32: data = .fp32(load(Float.self))
        case .fp64: data = .fp64(load(Double.self))
        case .int64: data = .int64(load(Int64.self))
        case .int32: data = .int32(load(Int32.self))
        case .int16: data = .int16(load(Int16.self))
        case .int8: data = .int8(load(Int8.self))
        case .uint8: data = .uint8(Array(rawBytes))
        case .bool: data = .bool(rawBytes.map { $0 != 0 })
        case .bytes:
            var elements: [[UInt8]] = []
            elements.reserveCapacity(count)
            var offset = 0
            while elements.count < count {
                guard offset + 4 <= rawBytes.count else {
                    throw InferenceError(
                        .invalidInput,
                        "BYTES tensor of shape \(shape): length prefix of element \(elements.count) runs past the end")
                }
                let n = Int(rawBytes[offset]) | Int(rawBytes[offset + 1]) << 8 | Int(rawBytes[offset + 2]) << 16
                    | Int(rawBytes[offset + 3]) << 24
                offset += 4
                guard offset + n <= rawBytes.count else {
                    throw InferenceError(
                        .invalidInput,
                        "BYTES tensor of shape \(shape): element \(elements.count) of \(n) bytes runs past the end")
                }
                elements.append(Array(rawBytes[offset..<(offset + n)]))
                offset += n
            }
            guard offset == rawBytes.count else {
                throw InferenceError(
                    .invalidInput,
                    "BYTES tensor of shape \(shape): \(rawBytes.count - offset) bytes left after \(count) elements")
            }
            data = .bytes(elements)
        }
        self.init(shape: shape, data: data)
    }
}

/// The name, element type and shape of a model input or output. A dimension of -1 is dynamic
/// (the batch dimension).
public struct TensorInfo: Sendable, Equatable {
    public var name: String
    public var dataType: DataType
    public var shape: [Int]

    public init(name: String, dataType: DataType, shape: [Int]) {
        self.name = name
        self.dataType = dataType
        self.shape = shape
    }
}

/// The one error type of the inference layer.
public struct InferenceError: Error, Sendable, CustomStringConvertible {
    /// Why the operation failed; the serving layer maps these to RPC status codes.
    public enum Code: Sendable, Hashable {
        /// The model file is not a model Swerve can load (bad bytes, bad graph).
        case invalidModel
        /// The model is valid ONNX but uses an operator (or a form of one) Swerve lacks.
        case unsupportedOperator
        /// A request's tensors do not match the model.
        case invalidInput
        /// A bug or resource failure inside Swerve.
        case internalError
    }

    public var code: Code
    /// What went wrong, for a person.
    public var message: String
    /// The underlying error, when there is one.
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        let prefix: String =
            switch code {
            case .invalidModel: "invalid model"
            case .unsupportedOperator: "unsupported model"
            case .invalidInput: "invalid input"
            case .internalError: "internal error"
            }
        return "\(prefix): \(message)"
    }
}
