// Operators exported neural nets use around their matrix products: LayerNormalization, the
// ReduceMean/ReduceSum/ReduceMax reductions, Pow, and Gelu.
import CSwerveKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: Gelu

func buildGelu(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    let approximate = try ctx.string("approximate", default: "none")
    switch approximate {
    case "none": return try buildUnary(ctx, .gelu)
    case "tanh": return try buildUnary(ctx, .geluTanh)
    default: throw ctx.invalid("unknown approximate '\(approximate)' (none or tanh)")
    }
}

// MARK: LayerNormalization

/// LayerNormalization (opset 17): each row of the trailing dims from `axis` is normalized to
/// zero mean and unit variance (with `epsilon`), then scaled and shifted. Outputs Y and, when
/// asked for, Mean and InvStdDev (X's shape with the normalized dims set to 1).
func buildLayerNormalization(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(2...3)
    let x = try ctx.input(0), scale = try ctx.input(1), bias = ctx.optionalInput(2)
    let t = try ctx.requireType(x, [.fp32, .fp64])
    for (id, role) in [(scale, "Scale"), (bias, "B")] {
        guard let id else { continue }
        guard ctx.type(id).dataType == t else { throw ctx.invalid("\(role) must be \(t.rawValue) like X") }
    }
    let shape = ctx.type(x).shape
    guard !shape.isEmpty else { throw ctx.invalid("X must have rank ≥ 1") }
    let axis = try ctx.axis(ctx.int("axis", default: -1), rank: shape.count)
    var length = 1
    for d in shape[axis...] {
        guard let k = d.fixedValue else {
            throw ctx.unsupported("the normalized dimensions must not depend on the batch (axis \(axis) of \(shape.text))")
        }
        length *= k
    }
    for (id, role) in [(scale, "Scale"), (bias, "B")] {
        guard let id else { continue }
        let s = ctx.type(id).shape
        let count = s.reduce(1) { $0 * ($1.fixedValue ?? -1) }
        guard count == length || count == 1 else {
            throw ctx.unsupported("\(role) of shape \(s.text) does not broadcast over the normalized shape \(Array(shape[axis...]).text)")
        }
    }
    let epsilon = try ctx.float("epsilon", default: 1e-5)
    var statsShape = shape
    for i in axis..<shape.count { statsShape[i] = .fixed(1) }
    let outs = ctx.outputs
    let kernel: any Kernel =
        t == .fp32
        ? LayerNormKernel<Float>(x: x, scale: scale, bias: bias, out: outs[0], mean: outs.count > 1 ? outs[1] : nil,
                                 invStd: outs.count > 2 ? outs[2] : nil, length: length, epsilon: Double(epsilon))
        : LayerNormKernel<Double>(x: x, scale: scale, bias: bias, out: outs[0], mean: outs.count > 1 ? outs[1] : nil,
                                  invStd: outs.count > 2 ? outs[2] : nil, length: length, epsilon: Double(epsilon))
    var types = [ctx.type(x)]
    // Mean and InvStdDev are in stash_type (float unless it says otherwise, which is all we do).
    if outs.count > 1 { types.append(ValueType(dataType: t, shape: statsShape)) }
    if outs.count > 2 { types.append(ValueType(dataType: t, shape: statsShape)) }
    guard outs.count <= 3 else { throw ctx.invalid("LayerNormalization has at most 3 outputs") }
    return (kernel, types)
}

