import SwerveClient
import SwerveInference
import SwerveProto
import SwerveTransport
import SwerveStatus

/// The inputs a model declares, with dynamic dimensions resolved: the first (batch)
/// dimension becomes `batch`, any other dynamic one 1.
struct BenchInputSpec: Sendable {
    var name: String
    var datatype: String
    var shape: [Int64]

    static func from(_ metadata: [TensorMetadata], batch: Int) -> [BenchInputSpec] {
        metadata.map { input in
            let shape = input.shape.enumerated().map { i, d in d >= 0 ? d : (i == 0 ? Int64(batch) : 1) }
            return BenchInputSpec(name: input.name, datatype: input.datatype, shape: shape)
        }
    }

    /// The number of rows one request carries (the first dimension, or 1 for a scalar).
    var rows: Int { shape.first.map(Int.init) ?? 1 }

    /// Random values of the datatype: floats in [0, 1), integers in [0, 16), short ASCII strings.
    func randomTensor(_ rng: inout SplitMix64) throws -> ClientTensor {
        let count = shape.reduce(1) { $0 * Int($1) }
        guard let type = TensorValues.ElementType(rawValue: datatype) else {
            throw GRPCStatus(.invalidArgument, "bench cannot generate input '\(name)' of datatype \(datatype)")
        }
        // Every integer type draws the same Int32s, so a seed gives the same values whatever the width.
        func small() -> [Int32] { (0..<count).map { _ in Int32.random(in: 0..<16, using: &rng) } }
        let values: TensorValues
        switch type {
        case .fp32: values = .fp32((0..<count).map { _ in Float.random(in: 0..<1, using: &rng) })
        case .fp64: values = .fp64((0..<count).map { _ in Double.random(in: 0..<1, using: &rng) })
        case .int64: values = .int64((0..<count).map { _ in Int64.random(in: 0..<16, using: &rng) })
        case .int32: values = .int32(small())
        case .int16: values = .int16(small().map { Int16($0) })
        case .int8: values = .int8(small().map { Int8($0) })
        case .uint64: values = .uint64((0..<count).map { _ in UInt64.random(in: 0..<16, using: &rng) })
        case .uint32: values = .uint32(small().map { UInt32($0) })
        case .uint16: values = .uint16(small().map { UInt16($0) })
        case .uint8: values = .uint8(small().map { UInt8($0) })
        case .bool: values = .bool((0..<count).map { _ in Bool.random(using: &rng) })
        case .bytes:
            values = .bytes((0..<count).map { _ in (0..<8).map { _ in UInt8.random(in: 0x61...0x7A, using: &rng) } })
        }
        return ClientTensor(shape: shape, values: values)
    }
}

/// Where each request's inputs come from.
///
/// - `legacy` (the default): a pool of `--distinct` random requests sent round-robin, or with
///   `--distinct 0` one template whose first element carries the request number (every request
///   distinct).
/// - `indexed`: request n carries input number k out of `--distinct N`, k drawn uniformly or from
///   Zipf(S) (see `IndexedInputs`); inputs are made from k lazily, never all at once.
/// - `pool`: requests read from a file (`--inputs file:PATH`), sent in order and cycled.
struct BenchRequestSource: Sendable {
    /// How to stamp a number into the template.
    enum Stamp: Sendable {
        case fp32, fp64, int32, int64
    }

    enum Kind: Sendable {
        case pool([[UInt8]])
        case stamped(template: [UInt8], offset: Int, stamp: Stamp)
        case indexed(IndexedInputs)
        case mixed(BenchMix)
    }

    let kind: Kind
    let rowsPerRequest: Int
    /// `--inputs file:` with `"_time"` on its lines: each request's recorded send time, in seconds
    /// from the first.
    var recordedTimes: [Double]?
    /// What the report calls this source, e.g. "zipf:1.1 over 1000000 distinct".
    let description: String

    /// The default source.
    /// - Parameters:
    ///   - distinct: the number of distinct requests; 0 asks for a distinct request each time
    ///     (falls back to a pool of 1024 when the first input's datatype cannot be stamped).
    init(
        model: String, version: String, specs: [BenchInputSpec], distinct: Int, typed: Bool, seed: UInt64
    ) throws {
        var rng = SplitMix64(seed: seed)
        rowsPerRequest = specs.first?.rows ?? 1
        func encode(_ rng: inout SplitMix64) throws -> (bytes: [UInt8], first: ClientTensor?) {
            var tensors: [String: ClientTensor] = [:]
            var first: ClientTensor?
            for spec in specs {
                let tensor = try spec.randomTensor(&rng)
                tensors[spec.name] = tensor
                if first == nil { first = tensor }
            }
            let request = try SwerveClient.makeInferRequest(model: model, version: version, inputs: tensors, raw: !typed)
            return (request.serializedBytes(), first)
        }
        if distinct == 0 {
            let (template, first) = try encode(&rng)
            if let first, let (stamp, needle) = Self.stampable(first), let offset = Self.find(needle, in: template) {
                kind = .stamped(template: template, offset: offset, stamp: stamp)
                description = "unique"
                return
            }
        }
        let count = distinct == 0 ? 1024 : distinct
        kind = .pool(try (0..<count).map { _ in try encode(&rng).bytes })
        description = "pool of \(count)"
    }

