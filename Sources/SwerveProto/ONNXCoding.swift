// Conversion between the ONNX Swift value types and protobuf-c's generated structs.
// Decoding copies everything out and frees the unpacked message before returning;
// encoding builds the structs in an arena that is released once `pack` has run.
internal import CSwerveProto

extension ONNXModel {
    /// Parses a serialized ONNX `ModelProto` (the contents of a .onnx file).
    ///
    /// Throws `ONNXDecodingError` when protobuf-c cannot unpack the bytes (truncated data, a field
    /// with the wrong wire type) or when the message has no graph.
    public static func decode(_ bytes: [UInt8]) throws -> ONNXModel {
        if bytes.isEmpty { throw ONNXDecodingError("empty input (0 bytes)") }
        let unpacked = bytes.withUnsafeBufferPointer { buffer in
            onnx__model_proto__unpack(nil, buffer.count, buffer.baseAddress)
        }
        guard let message = unpacked else {
            throw ONNXDecodingError(
                "\(bytes.count) bytes are not a valid ONNX ModelProto (protobuf decoding failed)")
        }
        defer { onnx__model_proto__free_unpacked(message, nil) }
        let m = message.pointee
        guard let graph = m.graph else { throw ONNXDecodingError("the model has no graph") }
        var metadata: [String: String] = [:]
        for entry in onnxPointers(m.metadata_props, m.n_metadata_props) {
            metadata[onnxString(entry.pointee.key)] = onnxString(entry.pointee.value)
        }
        return ONNXModel(
            irVersion: m.has_ir_version != 0 ? m.ir_version : 0,
            opsetImports: onnxPointers(m.opset_import, m.n_opset_import).map {
                ONNXOperatorSetID(
                    domain: onnxString($0.pointee.domain),
                    version: $0.pointee.has_version != 0 ? $0.pointee.version : 0)
            },
            producerName: onnxString(m.producer_name),
            producerVersion: onnxString(m.producer_version),
            domain: onnxString(m.domain),
            modelVersion: m.has_model_version != 0 ? m.model_version : 0,
            docString: onnxString(m.doc_string),
            graph: ONNXGraph(decoding: graph),
            metadata: metadata)
    }

    /// Serializes the model as an ONNX `ModelProto`, readable by onnxruntime and `decode`.
    public func encode() -> [UInt8] {
        let arena = ONNXArena()
        let message = arena.make(Onnx__ModelProto.self, onnx__model_proto__init)
        message.pointee.has_ir_version = 1
        message.pointee.ir_version = irVersion
        let opsets = opsetImports.map { opset in
            let p = arena.make(Onnx__OperatorSetIdProto.self, onnx__operator_set_id_proto__init)
            p.pointee.domain = arena.string(opset.domain)
            p.pointee.has_version = 1
            p.pointee.version = opset.version
            return Optional(p)
        }
        message.pointee.n_opset_import = opsets.count
        message.pointee.opset_import = arena.array(opsets)
        message.pointee.producer_name = arena.string(producerName)
        message.pointee.producer_version = arena.string(producerVersion)
        message.pointee.domain = arena.string(domain)
        if modelVersion != 0 {
            message.pointee.has_model_version = 1
            message.pointee.model_version = modelVersion
        }
        message.pointee.doc_string = arena.string(docString)
        message.pointee.graph = graph.build(in: arena)
        let props = metadata.sorted { $0.key < $1.key }.map { key, value in
            Optional(arena.stringPair(key, value))
        }
        message.pointee.n_metadata_props = props.count
        message.pointee.metadata_props = arena.array(props)

        let size = onnx__model_proto__get_packed_size(message)
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = onnx__model_proto__pack(message, buffer.baseAddress)
        }
    }
}

// MARK: - Decoding

private func onnxString(_ p: UnsafeMutablePointer<CChar>?) -> String {
    guard let p else { return "" }
    return String(cString: p)
}

private func onnxArray<T>(_ p: UnsafeMutablePointer<T>?, _ n: Int) -> [T] {
    guard let p, n > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: p, count: n))
}

