internal import CSwerveProto

// Swift value types for `inference.GRPCInferenceService` (protos/grpc_service.proto).
// Decoding copies everything out of the protobuf-c structs, which are freed at once.

/// A request/response parameter (`inference.InferParameter`).
public enum InferParameter: Sendable, Equatable {
    case bool(Bool), int64(Int64), string(String), double(Double), uint64(UInt64)
}

/// Typed tensor contents (`inference.InferTensorContents`), field for field as the message
/// carries them.
///
/// A message may set several fields, or values under a datatype nobody knows; this struct keeps
/// whatever the wire holds, so messages round-trip. A tensor's values are `TensorValues`:
/// `init(_:)` and `TensorValues(contents:as:shape:)` convert through the one typed mapping,
/// where only the field matching the datatype is set.
public struct InferTensorContents: Sendable, Equatable {
    /// `bool_contents`: BOOL.
    public var boolContents: [Bool] = []
    /// `int_contents`: INT8, INT16 (widened) and INT32.
    public var intContents: [Int32] = []
    /// `int64_contents`: INT64.
    public var int64Contents: [Int64] = []
    /// `uint_contents`: UINT8, UINT16 (widened) and UINT32.
    public var uintContents: [UInt32] = []
    /// `uint64_contents`: UINT64.
    public var uint64Contents: [UInt64] = []
    /// `fp32_contents`: FP32.
    public var fp32Contents: [Float] = []
    /// `fp64_contents`: FP64.
    public var fp64Contents: [Double] = []
    /// `bytes_contents`: BYTES, one entry per element.
    public var bytesContents: [[UInt8]] = []
    /// Contents with no values in any field.
    public init() {}

    /// Total number of values over all fields.
    public var count: Int {
        boolContents.count + intContents.count + int64Contents.count + uintContents.count
            + uint64Contents.count + fp32Contents.count + fp64Contents.count + bytesContents.count
    }
}

public struct ModelInferRequest: ProtoMessage, Equatable {
    public struct InputTensor: Sendable, Equatable {
        public var name: String
        public var datatype: String
        public var shape: [Int64]
        public var parameters: [String: InferParameter] = [:]
        public var contents: InferTensorContents?
        public init(name: String, datatype: String, shape: [Int64], parameters: [String: InferParameter] = [:], contents: InferTensorContents? = nil) {
            self.name = name; self.datatype = datatype; self.shape = shape; self.parameters = parameters; self.contents = contents
        }
    }
    public struct RequestedOutput: Sendable, Equatable {
        public var name: String
        public var parameters: [String: InferParameter] = [:]
        public init(name: String, parameters: [String: InferParameter] = [:]) { self.name = name; self.parameters = parameters }
    }
    public var modelName = ""
    public var modelVersion = ""
    public var id = ""
    public var parameters: [String: InferParameter] = [:]
    public var inputs: [InputTensor] = []
    public var outputs: [RequestedOutput] = []
    /// One entry per input, in the order of `inputs`, when raw contents are used.
    public var rawInputContents: [[UInt8]] = []
    public init() {}
}

public struct ModelInferResponse: ProtoMessage, Equatable {
    public struct OutputTensor: Sendable, Equatable {
        public var name: String
        public var datatype: String
        public var shape: [Int64]
        public var parameters: [String: InferParameter] = [:]
        public var contents: InferTensorContents?
        public init(name: String, datatype: String, shape: [Int64], parameters: [String: InferParameter] = [:], contents: InferTensorContents? = nil) {
            self.name = name; self.datatype = datatype; self.shape = shape; self.parameters = parameters; self.contents = contents
        }
    }
    public var modelName = ""
    public var modelVersion = ""
    public var id = ""
    public var parameters: [String: InferParameter] = [:]
    public var outputs: [OutputTensor] = []
    public var rawOutputContents: [[UInt8]] = []
    public init() {}
}

// MARK: - Parameters and contents

extension InferParameter {
    init?(_ p: Inference__InferParameter) {
        switch p.parameter_choice_case {
        case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM: self = .bool(p.bool_param != 0)
        case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM: self = .int64(p.int64_param)
        case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM: self = .string(str(p.string_param))
        case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM: self = .double(p.double_param)
        case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM: self = .uint64(p.uint64_param)
        default: return nil
        }
    }

    func build(_ arena: Arena) -> Inference__InferParameter {
        var p = Inference__InferParameter()
        inference__infer_parameter__init(&p)
        switch self {
        case .bool(let v): p.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM; p.bool_param = v ? 1 : 0
        case .int64(let v): p.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM; p.int64_param = v
        case .string(let v): p.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM; p.string_param = arena.cString(v)
        case .double(let v): p.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM; p.double_param = v
        case .uint64(let v): p.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM; p.uint64_param = v
        }
        return p
    }
}

