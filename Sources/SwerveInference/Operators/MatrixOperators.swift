// Gemm and MatMul.

/// FP32 products with constant weights use `PackedGemmKernel`; other FP32 products go through
/// `sgemm` (BLAS or SIMD by size), FP64 through `dgemm`.
protocol GemmScalar: FloatScalar {
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
        a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    init(_ value: Float)
}

extension Float: GemmScalar {
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
              b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}

extension Double: GemmScalar {
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
        a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        dgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
              b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}

// MARK: Gemm

func buildGemm(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(2...3)
    let a = try ctx.input(0)
    var b = try ctx.input(1)
    let c = ctx.optionalInput(2)
    let t = try ctx.requireType(a, [.fp32, .fp64])
    for v in [b] + (c.map { [$0] } ?? []) where ctx.type(v).dataType != t {
        throw ctx.invalid("input '\(ctx.compiler.names[v])' is \(ctx.type(v).dataType.rawValue), expected \(t.rawValue)")
    }
    let transA = try ctx.int("transA", default: 0) != 0
    var transB = try ctx.int("transB", default: 0) != 0
    let alpha = try ctx.float("alpha", default: 1)
    let beta = try ctx.float("beta", default: 1)
    let sa = ctx.type(a).shape, sb = ctx.type(b).shape
    guard sa.count == 2, sb.count == 2 else {
        throw ctx.invalid("A and B must be 2-D, got \(sa.text) and \(sb.text)")
    }
    let m = transA ? sa[1] : sa[0], k = transA ? sa[0] : sa[1]
    let kb = transB ? sb[1] : sb[0], n = transB ? sb[0] : sb[1]
    guard k == kb else { throw ctx.invalid("inner dimensions differ: A \(sa.text), B \(sb.text)") }
    if let c {
        let sc = ctx.type(c).shape
        guard sc.count <= 2, broadcastShapes([sc, [m, n]]) == [m, n] else {
            throw ctx.invalid("C \(sc.text) does not broadcast to [M, N] = \([m, n].text)")
        }
    }
    // Constant FP32 weights with a bias that is the same for every row: pack B (times alpha)
    // once, and add beta·C in the GEMM's epilogue.
    if t == .fp32, !transA, let weights = ctx.constant(b), case .fp32(let w) = weights.data {
        let nw = weights.shape[transB ? 0 : 1], kw = weights.shape[transB ? 1 : 0]
        var bias: [Float]? = nil
        var biasOK = true
        if let c, beta != 0 {
            if let cc = ctx.constant(c), let rb = rowBias(cc, n: nw, scale: beta) { bias = rb } else { biasOK = false }
        }
        if biasOK && preferPackedGemm(n: nw, k: kw) {
            let packed = w.withUnsafeBufferPointer {
                PackedWeights(k: kw, n: nw, b: $0.baseAddress, transposed: transB, alpha: alpha, bias: bias)
            }
            return (PackedGemmKernel(a: a, out: ctx.outputs[0], weights: packed),
                    [ValueType(dataType: t, shape: [m, n])])
        }
    }
    // Constant weights stored as [N, K] are transposed once here so that every run streams
    // contiguous rows of B (the SIMD kernel's fast form).
    if transB, t == .fp32, let weights = ctx.constant(b), case .fp32(let w) = weights.data {
        let rows = weights.shape[0], cols = weights.shape[1]
        var transposed = [Float](repeating: 0, count: w.count)
        for r in 0..<rows { for col in 0..<cols { transposed[col * rows + r] = w[r * cols + col] } }
        b = ctx.derivedConstant(Tensor(shape: [cols, rows], data: .fp32(transposed)),
                                name: ctx.compiler.names[b] + ":transposed")
        transB = false
    }
    let out = ctx.outputs[0]
    let kernel: any Kernel =
        t == .fp32
        ? GemmKernel<Float>(a: a, b: b, c: c, out: out, transA: transA, transB: transB, alpha: alpha, beta: beta)
        : GemmKernel<Double>(a: a, b: b, c: c, out: out, transA: transA, transB: transB, alpha: alpha, beta: beta)
    return (kernel, [ValueType(dataType: t, shape: [m, n])])
}

struct GemmKernel<T: GemmScalar>: Kernel {
    let a: Int, b: Int, c: Int?, out: Int
    let transA: Bool, transB: Bool
    let alpha: Float, beta: Float

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func execute(_ frame: Frame) {
        let m = frame.dim(a, transA ? 1 : 0), k = frame.dim(a, transA ? 0 : 1)
        let n = frame.dim(b, transB ? 0 : 1)
        let y = frame.pointer(out, T.self)
        var gemmBeta: T = 0
        if let c, beta != 0 {
            // Y = beta·C broadcast to [M, N], then Y += alpha·A·B.
            let pc = frame.pointer(c, T.self)
            let rc = frame.rank(c)
            let cm = rc == 2 ? frame.dim(c, 0) : 1, cn = rc >= 1 ? frame.dim(c, rc - 1) : 1
            let be = T(beta)
            for i in 0..<m {
                let row = (cm == 1 ? 0 : i) * cn
                let yRow = y + i * n
                if cn == 1 {
                    let v = be * pc[row]
                    for j in 0..<n { yRow[j] = v }
                } else {
                    for j in 0..<n { yRow[j] = be * pc[row + j] }
                }
            }
            gemmBeta = 1
        }
        T.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: T(alpha),
               a: frame.pointer(a, T.self), lda: transA ? m : k,
               b: frame.pointer(b, T.self), ldb: transB ? k : n,
               beta: gemmBeta, c: y, ldc: n)
    }
}