private func onnxPointers<T>(_ p: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?, _ n: Int) -> [UnsafeMutablePointer<T>] {
    guard let p, n > 0 else { return [] }
    return UnsafeBufferPointer(start: p, count: n).compactMap { $0 }
}

private func onnxBytes(_ b: ProtobufCBinaryData) -> [UInt8] {
    guard let data = b.data, b.len > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: b.len))
}

extension ONNXGraph {
    fileprivate init(decoding p: UnsafeMutablePointer<Onnx__GraphProto>) {
        let g = p.pointee
        self.init(
            name: onnxString(g.name),
            nodes: onnxPointers(g.node, g.n_node).map(ONNXNode.init(decoding:)),
            initializers: onnxPointers(g.initializer, g.n_initializer).map(ONNXTensor.init(decoding:)),
            inputs: onnxPointers(g.input, g.n_input).map(ONNXValueInfo.init(decoding:)),
            outputs: onnxPointers(g.output, g.n_output).map(ONNXValueInfo.init(decoding:)),
            valueInfo: onnxPointers(g.value_info, g.n_value_info).map(ONNXValueInfo.init(decoding:)),
            docString: onnxString(g.doc_string))
    }
}

extension ONNXNode {
    fileprivate init(decoding p: UnsafeMutablePointer<Onnx__NodeProto>) {
        let n = p.pointee
        var attributes: [String: ONNXAttribute] = [:]
        for a in onnxPointers(n.attribute, n.n_attribute) {
            attributes[onnxString(a.pointee.name)] = ONNXAttribute(decoding: a)
        }
        self.init(
            name: onnxString(n.name),
            opType: onnxString(n.op_type),
            domain: onnxString(n.domain),
            inputs: onnxArray(n.input, n.n_input).map(onnxString),
            outputs: onnxArray(n.output, n.n_output).map(onnxString),
            attributes: attributes,
            docString: onnxString(n.doc_string))
    }
}

/// `AttributeProto.AttributeType` codes.
private enum AttributeTypeCode {
    static let float: UInt32 = 1, int: UInt32 = 2, string: UInt32 = 3, tensor: UInt32 = 4
    static let graph: UInt32 = 5, floats: UInt32 = 6, ints: UInt32 = 7, strings: UInt32 = 8
    static let tensors: UInt32 = 9, graphs: UInt32 = 10
}

extension ONNXAttribute {
    fileprivate init(decoding p: UnsafeMutablePointer<Onnx__AttributeProto>) {
        let a = p.pointee
        var code = a.has_type != 0 ? UInt32(a.type.rawValue) : 0
        if code == 0 {
            // Pre-IR-3 producers left `type` unset; infer it from the field that holds a value.
            if a.has_f != 0 { code = AttributeTypeCode.float }
            else if a.has_i != 0 { code = AttributeTypeCode.int }
            else if a.has_s != 0 { code = AttributeTypeCode.string }
            else if a.t != nil { code = AttributeTypeCode.tensor }
            else if a.g != nil { code = AttributeTypeCode.graph }
            else if a.n_floats > 0 { code = AttributeTypeCode.floats }
            else if a.n_strings > 0 { code = AttributeTypeCode.strings }
            else if a.n_tensors > 0 { code = AttributeTypeCode.tensors }
            else if a.n_graphs > 0 { code = AttributeTypeCode.graphs }
            else { code = AttributeTypeCode.ints }
        }
        switch code {
        case AttributeTypeCode.float: self = .float(a.f)
        case AttributeTypeCode.int: self = .int(a.i)
        case AttributeTypeCode.string: self = .string(onnxBytes(a.s))
        case AttributeTypeCode.tensor:
            self = a.t.map { .tensor(ONNXTensor(decoding: $0)) } ?? .tensor(ONNXTensor(dims: [], dataType: 0))
        case AttributeTypeCode.graph: self = a.g.map { .graph(ONNXGraph(decoding: $0)) } ?? .graph(ONNXGraph())
        case AttributeTypeCode.floats: self = .floats(onnxArray(a.floats, a.n_floats))
        case AttributeTypeCode.ints: self = .ints(onnxArray(a.ints, a.n_ints))
        case AttributeTypeCode.strings: self = .strings(onnxArray(a.strings, a.n_strings).map(onnxBytes))
        case AttributeTypeCode.tensors:
            self = .tensors(onnxPointers(a.tensors, a.n_tensors).map(ONNXTensor.init(decoding:)))
        case AttributeTypeCode.graphs:
            self = .graphs(onnxPointers(a.graphs, a.n_graphs).map(ONNXGraph.init(decoding:)))
        default: self = .unsupported(typeCode: Int32(truncatingIfNeeded: code))
        }
    }
}

