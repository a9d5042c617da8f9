// The element-wise, normalization and preprocessing operators exported tabular and neural models
// use beyond the core set: Abs, Neg, Reciprocal, HardSigmoid, Clip, Min, Max, BatchNormalization,
// Transpose, and ai.onnx.ml Imputer and FeatureVectorizer. NaN behaves as in onnxruntime: Min and
// Max propagate it, Clip and the element-wise functions keep it.

// MARK: Element-wise functions

/// An element-wise function (FP32, FP64; Abs, Neg and Clip also integers).
enum SimpleFunction: Sendable {
    case abs, neg, reciprocal
    case hardSigmoid(alpha: Double, beta: Double)
    /// A missing bound is the type's lowest / highest finite value, as in onnxruntime (so -inf
    /// becomes -greatestFiniteMagnitude without a lower bound).
    case clip(lo: Double?, hi: Double?)
}

/// Element types of the element-wise functions: each runs a whole buffer with the function's
/// case decided (and its parameters converted) once, outside the loop.
protocol SimpleScalar {
    static func run(_ f: SimpleFunction, _ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>, _ n: Int)
}

private func runFloating<T: BinaryFloatingPoint>(_ f: SimpleFunction, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ n: Int) {
    switch f {
    case .abs: for i in 0..<n { y[i] = Swift.abs(x[i]) }
    case .neg: for i in 0..<n { y[i] = -x[i] }
    case .reciprocal: for i in 0..<n { y[i] = 1 / x[i] }
    case .hardSigmoid(let a, let b):
        let alpha = T(a), beta = T(b)
        for i in 0..<n { y[i] = x[i].isNaN ? x[i] : Swift.max(0, Swift.min(1, alpha * x[i] + beta)) }
    case .clip(let lo, let hi):
        let low = lo.map { T($0) } ?? -T.greatestFiniteMagnitude, high = hi.map { T($0) } ?? T.greatestFiniteMagnitude
        for i in 0..<n { y[i] = x[i].isNaN ? x[i] : Swift.min(Swift.max(x[i], low), high) }
    }
}

private func runInteger<T: FixedWidthInteger & SignedInteger>(_ f: SimpleFunction, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ n: Int) {
    switch f {
    case .abs: for i in 0..<n { y[i] = x[i] == T.min ? x[i] : Swift.abs(x[i]) }  // wraps like onnxruntime, never traps
    case .neg: for i in 0..<n { y[i] = 0 &- x[i] }
    case .clip(let lo, let hi):
        let low = lo.map { T(clamping: saturatingInt64($0)) } ?? T.min, high = hi.map { T(clamping: saturatingInt64($0)) } ?? T.max
        for i in 0..<n { y[i] = Swift.min(Swift.max(x[i], low), high) }
    case .reciprocal, .hardSigmoid:
        y.update(from: x, count: n)  // never built for integers
    }
}

extension Float: SimpleScalar {
    static func run(_ f: SimpleFunction, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) { runFloating(f, x, y, n) }
}
extension Double: SimpleScalar {
    static func run(_ f: SimpleFunction, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ n: Int) { runFloating(f, x, y, n) }
}
extension Int64: SimpleScalar {
    static func run(_ f: SimpleFunction, _ x: UnsafePointer<Int64>, _ y: UnsafeMutablePointer<Int64>, _ n: Int) { runInteger(f, x, y, n) }
}
extension Int32: SimpleScalar {
    static func run(_ f: SimpleFunction, _ x: UnsafePointer<Int32>, _ y: UnsafeMutablePointer<Int32>, _ n: Int) { runInteger(f, x, y, n) }
}

/// `x` as an Int64, saturating at the ends (never traps; the builders refuse NaN bounds).
@inline(__always) func saturatingInt64(_ x: Double) -> Int64 {
    if x.isNaN { return 0 }
    if x >= 0x1p63 { return .max }  // 2^63: the first double past Int64.max
    if x <= -0x1p63 { return .min }
    return Int64(x)
}

struct SimpleFunctionKernel<T: SimpleScalar>: Kernel {
    let f: SimpleFunction
    let input: Int, out: Int

    func execute(_ frame: Frame) {
        T.run(f, frame.pointer(input, T.self), frame.pointer(out, T.self), frame.count(out))
    }
}

