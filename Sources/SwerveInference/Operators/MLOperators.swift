// The ai.onnx.ml operators scikit-learn converters emit for linear models and preprocessing.
// Where the ONNX spec is silent, behaviour follows onnxruntime (the numeric oracle), including
// its two-column output for binary classifiers with one coefficient row.
import CSwerveKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The inputs the ML operators accept; all are converted to FP32 first, as onnxruntime does.
let mlNumericInputs: Set<DataType> = [.fp32, .fp64, .int64, .int32]

/// Reads element `i` of a numeric value as Float.
@inline(__always)
func readFloat(_ frame: Frame, _ v: Int, _ type: DataType, _ i: Int) -> Float {
    switch type {
    case .fp32: frame.pointer(v, Float.self)[i]
    case .fp64: Float(frame.pointer(v, Double.self)[i])
    case .int64: Float(frame.pointer(v, Int64.self)[i])
    case .int32: Float(frame.pointer(v, Int32.self)[i])
    default: 0
    }
}

enum PostTransform: String, Sendable {
    case none = "NONE", logistic = "LOGISTIC", softmax = "SOFTMAX", softmaxZero = "SOFTMAX_ZERO", probit = "PROBIT"

    init(_ ctx: NodeContext) throws {
        let name = try ctx.string("post_transform", default: "NONE")
        guard let t = PostTransform(rawValue: name) else { throw ctx.invalid("unknown post_transform '\(name)'") }
        self = t
    }
}

/// onnxruntime's inverse-error-function approximation, used by PROBIT.
@inline(__always)
func erfInv(_ value: Float) -> Float {
    let sgn: Float = value < 0 ? -1 : 1
    let x = (1 - value) * (1 + value)
    let lnx = logf(x)
    let v = 2 / (Float.pi * 0.147) + 0.5 * lnx
    let v2 = 1 / 0.147 * lnx
    let v3 = -v + (v * v - v2).squareRoot()
    return sgn * v3.squareRoot()
}

@inline(__always) func probit(_ x: Float) -> Float { Float(2).squareRoot() * erfInv(2 * x - 1) }

/// onnxruntime's SOFTMAX_ZERO: entries that are (almost) zero stay zero.
func softmaxZero(_ row: UnsafeMutablePointer<Float>, _ n: Int) {
    var maxValue = -Float.greatestFiniteMagnitude
    for j in 0..<n { maxValue = max(maxValue, row[j]) }
    let expNegMax = expf(-maxValue)
    var sum: Float = 0
    for j in 0..<n {
        if row[j] > 0.0000001 || row[j] < -0.0000001 {
            row[j] = expf(row[j] - maxValue)
            sum += row[j]
        } else {
            row[j] *= expNegMax
        }
    }
    for j in 0..<n { row[j] /= sum }
}

/// The post-transform onnxruntime applies to a `rows × cols` score matrix in place. With one
/// column only PROBIT changes anything (as in onnxruntime).
func applyPostTransform(_ scores: UnsafeMutablePointer<Float>, rows: Int, cols: Int, _ transform: PostTransform) {
    let n = rows * cols
    if cols == 1 {
        if transform == .probit { for i in 0..<n { scores[i] = probit(scores[i]) } }
        return
    }
    switch transform {
    case .none: break
    case .logistic: swk_vsigmoid(n, scores, scores)
    case .probit: for i in 0..<n { scores[i] = probit(scores[i]) }
    case .softmax: softmax(scores, scores, outer: rows, length: cols, inner: 1)
    case .softmaxZero: for r in 0..<rows { softmaxZero(scores + r * cols, cols) }
    }
}

/// X [N, F] (or [F]) as FP32 rows; returns (rows, features).
func featureRows(_ ctx: NodeContext, _ x: Int) throws -> (rows: SymDim, features: Int) {
    let shape = ctx.type(x).shape
    switch shape.count {
    case 1:
        guard let f = shape[0].fixedValue else { throw ctx.unsupported("a 1-D input must have a fixed length") }
        return (.fixed(1), f)
    case 2:
        guard let f = shape[1].fixedValue else { throw ctx.unsupported("the feature dimension must be fixed") }
        return (shape[0], f)
    default:
        throw ctx.invalid("input must be [N, F] or [F], got \(shape.text)")
    }
}

/// Converts X to FP32 into `buffer` unless it already is, and returns a pointer to FP32 rows.
func floatInput(_ frame: Frame, _ x: Int, _ type: DataType, _ scratch: Int?) -> UnsafeMutablePointer<Float> {
    guard type != .fp32, let scratch else { return frame.pointer(x, Float.self) }
    let p = frame.pointer(scratch, Float.self)
    for i in 0..<frame.count(x) { p[i] = readFloat(frame, x, type, i) }
    return p
}