/// Reads a protobuf-c map<string, InferParameter> (an array of entries with key/value).
func readParameters<E>(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<E>?>?,
                       key: (E) -> UnsafeMutablePointer<CChar>?, value: (E) -> UnsafeMutablePointer<Inference__InferParameter>?) -> [String: InferParameter] {
    var out: [String: InferParameter] = [:]
    for e in msgs(n, p, { $0 }) {
        if let v = value(e), let param = InferParameter(v.pointee) { out[str(key(e))] = param }
    }
    return out
}

/// Builds the entries of a map<string, InferParameter> with a generated entry type.
func buildParameters<E>(_ params: [String: InferParameter], _ arena: Arena, make: (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Inference__InferParameter>) -> E)
    -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<E>?>?) {
    if params.isEmpty { return (0, nil) }
    let entries = params.sorted { $0.key < $1.key }.map { make(arena.cString($0.key), arena.box($0.value.build(arena))) }
    return (entries.count, arena.boxes(entries))
}

extension InferTensorContents {
    init(_ c: Inference__InferTensorContents) {
        boolContents = vals(c.n_bool_contents, c.bool_contents).map { $0 != 0 }
        intContents = vals(c.n_int_contents, c.int_contents)
        int64Contents = vals(c.n_int64_contents, c.int64_contents)
        uintContents = vals(c.n_uint_contents, c.uint_contents)
        uint64Contents = vals(c.n_uint64_contents, c.uint64_contents)
        fp32Contents = vals(c.n_fp32_contents, c.fp32_contents)
        fp64Contents = vals(c.n_fp64_contents, c.fp64_contents)
        bytesContents = (0..<c.n_bytes_contents).map { bytesOf(c.bytes_contents[$0]) }
    }

    func build(_ arena: Arena) -> Inference__InferTensorContents {
        var c = Inference__InferTensorContents()
        inference__infer_tensor_contents__init(&c)
        c.n_bool_contents = boolContents.count; c.bool_contents = arena.array(boolContents.lazy.map { $0 ? 1 : 0 })
        c.n_int_contents = intContents.count; c.int_contents = arena.array(intContents)
        c.n_int64_contents = int64Contents.count; c.int64_contents = arena.array(int64Contents)
        c.n_uint_contents = uintContents.count; c.uint_contents = arena.array(uintContents)
        c.n_uint64_contents = uint64Contents.count; c.uint64_contents = arena.array(uint64Contents)
        c.n_fp32_contents = fp32Contents.count; c.fp32_contents = arena.array(fp32Contents)
        c.n_fp64_contents = fp64Contents.count; c.fp64_contents = arena.array(fp64Contents)
        c.n_bytes_contents = bytesContents.count; c.bytes_contents = arena.binaries(bytesContents)
        return c
    }
}

// MARK: - ModelInfer

