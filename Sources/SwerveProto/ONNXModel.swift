import SwerveStatus
// Swift value types for the subset of ONNX's ModelProto that Swerve reads and writes.
// No protobuf-c type appears here; the C conversion lives in ONNXCoding.swift.

/// An error decoding an ONNX model: the bytes are not a ModelProto protobuf-c can read, or a
/// value is out of range.
public struct ONNXDecodingError: Error, Sendable, CustomStringConvertible {
    /// What was wrong, for a person.
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "invalid ONNX model: \(message)" }
}

/// One `opset_import` entry: the operator set version a model uses for a domain
/// (the empty domain and "ai.onnx" both mean the default ONNX operators).
public struct ONNXOperatorSetID: Sendable, Hashable {
    public var domain: String
    public var version: Int64
    public init(domain: String, version: Int64) {
        self.domain = domain
        self.version = version
    }
}

/// An ONNX `ModelProto`.
public struct ONNXModel: Sendable, Equatable {
    public var irVersion: Int64
    public var opsetImports: [ONNXOperatorSetID]
    public var producerName: String
    public var producerVersion: String
    public var domain: String
    public var modelVersion: Int64
    public var docString: String
    public var graph: ONNXGraph
    /// `metadata_props`; a key repeated on the wire keeps its last value.
    public var metadata: [String: String]

    public init(
        irVersion: Int64 = 8, opsetImports: [ONNXOperatorSetID] = [], producerName: String = "",
        producerVersion: String = "", domain: String = "", modelVersion: Int64 = 0,
        docString: String = "", graph: ONNXGraph = ONNXGraph(), metadata: [String: String] = [:]
    ) {
        self.irVersion = irVersion
        self.opsetImports = opsetImports
        self.producerName = producerName
        self.producerVersion = producerVersion
        self.domain = domain
        self.modelVersion = modelVersion
        self.docString = docString
        self.graph = graph
        self.metadata = metadata
    }

    /// The imported version of `domain` ("" and "ai.onnx" are the same domain), if any.
    public func opsetVersion(for domain: String) -> Int64? {
        let wanted = domain == "ai.onnx" ? "" : domain
        return opsetImports.last { ($0.domain == "ai.onnx" ? "" : $0.domain) == wanted }?.version
    }
}

/// An ONNX `GraphProto`.
public struct ONNXGraph: Sendable, Equatable {
    public var name: String
    public var nodes: [ONNXNode]
    public var initializers: [ONNXTensor]
    public var inputs: [ONNXValueInfo]
    public var outputs: [ONNXValueInfo]
    /// Types of intermediate values, when the producer recorded them.
    public var valueInfo: [ONNXValueInfo]
    public var docString: String

    public init(
        name: String = "", nodes: [ONNXNode] = [], initializers: [ONNXTensor] = [],
        inputs: [ONNXValueInfo] = [], outputs: [ONNXValueInfo] = [], valueInfo: [ONNXValueInfo] = [],
        docString: String = ""
    ) {
        self.name = name
        self.nodes = nodes
        self.initializers = initializers
        self.inputs = inputs
        self.outputs = outputs
        self.valueInfo = valueInfo
        self.docString = docString
    }
}

/// An ONNX `NodeProto`: one operator application.
public struct ONNXNode: Sendable, Equatable {
    public var name: String
    public var opType: String
    /// "" (or "ai.onnx") for the default operator set, "ai.onnx.ml" for the ML operators.
    public var domain: String
    /// Input value names; "" marks an omitted optional input.
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [String: ONNXAttribute]
    public var docString: String

    public init(
        name: String = "", opType: String, domain: String = "", inputs: [String], outputs: [String],
        attributes: [String: ONNXAttribute] = [:], docString: String = ""
    ) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
        self.docString = docString
    }
}

/// The value of an ONNX `AttributeProto`, by its declared `type`.
public indirect enum ONNXAttribute: Sendable, Equatable {
    case float(Float)
    case int(Int64)
    /// ONNX strings are bytes; use `stringValue` for UTF-8 text.
    case string([UInt8])
    case tensor(ONNXTensor)
    case graph(ONNXGraph)
    case floats([Float])
    case ints([Int64])
    case strings([[UInt8]])
    case tensors([ONNXTensor])
    case graphs([ONNXGraph])
    /// A type Swerve does not model (sparse tensors, type protos); the raw `AttributeType` code.
    case unsupported(typeCode: Int32)

    /// Convenience for text attributes.
    public static func string(_ text: String) -> ONNXAttribute { .string(Array(text.utf8)) }
    /// Convenience for lists of text attributes.
    public static func strings(_ texts: [String]) -> ONNXAttribute { .strings(texts.map { Array($0.utf8) }) }

    public var floatValue: Float? { if case .float(let v) = self { v } else { nil } }
    public var intValue: Int64? { if case .int(let v) = self { v } else { nil } }
    public var stringValue: String? {
        if case .string(let v) = self { String(decoding: v, as: UTF8.self) } else { nil }
    }
    public var tensorValue: ONNXTensor? { if case .tensor(let v) = self { v } else { nil } }
    public var floatsValue: [Float]? { if case .floats(let v) = self { v } else { nil } }
    public var intsValue: [Int64]? { if case .ints(let v) = self { v } else { nil } }
    public var stringsValue: [String]? {
        if case .strings(let v) = self { v.map { String(decoding: $0, as: UTF8.self) } } else { nil }
    }
}