// MARK: LinearClassifier

func buildLinearClassifier(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let type = try ctx.requireType(x, mlNumericInputs)
    let (rows, features) = try featureRows(ctx, x)
    guard let coefficients = try ctx.floats("coefficients"), !coefficients.isEmpty else {
        throw ctx.invalid("missing attribute 'coefficients'")
    }
    let intercepts = try ctx.floats("intercepts") ?? []
    let classCount = intercepts.isEmpty ? coefficients.count / max(features, 1) : intercepts.count
    guard classCount > 0, coefficients.count == classCount * features else {
        throw ctx.invalid("\(coefficients.count) coefficients do not fit \(classCount) classes × \(features) features")
    }
    let stringLabels = try ctx.strings("classlabels_strings") ?? []
    let intLabels = try ctx.ints("classlabels_ints") ?? []
    let labelCount = stringLabels.isEmpty ? intLabels.count : stringLabels.count
    if classCount > 1, labelCount != 0, labelCount != classCount {
        throw ctx.invalid("\(labelCount) class labels for \(classCount) classes")
    }
    if classCount == 1, labelCount != 0, labelCount != 2 {
        throw ctx.invalid("a binary classifier needs 2 class labels, has \(labelCount)")
    }
    guard ctx.outputs.count == 2 else { throw ctx.invalid("needs 2 outputs (labels, scores), has \(ctx.outputs.count)") }
    let transform = try PostTransform(ctx)
    let addSecondClass = classCount == 1 && labelCount == 2
    let scoreColumns = addSecondClass ? 2 : classCount
    // Scores are computed into the output as [N, classCount]; a scratch value holds the FP32 copy
    // of a non-FP32 input.
    let scratch = type == .fp32 ? nil : ctx.scratch(ValueType(dataType: .fp32, shape: ctx.type(x).shape))
    let kernel = LinearClassifierKernel(
        input: x, inputType: type, scratch: scratch, labels: ctx.outputs[0],
        scores: ctx.outputs[1],
        features: features, classCount: classCount,
        weights: transposed(coefficients, rows: classCount, cols: features),
        intercepts: intercepts.isEmpty ? [Float](repeating: 0, count: classCount) : intercepts,
        intLabels: intLabels, stringLabels: stringLabels, transform: transform, addSecondClass: addSecondClass)
    return (kernel, [ValueType(dataType: stringLabels.isEmpty ? .int64 : .bytes, shape: [rows]),
                     ValueType(dataType: .fp32, shape: [rows, .fixed(scoreColumns)])])
}

/// Row-major transpose of a `rows × cols` matrix.
func transposed(_ m: [Float], rows: Int, cols: Int) -> [Float] {
    var t = [Float](repeating: 0, count: m.count)
    for r in 0..<rows { for c in 0..<cols { t[c * rows + r] = m[r * cols + c] } }
    return t
}

struct LinearClassifierKernel: Kernel {
    let input: Int, inputType: DataType, scratch: Int?, labels: Int, scores: Int
    let features: Int, classCount: Int
    /// Coefficients as [features, classes].
    let weights: [Float]
    let intercepts: [Float]
    let intLabels: [Int64], stringLabels: [[UInt8]]
    let transform: PostTransform, addSecondClass: Bool

    func execute(_ frame: Frame) {
        let rows = frame.count(labels)
        let x = floatInput(frame, input, inputType, scratch)
        let s = frame.pointer(scores, Float.self)
        let k = classCount
        for r in 0..<rows { for j in 0..<k { s[r * k + j] = intercepts[j] } }
        weights.withUnsafeBufferPointer { w in
            // The row-by-row SIMD kernel, never a choice by batch size: a row's scores must not
            // depend on the batch it is computed in (serving paths agree bit for bit).
            sgemm(transA: false, transB: false, m: rows, n: k, k: features, alpha: 1, a: x, lda: features,
                  b: w.baseAddress!, ldb: k, beta: 1, c: s, ldc: k, backend: .simd)
        }
        let useStrings = !stringLabels.isEmpty
        var stringOut: [[UInt8]] = []
        if useStrings { stringOut.reserveCapacity(rows) }
        let intOut = useStrings ? nil : frame.pointer(labels, Int64.self)

        if k == 1 {
            let twoLabels = addSecondClass
            for r in 0..<rows {
                let positive = s[r] > 0
                if useStrings {
                    stringOut.append(twoLabels ? stringLabels[positive ? 1 : 0] : Array((positive ? "1" : "0").utf8))
                } else {
                    intOut![r] = twoLabels ? intLabels[positive ? 1 : 0] : (positive ? 1 : 0)
                }
            }
            if addSecondClass {
                // onnxruntime writes [1 - p, p] where p is the (logistic-transformed) score;
                // walk backwards so the one-column scores can expand in place.
                if transform == .logistic { swk_vsigmoid(rows, s, s) }
                for r in stride(from: rows - 1, through: 0, by: -1) {
                    var p = s[r]
                    if transform == .probit { p = probit(p) }
                    s[2 * r] = 1 - p
                    s[2 * r + 1] = p
                }
            } else {
                applyPostTransform(s, rows: rows, cols: 1, transform)
            }
        } else {
            for r in 0..<rows {
                let row = s + r * k
                var best = 0
                for j in 1..<k where row[j] > row[best] { best = j }
                if useStrings {
                    stringOut.append(stringLabels[best])
                } else {
                    intOut![r] = intLabels.isEmpty ? Int64(best) : intLabels[best]
                }
            }
            applyPostTransform(s, rows: rows, cols: k, transform)
        }
        if useStrings { frame.setStrings(labels, stringOut) }
    }
}

