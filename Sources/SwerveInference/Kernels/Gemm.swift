// Matrix products: OpenBLAS for large products, a register-blocked SIMD kernel for small ones.
// Both follow cblas row-major semantics: C = alpha·op(A)·op(B) + beta·C. Products with
// constant FP32 weights use the packed kernel instead (PackedGemm.swift).
import COpenBLAS

/// Which implementation a matrix product uses.
enum GemmBackend: Sendable {
    case blas
    case simd
    /// BLAS when the product is large enough that its call overhead pays off (see `useBLAS`).
    case automatic
}

/// Limits OpenBLAS to the calling thread. Swerve runs one BLAS call per worker thread, and
/// OpenBLAS's own pool would oversubscribe the cores.
let configureBLASOnce: Void = { openblas_set_num_threads(1) }()

/// The size rule for `.automatic`, from BenchmarkTests (release build, this 2-core machine,
/// OpenBLAS 0.3 pthreads, one thread). OpenBLAS's sgemm costs 2–15 µs even for one row, so the
/// SIMD kernel wins for one or two rows (1×256·256×256: 3.1 µs vs 14.9 µs), for matrix-vector
/// products (256×30·30×1: 1.0 µs vs 1.2 µs) and for tiny products; from about 4 rows and 16K
/// multiply-adds BLAS's blocking wins, by 3× at 32 rows and more beyond.
@inline(__always)
func useBLAS(m: Int, n: Int, k: Int) -> Bool {
    n > 1 && m > 2 && m * n * k >= 16_384
}

/// Single-precision C = alpha·op(A)·op(B) + beta·C (row-major; op(A) is m×k, op(B) is k×n).
func sgemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, backend: GemmBackend = .automatic
) {
    if m == 0 || n == 0 { return }
    let blas: Bool =
        switch backend {
        case .blas: true
        case .simd: false
        case .automatic: useBLAS(m: m, n: n, k: k)
        }
    if blas && k > 0 {
        _ = configureBLASOnce
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    } else {
        sgemmSIMD(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                  a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}

/// Double-precision C = alpha·op(A)·op(B) + beta·C, always through BLAS.
func dgemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
    a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
    beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    _ = configureBLASOnce
    cblas_dgemm(
        CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// The portable kernel. With B not transposed (the usual case: weights are pre-transposed at
/// compile time) each row of C is built 32 columns at a time in four SIMD8 registers, streaming
/// rows of B; with B transposed, each element is a SIMD dot product.
func sgemmSIMD(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    @inline(__always) func aAt(_ i: Int, _ p: Int) -> Float { transA ? a[p * lda + i] : a[i * lda + p] }
    @inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    if n == 1 && !transA && (transB || ldb == 1) {
        // A matrix-vector product (a linear model's single output): SIMD dot products; B's
        // only column is contiguous either way.
        for i in 0..<m {
            let aRow = a + i * lda
            var v = SIMD8<Float>()
            var p = 0
            while p + 8 <= k {
                v += load8(aRow + p) * load8(b + p)
                p += 8
            }
            var acc = v.sum()
            while p < k {
                acc += aRow[p] * b[p]
                p += 1
            }
            c[i * ldc] = alpha * acc + (beta == 0 ? 0 : beta * c[i * ldc])
        }
    } else if !transB {
        for i in 0..<m {
            let cRow = c + i * ldc
            var j = 0
            while j + 32 <= n {
                var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>(), acc2 = SIMD8<Float>(), acc3 = SIMD8<Float>()
                var bp = b + j
                for p in 0..<k {
                    let av = SIMD8<Float>(repeating: aAt(i, p))
                    acc0 += av * load8(bp)
                    acc1 += av * load8(bp + 8)
                    acc2 += av * load8(bp + 16)
                    acc3 += av * load8(bp + 24)
                    bp += ldb
                }
                let al = SIMD8<Float>(repeating: alpha)
                if beta == 0 {
                    store8(al * acc0, cRow + j)
                    store8(al * acc1, cRow + j + 8)
                    store8(al * acc2, cRow + j + 16)
                    store8(al * acc3, cRow + j + 24)
                } else {
                    let be = SIMD8<Float>(repeating: beta)
                    store8(al * acc0 + be * load8(cRow + j), cRow + j)
                    store8(al * acc1 + be * load8(cRow + j + 8), cRow + j + 8)
                    store8(al * acc2 + be * load8(cRow + j + 16), cRow + j + 16)
                    store8(al * acc3 + be * load8(cRow + j + 24), cRow + j + 24)
                }
                j += 32
            }
            while j + 8 <= n {
                var acc = SIMD8<Float>()
                var bp = b + j
                for p in 0..<k {
                    acc += SIMD8<Float>(repeating: aAt(i, p)) * load8(bp)
                    bp += ldb
                }
                let old = beta == 0 ? SIMD8<Float>() : SIMD8<Float>(repeating: beta) * load8(cRow + j)
                store8(SIMD8<Float>(repeating: alpha) * acc + old, cRow + j)
                j += 8
            }
            while j < n {
                var acc: Float = 0
                for p in 0..<k { acc += aAt(i, p) * b[p * ldb + j] }
                cRow[j] = alpha * acc + (beta == 0 ? 0 : beta * cRow[j])
                j += 1
            }
        }
    } else {
        for i in 0..<m {
            for j in 0..<n {
                let bRow = b + j * ldb
                var acc: Float = 0
                if !transA {
                    let aRow = a + i * lda
                    var v = SIMD8<Float>()
                    var p = 0
                    while p + 8 <= k {
                        v += load8(aRow + p) * load8(bRow + p)
                        p += 8
                    }
                    acc = v.sum()
                    while p < k {
                        acc += aRow[p] * bRow[p]
                        p += 1
                    }
                } else {
                    for p in 0..<k { acc += a[p * lda + i] * bRow[p] }
                }
                c[i * ldc + j] = alpha * acc + (beta == 0 ? 0 : beta * c[i * ldc + j])
            }
        }
    }
}
