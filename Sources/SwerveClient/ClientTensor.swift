import SwerveProto
import SwerveTransport
import SwerveStatus

/// A tensor as a client sends or receives it: a KServe datatype name, a shape and row-major
/// values.
///
/// The values' Swift type follows the KServe typed-contents rules: BOOL holds `.bool`; INT8,
/// INT16 and INT32 hold `.int32`; INT64 `.int64`; UINT8, UINT16 and UINT32 `.uint32`; UINT64
/// `.uint64`; FP32 `.fp32`; FP64 `.fp64`; BYTES `.bytes`. On the wire, raw contents are
/// little-endian at the datatype's own width, and each BYTES element is a 4-byte
/// little-endian length followed by its bytes. FP16 and BF16 are not supported.
public struct ClientTensor: Sendable, Equatable {
    /// Row-major element values.
    public enum Values: Sendable, Equatable {
        case bool([Bool])
        case int32([Int32])
        case int64([Int64])
        case uint32([UInt32])
        case uint64([UInt64])
        case fp32([Float])
        case fp64([Double])
        case bytes([[UInt8]])

        /// The number of elements.
        public var count: Int {
            switch self {
            case .bool(let v): v.count
            case .int32(let v): v.count
            case .int64(let v): v.count
            case .uint32(let v): v.count
            case .uint64(let v): v.count
            case .fp32(let v): v.count
            case .fp64(let v): v.count
            case .bytes(let v): v.count
            }
        }
    }

    /// The KServe datatype name, e.g. "FP32", "INT64", "BYTES".
    public var datatype: String
    /// Dimensions, outermost first; `[]` is a scalar.
    public var shape: [Int64]
    /// The elements, row-major.
    public var values: Values

    /// A tensor. Whether `values` fits `datatype` and `shape` is checked when it is encoded.
    public init(datatype: String, shape: [Int64], values: Values) {
        self.datatype = datatype
        self.shape = shape
        self.values = values
    }

    /// An FP32 tensor.
    public init(shape: [Int64], fp32 values: [Float]) { self.init(datatype: "FP32", shape: shape, values: .fp32(values)) }
    /// An FP64 tensor.
    public init(shape: [Int64], fp64 values: [Double]) { self.init(datatype: "FP64", shape: shape, values: .fp64(values)) }
    /// An INT64 tensor.
    public init(shape: [Int64], int64 values: [Int64]) { self.init(datatype: "INT64", shape: shape, values: .int64(values)) }
    /// An INT32 tensor.
    public init(shape: [Int64], int32 values: [Int32]) { self.init(datatype: "INT32", shape: shape, values: .int32(values)) }
    /// A BOOL tensor.
    public init(shape: [Int64], bool values: [Bool]) { self.init(datatype: "BOOL", shape: shape, values: .bool(values)) }
    /// A BYTES tensor.
    public init(shape: [Int64], bytes values: [[UInt8]]) { self.init(datatype: "BYTES", shape: shape, values: .bytes(values)) }
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
    /// The values as `Int32`s when the datatype is INT8, INT16 or INT32.
    public var int32Values: [Int32]? { if case .int32(let v) = values { v } else { nil } }
    /// The values as `Bool`s when the datatype is BOOL.
    public var boolValues: [Bool]? { if case .bool(let v) = values { v } else { nil } }
    /// The elements' bytes when the datatype is BYTES.
    public var bytesValues: [[UInt8]]? { if case .bytes(let v) = values { v } else { nil } }
    /// The elements as strings (invalid UTF-8 repaired) when the datatype is BYTES.
    public var stringValues: [String]? { bytesValues?.map { String(decoding: $0, as: UTF8.self) } }
}

// MARK: - Element types

/// The datatypes a ClientTensor can carry, with their raw width.
enum WireType: Sendable {
    case bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, fp32, fp64, bytes

    init(_ datatype: String) throws {
        switch datatype {
        case "BOOL": self = .bool
        case "INT8": self = .int8
        case "INT16": self = .int16
        case "INT32": self = .int32
        case "INT64": self = .int64
        case "UINT8": self = .uint8
        case "UINT16": self = .uint16
        case "UINT32": self = .uint32
        case "UINT64": self = .uint64
        case "FP32": self = .fp32
        case "FP64": self = .fp64
        case "BYTES": self = .bytes
        case "FP16", "BF16": throw GRPCStatus(.invalidArgument, "datatype \(datatype) is not supported by this client")
        default: throw GRPCStatus(.invalidArgument, "unknown datatype '\(datatype)'")
        }
    }

