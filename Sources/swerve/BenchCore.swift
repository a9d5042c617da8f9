import Histogram
import SwerveInference
import func SwerveServing.monotonicNanos

/// The inference core alone: one ONNX file compiled and run in-process on a fixed batch, no
/// server, no wire format. The Swift side of the onnxruntime comparison in benchmarks/.
struct CoreBenchResult: Codable, Sendable {
    var kind = "core"
    var modelFile: String
    var batch: Int
    var iterations: Int
    var meanMicros: Double
    var p50Micros: Double
    var p90Micros: Double
    var p99Micros: Double
    var minMicros: Double
    var maxMicros: Double
    var runsPerSecond: Double
    var rowsPerSecond: Double
}

func runCoreBench(modelFile: String, batch: Int, iterations: Int, warmupIterations: Int, seed: UInt64,
                  rowsFile: String? = nil) throws -> CoreBenchResult {
    let model = try CompiledModel(contentsOfFile: modelFile)
    let executor = model.makeExecutor()
    var rng = SplitMix64(seed: seed)
    // Given rows (the same ones another engine is fed), the batch takes them in turn.
    var given: [Float]?
    if let rowsFile {
        let bytes = try BoundedFile.read(rowsFile, limit: 1 << 30, what: "rows file")
        given = bytes.withUnsafeBytes { raw in (0..<(bytes.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
    }
    let inputs = try model.inputs.map { info -> Tensor in
        let shape = info.shape.enumerated().map { i, d in d >= 0 ? d : (i == 0 ? batch : 1) }
        let count = shape.reduce(1, *)
        if let given, info.dataType == .fp32 {
            let perRow = count / max(batch, 1)
            guard !given.isEmpty, perRow > 0, given.count % perRow == 0 else {
                throw InferenceError(.invalidInput, "--core-rows: \(given.count) floats are not whole rows of \(perRow)")
            }
            return Tensor(shape: shape, data: .fp32((0..<count).map { given[$0 % given.count] }))
        }
        let data: TensorData
        switch info.dataType {
        case .fp32: data = .fp32((0..<count).map { _ in Float.random(in: 0..<1, using: &rng) })
        case .fp64: data = .fp64((0..<count).map { _ in Double.random(in: 0..<1, using: &rng) })
        case .int64: data = .int64((0..<count).map { _ in Int64.random(in: 0..<16, using: &rng) })
        case .int32: data = .int32((0..<count).map { _ in Int32.random(in: 0..<16, using: &rng) })
        case .bool: data = .bool((0..<count).map { _ in Bool.random(using: &rng) })
        default: throw InferenceError(.invalidInput, "bench --core cannot generate input '\(info.name)' of type \(info.dataType.rawValue)")
        }
        return Tensor(shape: shape, data: data)
    }
    for _ in 0..<warmupIterations { _ = try executor.run(inputs) }
    // Nanosecond resolution: small models run in a few microseconds.
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    let start = monotonicNanos()
    for _ in 0..<iterations {
        let t0 = monotonicNanos()
        _ = try executor.run(inputs)
        _ = histogram.record(max(monotonicNanos() - t0, 1))
    }
    let total = Double(monotonicNanos() - start) / 1e9
    func micros(_ nanos: UInt64) -> Double { Double(nanos) / 1000 }
    return CoreBenchResult(
        modelFile: modelFile, batch: batch, iterations: iterations,
        meanMicros: total / Double(iterations) * 1e6,
        p50Micros: micros(histogram.valueAtPercentile(50)), p90Micros: micros(histogram.valueAtPercentile(90)),
        p99Micros: micros(histogram.valueAtPercentile(99)), minMicros: micros(histogram.min),
        maxMicros: micros(histogram.max), runsPerSecond: Double(iterations) / total,
        rowsPerSecond: Double(iterations * batch) / total)
}