extension ONNXTensor {
    fileprivate init(decoding p: UnsafeMutablePointer<Onnx__TensorProto>) {
        let t = p.pointee
        var external: [String: String] = [:]
        for entry in onnxPointers(t.external_data, t.n_external_data) {
            external[onnxString(entry.pointee.key)] = onnxString(entry.pointee.value)
        }
        self.init(
            name: onnxString(t.name),
            dims: onnxArray(t.dims, t.n_dims),
            dataType: t.has_data_type != 0 ? t.data_type : 0,
            floatData: onnxArray(t.float_data, t.n_float_data),
            int32Data: onnxArray(t.int32_data, t.n_int32_data),
            int64Data: onnxArray(t.int64_data, t.n_int64_data),
            doubleData: onnxArray(t.double_data, t.n_double_data),
            uint64Data: onnxArray(t.uint64_data, t.n_uint64_data),
            stringData: onnxArray(t.string_data, t.n_string_data).map(onnxBytes),
            rawData: t.has_raw_data != 0 ? onnxBytes(t.raw_data) : nil,
            externalData: external,
            isExternal: t.has_data_location != 0 && t.data_location.rawValue == 1,
            docString: onnxString(t.doc_string))
    }
}

extension ONNXValueInfo {
    fileprivate init(decoding p: UnsafeMutablePointer<Onnx__ValueInfoProto>) {
        let v = p.pointee
        var isTensor = false
        var elemType: Int32 = 0
        var shape: [ONNXDim]? = nil
        if let type = v.type, type.pointee.value_case.rawValue == 1, let tensor = type.pointee.tensor_type {
            isTensor = true
            elemType = tensor.pointee.has_elem_type != 0 ? tensor.pointee.elem_type : 0
            if let s = tensor.pointee.shape {
                shape = onnxPointers(s.pointee.dim, s.pointee.n_dim).map { d -> ONNXDim in
                    switch d.pointee.value_case.rawValue {
                    case 1: return .value(d.pointee.dim_value)
                    case 2: return .param(onnxString(d.pointee.dim_param))
                    default: return .unknown
                    }
                }
            }
        }
        self.init(name: onnxString(v.name), isTensor: isTensor, elemType: elemType, shape: shape,
                  docString: onnxString(v.doc_string))
    }
}

// MARK: - Encoding

/// Owns the C memory of a message being built for packing; freed all at once.
private final class ONNXArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit { for block in blocks { block.deallocate() } }

    func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: max(1, count) * MemoryLayout<T>.stride, alignment: MemoryLayout<T>.alignment)
        blocks.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(1, count))
    }

    /// A zeroed message initialized by its generated `*__init`.
    func make<T>(_ type: T.Type, _ initialize: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let p = allocate(T.self, count: 1)
        UnsafeMutableRawPointer(p).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.stride)
        initialize(p)
        return p
    }

    /// A NUL-terminated copy, or NULL for "" so proto2 leaves the field out.
    func string(_ s: String) -> UnsafeMutablePointer<CChar>? {
        if s.isEmpty { return nil }
        let utf8 = Array(s.utf8CString)
        let p = allocate(CChar.self, count: utf8.count)
        p.initialize(from: utf8, count: utf8.count)
        return p
    }

    /// A C array copy of `values`, or NULL when empty.
    func array<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        if values.isEmpty { return nil }
        let p = allocate(T.self, count: values.count)
        p.initialize(from: values, count: values.count)
        return p
    }

    func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        ProtobufCBinaryData(len: bytes.count, data: array(bytes))
    }

    func stringPair(_ key: String, _ value: String) -> UnsafeMutablePointer<Onnx__StringStringEntryProto> {
        let p = make(Onnx__StringStringEntryProto.self, onnx__string_string_entry_proto__init)
        p.pointee.key = string(key)
        p.pointee.value = string(value)
        return p
    }
}