struct LayerNormKernel<T: FloatScalar>: Kernel {
    let x: Int, scale: Int, bias: Int?, out: Int, mean: Int?, invStd: Int?
    let length: Int
    let epsilon: Double

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func execute(_ frame: Frame) {
        let n = length
        if n == 0 { return }
        let rows = frame.count(x) / n
        let px = frame.pointer(x, T.self), py = frame.pointer(out, T.self)
        let ps = frame.pointer(scale, T.self), pb = bias.map { frame.pointer($0, T.self) }
        let scaleStep = frame.count(scale) == 1 ? 0 : 1
        let biasStep = bias.map { frame.count($0) == 1 ? 0 : 1 } ?? 0
        if T.self == Float.self {
            func f(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> { UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self) }
            swk_layernorm_rows(rows, n, f(px), f(ps), scaleStep, pb.map(f), biasStep, Float(epsilon), f(py),
                               mean.map { f(frame.pointer($0, T.self)) }, invStd.map { f(frame.pointer($0, T.self)) })
            return
        }
        let eps = T(epsilon)
        for r in 0..<rows {
            let xr = px + r * n, yr = py + r * n
            // Two passes over the row (it stays in cache): the mean, then the mean square of
            // the deviations, which cannot go negative the way E[x²] − E[x]² can.
            var sum: T = 0
            for j in 0..<n { sum += xr[j] }
            let mu = sum / T(n)
            var sq: T = 0
            for j in 0..<n {
                let d = xr[j] - mu
                sq += d * d
            }
            let inv = 1 / (sq / T(n) + eps).squareRoot()
            if let pb {
                for j in 0..<n { yr[j] = (xr[j] - mu) * inv * ps[j * scaleStep] + pb[j * biasStep] }
            } else {
                for j in 0..<n { yr[j] = (xr[j] - mu) * inv * ps[j * scaleStep] }
            }
            if let mean { frame.pointer(mean, T.self)[r] = mu }
            if let invStd { frame.pointer(invStd, T.self)[r] = inv }
        }
    }
}

// MARK: Reductions

enum ReduceOp: Sendable { case mean, sum, max }

/// ReduceMean / ReduceSum / ReduceMax: `axes` as an attribute (ReduceSum from opset 13, the
/// others from 18, take it as a constant input instead), `keepdims` (default 1),
/// `noop_with_empty_axes` (default 0: no axes reduce everything).
func buildReduce(_ ctx: NodeContext, _ op: ReduceOp) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...2)
    let x = try ctx.input(0)
    let t = try ctx.requireType(x, [.fp32, .fp64])
    let shape = ctx.type(x).shape
    let axesFromInput = op == .sum ? ctx.opset >= 13 : ctx.opset >= 18
    var axes: [Int64]?
    if axesFromInput {
        if let id = ctx.optionalInput(1) {
            guard let c = ctx.constant(id), case .int64(let v) = c.data else {
                throw ctx.unsupported("axes must be a constant INT64 tensor")
            }
            axes = v
        }
    } else {
        axes = try ctx.ints("axes")
    }
    let keepDims = try ctx.int("keepdims", default: 1) != 0
    let noop = try ctx.int("noop_with_empty_axes", default: 0) != 0
    if (axes ?? []).isEmpty && noop {
        return (CopyKernel(input: x, out: ctx.outputs[0]), [ctx.type(x)])
    }
    var reduced = Set<Int>()
    if let axes, !axes.isEmpty {
        for a in axes {
            let i = try ctx.axis(Int(a), rank: shape.count)
            guard reduced.insert(i).inserted else { throw ctx.invalid("axis \(a) is repeated") }
        }
    } else {
        reduced = Set(0..<shape.count)
    }
    var outShape: SymShape = []
    for (i, d) in shape.enumerated() {
        if reduced.contains(i) {
            if keepDims { outShape.append(.fixed(1)) }
        } else {
            outShape.append(d)
        }
    }
    let out = ctx.outputs[0]
    let kernel: any Kernel =
        t == .fp32
        ? ReduceKernel<Float>(op: op, input: x, out: out, reduced: (0..<shape.count).map(reduced.contains))
        : ReduceKernel<Double>(op: op, input: x, out: out, reduced: (0..<shape.count).map(reduced.contains))
    return (kernel, [ValueType(dataType: t, shape: outShape)])
}