// MARK: LinearRegressor

func buildLinearRegressor(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let type = try ctx.requireType(x, mlNumericInputs)
    let (rows, features) = try featureRows(ctx, x)
    let targets = try ctx.int("targets", default: 1)
    let coefficients = try ctx.floats("coefficients") ?? []
    guard targets > 0, coefficients.count == targets * features else {
        throw ctx.invalid("\(coefficients.count) coefficients do not fit \(targets) targets × \(features) features")
    }
    let intercepts = try ctx.floats("intercepts") ?? []
    guard intercepts.isEmpty || intercepts.count == targets else {
        throw ctx.invalid("\(intercepts.count) intercepts for \(targets) targets")
    }
    let scratch = type == .fp32 ? nil : ctx.scratch(ValueType(dataType: .fp32, shape: ctx.type(x).shape))
    let kernel = LinearRegressorKernel(
        input: x, inputType: type, scratch: scratch, out: ctx.outputs[0], features: features, targets: targets,
        weights: transposed(coefficients, rows: targets, cols: features),
        intercepts: intercepts.isEmpty ? [Float](repeating: 0, count: targets) : intercepts,
        transform: try PostTransform(ctx))
    return (kernel, [ValueType(dataType: .fp32, shape: [rows, .fixed(targets)])])
}

struct LinearRegressorKernel: Kernel {
    let input: Int, inputType: DataType, scratch: Int?, out: Int, features: Int, targets: Int
    let weights: [Float], intercepts: [Float]
    let transform: PostTransform

    func execute(_ frame: Frame) {
        let rows = frame.count(out) / targets
        let x = floatInput(frame, input, inputType, scratch)
        let y = frame.pointer(out, Float.self)
        for r in 0..<rows { for j in 0..<targets { y[r * targets + j] = intercepts[j] } }
        weights.withUnsafeBufferPointer { w in
            sgemm(transA: false, transB: false, m: rows, n: targets, k: features, alpha: 1, a: x, lda: features,
                  b: w.baseAddress!, ldb: targets, beta: 1, c: y, ldc: targets, backend: .simd)
        }
        applyPostTransform(y, rows: rows, cols: targets, transform)
    }
}

// MARK: Normalizer

func buildNormalizer(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let type = try ctx.requireType(x, mlNumericInputs)
    let shape = ctx.type(x).shape
    guard shape.count == 1 || shape.count == 2 else { throw ctx.invalid("input must have rank 1 or 2, got \(shape.text)") }
    let norm = try ctx.string("norm", default: "MAX")
    guard let mode = NormalizerKernel.Mode(rawValue: norm) else { throw ctx.invalid("unknown norm '\(norm)'") }
    return (NormalizerKernel(input: x, inputType: type, out: ctx.outputs[0], mode: mode),
            [ValueType(dataType: .fp32, shape: shape)])
}

struct NormalizerKernel: Kernel {
    enum Mode: String, Sendable { case max = "MAX", l1 = "L1", l2 = "L2" }
    let input: Int, inputType: DataType, out: Int, mode: Mode