extension ONNXGraph {
    fileprivate func build(in arena: ONNXArena) -> UnsafeMutablePointer<Onnx__GraphProto> {
        let p = arena.make(Onnx__GraphProto.self, onnx__graph_proto__init)
        let nodes = self.nodes.map { Optional($0.build(in: arena)) }
        p.pointee.n_node = nodes.count
        p.pointee.node = arena.array(nodes)
        p.pointee.name = arena.string(name)
        let initializers = self.initializers.map { Optional($0.build(in: arena)) }
        p.pointee.n_initializer = initializers.count
        p.pointee.initializer = arena.array(initializers)
        p.pointee.doc_string = arena.string(docString)
        let inputs = self.inputs.map { Optional($0.build(in: arena)) }
        p.pointee.n_input = inputs.count
        p.pointee.input = arena.array(inputs)
        let outputs = self.outputs.map { Optional($0.build(in: arena)) }
        p.pointee.n_output = outputs.count
        p.pointee.output = arena.array(outputs)
        let valueInfo = self.valueInfo.map { Optional($0.build(in: arena)) }
        p.pointee.n_value_info = valueInfo.count
        p.pointee.value_info = arena.array(valueInfo)
        return p
    }
}

extension ONNXNode {
    fileprivate func build(in arena: ONNXArena) -> UnsafeMutablePointer<Onnx__NodeProto> {
        let p = arena.make(Onnx__NodeProto.self, onnx__node_proto__init)
        // Repeated strings may not hold NULL: an omitted optional input is the empty string.
        let emptyString = arena.allocate(CChar.self, count: 1)
        emptyString.initialize(to: 0)
        let ins = inputs.map { arena.string($0) ?? emptyString }
        p.pointee.n_input = ins.count
        p.pointee.input = arena.array(ins.map(Optional.init))
        let outs = outputs.map { arena.string($0) ?? emptyString }
        p.pointee.n_output = outs.count
        p.pointee.output = arena.array(outs.map(Optional.init))
        p.pointee.name = arena.string(name)
        p.pointee.op_type = arena.string(opType)
        p.pointee.domain = arena.string(domain)
        // Sorted by name so that encoding is deterministic.
        let attributes = self.attributes.sorted { $0.key < $1.key }.map { name, value in
            Optional(value.build(named: name, in: arena))
        }
        p.pointee.n_attribute = attributes.count
        p.pointee.attribute = arena.array(attributes)
        p.pointee.doc_string = arena.string(docString)
        return p
    }
}

extension ONNXAttribute {
    fileprivate func build(named name: String, in arena: ONNXArena) -> UnsafeMutablePointer<Onnx__AttributeProto> {
        let p = arena.make(Onnx__AttributeProto.self, onnx__attribute_proto__init)
        p.pointee.name = arena.string(name)
        p.pointee.has_type = 1
        let code: UInt32
        switch self {
        case .float(let v):
            code = AttributeTypeCode.float
            p.pointee.has_f = 1
            p.pointee.f = v
        case .int(let v):
            code = AttributeTypeCode.int
            p.pointee.has_i = 1
            p.pointee.i = v
        case .string(let v):
            code = AttributeTypeCode.string
            p.pointee.has_s = 1
            p.pointee.s = arena.binary(v)
        case .tensor(let v):
            code = AttributeTypeCode.tensor
            p.pointee.t = v.build(in: arena)
        case .graph(let v):
            code = AttributeTypeCode.graph
            p.pointee.g = v.build(in: arena)
        case .floats(let v):
            code = AttributeTypeCode.floats
            p.pointee.n_floats = v.count
            p.pointee.floats = arena.array(v)
        case .ints(let v):
            code = AttributeTypeCode.ints
            p.pointee.n_ints = v.count
            p.pointee.ints = arena.array(v)
        case .strings(let v):
            code = AttributeTypeCode.strings
            p.pointee.n_strings = v.count
            p.pointee.strings = arena.array(v.map(arena.binary))
        case .tensors(let v):
            code = AttributeTypeCode.tensors
            p.pointee.n_tensors = v.count
            p.pointee.tensors = arena.array(v.map { Optional($0.build(in: arena)) })
        case .graphs(let v):
            code = AttributeTypeCode.graphs
            p.pointee.n_graphs = v.count
            p.pointee.graphs = arena.array(v.map { Optional($0.build(in: arena)) })
        case .unsupported(let typeCode):
            code = UInt32(truncatingIfNeeded: typeCode)
        }
        p.pointee.type = Onnx__AttributeProto__AttributeType(rawValue: .init(code))
        return p
    }
}

