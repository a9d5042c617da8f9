internal import CSwerveProto

// The server's way to write a ModelInferResponse: straight from the outputs' names, shapes and
// values into a protobuf-c struct in the thread's scratch arena, then packed, without first
// building `ModelInferResponse`'s Swift values. The values go out in the layouts
// TensorValues.swift defines, typed or raw.

extension ModelInferResponse {
    /// Encodes a response straight from its parts, without building a `ModelInferResponse`
    /// first: what the server does for every ModelInfer. `output(i)` gives output i's name,
    /// shape and values; the datatype is the values' element type. With `raw`, the values go
    /// to `raw_output_contents` in output order (KServe's raw layout) instead of typed contents.
    public static func serialize(
        modelName: String, modelVersion: String, id: String, raw: Bool, outputCount: Int,
        output: (Int) -> (name: String, shape: [Int], values: TensorValues)
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
            let (name, shape, values) = output(i)
            let t = arena.allocate(Inference__ModelInferResponse__InferOutputTensor.self, count: 1)
            inference__model_infer_response__infer_output_tensor__init(t)
            t.pointee.name = arena.cString(name)
            t.pointee.datatype = arena.cString(values.elementType.rawValue)
            t.pointee.n_shape = shape.count
            if !shape.isEmpty {
                let dims = arena.allocate(Int64.self, count: shape.count)
                for j in shape.indices { dims[j] = Int64(shape[j]) }
                t.pointee.shape = dims
            }
            if raw {
                raws[rawCount] = rawContents(values, arena)
                rawCount += 1
            } else {
                let c = arena.allocate(Inference__InferTensorContents.self, count: 1)
                inference__infer_tensor_contents__init(c)
                var contents = ArenaContents(c: c)
                values.writeTypedContents(to: &contents, arena)
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

    /// Typed contents written by the one typed mapping straight into the protobuf-c struct: a
    /// `InferTensorContents` in between would cost eight arrays made and dropped per output.
    /// The arena comes with each call rather than being stored (see `writeTypedContents`).
    private struct ArenaContents: TypedContentsWriter {
        let c: UnsafeMutablePointer<Inference__InferTensorContents>

        func setBoolContents(_ v: [Bool], _ arena: Arena) { c.pointee.n_bool_contents = v.count; c.pointee.bool_contents = arena.array(v.lazy.map { $0 ? 1 : 0 }) }
        func setIntContents(_ v: some Collection<Int32>, _ arena: Arena) { c.pointee.n_int_contents = v.count; c.pointee.int_contents = arena.array(v) }
        func setInt64Contents(_ v: [Int64], _ arena: Arena) { c.pointee.n_int64_contents = v.count; c.pointee.int64_contents = arena.array(v) }
        func setUIntContents(_ v: some Collection<UInt32>, _ arena: Arena) { c.pointee.n_uint_contents = v.count; c.pointee.uint_contents = arena.array(v) }
        func setUInt64Contents(_ v: [UInt64], _ arena: Arena) { c.pointee.n_uint64_contents = v.count; c.pointee.uint64_contents = arena.array(v) }
        func setFP32Contents(_ v: [Float], _ arena: Arena) { c.pointee.n_fp32_contents = v.count; c.pointee.fp32_contents = arena.array(v) }
        func setFP64Contents(_ v: [Double], _ arena: Arena) { c.pointee.n_fp64_contents = v.count; c.pointee.fp64_contents = arena.array(v) }
        func setBytesContents(_ v: [[UInt8]], _ arena: Arena) { c.pointee.n_bytes_contents = v.count; c.pointee.bytes_contents = arena.binaries(v) }
    }

    /// `values` in the raw layout, written once, into the arena.
    private static func rawContents(_ values: TensorValues, _ arena: Arena) -> ProtobufCBinaryData {
        let n = values.rawByteCount
        if n == 0 { return ProtobufCBinaryData(len: 0, data: nil) }
        let p = arena.allocate(UInt8.self, count: n)
        values.writeRaw(to: UnsafeMutableRawBufferPointer(start: p, count: n))
        return ProtobufCBinaryData(len: n, data: p)
    }
}