private func buildSimple(_ ctx: NodeContext, _ f: SimpleFunction, types: Set<DataType>) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    let x = try ctx.input(0)
    let t = try ctx.requireType(x, types)
    let kernel: any Kernel =
        switch t {
        case .fp32: SimpleFunctionKernel<Float>(f: f, input: x, out: ctx.outputs[0])
        case .fp64: SimpleFunctionKernel<Double>(f: f, input: x, out: ctx.outputs[0])
        case .int64: SimpleFunctionKernel<Int64>(f: f, input: x, out: ctx.outputs[0])
        default: SimpleFunctionKernel<Int32>(f: f, input: x, out: ctx.outputs[0])
        }
    return (kernel, [ctx.type(x)])
}

func buildAbs(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    return try buildSimple(ctx, .abs, types: [.fp32, .fp64, .int64, .int32])
}

func buildNeg(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    return try buildSimple(ctx, .neg, types: [.fp32, .fp64, .int64, .int32])
}

func buildReciprocal(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    return try buildSimple(ctx, .reciprocal, types: [.fp32, .fp64])
}

func buildHardSigmoid(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let alpha = Double(try ctx.float("alpha", default: 0.2)), beta = Double(try ctx.float("beta", default: 0.5))
    return try buildSimple(ctx, .hardSigmoid(alpha: alpha, beta: beta), types: [.fp32, .fp64])
}

func buildClip(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...3)
    let x = try ctx.input(0)
    let t = try ctx.requireType(x, [.fp32, .fp64, .int64, .int32])
    let integer = t == .int64 || t == .int32
    if integer && ctx.opset < 12 {
        throw ctx.unsupported("Clip of \(t.rawValue) needs opset 12 or later (before it, Clip takes floats only)")
    }
    var lo: Double?, hi: Double?
    if ctx.opset < 11 {
        lo = ctx.attribute("min") == nil ? nil : Double(try ctx.float("min", default: 0))
        hi = ctx.attribute("max") == nil ? nil : Double(try ctx.float("max", default: 0))
    } else {
        // Bounds are optional scalar inputs; Swerve needs them constant.
        func bound(_ i: Int) throws -> Double? {
            guard let id = ctx.optionalInput(i) else { return nil }
            guard let c = ctx.constant(id), c.shape.reduce(1, *) == 1 else {
                throw ctx.unsupported("input \(i) (a bound) must be a constant scalar")
            }
            // The bounds have X's type (T in the spec): an FP32 NaN bound on an integer input is refused.
            guard c.dataType == t else {
                throw ctx.invalid("input \(i) (a bound) has type \(c.dataType.rawValue), the input \(t.rawValue)")
            }
            switch c.data {
            case .fp32(let v): return Double(v[0])
            case .fp64(let v): return v[0]
            case .int64(let v): return Double(v[0])
            case .int32(let v): return Double(v[0])
            default: throw ctx.invalid("input \(i) has type \(c.dataType.rawValue)")
            }
        }
        lo = try bound(1)
        hi = try bound(2)
    }
    return try buildSimple(ctx, .clip(lo: lo, hi: hi), types: [t])
}

// MARK: Min, Max

/// Min or max of two values, NaN propagating (floats).
protocol Extremum {
    static func lesser(_ a: Self, _ b: Self) -> Self
    static func greater(_ a: Self, _ b: Self) -> Self
}
extension Float: Extremum {
    @inline(__always) static func lesser(_ a: Float, _ b: Float) -> Float { a.isNaN || b.isNaN ? .nan : Swift.min(a, b) }
    @inline(__always) static func greater(_ a: Float, _ b: Float) -> Float { a.isNaN || b.isNaN ? .nan : Swift.max(a, b) }
}
extension Double: Extremum {
    @inline(__always) static func lesser(_ a: Double, _ b: Double) -> Double { a.isNaN || b.isNaN ? .nan : Swift.min(a, b) }
    @inline(__always) static func greater(_ a: Double, _ b: Double) -> Double { a.isNaN || b.isNaN ? .nan : Swift.max(a, b) }
}
extension Int64: Extremum {
    @inline(__always) static func lesser(_ a: Int64, _ b: Int64) -> Int64 { Swift.min(a, b) }
    @inline(__always) static func greater(_ a: Int64, _ b: Int64) -> Int64 { Swift.max(a, b) }
}
extension Int32: Extremum {
    @inline(__always) static func lesser(_ a: Int32, _ b: Int32) -> Int32 { Swift.min(a, b) }
    @inline(__always) static func greater(_ a: Int32, _ b: Int32) -> Int32 { Swift.max(a, b) }
}

