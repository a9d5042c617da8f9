// Products with constant FP32 weights: B is packed once at load into the panel layout of
// CSwerveKernels' GEMM, which also applies a row bias and an activation in its epilogue.
import CSwerveKernels

/// Constant weights B (k×n, scaled by alpha) in the packed panel layout, plus an optional row
/// bias of n floats. Immutable after init; shared by every executor of a model.
final class PackedWeights: @unchecked Sendable {
    let k: Int, n: Int
    let packed: UnsafeMutablePointer<Float>
    let bias: UnsafeMutablePointer<Float>?

    /// Packs `b` (k×n row-major, or n×k when `transposed`) times alpha.
    init(k: Int, n: Int, b: UnsafePointer<Float>?, transposed: Bool, alpha: Float = 1, bias: [Float]? = nil) {
        self.k = k
        self.n = n
        let count = max(swk_sgemm_packed_b_size(k, n), 1)
        // 64-byte alignment: every 16-float load of a panel row stays within one cache line.
        packed = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64).bindMemory(to: Float.self, capacity: count)
        packed.initialize(repeating: 0, count: count)
        if let b { swk_sgemm_pack_b(k, n, b, transposed ? k : n, transposed ? 1 : 0, alpha, packed) }
        if let bias {
            precondition(bias.count == n)
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
            p.initialize(from: bias, count: n)
            self.bias = p
        } else {
            self.bias = nil
        }
    }

    private init(k: Int, n: Int, packed: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>?) {
        self.k = k
        self.n = n
        self.packed = packed
        self.bias = bias
    }

    /// The same weights with `bias` (n floats) as the row bias; shares nothing mutable.
    func withBias(_ bias: [Float]) -> PackedWeights {
        precondition(bias.count == n)
        let count = max(swk_sgemm_packed_b_size(k, n), 1)
        let copy = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64).bindMemory(to: Float.self, capacity: count)
        copy.initialize(from: packed, count: count)
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
        p.initialize(from: bias, count: n)
        return PackedWeights(k: k, n: n, packed: copy, bias: p)
    }

    deinit {
        packed.deallocate()
        bias?.deallocate()
    }

    /// C[m×n] = A[m×k]·B + bias, then `activation`, A with leading dimension lda, C with ldc, on
    /// the best variant this CPU has unless `isa` names one.
    @inline(__always)
    func multiply(
        m: Int, a: UnsafePointer<Float>, lda: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
        activation: EpilogueActivation = .none, isa: PackedGemmISA? = nil
    ) {
        if let isa {
            swk_sgemm_packed_isa(isa.rawValue, m, n, k, a, lda, packed, bias, c, ldc, activation.rawValue)
        } else {
            swk_sgemm_packed(m, n, k, a, lda, packed, bias, c, ldc, activation.rawValue)
        }
    }
}

/// What the packed GEMM's epilogue applies after the bias: one of the elementwise functions,
/// with the same vector code as the standalone `UnaryKernel<Float>`, so fusing changes no bit.
enum EpilogueActivation: Int32, Sendable, CaseIterable {
    case none = 0, relu = 1, tanh = 2, sigmoid = 3, gelu = 4, geluTanh = 5

    /// The epilogue form of `op`, when it has one.
    init?(_ op: UnaryOp) {
        switch op {
        case .relu: self = .relu
        case .tanh: self = .tanh
        case .sigmoid: self = .sigmoid
        case .gelu: self = .gelu
        case .geluTanh: self = .geluTanh
        default: return nil
        }
    }
}

/// The instruction-set variants of the packed GEMM, chosen at run time (`selected`: the best
/// the CPU supports, capped by SWERVE_KERNELS_ISA=scalar|avx2|avx512).
enum PackedGemmISA: Int32, CaseIterable, Sendable {
    case scalar = 1, avx2 = 2, avx512 = 3

    var isSupported: Bool { swk_isa_supported(rawValue) != 0 }
    static var selected: PackedGemmISA { PackedGemmISA(rawValue: swk_isa_selected()) ?? .scalar }
}

/// Y = activation(A·B (+ bias)) with constant packed B: MatMul or Gemm with constant weights,
/// possibly with a following bias Add and an activation fused in (see
/// `GraphCompiler.fuseEpilogues`). All of A's leading dimensions are rows; Y has A's leading
/// dimensions and n columns.
struct PackedGemmKernel: Kernel {
    let a: Int, out: Int
    let weights: PackedWeights
    var activation: EpilogueActivation = .none

    func execute(_ frame: Frame) {
        let n = weights.n
        let total = frame.count(out)
        if total == 0 || n == 0 { return }
        weights.multiply(m: total / n, a: frame.pointer(a, Float.self), lda: weights.k,
                         c: frame.pointer(out, Float.self), ldc: n, activation: activation)
    }
}

/// The row bias a constant addend gives a product of n columns: its elements when it has n
/// along the last axis and 1 elsewhere, or one element repeated. nil when it varies by row.
func rowBias(_ tensor: Tensor, n: Int, scale: Float = 1) -> [Float]? {
    guard case .fp32(let v) = tensor.data else { return nil }
    if v.count == 1 { return [Float](repeating: scale * v[0], count: n) }
    guard v.count == n, tensor.shape.last == n else { return nil }
    return scale == 1 ? v : v.map { scale * $0 }
}

/// Whether a product with constant k×n weights uses the packed kernel rather than `sgemm`
/// (OpenBLAS or the SIMD kernel). From BenchmarkTests (release, AVX-512, one thread): packed is
/// faster than both at every shape with n ≥ 2 — 1.2–2.4× OpenBLAS's own Haswell/SkylakeX
/// kernels from 4 rows up (256×256·256×256: 142 µs vs 159 µs SkylakeX, 336 µs Haswell), and
/// 2–10× at one row, where OpenBLAS's call overhead dominates. A matrix-vector product (n = 1)
/// would use one of 16 lanes of each panel: the SIMD dot-product kernel wins there
/// (256×30·30×1: 1.07 µs vs 1.25 µs). The portable scalar variant (≈45 GFLOP/s, SSE2 here)
/// loses to OpenBLAS from a few rows up, so without AVX2 (or on other architectures, or with
/// SWERVE_KERNELS_ISA=scalar) products keep the `sgemm` path.
func preferPackedGemm(n: Int, k: Int) -> Bool {
    n >= 2 && PackedGemmISA.selected != .scalar
}