    /// Bytes per element in raw contents; nil for BYTES.
    var width: Int? {
        switch self {
        case .bool, .int8, .uint8: 1
        case .int16, .uint16: 2
        case .int32, .uint32, .fp32: 4
        case .int64, .uint64, .fp64: 8
        case .bytes: nil
        }
    }

    /// The name of the `Values` case this datatype holds, for error messages.
    var valuesCase: String {
        switch self {
        case .bool: ".bool"
        case .int8, .int16, .int32: ".int32"
        case .int64: ".int64"
        case .uint8, .uint16, .uint32: ".uint32"
        case .uint64: ".uint64"
        case .fp32: ".fp32"
        case .fp64: ".fp64"
        case .bytes: ".bytes"
        }
    }
}

// MARK: - Encoding

extension ClientTensor {
    /// Checks that the datatype is known, the shape non-negative, the values of the matching
    /// case and as many as the shape holds, and narrow integers in range.
    func validated() throws -> WireType {
        let type = try WireType(datatype)
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw GRPCStatus(.invalidArgument, "shape \(shape) has a negative dimension")
        }
        let matches: Bool
        switch (type, values) {
        case (.bool, .bool), (.int64, .int64), (.uint64, .uint64), (.fp32, .fp32), (.fp64, .fp64), (.bytes, .bytes): matches = true
        case (.int8, .int32(let v)):
            matches = true
            try checkRange(v, Int32(Int8.min)...Int32(Int8.max))
        case (.int16, .int32(let v)):
            matches = true
            try checkRange(v, Int32(Int16.min)...Int32(Int16.max))
        case (.int32, .int32): matches = true
        case (.uint8, .uint32(let v)):
            matches = true
            try checkRange(v, 0...UInt32(UInt8.max))
        case (.uint16, .uint32(let v)):
            matches = true
            try checkRange(v, 0...UInt32(UInt16.max))
        case (.uint32, .uint32): matches = true
        default: matches = false
        }
        guard matches else {
            throw GRPCStatus(.invalidArgument, "datatype \(datatype) needs values of case \(type.valuesCase)")
        }
        guard values.count == elementCount else {
            throw GRPCStatus(.invalidArgument, "shape \(shape) holds \(elementCount) elements but \(values.count) values were given")
        }
        return type
    }

    private func checkRange<T: FixedWidthInteger>(_ values: [T], _ range: ClosedRange<T>) throws {
        if let bad = values.first(where: { !range.contains($0) }) {
            throw GRPCStatus(.invalidArgument, "value \(bad) is out of range for \(datatype)")
        }
    }

    /// The values as raw contents: little-endian at the datatype's width; BYTES elements each
    /// prefixed with their 4-byte little-endian length.
    public func rawBytes() throws -> [UInt8] {
        let type = try validated()
        switch values {
        case .bool(let v): return v.map { $0 ? 1 : 0 }
        case .int32(let v):
            switch type {
            case .int8: return v.map { UInt8(bitPattern: Int8(truncatingIfNeeded: $0)) }
            case .int16: return littleEndianBytes(v.map { Int16(truncatingIfNeeded: $0) })
            default: return littleEndianBytes(v)
            }
        case .uint32(let v):
            switch type {
            case .uint8: return v.map { UInt8(truncatingIfNeeded: $0) }
            case .uint16: return littleEndianBytes(v.map { UInt16(truncatingIfNeeded: $0) })
            default: return littleEndianBytes(v)
            }
        case .int64(let v): return littleEndianBytes(v)
        case .uint64(let v): return littleEndianBytes(v)
        case .fp32(let v): return littleEndianBytes(v.map(\.bitPattern))
        case .fp64(let v): return littleEndianBytes(v.map(\.bitPattern))
        case .bytes(let v):
            var out: [UInt8] = []
            out.reserveCapacity(v.reduce(0) { $0 + 4 + $1.count })
            for element in v {
                guard element.count <= UInt32.max else {
                    throw GRPCStatus(.invalidArgument, "a BYTES element of \(element.count) bytes is too long")
                }
                withUnsafeBytes(of: UInt32(element.count).littleEndian) { out.append(contentsOf: $0) }
                out.append(contentsOf: element)
            }
            return out
        }
    }

    /// The values as typed `contents` (the field KServe assigns to the datatype).
    public func typedContents() throws -> InferTensorContents {
        _ = try validated()
        var contents = InferTensorContents()
        switch values {
        case .bool(let v): contents.boolContents = v
        case .int32(let v): contents.intContents = v
        case .int64(let v): contents.int64Contents = v
        case .uint32(let v): contents.uintContents = v
        case .uint64(let v): contents.uint64Contents = v
        case .fp32(let v): contents.fp32Contents = v
        case .fp64(let v): contents.fp64Contents = v
        case .bytes(let v): contents.bytesContents = v
        }
        return contents
    }
}

