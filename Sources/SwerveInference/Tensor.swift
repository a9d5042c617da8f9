#if canImport(Glibc)
import Glibc
#endif
import SwerveProto

/// Element types the inference core computes with, named as KServe v2 names them: a subset of
/// the protocol's `TensorValues.ElementType` (no UINT16, UINT32 or UINT64, which no operator
/// here handles; the server refuses such inputs by this list).
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
    public var byteSize: Int? { elementType.byteSize }

    /// The protocol's element type of the same name.
    public var elementType: TensorValues.ElementType {
        switch self {
        case .bool: .bool
        case .uint8: .uint8
        case .int8: .int8
        case .int16: .int16
        case .int32: .int32
        case .int64: .int64
        case .fp32: .fp32
        case .fp64: .fp64
        case .bytes: .bytes
        }
    }

    /// The core's type for a protocol element type; nil for UINT16, UINT32 and UINT64.
    public init?(_ elementType: TensorValues.ElementType) {
        switch elementType {
        case .bool: self = .bool
        case .uint8: self = .uint8
        case .int8: self = .int8
        case .int16: self = .int16
        case .int32: self = .int32
        case .int64: self = .int64
        case .fp32: self = .fp32
        case .fp64: self = .fp64
        case .bytes: self = .bytes
        case .uint16, .uint32, .uint64: return nil
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

/// The elements of a tensor, row-major: the protocol's one representation of tensor values,
/// under the name the core has always used. A `Tensor` holds only the element types `DataType`
/// lists.
public typealias TensorData = TensorValues

extension TensorValues {
    /// Whether these values are of an element type the core computes with (`DataType`).
    @inline(__always)
    public var isCoreElementType: Bool {
        switch self {
        case .bool, .int8, .int16, .int32, .int64, .uint8, .fp32, .fp64, .bytes: true
        case .uint16, .uint32, .uint64: false
        }
    }

    /// The core's element type. Only for values a `Tensor` holds: the core never holds
    /// UINT16, UINT32 or UINT64 values (`Tensor.init` refuses them).
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
        case .uint16, .uint32, .uint64:
            preconditionFailure("the inference core has no \(elementType.rawValue) tensors")
        }
    }
}

/// A dense, row-major tensor value.
public struct Tensor: Sendable, Equatable {
    /// Dimensions, outermost first; `[]` is a scalar.
    public var shape: [Int]
    /// The elements, of an element type `DataType` lists.
    public private(set) var data: TensorData

    /// The element type.
    public var dataType: DataType { data.dataType }
    /// The product of `shape`.
    public var elementCount: Int { shape.reduce(1, *) }

    /// A tensor; the element count of `data` must equal the product of `shape`.
    public init(shape: [Int], data: TensorData) {
        precondition(data.isCoreElementType, "the inference core has no \(data.elementType.rawValue) tensors")
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
        let data = TensorData.concatenating(parts.lazy.map(\.data))
        return Tensor(shape: [rows] + trailing, data: data)
    }

    /// The rows `range` of dimension 0, as a new tensor.
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(!shape.isEmpty, "a scalar has no rows")
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[0], "rows \(range) out of 0..<\(shape[0])")
        let width = shape.dropFirst().reduce(1, *)
        let elements = (range.lowerBound * width)..<(range.upperBound * width)
        let data = data.gathering(CollectionOfOne(elements))
        var newShape = shape
        newShape[0] = range.count
        return Tensor(shape: newShape, data: data)
    }

    /// A tensor from KServe's raw layout (`TensorValues.rawBytes`). Throws `invalidInput` when
    /// the byte count does not match `shape` (or a BYTES length prefix runs past the end).
    public init(rawBytes: [UInt8], dataType: DataType, shape: [Int]) throws {
        try self = rawBytes.withUnsafeBytes { try Tensor(rawBytes: $0, dataType: dataType, shape: shape) }
    }

    /// A tensor from KServe's raw layout, read from `rawBytes` without keeping it.
    public init(rawBytes: UnsafeRawBufferPointer, dataType: DataType, shape: [Int]) throws {
        let data: TensorData
        do {
            data = try TensorData(rawBytes: rawBytes, as: dataType.elementType, shape: shape)
        } catch {
            throw InferenceError(.invalidInput, error.message, cause: error)
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
