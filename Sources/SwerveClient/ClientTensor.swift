import SwerveProto
import SwerveStatus

/// A tensor as a client sends or receives it: a shape and row-major values, whose element type
/// is the tensor's KServe datatype.
///
/// Every datatype but FP16 and BF16 (not supported) has its own `TensorValues` case, so values
/// cannot disagree with their datatype. On the wire, raw contents are little-endian at the
/// datatype's own width, and each BYTES element is a 4-byte little-endian length followed by
/// its bytes; typed contents carry INT8 and INT16 widened in `int_contents`, UINT8 and UINT16 in
/// `uint_contents`. Both layouts are `TensorValues`'s, the ones the server uses.
public struct ClientTensor: Sendable, Equatable {
    /// Dimensions, outermost first; `[]` is a scalar.
    public var shape: [Int64]
    /// The elements, row-major.
    public var values: TensorValues

    /// The KServe datatype name, e.g. "FP32", "INT64", "BYTES": the values' element type.
    public var datatype: String { values.elementType.rawValue }

    /// A tensor. Whether `values` fits `shape` is checked when it is encoded.
    public init(shape: [Int64], values: TensorValues) {
        self.shape = shape
        self.values = values
    }

    /// An FP32 tensor.
    public init(shape: [Int64], fp32 values: [Float]) { self.init(shape: shape, values: .fp32(values)) }
    /// An FP64 tensor.
    public init(shape: [Int64], fp64 values: [Double]) { self.init(shape: shape, values: .fp64(values)) }
    /// An INT64 tensor.
    public init(shape: [Int64], int64 values: [Int64]) { self.init(shape: shape, values: .int64(values)) }
    /// An INT32 tensor.
    public init(shape: [Int64], int32 values: [Int32]) { self.init(shape: shape, values: .int32(values)) }
    /// A BOOL tensor.
    public init(shape: [Int64], bool values: [Bool]) { self.init(shape: shape, values: .bool(values)) }
    /// A BYTES tensor.
    public init(shape: [Int64], bytes values: [[UInt8]]) { self.init(shape: shape, values: .bytes(values)) }
    /// A BYTES tensor of UTF-8 strings.
    public init(shape: [Int64], strings values: [String]) { self.init(shape: shape, bytes: values.map { Array($0.utf8) }) }

    /// The product of `shape`.
    public var elementCount: Int { shape.reduce(1) { $0 * Int($1) } }

    /// The values as `Float`s when the datatype is FP32.
    public var fp32Values: [Float]? { if case .fp32(let v) = values { v } else { nil } }
    /// The values as `Double`s when the datatype is FP64.
    public var fp64Values: [Double]? { if case .fp64(let v) = values { v } else { nil } }
    /// The values as `Int64`s when the datatype is INT64.
    public var int64Values: [Int64]? { if case .int64(let v) = values { v } else { nil } }
    /// The values as `Int32`s when the datatype is INT8, INT16 or INT32 (narrower ones widened).
    public var int32Values: [Int32]? {
        switch values {
        case .int32(let v): v
        case .int16(let v): v.map(Int32.init)
        case .int8(let v): v.map(Int32.init)
        default: nil
        }
    }
    /// The values as `Bool`s when the datatype is BOOL.
    public var boolValues: [Bool]? { if case .bool(let v) = values { v } else { nil } }
    /// The elements' bytes when the datatype is BYTES.
    public var bytesValues: [[UInt8]]? { if case .bytes(let v) = values { v } else { nil } }
    /// The elements as strings (invalid UTF-8 repaired) when the datatype is BYTES.
    public var stringValues: [String]? { bytesValues?.map { String(decoding: $0, as: UTF8.self) } }
}

// MARK: - Encoding

extension ClientTensor {
    /// Checks that the shape is non-negative and holds as many elements as there are values.
    private func validate() throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw GRPCStatus(.invalidArgument, "shape \(shape) has a negative dimension")
        }
        var count = 1
        for d in try Self.dimensions(shape) {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw GRPCStatus(.invalidArgument, "shape \(shape) holds too many elements") }
            count = product
        }
        guard values.count == count else {
            throw GRPCStatus(.invalidArgument, "shape \(shape) holds \(count) elements but \(values.count) values were given")
        }
    }

    /// The values as raw contents (`TensorValues.rawBytes`).
    /// - Throws: INVALID_ARGUMENT when the values do not fit the shape, or a BYTES element is
    ///   too long for its 4-byte length prefix.
    public func rawBytes() throws -> [UInt8] {
        try validate()
        if case .bytes(let v) = values, let long = v.first(where: { $0.count > TensorValues.maxRawBytesElementCount }) {
            throw GRPCStatus(.invalidArgument, "a BYTES element of \(long.count) bytes is too long")
        }
        return values.rawBytes
    }

    /// The values as typed `contents` (the field KServe assigns to the datatype).
    /// - Throws: INVALID_ARGUMENT when the values do not fit the shape.
    public func typedContents() throws -> InferTensorContents {
        try validate()
        return InferTensorContents(values)
    }
}