/// Little-endian bytes of fixed-width integers: one copy on little-endian hosts.
func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    #if _endian(little)
    return values.withUnsafeBytes { Array($0) }
    #else
    return values.map(\.littleEndian).withUnsafeBytes { Array($0) }
    #endif
}

/// Reads `count` little-endian values of type `T` from `bytes`.
func readLittleEndian<T: FixedWidthInteger>(_ bytes: [UInt8], count: Int, as: T.Type) -> [T] {
    [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        bytes.withUnsafeBytes { raw in
            for i in 0..<count {
                buffer[i] = T(littleEndian: raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
            }
        }
        initialized = count
    }
}

// MARK: - Decoding

extension ClientTensor {
    /// Decodes raw contents of `datatype` and `shape`.
    /// - Throws: INVALID_ARGUMENT when the byte count does not match the shape.
    public init(datatype: String, shape: [Int64], rawBytes bytes: [UInt8]) throws {
        let type = try WireType(datatype)
        guard shape.allSatisfy({ $0 >= 0 }) else { throw GRPCStatus(.invalidArgument, "shape \(shape) has a negative dimension") }
        let count = shape.reduce(1) { $0 * Int($1) }
        if let width = type.width, bytes.count != count * width {
            throw GRPCStatus(.invalidArgument, "\(bytes.count) raw bytes do not hold \(count) \(datatype) elements of shape \(shape)")
        }
        let values: Values
        switch type {
        case .bool: values = .bool(bytes.map { $0 != 0 })
        case .int8: values = .int32(bytes.map { Int32(Int8(bitPattern: $0)) })
        case .int16: values = .int32(readLittleEndian(bytes, count: count, as: Int16.self).map { Int32($0) })
        case .int32: values = .int32(readLittleEndian(bytes, count: count, as: Int32.self))
        case .int64: values = .int64(readLittleEndian(bytes, count: count, as: Int64.self))
        case .uint8: values = .uint32(bytes.map { UInt32($0) })
        case .uint16: values = .uint32(readLittleEndian(bytes, count: count, as: UInt16.self).map { UInt32($0) })
        case .uint32: values = .uint32(readLittleEndian(bytes, count: count, as: UInt32.self))
        case .uint64: values = .uint64(readLittleEndian(bytes, count: count, as: UInt64.self))
        case .fp32: values = .fp32(readLittleEndian(bytes, count: count, as: UInt32.self).map(Float.init(bitPattern:)))
        case .fp64: values = .fp64(readLittleEndian(bytes, count: count, as: UInt64.self).map(Double.init(bitPattern:)))
        case .bytes:
            var elements: [[UInt8]] = []
            elements.reserveCapacity(count)
            var offset = 0
            while offset < bytes.count {
                guard offset + 4 <= bytes.count else {
                    throw GRPCStatus(.invalidArgument, "BYTES contents end inside a 4-byte length prefix")
                }
                let length = Int(bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) })
                offset += 4
                guard length <= bytes.count - offset else {
                    throw GRPCStatus(.invalidArgument, "a BYTES element of \(length) bytes runs past the end of the contents")
                }
                elements.append(Array(bytes[offset..<(offset + length)]))
                offset += length
            }
            guard elements.count == count else {
                throw GRPCStatus(.invalidArgument, "BYTES contents hold \(elements.count) elements, shape \(shape) needs \(count)")
            }
            values = .bytes(elements)
        }
        self.init(datatype: datatype, shape: shape, values: values)
    }

    /// Decodes typed contents of `datatype` and `shape`.
    /// - Throws: INVALID_ARGUMENT when the field for the datatype does not hold as many values as the shape.
    public init(datatype: String, shape: [Int64], contents: InferTensorContents) throws {
        let type = try WireType(datatype)
        let values: Values
        switch type {
        case .bool: values = .bool(contents.boolContents)
        case .int8, .int16, .int32: values = .int32(contents.intContents)
        case .int64: values = .int64(contents.int64Contents)
        case .uint8, .uint16, .uint32: values = .uint32(contents.uintContents)
        case .uint64: values = .uint64(contents.uint64Contents)
        case .fp32: values = .fp32(contents.fp32Contents)
        case .fp64: values = .fp64(contents.fp64Contents)
        case .bytes: values = .bytes(contents.bytesContents)
        }
        self.init(datatype: datatype, shape: shape, values: values)
        _ = try validated()
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
