import CSwerveKernels

// Operators that work along one axis: Softmax, ArgMax, ArgMin.

func buildSoftmax(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let t = try ctx.requireType(x, [.fp32, .fp64])
    let rank = ctx.type(x).shape.count
    // Before opset 13 the input is coerced to 2-D at `axis` (default 1) and each row is
    // normalized; from 13 the softmax runs along the single axis `axis` (default -1).
    let legacy = ctx.opset < 13
    let axis = try ctx.axis(ctx.int("axis", default: legacy ? 1 : -1), rank: max(rank, 1), allowEnd: legacy)
    let out = ctx.outputs[0]
    let kernel: any Kernel =
        t == .fp32
        ? SoftmaxKernel<Float>(input: x, out: out, axis: axis, coerceTo2D: legacy)
        : SoftmaxKernel<Double>(input: x, out: out, axis: axis, coerceTo2D: legacy)
    return (kernel, [ctx.type(x)])
}

struct SoftmaxKernel<T: FloatScalar>: Kernel {
    let input: Int, out: Int, axis: Int, coerceTo2D: Bool

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func execute(_ frame: Frame) {
        let rank = frame.rank(input)
        let outer = frame.size(input, 0..<min(axis, rank))
        let length = coerceTo2D ? frame.size(input, min(axis, rank)..<rank) : (rank == 0 ? 1 : frame.dim(input, axis))
        let inner = coerceTo2D ? 1 : frame.size(input, min(axis + 1, rank)..<rank)
        softmax(frame.pointer(input, T.self), frame.pointer(out, T.self), outer: outer, length: length, inner: inner)
    }
}

/// Softmax of `outer·inner` vectors of `length` elements spaced `inner` apart: FP32 rows
/// (inner == 1) in one vectorized pass per row (`swk_softmax_rows`), anything else plainly.
func softmax<T: FloatScalar>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, outer: Int, length: Int, inner: Int) {
    if T.self == Float.self && inner == 1 {
        swk_softmax_rows(outer, length, UnsafeRawPointer(x).assumingMemoryBound(to: Float.self),
                         UnsafeMutableRawPointer(y).assumingMemoryBound(to: Float.self))
    } else {
        plainSoftmax(x, y, outer: outer, length: length, inner: inner)
    }
}

/// Numerically stable softmax of `outer·inner` vectors of `length` elements spaced `inner` apart.
func plainSoftmax<T: FloatScalar>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, outer: Int, length: Int, inner: Int) {
    if length == 0 { return }
    for o in 0..<outer {
        for i in 0..<inner {
            let base = o * length * inner + i
            var maxValue = -T.infinity
            for j in 0..<length { maxValue = Swift.max(maxValue, x[base + j * inner]) }
            var sum: T = 0
            for j in 0..<length {
                let e = T.exponential(x[base + j * inner] - maxValue)
                y[base + j * inner] = e
                sum += e
            }
            let scale = 1 / sum
            for j in 0..<length { y[base + j * inner] *= scale }
        }
    }
}

// MARK: ArgMax / ArgMin

func buildArgExtreme(_ ctx: NodeContext, max: Bool) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let t = try ctx.requireType(x, [.fp32, .fp64, .int64, .int32])
    let shape = ctx.type(x).shape
    guard !shape.isEmpty else { throw ctx.invalid("input must have rank ≥ 1") }
    let axis = try ctx.axis(ctx.int("axis", default: 0), rank: shape.count)
    let keepDims = try ctx.int("keepdims", default: 1) != 0
    let last = try ctx.int("select_last_index", default: 0) != 0
    var outShape = shape
    if keepDims { outShape[axis] = .fixed(1) } else { outShape.remove(at: axis) }
    let out = ctx.outputs[0]
    let kernel: any Kernel =
        switch t {
        case .fp32: ArgExtremeKernel<Float>(input: x, out: out, axis: axis, max: max, selectLast: last)
        case .fp64: ArgExtremeKernel<Double>(input: x, out: out, axis: axis, max: max, selectLast: last)
        case .int64: ArgExtremeKernel<Int64>(input: x, out: out, axis: axis, max: max, selectLast: last)
        default: ArgExtremeKernel<Int32>(input: x, out: out, axis: axis, max: max, selectLast: last)
        }
    return (kernel, [ValueType(dataType: .int64, shape: outShape)])
}

struct ArgExtremeKernel<T: Comparable>: Kernel {
    let input: Int, out: Int, axis: Int, max: Bool, selectLast: Bool

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    @_specialize(where T == Int64)
    func execute(_ frame: Frame) {
        let x = frame.pointer(input, T.self), y = frame.pointer(out, Int64.self)
        let outer = frame.size(input, 0..<axis), length = frame.dim(input, axis)
        let inner = frame.size(input, (axis + 1)..<frame.rank(input))
        if length == 0 { return }
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * length * inner + i
                var best = x[base], bestIndex = 0
                for j in 1..<length {
                    let v = x[base + j * inner]
                    let better = self.max
                        ? (selectLast ? v >= best : v > best)
                        : (selectLast ? v <= best : v < best)
                    if better {
                        best = v
                        bestIndex = j
                    }
                }
                y[o * inner + i] = Int64(bestIndex)
            }
        }
    }
}