/// Folds the inputs pairwise with broadcasting: steps[k] = op(steps[k-1] or input 0, input k+1).
struct ExtremumKernel<T: Extremum>: Kernel {
    let isMax: Bool
    let inputs: [Int]
    /// Where each fold step writes: intermediate scratch values, the output last.
    let steps: [Int]

    func execute(_ frame: Frame) {
        if inputs.count == 1 {
            frame.pointer(steps[0], T.self).update(from: frame.pointer(inputs[0], T.self), count: frame.count(steps[0]))
            return
        }
        var acc = inputs[0]
        for (k, out) in steps.enumerated() {
            broadcastBinary(frame, acc, inputs[k + 1], out, isMax ? T.greater : T.lesser)
            acc = out
        }
    }
}

func buildMinMax(_ ctx: NodeContext, max isMax: Bool) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    guard !ctx.inputs.isEmpty else { throw ctx.invalid("needs at least one input") }
    let ids = try ctx.inputs.indices.map { try ctx.input($0) }
    let t = try ctx.requireType(ids[0], [.fp32, .fp64, .int64, .int32])
    for id in ids where ctx.type(id).dataType != t {
        throw ctx.invalid("inputs differ in type: \(t.rawValue) and \(ctx.type(id).dataType.rawValue)")
    }
    var shape = ctx.type(ids[0]).shape
    var steps: [Int] = []
    for (k, id) in ids.enumerated().dropFirst() {
        guard let s = broadcastShapes([shape, ctx.type(id).shape]) else {
            throw ctx.invalid("shapes \(shape.text) and \(ctx.type(id).shape.text) do not broadcast")
        }
        shape = s
        steps.append(k == ids.count - 1 ? ctx.outputs[0] : ctx.scratch(ValueType(dataType: t, shape: s)))
    }
    if ids.count == 1 { steps = [ctx.outputs[0]] }
    let kernel: any Kernel =
        switch t {
        case .fp32: ExtremumKernel<Float>(isMax: isMax, inputs: ids, steps: steps)
        case .fp64: ExtremumKernel<Double>(isMax: isMax, inputs: ids, steps: steps)
        case .int64: ExtremumKernel<Int64>(isMax: isMax, inputs: ids, steps: steps)
        default: ExtremumKernel<Int32>(isMax: isMax, inputs: ids, steps: steps)
        }
    return (kernel, [ValueType(dataType: t, shape: shape)])
}

// MARK: BatchNormalization (inference)

struct BatchNormKernel<T: BinaryFloatingPoint & Sendable>: Kernel {
    let input: Int, out: Int
    /// Per channel: y = x · a + b.
    let a: [T], b: [T]
    /// Elements per channel per batch row (product of the dims after the channel dim).
    let inner: Int

    func execute(_ frame: Frame) {
        let n = frame.count(out), c = a.count
        let x = frame.pointer(input, T.self), y = frame.pointer(out, T.self)
        var i = 0
        while i < n {
            for ch in 0..<c {
                let s = a[ch], o = b[ch]
                for _ in 0..<inner {
                    y[i] = x[i] * s + o
                    i += 1
                }
            }
        }
    }
}

