import SwerveInference

/// The canonical identity of an inference request, for the response cache and in-flight
/// coalescing: two requests with equal keys must get equal responses from one model version.
///
/// The key is the model name, the resolved version, the requested output names (in request order,
/// since the response follows it), and every input's name, datatype, shape and element bytes in
/// KServe's raw little-endian layout (BYTES elements length-prefixed). Inputs are taken in name
/// order, so the order a client listed them in does not matter.
///
/// The full encoding is kept as one contiguous byte array together with its XXH64 hash. Equality
/// compares the bytes, never just the hash: a hash collision can cost a probe, never a wrong answer.
///
/// Encoding (all integers little-endian), unambiguous because every variable part is
/// length-prefixed:
/// ```
/// u8 format(1)
/// u32 len, model utf8 | i64 version
/// u32 outputCount, { u32 len, name utf8 }*
/// u32 inputCount,  { u32 len, name utf8 | u8 onnxElemType | u32 rank, i64 dim* | u64 byteCount, bytes }*
/// ```
public struct RequestKey: Hashable, Sendable, CustomStringConvertible {
    /// The canonical encoding of the request.
    public let bytes: [UInt8]
    /// XXH64 of `bytes`: picks the cache shard and feeds the traffic sketches.
    public let hash: UInt64

    private static let format: UInt8 = 1

    /// Builds the key of a request. `inputs` are (name, tensor) pairs in any order; `outputs` are the
    /// requested output names in request order (empty = all outputs, which is a distinct request).
    /// Costs one allocation for the key bytes (plus a small index array when the inputs are not
    /// already in name order).
    public init(model: String, version: Int, outputs: [String], inputs: [(name: String, tensor: Tensor)],
                seed: UInt64 = Hash64.defaultSeed) {
        self.init(model: model, version: version, outputs: outputs, inputCount: inputs.count,
                  name: { inputs[$0].name }, tensor: { inputs[$0].tensor }, seed: seed)
    }

    /// Builds the key of a request whose inputs are given as parallel arrays, such as the model's
    /// input names and the tensors `ServedModel.validate` returned in that order.
    public init(model: String, version: Int, outputs: [String], inputNames: [String], inputs: [Tensor],
                seed: UInt64 = Hash64.defaultSeed) {
        precondition(inputNames.count == inputs.count, "RequestKey: \(inputNames.count) names for \(inputs.count) inputs")
        self.init(model: model, version: version, outputs: outputs, inputCount: inputs.count,
                  name: { inputNames[$0] }, tensor: { inputs[$0] }, seed: seed)
    }

    private init(model: String, version: Int, outputs: [String], inputCount: Int,
                 name: (Int) -> String, tensor: (Int) -> Tensor, seed: UInt64) {
        var model = model
        var size = 1 + 4 + model.utf8.count + 8 + 4
        for o in outputs { size += 4 + o.utf8.count }
        size += 4
        for i in 0..<inputCount {
            let t = tensor(i)
            size += 4 + name(i).utf8.count + 1 + 4 + 8 * t.shape.count + 8 + Self.dataByteCount(t.data)
        }
        var sortedOrder: [Int]? = nil
        if inputCount > 1 && !(1..<inputCount).allSatisfy({ name($0 - 1) < name($0) }) {
            sortedOrder = (0..<inputCount).sorted { name($0) < name($1) }
        }
        let encoded = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var w = Writer(base: UnsafeMutableRawBufferPointer(buffer))
            w.u8(Self.format)
            w.string(&model)
            w.u64(UInt64(bitPattern: Int64(version)))
            w.u32(outputs.count)
            for var o in outputs { w.string(&o) }
            w.u32(inputCount)
            for j in 0..<inputCount {
                let i = sortedOrder?[j] ?? j
                let t = tensor(i)
                var n = name(i)
                w.string(&n)
                w.u8(UInt8(truncatingIfNeeded: t.dataType.onnxElemType))
                w.u32(t.shape.count)
                for d in t.shape { w.u64(UInt64(bitPattern: Int64(d))) }
                let byteCount = Self.dataByteCount(t.data)
                w.u64(UInt64(byteCount))
                w.data(t.data, byteCount: byteCount)
            }
            precondition(w.offset == size, "RequestKey: wrote \(w.offset) bytes, sized \(size)")
            initialized = size
        }
        self.bytes = encoded
        self.hash = Hash64.xxh64(encoded, seed: seed)
    }

    /// A key from raw parts, for tests that need two different keys with the same hash.
    init(uncheckedBytes bytes: [UInt8], hash: UInt64) {
        self.bytes = bytes
        self.hash = hash
    }

    /// The size of the key in memory, charged to the cache entry that holds it.
    public var byteCount: Int { bytes.count }

    public static func == (a: RequestKey, b: RequestKey) -> Bool {
        a.hash == b.hash && a.bytes == b.bytes
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    public var description: String { "RequestKey(\(bytes.count) bytes, hash \(String(hash, radix: 16)))" }

    /// Bytes of `data` in the raw layout.
    static func dataByteCount(_ data: TensorData) -> Int { data.rawByteCount }

    /// Sequential little-endian writes into a buffer sized beforehand.
    private struct Writer {
        let base: UnsafeMutableRawBufferPointer
        var offset = 0

        mutating func u8(_ v: UInt8) { base[offset] = v; offset += 1 }
        mutating func u32(_ v: Int) {
            base.storeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian, toByteOffset: offset, as: UInt32.self)
            offset += 4
        }
        mutating func u64(_ v: UInt64) {
            base.storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        mutating func raw(_ src: UnsafeRawBufferPointer) {
            guard src.count > 0 else { return }
            UnsafeMutableRawBufferPointer(rebasing: base[offset..<(offset + src.count)]).copyMemory(from: src)
            offset += src.count
        }
        mutating func string(_ s: inout String) {
            u32(s.utf8.count)
            s.withUTF8 { raw(UnsafeRawBufferPointer($0)) }
        }
        /// `d` in the raw layout, `byteCount` (its `rawByteCount`) bytes.
        mutating func data(_ d: TensorData, byteCount: Int) {
            d.writeRaw(to: UnsafeMutableRawBufferPointer(rebasing: base[offset..<(offset + byteCount)]))
            offset += byteCount
        }
    }
}