struct ReduceKernel<T: FloatScalar>: Kernel {
    let op: ReduceOp
    let input: Int, out: Int
    /// Per input dimension: whether it is reduced.
    let reduced: [Bool]

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func execute(_ frame: Frame) {
        let px = frame.pointer(input, T.self), py = frame.pointer(out, T.self)
        let rank = reduced.count
        let total = frame.count(input), outCount = frame.count(out)
        let initial: T = op == .max ? -T.infinity : 0
        for i in 0..<outCount { py[i] = initial }
        if total == 0 {
            if op == .mean { for i in 0..<outCount { py[i] = .nan } }
            return
        }
        // Trailing dims reduced, leading kept: each output is one contiguous run (LayerNorm's
        // decomposed form, global pooling).
        var split = rank
        while split > 0 && reduced[split - 1] { split -= 1 }
        if (0..<split).allSatisfy({ !reduced[$0] }) {
            let run = total / max(outCount, 1)
            for o in 0..<outCount {
                let base = px + o * run
                var acc = initial
                switch op {
                case .max: for j in 0..<run { acc = base[j] > acc || base[j].isNaN ? base[j] : acc }
                default: for j in 0..<run { acc += base[j] }
                }
                py[o] = acc
            }
        } else {
            // Any other set of axes: walk the input, accumulating into the output element its
            // index maps to (stride 0 along reduced dims).
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * rank + 1) { scratch in
                let dims = scratch.baseAddress!, outStride = dims + rank, index = outStride + rank
                var step = 1
                for d in stride(from: rank - 1, through: 0, by: -1) {
                    dims[d] = frame.dim(input, d)
                    outStride[d] = reduced[d] ? 0 : step
                    if !reduced[d] { step *= dims[d] }
                    index[d] = 0
                }
                var o = 0
                for i in 0..<total {
                    let v = px[i]
                    switch op {
                    case .max: if v > py[o] || v.isNaN { py[o] = v }
                    default: py[o] += v
                    }
                    var d = rank - 1
                    while d >= 0 {
                        index[d] += 1
                        o += outStride[d]
                        if index[d] < dims[d] { break }
                        o -= outStride[d] * dims[d]
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
        if op == .mean {
            let n = T(total / max(outCount, 1))
            for i in 0..<outCount { py[i] /= n }
        }
    }
}

// MARK: Pow

func buildPow(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(2...2)
    let a = try ctx.input(0), b = try ctx.input(1)
    let t = try ctx.requireType(a, [.fp32, .fp64])
    guard ctx.type(b).dataType == t else {
        throw ctx.unsupported("exponent of type \(ctx.type(b).dataType.rawValue) with a \(t.rawValue) base")
    }
    guard let shape = broadcastShapes([ctx.type(a).shape, ctx.type(b).shape]) else {
        throw ctx.invalid("shapes \(ctx.type(a).shape.text) and \(ctx.type(b).shape.text) do not broadcast")
    }
    let out = ctx.outputs[0]
    let kernel: any Kernel = t == .fp32 ? PowKernel<Float>(a: a, b: b, out: out) : PowKernel<Double>(a: a, b: b, out: out)
    return (kernel, [ValueType(dataType: t, shape: shape)])
}

protocol PowScalar: FloatScalar {
    static func power(_ x: Self, _ y: Self) -> Self
}

extension Float: PowScalar {
    @inline(__always) static func power(_ x: Float, _ y: Float) -> Float { powf(x, y) }
}

extension Double: PowScalar {
    @inline(__always) static func power(_ x: Double, _ y: Double) -> Double { pow(x, y) }
}

struct PowKernel<T: PowScalar>: Kernel {
    let a: Int, b: Int, out: Int

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func execute(_ frame: Frame) {
        // A scalar exponent of 2 (variances) is a multiply, which is what pow gives for it,
        // exactly (0.5 is not a square root: pow(−0, 0.5) = +0 and pow(−inf, 0.5) = inf).
        if frame.count(b) == 1 && frame.count(a) == frame.count(out) {
            let y = frame.pointer(b, T.self)[0]
            let px = frame.pointer(a, T.self), po = frame.pointer(out, T.self)
            if y == 2 {
                for i in 0..<frame.count(out) { po[i] = px[i] * px[i] }
                return
            }
            if y == 1 {
                for i in 0..<frame.count(out) { po[i] = px[i] }
                return
            }
        }
        broadcastBinary(frame, a, b, out, T.power)
    }
}