extension ONNXTensor {
    fileprivate func build(in arena: ONNXArena) -> UnsafeMutablePointer<Onnx__TensorProto> {
        let p = arena.make(Onnx__TensorProto.self, onnx__tensor_proto__init)
        p.pointee.n_dims = dims.count
        p.pointee.dims = arena.array(dims)
        p.pointee.has_data_type = 1
        p.pointee.data_type = dataType
        p.pointee.n_float_data = floatData.count
        p.pointee.float_data = arena.array(floatData)
        p.pointee.n_int32_data = int32Data.count
        p.pointee.int32_data = arena.array(int32Data)
        p.pointee.n_string_data = stringData.count
        p.pointee.string_data = arena.array(stringData.map(arena.binary))
        p.pointee.n_int64_data = int64Data.count
        p.pointee.int64_data = arena.array(int64Data)
        p.pointee.name = arena.string(name)
        p.pointee.doc_string = arena.string(docString)
        if let rawData {
            p.pointee.has_raw_data = 1
            p.pointee.raw_data = arena.binary(rawData)
        }
        let external = externalData.sorted { $0.key < $1.key }.map { Optional(arena.stringPair($0.key, $0.value)) }
        p.pointee.n_external_data = external.count
        p.pointee.external_data = arena.array(external)
        if isExternal {
            p.pointee.has_data_location = 1
            p.pointee.data_location = Onnx__TensorProto__DataLocation(rawValue: 1)
        }
        p.pointee.n_double_data = doubleData.count
        p.pointee.double_data = arena.array(doubleData)
        p.pointee.n_uint64_data = uint64Data.count
        p.pointee.uint64_data = arena.array(uint64Data)
        return p
    }
}

extension ONNXValueInfo {
    fileprivate func build(in arena: ONNXArena) -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        let p = arena.make(Onnx__ValueInfoProto.self, onnx__value_info_proto__init)
        p.pointee.name = arena.string(name)
        p.pointee.doc_string = arena.string(docString)
        guard isTensor else { return p }
        let type = arena.make(Onnx__TypeProto.self, onnx__type_proto__init)
        let tensor = arena.make(Onnx__TypeProto__Tensor.self, onnx__type_proto__tensor__init)
        tensor.pointee.has_elem_type = 1
        tensor.pointee.elem_type = elemType
        if let shape {
            let s = arena.make(Onnx__TensorShapeProto.self, onnx__tensor_shape_proto__init)
            let dims = shape.map { dim -> UnsafeMutablePointer<Onnx__TensorShapeProto__Dimension>? in
                let d = arena.make(Onnx__TensorShapeProto__Dimension.self, onnx__tensor_shape_proto__dimension__init)
                switch dim {
                case .value(let v):
                    d.pointee.value_case = .init(rawValue: 1)
                    d.pointee.dim_value = v
                case .param(let name):
                    d.pointee.value_case = .init(rawValue: 2)
                    d.pointee.dim_param = arena.string(name) ?? {
                        let e = arena.allocate(CChar.self, count: 1)
                        e.initialize(to: 0)
                        return e
                    }()
                case .unknown:
                    break
                }
                return d
            }
            s.pointee.n_dim = dims.count
            s.pointee.dim = arena.array(dims)
            tensor.pointee.shape = s
        }
        type.pointee.value_case = .init(rawValue: 1)
        type.pointee.tensor_type = tensor
        p.pointee.type = type
        return p
    }
}