    init(kind: Kind, rowsPerRequest: Int, description: String) {
        self.kind = kind
        self.rowsPerRequest = rowsPerRequest
        self.description = description
    }

    /// Whether this request source makes every request distinct.
    var isUnique: Bool { if case .stamped = kind { true } else { false } }

    /// The size of one encoded request (request 0).
    var requestBytes: Int { request(0).count }

    /// Request number `n`.
    @inline(__always)
    func request(_ n: Int) -> [UInt8] {
        switch kind {
        case .pool(let pool): return pool[n % pool.count]
        case .stamped(let template, let offset, let stamp): return Self.stamped(template, offset: offset, stamp: stamp, number: n)
        case .indexed(let inputs): return inputs.request(n)
        case .mixed(let mix): return mix.sources[mix.wheel[n % mix.wheel.count]].request(n)
        }
    }

    /// With several models: which one request `n` goes to (its position in `--model`).
    @inline(__always)
    func mixIndex(_ n: Int) -> Int? {
        if case .mixed(let mix) = kind { return mix.wheel[n % mix.wheel.count] }
        return nil
    }

    /// Requests to several models in proportion to their weights, interleaved (smooth weighted
    /// round robin over a wheel of the weights' sum): request n goes to model `wheel[n % sum]`.
    static func mixing(_ parts: [(name: String, weight: Int, source: BenchRequestSource)]) -> BenchRequestSource {
        var wheel: [Int] = []
        var current = [Int](repeating: 0, count: parts.count)
        let total = parts.reduce(0) { $0 + $1.weight }
        for _ in 0..<total {
            for k in parts.indices { current[k] += parts[k].weight }
            let best = current.indices.max { current[$0] < current[$1] || (current[$0] == current[$1] && $0 > $1) }!
            current[best] -= total
            wheel.append(best)
        }
        let mix = BenchMix(names: parts.map(\.name), weights: parts.map(\.weight), sources: parts.map(\.source), wheel: wheel)
        return BenchRequestSource(kind: .mixed(mix), rowsPerRequest: parts[0].source.rowsPerRequest,
                                  description: "mix of " + parts.map { "\($0.name)×\($0.weight) (\($0.source.description))" }.joined(separator: ", "))
    }

    /// `template` with `number` written over the first element(s) at `offset`.
    @inline(__always)
    static func stamped(_ template: [UInt8], offset: Int, stamp: Stamp, number n: Int) -> [UInt8] {
        var bytes = template
        bytes.withUnsafeMutableBytes { p in
            switch stamp {
            case .fp32:
                // Exact in FP32 for n < 2^24; the second element carries the high bits.
                let low = Float(n & 0xFF_FFFF) / 16_777_216
                p.storeBytes(of: low.bitPattern.littleEndian, toByteOffset: offset, as: UInt32.self)
                if p.count >= offset + 8 {
                    let high = Float((n >> 24) & 0xFF_FFFF) / 16_777_216
                    p.storeBytes(of: high.bitPattern.littleEndian, toByteOffset: offset + 4, as: UInt32.self)
                }
            case .fp64:
                let value = Double(n & 0xF_FFFF_FFFF_FFFF) / 4_503_599_627_370_496
                p.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: offset, as: UInt64.self)
            case .int32: p.storeBytes(of: Int32(truncatingIfNeeded: n).littleEndian, toByteOffset: offset, as: Int32.self)
            case .int64: p.storeBytes(of: Int64(n).littleEndian, toByteOffset: offset, as: Int64.self)
            }
        }
        return bytes
    }

    /// The stamp kind and the bytes (as encoded, raw or packed typed) of the tensor's first
    /// elements, to find in the message. Only fixed-width types encoded verbatim qualify.
    static func stampable(_ tensor: ClientTensor) -> (Stamp, [UInt8])? {
        guard let raw = try? tensor.rawBytes() else { return nil }
        switch tensor.datatype {
        case "FP32" where raw.count >= 8: return (.fp32, raw)
        case "FP64" where raw.count >= 8: return (.fp64, raw)
        // Typed INT32/INT64 are varints, so only raw contents are found verbatim.
        case "INT32" where raw.count >= 4: return (.int32, raw)
        case "INT64" where raw.count >= 8: return (.int64, raw)
        default: return nil
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard !needle.isEmpty, needle.count <= haystack.count else { return nil }
        outer: for start in 0...(haystack.count - needle.count) {
            for j in 0..<needle.count where haystack[start + j] != needle[j] { continue outer }
            return start
        }
        return nil
    }
}

/// `--model a:3 --model b:1`: the models of a mixed run and the order requests take.
struct BenchMix: Sendable {
    var names: [String]
    var weights: [Int]
    var sources: [BenchRequestSource]
    var wheel: [Int]
}