func buildBatchNormalization(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(5...5)
    if try ctx.int("training_mode", default: 0) != 0 {
        throw ctx.unsupported("training_mode=1 (Swerve runs inference only)")
    }
    guard ctx.outputs.count == 1 else { throw ctx.unsupported("the training outputs (running mean and variance) are not supported") }
    let x = try ctx.input(0)
    let t = try ctx.requireType(x, [.fp32, .fp64])
    let shape = ctx.type(x).shape
    guard shape.count >= 2, let channels = shape[1].fixedValue else {
        throw ctx.unsupported("input must be [N, C, ...] with a fixed C, got \(shape.text)")
    }
    var inner = 1
    for d in shape.dropFirst(2) {
        guard let v = d.fixedValue else { throw ctx.unsupported("dimensions after C must be fixed, got \(shape.text)") }
        inner *= v
    }
    func vector(_ i: Int, _ name: String) throws -> [Double] {
        guard let c = ctx.constant(try ctx.input(i)) else { throw ctx.unsupported("\(name) must be a constant") }
        let v: [Double]
        switch c.data {
        case .fp32(let f): v = f.map(Double.init)
        case .fp64(let d): v = d
        default: throw ctx.invalid("\(name) has type \(c.dataType.rawValue)")
        }
        guard v.count == channels else { throw ctx.invalid("\(name) has \(v.count) values for \(channels) channels") }
        return v
    }
    let scale = try vector(1, "scale"), bias = try vector(2, "B"), mean = try vector(3, "input_mean"), variance = try vector(4, "input_var")
    let epsilon = Double(try ctx.float("epsilon", default: 1e-5))
    // Computed in the input's precision as onnxruntime does: a = scale / sqrt(var + eps).
    let kernel: any Kernel
    if t == .fp32 {
        let a = (0..<channels).map { Float(scale[$0]) / (Float(variance[$0]) + Float(epsilon)).squareRoot() }
        let b = (0..<channels).map { Float(bias[$0]) - Float(mean[$0]) * a[$0] }
        kernel = BatchNormKernel<Float>(input: x, out: ctx.outputs[0], a: a, b: b, inner: inner)
    } else {
        let a = (0..<channels).map { scale[$0] / (variance[$0] + epsilon).squareRoot() }
        let b = (0..<channels).map { bias[$0] - mean[$0] * a[$0] }
        kernel = BatchNormKernel<Double>(input: x, out: ctx.outputs[0], a: a, b: b, inner: inner)
    }
    return (kernel, [ctx.type(x)])
}

// MARK: Transpose

struct TransposeKernel: Kernel {
    let input: Int, out: Int
    let perm: [Int]
    let elementSize: Int

    func execute(_ frame: Frame) {
        let inShape = frame.shape(input)
        let rank = inShape.count
        var inStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * inShape[i + 1] }
        let outShape = perm.map { inShape[$0] }
        let n = frame.count(out)
        let src = UnsafeRawPointer(frame.pointer(input, UInt8.self)), dst = UnsafeMutableRawPointer(frame.pointer(out, UInt8.self))
        var index = [Int](repeating: 0, count: rank)
        for o in 0..<n {
            var offset = 0
            for d in 0..<rank { offset += index[d] * inStrides[perm[d]] }
            (dst + o * elementSize).copyMemory(from: src + offset * elementSize, byteCount: elementSize)
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < outShape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
    }
}

func buildTranspose(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let type = ctx.type(x)
    guard let size = type.dataType.byteSize else { throw ctx.unsupported("BYTES tensors cannot be transposed") }
    let rank = type.shape.count
    let perm = try ctx.ints("perm").map { $0.map(Int.init) } ?? Array((0..<rank).reversed())
    guard perm.count == rank, Set(perm) == Set(0..<rank) else { throw ctx.invalid("perm \(perm) is not a permutation of 0..<\(rank)") }
    if rank > 0, case .batch = type.shape[0], perm[0] != 0 {
        throw ctx.unsupported("perm \(perm) moves the batch dimension; Swerve keeps rows first")
    }
    let kernel = TransposeKernel(input: x, out: ctx.outputs[0], perm: perm, elementSize: size)
    return (kernel, [ValueType(dataType: type.dataType, shape: perm.map { type.shape[$0] })])
}

// MARK: ai.onnx.ml Imputer

struct ImputerKernel<T: Equatable & Sendable>: Kernel {
    let input: Int, out: Int
    let values: [T]
    let replaced: T
    let replacesNaN: Bool
    let isNaN: @Sendable (T) -> Bool

    func execute(_ frame: Frame) {
        let n = frame.count(out), cols = values.count
        let x = frame.pointer(input, T.self), y = frame.pointer(out, T.self)
        for i in 0..<n {
            let v = x[i]
            y[i] = (replacesNaN ? isNaN(v) : v == replaced) ? values[cols == 1 ? 0 : i % cols] : v
        }
    }
}