// MARK: MatMul

func buildMatMul(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(2...2)
    let a = try ctx.input(0), b = try ctx.input(1)
    let t = try ctx.requireType(a, [.fp32, .fp64])
    guard ctx.type(b).dataType == t else {
        throw ctx.invalid("input types differ: \(t.rawValue) and \(ctx.type(b).dataType.rawValue)")
    }
    let sa = ctx.type(a).shape, sb = ctx.type(b).shape
    guard !sa.isEmpty, !sb.isEmpty else { throw ctx.invalid("MatMul inputs must have rank ≥ 1") }
    let ka = sa[sa.count - 1]
    let kb = sb.count == 1 ? sb[0] : sb[sb.count - 2]
    guard ka == kb else { throw ctx.invalid("inner dimensions differ: \(sa.text) × \(sb.text)") }
    let batchA = Array(sa.dropLast(sa.count >= 2 ? 2 : 1)), batchB = Array(sb.dropLast(sb.count >= 2 ? 2 : 1))
    guard let batch = broadcastShapes([batchA, batchB]) else {
        throw ctx.invalid("batch dimensions of \(sa.text) and \(sb.text) do not broadcast")
    }
    var shape = batch
    if sa.count >= 2 { shape.append(sa[sa.count - 2]) }
    if sb.count >= 2 { shape.append(sb[sb.count - 1]) }
    let out = ctx.outputs[0]
    // Constant FP32 weights (one matrix or a vector): packed once, every row of A in one call.
    if t == .fp32, sb.count <= 2, let weights = ctx.constant(b), case .fp32(let w) = weights.data {
        let k = weights.shape[0], n = sb.count == 2 ? weights.shape[1] : 1
        if preferPackedGemm(n: n, k: k) {
            let packed = w.withUnsafeBufferPointer { PackedWeights(k: k, n: n, b: $0.baseAddress, transposed: false) }
            return (PackedGemmKernel(a: a, out: out, weights: packed), [ValueType(dataType: t, shape: shape)])
        }
    }
    let kernel: any Kernel =
        t == .fp32 ? MatMulKernel<Float>(a: a, b: b, out: out) : MatMulKernel<Double>(a: a, b: b, out: out)
    return (kernel, [ValueType(dataType: t, shape: shape)])
}

struct MatMulKernel<T: GemmScalar>: Kernel {
    let a: Int, b: Int, out: Int

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func execute(_ frame: Frame) {
        let ra = frame.rank(a), rb = frame.rank(b)
        let m = ra == 1 ? 1 : frame.dim(a, ra - 2)
        let k = frame.dim(a, ra - 1)
        let n = rb == 1 ? 1 : frame.dim(b, rb - 1)
        let pa = frame.pointer(a, T.self), pb = frame.pointer(b, T.self), py = frame.pointer(out, T.self)
        let total = frame.count(out)
        if total == 0 { return }
        if k == 0 {
            for i in 0..<total { py[i] = 0 }
            return
        }
        let batchA = max(ra - 2, 0), batchB = max(rb - 2, 0)
        if batchB == 0 {
            // B is one matrix: all of A's leading dimensions become rows of a single product.
            let rows = frame.count(a) / k
            T.gemm(transA: false, transB: false, m: rows, n: n, k: k, alpha: 1, a: pa, lda: k,
                   b: pb, ldb: n, beta: 0, c: py, ldc: n)
            return
        }
        let rank = max(batchA, batchB)
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 4 * rank) { scratch in
            let dims = scratch.baseAddress!, strideA = dims + rank, strideB = strideA + rank, index = strideB + rank
            var sa = 1, sb = 1
            for i in stride(from: rank - 1, through: 0, by: -1) {
                let ia = i - (rank - batchA), ib = i - (rank - batchB)
                let da = ia >= 0 ? frame.dim(a, ia) : 1, db = ib >= 0 ? frame.dim(b, ib) : 1
                dims[i] = max(da, db)
                strideA[i] = da == 1 ? 0 : sa
                strideB[i] = db == 1 ? 0 : sb
                sa *= da
                sb *= db
                index[i] = 0
            }
            let batches = total / (m * n)
            var offA = 0, offB = 0
            for t in 0..<batches {
                T.gemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1,
                       a: pa + offA * m * k, lda: k, b: pb + offB * k * n, ldb: n,
                       beta: 0, c: py + t * m * n, ldc: n)
                var d = rank - 1
                while d >= 0 {
                    index[d] += 1
                    offA += strideA[d]
                    offB += strideB[d]
                    if index[d] < dims[d] { break }
                    offA -= strideA[d] * dims[d]
                    offB -= strideB[d] * dims[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }
}