/// An ONNX `TensorProto`, with its data exactly as stored: either in the typed repeated field
/// the ONNX spec assigns to `dataType`, or little-endian in `rawData`.
public struct ONNXTensor: Sendable, Equatable {
    /// ONNX `TensorProto.DataType` codes Swerve understands.
    public enum DataTypeCode {
        public static let float: Int32 = 1
        public static let uint8: Int32 = 2
        public static let int8: Int32 = 3
        public static let uint16: Int32 = 4
        public static let int16: Int32 = 5
        public static let int32: Int32 = 6
        public static let int64: Int32 = 7
        public static let string: Int32 = 8
        public static let bool: Int32 = 9
        public static let float16: Int32 = 10
        public static let double: Int32 = 11
        public static let uint32: Int32 = 12
        public static let uint64: Int32 = 13
    }

    public var name: String
    public var dims: [Int64]
    /// The raw ONNX `TensorProto.DataType` code (see `DataTypeCode`).
    public var dataType: Int32
    public var floatData: [Float]
    /// Holds INT32, INT16, INT8, UINT16, UINT8, BOOL and FLOAT16 values per the ONNX spec.
    public var int32Data: [Int32]
    public var int64Data: [Int64]
    public var doubleData: [Double]
    /// Holds UINT32 and UINT64 values.
    public var uint64Data: [UInt64]
    public var stringData: [[UInt8]]
    /// Little-endian packed values; nil when the field is absent.
    public var rawData: [UInt8]?
    /// `external_data` key/value pairs; non-empty when the data lives in another file.
    public var externalData: [String: String]
    public var isExternal: Bool
    public var docString: String

    public init(
        name: String = "", dims: [Int64], dataType: Int32, floatData: [Float] = [],
        int32Data: [Int32] = [], int64Data: [Int64] = [], doubleData: [Double] = [],
        uint64Data: [UInt64] = [], stringData: [[UInt8]] = [], rawData: [UInt8]? = nil,
        externalData: [String: String] = [:], isExternal: Bool = false, docString: String = ""
    ) {
        self.name = name
        self.dims = dims
        self.dataType = dataType
        self.floatData = floatData
        self.int32Data = int32Data
        self.int64Data = int64Data
        self.doubleData = doubleData
        self.uint64Data = uint64Data
        self.stringData = stringData
        self.rawData = rawData
        self.externalData = externalData
        self.isExternal = isExternal
        self.docString = docString
    }

    /// A FLOAT tensor stored in `float_data`.
    public static func floats(_ name: String, dims: [Int64], _ values: [Float]) -> ONNXTensor {
        ONNXTensor(name: name, dims: dims, dataType: DataTypeCode.float, floatData: values)
    }

    /// An INT64 tensor stored in `int64_data`.
    public static func int64s(_ name: String, dims: [Int64], _ values: [Int64]) -> ONNXTensor {
        ONNXTensor(name: name, dims: dims, dataType: DataTypeCode.int64, int64Data: values)
    }
}

/// One dimension of a declared tensor shape.
public enum ONNXDim: Sendable, Hashable {
    case value(Int64)
    /// A named symbolic dimension such as "N" or "batch".
    case param(String)
    /// Neither a value nor a name.
    case unknown
}

/// An ONNX `ValueInfoProto` for a graph input, output or intermediate value.
public struct ONNXValueInfo: Sendable, Equatable {
    public var name: String
    /// False for sequences and maps (which Swerve does not serve) or when the type is missing.
    public var isTensor: Bool
    /// The ONNX element type code of a tensor (0 when not a tensor).
    public var elemType: Int32
    /// The declared shape; nil when the rank is unknown.
    public var shape: [ONNXDim]?
    public var docString: String

    public init(name: String, isTensor: Bool = true, elemType: Int32, shape: [ONNXDim]?, docString: String = "") {
        self.name = name
        self.isTensor = isTensor
        self.elemType = elemType
        self.shape = shape
        self.docString = docString
    }

    /// A tensor value; `nil` entries in `shape` are dynamic dimensions.
    public static func tensor(_ name: String, elemType: Int32, shape: [Int64?]) -> ONNXValueInfo {
        ONNXValueInfo(name: name, elemType: elemType, shape: shape.map { $0.map(ONNXDim.value) ?? .param("N") })
    }
}

extension ONNXDecodingError: RPCErrorConvertible {
    /// Model bytes handed to a call (a publish) that are not a model.
    public var rpcErrorCode: GRPCStatusCode { .invalidArgument }
    public var rpcErrorMessage: String { description }
}