func buildImputer(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let t = try ctx.requireType(x, [.fp32, .int64])
    let shape = ctx.type(x).shape
    guard shape.count <= 2 else {
        throw ctx.unsupported("input of rank \(shape.count): Imputer takes [N, C] or [C] (onnxruntime counts columns on dim 1 for higher ranks)")
    }
    let columns = shape.last?.fixedValue ?? 1
    if t == .fp32 {
        guard let values = try ctx.floats("imputed_value_floats"), !values.isEmpty else {
            throw ctx.invalid("a float input needs imputed_value_floats")
        }
        guard values.count == 1 || values.count == columns else {
            throw ctx.invalid("\(values.count) imputed values for \(columns) columns")
        }
        let replaced = try ctx.float("replaced_value_float", default: 0)
        return (ImputerKernel<Float>(input: x, out: ctx.outputs[0], values: values, replaced: replaced, replacesNaN: replaced.isNaN,
                                     isNaN: { $0.isNaN }), [ctx.type(x)])
    }
    guard let values = try ctx.ints("imputed_value_int64s"), !values.isEmpty else {
        throw ctx.invalid("an int64 input needs imputed_value_int64s")
    }
    guard values.count == 1 || values.count == columns else { throw ctx.invalid("\(values.count) imputed values for \(columns) columns") }
    let replaced = Int64(try ctx.int("replaced_value_int64", default: 0))
    return (ImputerKernel<Int64>(input: x, out: ctx.outputs[0], values: values, replaced: replaced, replacesNaN: false,
                                 isNaN: { _ in false }), [ctx.type(x)])
}

// MARK: ai.onnx.ml FeatureVectorizer

struct FeatureVectorizerKernel: Kernel {
    let inputs: [Int], types: [DataType]
    /// Columns each input contributes (`inputdimensions`) and the columns it has.
    let widths: [Int], available: [Int]
    let out: Int

    func execute(_ frame: Frame) {
        let total = widths.reduce(0, +)
        let rows = total == 0 ? 0 : frame.count(out) / total
        let y = frame.pointer(out, Float.self)
        var column = 0
        for (k, id) in inputs.enumerated() {
            let w = widths[k], have = available[k]
            for r in 0..<rows {
                for j in 0..<w {
                    y[r * total + column + j] = j < have ? readFloat(frame, id, types[k], r * have + j) : 0
                }
            }
            column += w
        }
    }
}

func buildFeatureVectorizer(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    guard !ctx.inputs.isEmpty else { throw ctx.invalid("needs at least one input") }
    let ids = try ctx.inputs.indices.map { try ctx.input($0) }
    guard let dims = try ctx.ints("inputdimensions"), dims.count == ids.count, dims.allSatisfy({ $0 >= 0 && $0 <= 1 << 24 }) else {
        throw ctx.invalid("inputdimensions must give one width per input")
    }
    var rowDims: [SymDim] = []
    var types: [DataType] = [], available: [Int] = []
    for id in ids {
        types.append(try ctx.requireType(id, mlNumericInputs))
        let s = ctx.type(id).shape
        switch s.count {
        case 1:
            guard let w = s[0].fixedValue else { throw ctx.unsupported("input '\(ctx.compiler.names[id])' needs a fixed width") }
            available.append(w)
            rowDims.append(.fixed(1))
        case 2:
            guard let w = s[1].fixedValue else { throw ctx.unsupported("input '\(ctx.compiler.names[id])' needs a fixed width") }
            available.append(w)
            rowDims.append(s[0])
        default: throw ctx.invalid("inputs must be [N, C] or [C], got \(s.text)")
        }
    }
    // Every input must have the same rows (onnxruntime refuses other batch sizes when it runs);
    // otherwise rows past a shorter input would be read from memory it does not own.
    guard let rows = rowDims.first, rowDims.allSatisfy({ $0 == rows }) else {
        throw ctx.invalid("inputs have different row counts \(rowDims.map(\.description)); all must have the same")
    }
    let widths = dims.map(Int.init)
    return (FeatureVectorizerKernel(inputs: ids, types: types, widths: widths, available: available, out: ctx.outputs[0]),
            [ValueType(dataType: .fp32, shape: [rows, .fixed(widths.reduce(0, +))])])
}
