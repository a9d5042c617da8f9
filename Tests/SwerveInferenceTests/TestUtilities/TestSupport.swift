import SwerveProto
@testable import SwerveInference

/// Seeded test inputs (SwerveInference.SplitMix64), so failures reproduce.
extension SplitMix64 {
    mutating func floats(_ n: Int, in range: ClosedRange<Float> = -1...1) -> [Float] {
        (0..<n).map { _ in Float.random(in: range, using: &self) }
    }
}

/// |a - b| ≤ max(rel·|b|, abs) for every element.
func allClose(_ a: [Float], _ b: [Float], rel: Float = 1e-5, abs absTol: Float = 1e-6) -> Bool {
    guard a.count == b.count else { return false }
    for (x, y) in zip(a, b) {
        if x.isNaN && y.isNaN { continue }
        if Swift.abs(x - y) > Swift.max(rel * Swift.abs(y), absTol) { return false }
    }
    return true
}

func allClose(_ a: [Double], _ b: [Double], rel: Double = 1e-5, abs absTol: Double = 1e-6) -> Bool {
    guard a.count == b.count else { return false }
    for (x, y) in zip(a, b) where Swift.abs(x - y) > Swift.max(rel * Swift.abs(y), absTol) { return false }
    return true
}

/// Index of the first element outside tolerance, for failure messages.
func firstMismatch(_ a: [Float], _ b: [Float], rel: Float = 1e-5, abs absTol: Float = 1e-6) -> String {
    guard a.count == b.count else { return "counts \(a.count) vs \(b.count)" }
    for (i, (x, y)) in zip(a, b).enumerated() where Swift.abs(x - y) > Swift.max(rel * Swift.abs(y), absTol) {
        return "element \(i): \(x) vs \(y)"
    }
    return "none"
}

extension Tensor {
    var floats: [Float] {
        switch data {
        case .fp32(let v): v
        case .fp64(let v): v.map { Float($0) }
        case .int64(let v): v.map { Float($0) }
        case .int32(let v): v.map { Float($0) }
        default: []
        }
    }
}

/// Builds a one-graph model for tests.
func makeModel(
    nodes: [ONNXNode], inputs: [ONNXValueInfo], outputs: [String], initializers: [ONNXTensor] = [],
    opset: Int64 = 17, mlOpset: Int64? = 3
) -> ONNXModel {
    var opsets = [ONNXOperatorSetID(domain: "", version: opset)]
    if let mlOpset { opsets.append(ONNXOperatorSetID(domain: "ai.onnx.ml", version: mlOpset)) }
    return ONNXModel(
        irVersion: 8, opsetImports: opsets, producerName: "swerve-tests",
        graph: ONNXGraph(
            name: "test", nodes: nodes, initializers: initializers, inputs: inputs,
            outputs: outputs.map { ONNXValueInfo(name: $0, isTensor: false, elemType: 0, shape: nil) }))
}

func floatInput(_ name: String, _ shape: [Int64?]) -> ONNXValueInfo {
    .tensor(name, elemType: ONNXTensor.DataTypeCode.float, shape: shape)
}

/// Compiles `model` and runs it once.
func run(_ model: ONNXModel, _ inputs: [Tensor]) throws -> [Tensor] {
    try CompiledModel(onnxBytes: model.encode()).makeExecutor().run(inputs)
}

// MARK: Naive references

/// C = alpha·op(A)·op(B) + beta·C in Double.
func referenceGemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], b: [Float], beta: Float, c: [Float]
) -> [Float] {
    var out = [Float](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var acc = 0.0
            for p in 0..<k {
                let av = transA ? a[p * m + i] : a[i * k + p]
                let bv = transB ? b[j * k + p] : b[p * n + j]
                acc += Double(av) * Double(bv)
            }
            out[i * n + j] = Float(Double(alpha) * acc + Double(beta) * Double(c[i * n + j]))
        }
    }
    return out
}

/// Index of `flat` in `shape` broadcast from an operand of `operand` shape.
func broadcastIndex(_ flat: Int, out shape: [Int], operand: [Int]) -> Int {
    var rem = flat
    var index = [Int](repeating: 0, count: shape.count)
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
        index[d] = rem % shape[d]
        rem /= shape[d]
    }
    var offset = 0
    let shift = shape.count - operand.count
    for d in 0..<operand.count {
        offset = offset * operand[d] + (operand[d] == 1 ? 0 : index[d + shift])
    }
    return offset
}

func referenceSoftmax(_ x: [Float], outer: Int, length: Int, inner: Int) -> [Float] {
    var y = x
    for o in 0..<outer {
        for i in 0..<inner {
            let idx = (0..<length).map { o * length * inner + $0 * inner + i }
            let m = idx.map { Double(x[$0]) }.max()!
            let e = idx.map { Foundation_exp(Double(x[$0]) - m) }
            let s = e.reduce(0, +)
            for (j, id) in idx.enumerated() { y[id] = Float(e[j] / s) }
        }
    }
    return y
}

#if canImport(Glibc)
import Glibc
func Foundation_exp(_ x: Double) -> Double { Glibc.exp(x) }
#else
import Darwin
func Foundation_exp(_ x: Double) -> Double { Darwin.exp(x) }
#endif