    func execute(_ frame: Frame) {
        let rank = frame.rank(input)
        let width = frame.dim(input, rank - 1)
        let rows = width == 0 ? 0 : frame.count(input) / width
        let y = frame.pointer(out, Float.self)
        for r in 0..<rows {
            let row = y + r * width
            for j in 0..<width { row[j] = readFloat(frame, input, inputType, r * width + j) }
            switch mode {
            case .max:
                var m = -Float.greatestFiniteMagnitude
                for j in 0..<width { m = max(m, row[j]) }
                if m != 0 { for j in 0..<width { row[j] /= m } }
            case .l1:
                var sum: Float = 0
                for j in 0..<width { sum += abs(row[j]) }
                if sum != 0 { for j in 0..<width { row[j] /= sum } }
            case .l2:
                var sum: Float = 0
                for j in 0..<width { sum += row[j] * row[j] }
                if sum != 0 {
                    for j in 0..<width {
                        let v = (row[j] * row[j] / sum).squareRoot()
                        row[j] = row[j] < 0 ? -v : v
                    }
                }
            }
        }
    }
}

// MARK: Scaler

func buildScaler(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let type = try ctx.requireType(x, mlNumericInputs)
    let shape = ctx.type(x).shape
    guard !shape.isEmpty, let width = shape.last?.fixedValue else {
        throw ctx.invalid("input must have a fixed last dimension, got \(shape.text)")
    }
    let offset = try ctx.floats("offset") ?? [0]
    let scale = try ctx.floats("scale") ?? [1]
    for (name, v) in [("offset", offset), ("scale", scale)] where v.count != 1 && v.count != width {
        throw ctx.invalid("'\(name)' has \(v.count) values for \(width) features")
    }
    func expand(_ v: [Float]) -> [Float] { v.count == width ? v : [Float](repeating: v[0], count: width) }
    return (ScalerKernel(input: x, inputType: type, out: ctx.outputs[0], offset: expand(offset), scale: expand(scale)),
            [ValueType(dataType: .fp32, shape: shape)])
}

struct ScalerKernel: Kernel {
    let input: Int, inputType: DataType, out: Int
    let offset: [Float], scale: [Float]

    func execute(_ frame: Frame) {
        let width = offset.count
        let n = frame.count(out)
        let y = frame.pointer(out, Float.self)
        var i = 0
        while i < n {
            for j in 0..<width { y[i + j] = (readFloat(frame, input, inputType, i + j) - offset[j]) * scale[j] }
            i += width
        }
    }
}

// MARK: ArrayFeatureExtractor

func buildArrayFeatureExtractor(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(2...2)
    let x = try ctx.input(0), indices = try ctx.input(1)
    let type = try ctx.requireType(x, [.fp32, .fp64, .int64, .int32, .bytes])
    guard ctx.type(indices).dataType == .int64 else { throw ctx.invalid("indices must be INT64") }
    let shape = ctx.type(x).shape
    guard !shape.isEmpty else { throw ctx.invalid("X must have rank ≥ 1") }
    // skl2onnx classifiers pick labels with batch-many indices (the argmax of each row).
    guard let count = ctx.type(indices).shape.product().dim, count != .fixed(0) else {
        throw ctx.unsupported("the number of indices must be positive and at most linear in the batch size")
    }
    if let constant = ctx.constant(indices), case .int64(let values) = constant.data, let width = shape.last?.fixedValue,
        let bad = values.first(where: { $0 < 0 || $0 >= width })
    {
        throw ctx.invalid("index \(bad) out of range for \(width) features")
    }
    var outShape = shape
    if shape.count == 1 { outShape = [.fixed(1), count] } else { outShape[shape.count - 1] = count }
    return (ArrayFeatureExtractorKernel(input: x, indices: indices, out: ctx.outputs[0]),
            [ValueType(dataType: type, shape: outShape)])
}

struct ArrayFeatureExtractorKernel: Kernel {
    let input: Int, indices: Int, out: Int

    func execute(_ frame: Frame) throws {
        let width = frame.dim(input, frame.rank(input) - 1)
        let rows = width == 0 ? 0 : frame.count(input) / width
        let k = frame.count(indices)
        let idx = frame.pointer(indices, Int64.self)
        for j in 0..<k where idx[j] < 0 || idx[j] >= width {
            throw InferenceError(.invalidInput, "ArrayFeatureExtractor index \(idx[j]) out of range for \(width) features")
        }
        if frame.dataType(input) == .bytes {
            let src = frame.strings(input)
            var result: [[UInt8]] = []
            result.reserveCapacity(rows * k)
            for r in 0..<rows { for j in 0..<k { result.append(src[r * width + Int(idx[j])]) } }
            frame.setStrings(out, result)
            return
        }
        let size = frame.dataType(input).byteSize!
        let src = frame.raw(input), dst = frame.raw(out)
        for r in 0..<rows {
            for j in 0..<k {
                (dst + (r * k + j) * size).copyMemory(from: src + (r * width + Int(idx[j])) * size, byteCount: size)
            }
        }
    }
}