extension ModelInferRequest {
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.modelInferRequest.check(bytes, "ModelInferRequest")
        self = try decode(bytes, "ModelInferRequest", unpack: inference__model_infer_request__unpack, free: inference__model_infer_request__free_unpacked) { m in
            var r = ModelInferRequest()
            r.modelName = str(m.model_name)
            r.modelVersion = str(m.model_version)
            r.id = str(m.id)
            r.parameters = readParameters(m.n_parameters, m.parameters, key: { $0.key }, value: { $0.value })
            r.inputs = msgs(m.n_inputs, m.inputs) { t in
                InputTensor(
                    name: str(t.name), datatype: str(t.datatype), shape: vals(t.n_shape, t.shape),
                    parameters: readParameters(t.n_parameters, t.parameters, key: { $0.key }, value: { $0.value }),
                    contents: t.contents.map { InferTensorContents($0.pointee) })
            }
            r.outputs = msgs(m.n_outputs, m.outputs) { o in
                RequestedOutput(name: str(o.name), parameters: readParameters(o.n_parameters, o.parameters, key: { $0.key }, value: { $0.value }))
            }
            r.rawInputContents = (0..<m.n_raw_input_contents).map { bytesOf(m.raw_input_contents[$0]) }
            return r
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        var m = Inference__ModelInferRequest()
        inference__model_infer_request__init(&m)
        m.model_name = arena.cString(modelName)
        m.model_version = arena.cString(modelVersion)
        m.id = arena.cString(id)
        (m.n_parameters, m.parameters) = buildParameters(parameters, arena) { k, v in
            var e = Inference__ModelInferRequest__ParametersEntry(); inference__model_infer_request__parameters_entry__init(&e); e.key = k; e.value = v; return e
        }
        let ins = inputs.map { t -> Inference__ModelInferRequest__InferInputTensor in
            var c = Inference__ModelInferRequest__InferInputTensor()
            inference__model_infer_request__infer_input_tensor__init(&c)
            c.name = arena.cString(t.name); c.datatype = arena.cString(t.datatype)
            c.n_shape = t.shape.count; c.shape = arena.array(t.shape)
            (c.n_parameters, c.parameters) = buildParameters(t.parameters, arena) { k, v in
                var e = Inference__ModelInferRequest__InferInputTensor__ParametersEntry(); inference__model_infer_request__infer_input_tensor__parameters_entry__init(&e); e.key = k; e.value = v; return e
            }
            if let contents = t.contents { c.contents = arena.box(contents.build(arena)) }
            return c
        }
        m.n_inputs = ins.count; m.inputs = arena.boxes(ins)
        let outs = outputs.map { o -> Inference__ModelInferRequest__InferRequestedOutputTensor in
            var c = Inference__ModelInferRequest__InferRequestedOutputTensor()
            inference__model_infer_request__infer_requested_output_tensor__init(&c)
            c.name = arena.cString(o.name)
            (c.n_parameters, c.parameters) = buildParameters(o.parameters, arena) { k, v in
                var e = Inference__ModelInferRequest__InferRequestedOutputTensor__ParametersEntry(); inference__model_infer_request__infer_requested_output_tensor__parameters_entry__init(&e); e.key = k; e.value = v; return e
            }
            return c
        }
        m.n_outputs = outs.count; m.outputs = arena.boxes(outs)
        m.n_raw_input_contents = rawInputContents.count
        m.raw_input_contents = arena.array(rawInputContents.map { arena.binary($0) })
        return encode(m, arena: arena, size: inference__model_infer_request__get_packed_size, pack: inference__model_infer_request__pack)
    }
}

extension ModelInferResponse {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try decode(bytes, "ModelInferResponse", unpack: inference__model_infer_response__unpack, free: inference__model_infer_response__free_unpacked) { m in
            var r = ModelInferResponse()
            r.modelName = str(m.model_name)
            r.modelVersion = str(m.model_version)
            r.id = str(m.id)
            r.parameters = readParameters(m.n_parameters, m.parameters, key: { $0.key }, value: { $0.value })
            r.outputs = msgs(m.n_outputs, m.outputs) { t in
                OutputTensor(
                    name: str(t.name), datatype: str(t.datatype), shape: vals(t.n_shape, t.shape),
                    parameters: readParameters(t.n_parameters, t.parameters, key: { $0.key }, value: { $0.value }),
                    contents: t.contents.map { InferTensorContents($0.pointee) })
            }
            r.rawOutputContents = (0..<m.n_raw_output_contents).map { bytesOf(m.raw_output_contents[$0]) }
            return r
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        var m = Inference__ModelInferResponse()
        inference__model_infer_response__init(&m)
        m.model_name = arena.cString(modelName)
        m.model_version = arena.cString(modelVersion)
        m.id = arena.cString(id)
        (m.n_parameters, m.parameters) = buildParameters(parameters, arena) { k, v in
            var e = Inference__ModelInferResponse__ParametersEntry(); inference__model_infer_response__parameters_entry__init(&e); e.key = k; e.value = v; return e
        }
        let outs = outputs.map { t -> Inference__ModelInferResponse__InferOutputTensor in
            var c = Inference__ModelInferResponse__InferOutputTensor()
            inference__model_infer_response__infer_output_tensor__init(&c)
            c.name = arena.cString(t.name); c.datatype = arena.cString(t.datatype)
            c.n_shape = t.shape.count; c.shape = arena.array(t.shape)
            (c.n_parameters, c.parameters) = buildParameters(t.parameters, arena) { k, v in
                var e = Inference__ModelInferResponse__InferOutputTensor__ParametersEntry(); inference__model_infer_response__infer_output_tensor__parameters_entry__init(&e); e.key = k; e.value = v; return e
            }
            if let contents = t.contents { c.contents = arena.box(contents.build(arena)) }
            return c
        }
        m.n_outputs = outs.count; m.outputs = arena.boxes(outs)
        m.n_raw_output_contents = rawOutputContents.count
        m.raw_output_contents = arena.array(rawOutputContents.map { arena.binary($0) })
        return encode(m, arena: arena, size: inference__model_infer_response__get_packed_size, pack: inference__model_infer_response__pack)
    }
}
