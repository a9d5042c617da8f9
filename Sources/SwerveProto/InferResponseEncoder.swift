internal import CSwerveProto

// The server's way to write a ModelInferResponse: straight from the outputs' names, datatypes,
// shapes and values into a protobuf-c struct in the thread's scratch arena, then packed,
// without first building `ModelInferResponse`'s Swift values.

/// The values of one output for `ModelInferResponse.serialize`, in their own element type.
/// Typed contents widen INT8/INT16 to `int_contents` and UINT8 to `uint_contents`, as the
/// protocol has no narrower fields; raw contents keep every element at its own width.
public enum InferOutputValues: Sendable {
    case bool([Bool]), int8([Int8]), int16([Int16]), int32([Int32]), int64([Int64])
    case uint8([UInt8]), uint32([UInt32]), uint64([UInt64])
    case fp32([Float]), fp64([Double]), bytes([[UInt8]])

    /// The values in KServe's raw layout: little-endian elements, BOOL one byte each, BYTES
    /// elements each after a 4-byte little-endian length.
    fileprivate func raw(_ arena: Arena) -> ProtobufCBinaryData {
        func copy<T>(_ v: [T]) -> ProtobufCBinaryData {
            let n = v.count * MemoryLayout<T>.stride
            if n == 0 { return ProtobufCBinaryData(len: 0, data: nil) }
            let p = arena.allocate(UInt8.self, count: n)
            v.withUnsafeBytes { UnsafeMutableRawPointer(p).copyMemory(from: $0.baseAddress!, byteCount: n) }
            return ProtobufCBinaryData(len: n, data: p)
        }
        switch self {
        case .bool(let v): return copy(v.map { $0 ? UInt8(1) : 0 })
        case .int8(let v): return copy(v)
        case .int16(let v): return copy(v)
        case .int32(let v): return copy(v)
        case .uint8(let v): return copy(v)
        case .uint32(let v): return copy(v)
        case .int64(let v): return copy(v)
        case .uint64(let v): return copy(v)
        case .fp32(let v): return copy(v)
        case .fp64(let v): return copy(v)
        case .bytes(let v):
            let n = v.reduce(0) { $0 + 4 + $1.count }
            if n == 0 { return ProtobufCBinaryData(len: 0, data: nil) }
            let p = arena.allocate(UInt8.self, count: n)
            var o = 0
            for b in v {
                let len = UInt32(b.count).littleEndian
                withUnsafeBytes(of: len) { UnsafeMutableRawPointer(p + o).copyMemory(from: $0.baseAddress!, byteCount: 4) }
                o += 4
                b.withUnsafeBytes { if $0.count > 0 { UnsafeMutableRawPointer(p + o).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
                o += b.count
            }
            return ProtobufCBinaryData(len: n, data: p)
        }
    }
}

extension ModelInferResponse {
    /// Encodes a response straight from its parts, without building a `ModelInferResponse`
    /// first: what the server does for every ModelInfer. `output(i)` gives output i's name,
    /// datatype, shape and values. With `raw`, the values go to `raw_output_contents` in output
    /// order (KServe's raw layout for the datatype) instead of typed contents.
    public static func serialize(
        modelName: String, modelVersion: String, id: String, raw: Bool, outputCount: Int,
        output: (Int) -> (name: String, datatype: String, shape: [Int], values: InferOutputValues)
    ) -> [UInt8] {
        let arena = Arena()
        var m = Inference__ModelInferResponse()
        inference__model_infer_response__init(&m)
        m.model_name = arena.cString(modelName)
        m.model_version = arena.cString(modelVersion)
        m.id = arena.cString(id)
        let outputs = arena.allocate(Optional<UnsafeMutablePointer<Inference__ModelInferResponse__InferOutputTensor>>.self, count: outputCount)
        let raws = arena.allocate(ProtobufCBinaryData.self, count: outputCount)
        var rawCount = 0
        for i in 0..<outputCount {
            let o = output(i)
            let t = arena.allocate(Inference__ModelInferResponse__InferOutputTensor.self, count: 1)
            inference__model_infer_response__infer_output_tensor__init(t)
            t.pointee.name = arena.cString(o.name)
            t.pointee.datatype = arena.cString(o.datatype)
            t.pointee.n_shape = o.shape.count
            if !o.shape.isEmpty {
                let dims = arena.allocate(Int64.self, count: o.shape.count)
                for (j, d) in o.shape.enumerated() { dims[j] = Int64(d) }
                t.pointee.shape = dims
            }
            if raw {
                raws[rawCount] = o.values.raw(arena)
                rawCount += 1
            } else {
                let c = arena.allocate(Inference__InferTensorContents.self, count: 1)
                inference__infer_tensor_contents__init(c)
                switch o.values {
                case .bool(let v): c.pointee.n_bool_contents = v.count; c.pointee.bool_contents = arena.array(v.map { $0 ? 1 : 0 })
                case .int8(let v): c.pointee.n_int_contents = v.count; c.pointee.int_contents = arena.array(v.map(Int32.init))
                case .int16(let v): c.pointee.n_int_contents = v.count; c.pointee.int_contents = arena.array(v.map(Int32.init))
                case .int32(let v): c.pointee.n_int_contents = v.count; c.pointee.int_contents = arena.array(v)
                case .uint8(let v): c.pointee.n_uint_contents = v.count; c.pointee.uint_contents = arena.array(v.map(UInt32.init))
                case .int64(let v): c.pointee.n_int64_contents = v.count; c.pointee.int64_contents = arena.array(v)
                case .uint32(let v): c.pointee.n_uint_contents = v.count; c.pointee.uint_contents = arena.array(v)
                case .uint64(let v): c.pointee.n_uint64_contents = v.count; c.pointee.uint64_contents = arena.array(v)
                case .fp32(let v): c.pointee.n_fp32_contents = v.count; c.pointee.fp32_contents = arena.array(v)
                case .fp64(let v): c.pointee.n_fp64_contents = v.count; c.pointee.fp64_contents = arena.array(v)
                case .bytes(let v):
                    c.pointee.n_bytes_contents = v.count
                    if !v.isEmpty {
                        let items = arena.allocate(ProtobufCBinaryData.self, count: v.count)
                        for (j, b) in v.enumerated() { items[j] = arena.binary(b) }
                        c.pointee.bytes_contents = items
                    }
                }
                t.pointee.contents = c
            }
            outputs[i] = t
        }
        m.n_outputs = outputCount
        m.outputs = outputCount > 0 ? outputs : nil
        m.n_raw_output_contents = rawCount
        m.raw_output_contents = rawCount > 0 ? raws : nil
        return encode(m, arena: arena, size: inference__model_infer_response__get_packed_size, pack: inference__model_infer_response__pack)
    }
}
