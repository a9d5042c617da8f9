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
            let o = output(i)
            let t = arena.allocate(Inference__ModelInferResponse__InferOutputTensor.self, count: 1)
            inference__model_infer_response__infer_output_tensor__init(t)
            t.pointee.name = arena.cString(o.name)
            t.pointee.datatype = arena.cString(o.values.elementType.rawValue)
            t.pointee.n_shape = o.shape.count
            if !o.shape.isEmpty {
                let dims = arena.allocate(Int64.self, count: o.shape.count)
                for (j, d) in o.shape.enumerated() { dims[j] = Int64(d) }
                t.pointee.shape = dims
            }
            if raw {
                raws[rawCount] = rawContents(o.values, arena)
                rawCount += 1
            } else {
                t.pointee.contents = arena.box(InferTensorContents(o.values).build(arena))
            }
            outputs[i] = t
        }
        m.n_outputs = outputCount
        m.outputs = outputCount > 0 ? outputs : nil
        m.n_raw_output_contents = rawCount
        m.raw_output_contents = rawCount > 0 ? raws : nil
        return encode(m, arena: arena, size: inference__model_infer_response__get_packed_size, pack: inference__model_infer_response__pack)
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