// MARK: - Decoding

extension ClientTensor {
    /// Decodes raw contents of `datatype` and `shape`.
    /// - Throws: INVALID_ARGUMENT for an unsupported datatype, or when the bytes do not hold
    ///   the shape's elements exactly.
    public init(datatype: String, shape: [Int64], rawBytes bytes: [UInt8]) throws {
        let type = try Self.elementType(datatype)
        let dims = try Self.dimensions(shape)
        do {
            values = try bytes.withUnsafeBytes { try TensorValues(rawBytes: $0, as: type, shape: dims) }
        } catch let error as ProtoDecodingError {
            throw GRPCStatus(.invalidArgument, error.message)
        }
        self.shape = shape
    }

    /// Decodes typed contents of `datatype` and `shape`.
    /// - Throws: INVALID_ARGUMENT for an unsupported datatype, when a value is out of range for
    ///   the datatype, when a field other than the datatype's holds values, or when the count
    ///   does not match the shape.
    public init(datatype: String, shape: [Int64], contents: InferTensorContents) throws {
        let type = try Self.elementType(datatype)
        let dims = try Self.dimensions(shape)
        do {
            values = try TensorValues(contents: contents, as: type, shape: dims)
        } catch {
            throw GRPCStatus(.invalidArgument, error.message)
        }
        self.shape = shape
    }

    /// The element type a datatype name stands for.
    private static func elementType(_ datatype: String) throws -> TensorValues.ElementType {
        if let type = TensorValues.ElementType(rawValue: datatype) { return type }
        if datatype == "FP16" || datatype == "BF16" {
            throw GRPCStatus(.invalidArgument, "datatype \(datatype) is not supported by this client")
        }
        throw GRPCStatus(.invalidArgument, "unknown datatype '\(datatype)'")
    }

    /// A peer's shape as `Int`s.
    private static func dimensions(_ shape: [Int64]) throws -> [Int] {
        try shape.map { d in
            guard let n = Int(exactly: d) else { throw GRPCStatus(.invalidArgument, "shape \(shape) has a dimension out of range") }
            return n
        }
    }
}

/// The decoded outcome of a ModelInfer call.
public struct InferResult: Sendable, Equatable {
    /// The model that answered.
    public var modelName: String
    /// The version that answered.
    public var modelVersion: String
    /// The request id echoed back.
    public var id: String
    /// Output names in the order the server sent them.
    public var outputNames: [String]
    /// Outputs by name.
    public var outputs: [String: ClientTensor]

    /// The output called `name`.
    public subscript(name: String) -> ClientTensor? { outputs[name] }

    /// Decodes a response's outputs, raw or typed.
    /// - Throws: INTERNAL when the response's contents do not match its declared datatypes and shapes.
    public init(_ response: ModelInferResponse) throws {
        modelName = response.modelName
        modelVersion = response.modelVersion
        id = response.id
        outputNames = response.outputs.map(\.name)
        outputs = [:]
        let raw = response.rawOutputContents
        guard raw.isEmpty || raw.count == response.outputs.count else {
            throw GRPCStatus(.internal, "response has \(response.outputs.count) outputs but \(raw.count) raw output contents")
        }
        for (i, output) in response.outputs.enumerated() {
            do {
                if !raw.isEmpty {
                    outputs[output.name] = try ClientTensor(datatype: output.datatype, shape: output.shape, rawBytes: raw[i])
                } else {
                    outputs[output.name] = try ClientTensor(
                        datatype: output.datatype, shape: output.shape, contents: output.contents ?? InferTensorContents())
                }
            } catch let status as GRPCStatus {
                throw GRPCStatus(.internal, "cannot decode output '\(output.name)': \(status.message)")
            }
        }
    }
}
