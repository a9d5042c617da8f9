// Packed single-precision GEMM for constant weights: C = A · B + bias (+ ReLU).
//
// B is packed once (swk_sgemm_pack_b) into k-major column panels 32 wide (16 for a narrow last
// panel), so a micro-kernel streams one contiguous panel while broadcasting elements of A,
// which is read in place (row-major, any lda). Variants:
//   AVX-512: 12 rows × 32 columns, 24 zmm accumulators (or 12 × 16 for a 16-wide panel).
//   AVX2:     6 rows × 16 columns, 12 ymm accumulators (a 32-wide panel is two halves).
//   scalar:   one row × one panel, plain C (the compiler vectorizes it for the baseline ISA).
// Edges: rows past m are never touched (the micro-kernel is instantiated for every row count
// up to its maximum); columns past n are zero in the packed panel and masked on load/store.
// K is blocked by KC (the first block stores, later blocks accumulate into C, the last adds
// the bias and applies the ReLU); M and N are blocked so A's and B's blocks stay in L2.
#include "CSwerveKernels.h"
#include "kernels_internal.h"
#include "vmath.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define SWK_X86 1
#include <immintrin.h>
#else
#define SWK_X86 0
#endif

#define KC 256   // k per block: a 32-wide panel block is 32 KiB (L1 is 48 KiB here)
#define MC 384   // rows per block: A's block is ≤ 384 KiB (L2 is 1 MiB)
#define NC 1024  // columns per block (a multiple of 32): B's block is ≤ 1 MiB

#define ALWAYS_INLINE static inline __attribute__((always_inline))

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/// Width of the panel starting at column j0.
static size_t panel_width(size_t n, size_t j0) { return n - j0 > 16 ? 32 : 16; }

/// Rows for the next micro-kernel call when `left` rows remain and the kernel takes up to
/// `max_rows`: a short tail is avoided by splitting the last two blocks evenly.
static size_t next_rows(size_t left, size_t max_rows) {
    if (left <= max_rows) return left;
    if (left < 2 * max_rows) return (left + 1) / 2;
    return max_rows;
}

size_t swk_sgemm_packed_b_size(size_t k, size_t n) { return k * ((n + 15) / 16 * 16); }

void swk_sgemm_pack_b(size_t k, size_t n, const float *b, size_t ldb, int trans_b, float alpha,
                      float *packed) {
    for (size_t j0 = 0; j0 < n; j0 += 32) {
        size_t w = panel_width(n, j0);
        size_t cols = min_size(w, n - j0);
        float *panel = packed + j0 * k;
        for (size_t p = 0; p < k; p++) {
            float *row = panel + p * w;
            for (size_t jj = 0; jj < w; jj++) {
                float v = 0;
                if (jj < cols) v = trans_b ? b[(j0 + jj) * ldb + p] : b[p * ldb + j0 + jj];
                row[jj] = alpha * v;
            }
        }
    }
}

// MARK: Scalar

/// The epilogue's activation (SWK_EPILOGUE_*) on one vector, with the vector math functions.
static inline swk_vf4 epilogue4(int act, swk_vf4 v) {
    switch (act) {
        case SWK_EPILOGUE_RELU: return swk_vm4_sel(v > 0.0f | v != v, v, swk_vm4_splat(0.0f));
        case SWK_EPILOGUE_TANH: return swk_vm4_tanh(v);
        case SWK_EPILOGUE_SIGMOID: return swk_vm4_sigmoid(v);
        case SWK_EPILOGUE_GELU: return swk_vm4_gelu(v);
        case SWK_EPILOGUE_GELU_TANH: return swk_vm4_gelu_tanh(v);
        default: return v;
    }
}

static void gemm_scalar(size_t m, size_t n, size_t k, const float *a, size_t lda,
                        const float *pb, const float *bias, float *c, size_t ldc, int act) {
    for (size_t i = 0; i < m; i++) {
        const float *ai = a + i * lda;
        for (size_t j0 = 0; j0 < n; j0 += 32) {
            size_t w = panel_width(n, j0), cols = min_size(w, n - j0);
            const float *bp = pb + j0 * k;
            float acc[32] = {0};
            if (w == 32) {
                for (size_t p = 0; p < k; p++) {
                    float av = ai[p];
                    for (int jj = 0; jj < 32; jj++) acc[jj] += av * bp[p * 32 + jj];
                }
            } else {
                for (size_t p = 0; p < k; p++) {
                    float av = ai[p];
                    for (int jj = 0; jj < 16; jj++) acc[jj] += av * bp[p * 16 + jj];
                }
            }
            float *ci = c + i * ldc + j0;
            for (size_t jj = 0; jj < cols; jj++) acc[jj] += bias ? bias[j0 + jj] : 0.0f;
            for (size_t jj = 0; jj < cols; jj += 4) {
                swk_vf4 v = {acc[jj], acc[jj + 1], acc[jj + 2], acc[jj + 3]};
                v = epilogue4(act, v);
                for (size_t l = 0; l < 4 && jj + l < cols; l++) ci[jj + l] = v[l];
            }
        }
    }
}

#if SWK_X86

// MARK: AVX-512

#define T512 __attribute__((target("avx512f,avx512vl,avx512dq,fma")))

/// The epilogue's activation on 16 lanes: max(0, v) keeps NaN (the second operand), as Relu does.
ALWAYS_INLINE T512 __m512 epilogue16(int act, __m512 v) {
    switch (act) {
        case SWK_EPILOGUE_RELU: return _mm512_max_ps(_mm512_setzero_ps(), v);
        case SWK_EPILOGUE_TANH: return swk_vm16_tanh(v);
        case SWK_EPILOGUE_SIGMOID: return swk_vm16_sigmoid(v);
        case SWK_EPILOGUE_GELU: return swk_vm16_gelu(v);
        case SWK_EPILOGUE_GELU_TANH: return swk_vm16_gelu_tanh(v);
        default: return v;
    }
}

/// MR rows × 16·NV columns of C from a kc-deep block. `first`: C is overwritten, else the block
/// is added to it; `last`: add the bias, apply the ReLU. m0/m1 mask the columns past n.
ALWAYS_INLINE T512 void ukr512(const int MR, const int NV, size_t kc, const float *a, size_t lda,
                               const float *b, size_t ldbp, float *c, size_t ldc,
                               const float *bias, int act, int first, int last,
                               __mmask16 m0, __mmask16 m1) {
    __m512 acc0[12], acc1[12];
    for (int r = 0; r < MR; r++) {
        acc0[r] = _mm512_setzero_ps();
        acc1[r] = _mm512_setzero_ps();
    }
    // Every row accumulates over k in the same order whatever MR is, so a row's result does not
    // depend on the batch it is computed in (the static table, the cache and the batcher must agree
    // bit for bit). Splitting k for one-row blocks was faster but broke that.
    size_t p = 0;
    const float *bp = b + p * ldbp;
    for (; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(bp);
        __m512 b1 = NV == 2 ? _mm512_loadu_ps(bp + 16) : b0;
        bp += ldbp;
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(a[r * lda + p]);
            acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
            if (NV == 2) acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
        }
    }
    __m512 zero = _mm512_setzero_ps();
    __m512 bias0 = zero, bias1 = zero;
    if (last && bias) {
        bias0 = _mm512_maskz_loadu_ps(m0, bias);
        if (NV == 2) bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
    for (int r = 0; r < MR; r++) {
        float *cr = c + r * ldc;
        __m512 v0 = acc0[r], v1 = acc1[r];
        if (!first) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, cr));
            if (NV == 2) v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, cr + 16));
        }
        if (last) {
            if (bias) {
                v0 = _mm512_add_ps(v0, bias0);
                if (NV == 2) v1 = _mm512_add_ps(v1, bias1);
            }
            if (act) {
                v0 = epilogue16(act, v0);
                if (NV == 2) v1 = epilogue16(act, v1);
            }
        }
        _mm512_mask_storeu_ps(cr, m0, v0);
        if (NV == 2) _mm512_mask_storeu_ps(cr + 16, m1, v1);
    }
}

#define UKR512_CASE(R)                                                                        \
    case R:                                                                                   \
        if (nv == 2)                                                                          \
            ukr512(R, 2, kc, a, lda, b, ldbp, c, ldc, bias, act, first, last, m0, m1);       \
        else                                                                                  \
            ukr512(R, 1, kc, a, lda, b, ldbp, c, ldc, bias, act, first, last, m0, m1);       \
        break;

static T512 void ukr512_dispatch(size_t mr, int nv, size_t kc, const float *a, size_t lda,
                                 const float *b, size_t ldbp, float *c, size_t ldc,
                                 const float *bias, int act, int first, int last, __mmask16 m0,
                                 __mmask16 m1) {
    switch (mr) {
        UKR512_CASE(1) UKR512_CASE(2) UKR512_CASE(3) UKR512_CASE(4) UKR512_CASE(5)
        UKR512_CASE(6) UKR512_CASE(7) UKR512_CASE(8) UKR512_CASE(9) UKR512_CASE(10)
        UKR512_CASE(11) UKR512_CASE(12)
        default: break;
    }
}

static __mmask16 mask16(size_t cols) { return cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1); }

static T512 void gemm_avx512(size_t m, size_t n, size_t k, const float *a, size_t lda,
                             const float *pb, const float *bias, float *c, size_t ldc, int act) {
    for (size_t jc = 0; jc < n; jc += NC) {
        size_t jend = min_size(n, jc + NC);
        for (size_t pc = 0; pc < k; pc += KC) {
            size_t kc = min_size(KC, k - pc);
            int first = pc == 0, last = pc + kc == k;
            for (size_t ic = 0; ic < m; ic += MC) {
                size_t iend = min_size(m, ic + MC);
                for (size_t j0 = jc; j0 < jend; j0 += 32) {
                    size_t w = panel_width(n, j0), cols = min_size(w, n - j0);
                    const float *bp = pb + j0 * k + pc * w;
                    __mmask16 m0 = mask16(cols), m1 = cols > 16 ? mask16(cols - 16) : 0;
                    const float *bj = bias ? bias + j0 : NULL;
                    for (size_t i = ic; i < iend;) {
                        size_t mr = next_rows(iend - i, 12);
                        ukr512_dispatch(mr, w == 32 ? 2 : 1, kc, a + i * lda + pc, lda, bp, w,
                                        c + i * ldc + j0, ldc, bj, act, first, last, m0, m1);
                        i += mr;
                    }
                }
            }
        }
    }
}

// MARK: AVX2

#define T256 __attribute__((target("avx2,fma")))

ALWAYS_INLINE T256 __m256 epilogue8(int act, __m256 v) {
    switch (act) {
        case SWK_EPILOGUE_RELU: return _mm256_max_ps(_mm256_setzero_ps(), v);
        case SWK_EPILOGUE_TANH: return swk_vm8_tanh(v);
        case SWK_EPILOGUE_SIGMOID: return swk_vm8_sigmoid(v);
        case SWK_EPILOGUE_GELU: return swk_vm8_gelu(v);
        case SWK_EPILOGUE_GELU_TANH: return swk_vm8_gelu_tanh(v);
        default: return v;
    }
}

/// MR rows × 16 columns of C (two ymm per row) from a kc-deep block of a panel whose rows are
/// ldbp floats apart. `cols` < 16 masks the columns past n.
ALWAYS_INLINE T256 void ukr256(const int MR, size_t kc, const float *a, size_t lda,
                               const float *b, size_t ldbp, float *c, size_t ldc,
                               const float *bias, int act, int first, int last, size_t cols) {
    __m256 acc0[6], acc1[6];
    for (int r = 0; r < MR; r++) {
        acc0[r] = _mm256_setzero_ps();
        acc1[r] = _mm256_setzero_ps();
    }
    // Every row accumulates over k in the same order whatever MR is, so a row's result does not
    // depend on the batch it is computed in (the static table, the cache and the batcher must agree
    // bit for bit). Splitting k for one-row blocks was faster but broke that.
    size_t p = 0;
    const float *bp = b + p * ldbp;
    for (; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
        bp += ldbp;
        for (int r = 0; r < MR; r++) {
            __m256 av = _mm256_broadcast_ss(a + r * lda + p);
            acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
            acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
        }
    }
    __m256 zero = _mm256_setzero_ps();
    int full = cols >= 16;
    __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)cols), iota);
    __m256i k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)cols - 8), iota);
    __m256 bias0 = zero, bias1 = zero;
    if (last && bias) {
        bias0 = _mm256_maskload_ps(bias, k0);
        bias1 = _mm256_maskload_ps(bias + 8, k1);
    }
    for (int r = 0; r < MR; r++) {
        float *cr = c + r * ldc;
        __m256 v0 = acc0[r], v1 = acc1[r];
        if (!first) {
            if (full) {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr + 8));
            } else {
                v0 = _mm256_add_ps(v0, _mm256_maskload_ps(cr, k0));
                v1 = _mm256_add_ps(v1, _mm256_maskload_ps(cr + 8, k1));
            }
        }
        if (last) {
            v0 = _mm256_add_ps(v0, bias0);
            v1 = _mm256_add_ps(v1, bias1);
            if (act) {
                v0 = epilogue8(act, v0);
                v1 = epilogue8(act, v1);
            }
        }
        if (full) {
            _mm256_storeu_ps(cr, v0);
            _mm256_storeu_ps(cr + 8, v1);
        } else {
            _mm256_maskstore_ps(cr, k0, v0);
            _mm256_maskstore_ps(cr + 8, k1, v1);
        }
    }
}

#define UKR256_CASE(R)                                                                        \
    case R: ukr256(R, kc, a, lda, b, ldbp, c, ldc, bias, act, first, last, cols); break;

static T256 void ukr256_dispatch(size_t mr, size_t kc, const float *a, size_t lda,
                                 const float *b, size_t ldbp, float *c, size_t ldc,
                                 const float *bias, int act, int first, int last, size_t cols) {
    switch (mr) {
        UKR256_CASE(1) UKR256_CASE(2) UKR256_CASE(3) UKR256_CASE(4) UKR256_CASE(5) UKR256_CASE(6)
        default: break;
    }
}

static T256 void gemm_avx2(size_t m, size_t n, size_t k, const float *a, size_t lda,
                           const float *pb, const float *bias, float *c, size_t ldc, int act) {
    for (size_t jc = 0; jc < n; jc += NC) {
        size_t jend = min_size(n, jc + NC);
        for (size_t pc = 0; pc < k; pc += KC) {
            size_t kc = min_size(KC, k - pc);
            int first = pc == 0, last = pc + kc == k;
            for (size_t ic = 0; ic < m; ic += MC) {
                size_t iend = min_size(m, ic + MC);
                for (size_t j0 = jc; j0 < jend; j0 += 32) {
                    size_t w = panel_width(n, j0);
                    const float *bp = pb + j0 * k + pc * w;
                    for (size_t h = 0; h < w && j0 + h < n; h += 16) {
                        size_t cols = min_size(16, n - j0 - h);
                        const float *bh = bias ? bias + j0 + h : NULL;
                        for (size_t i = ic; i < iend;) {
                            size_t mr = next_rows(iend - i, 6);
                            ukr256_dispatch(mr, kc, a + i * lda + pc, lda, bp + h, w,
                                            c + i * ldc + j0 + h, ldc, bh, act, first, last, cols);
                            i += mr;
                        }
                    }
                }
            }
        }
    }
}

#endif  // SWK_X86

// MARK: Dispatch

int swk_isa_supported(int isa) {
    switch (isa) {
        case SWK_ISA_AUTO:
        case SWK_ISA_SCALAR: return 1;
#if SWK_X86
        case SWK_ISA_AVX2:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case SWK_ISA_AVX512:
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma");
#endif
        default: return 0;
    }
}

/// The best supported variant at or below `isa`.
int swk_isa_resolve(int isa) {
    if (isa == SWK_ISA_AUTO || isa > SWK_ISA_AVX512) isa = SWK_ISA_AVX512;
    while (isa > SWK_ISA_SCALAR && !swk_isa_supported(isa)) isa--;
    return isa < SWK_ISA_SCALAR ? SWK_ISA_SCALAR : isa;
}

static int selected_isa = -1;

int swk_isa_selected(void) {
    int isa = __atomic_load_n(&selected_isa, __ATOMIC_RELAXED);
    if (isa < 0) {
        int cap = SWK_ISA_AUTO;
        const char *env = getenv("SWERVE_KERNELS_ISA");
        if (env) {
            if (strcmp(env, "scalar") == 0) cap = SWK_ISA_SCALAR;
            else if (strcmp(env, "avx2") == 0) cap = SWK_ISA_AVX2;
            else if (strcmp(env, "avx512") == 0) cap = SWK_ISA_AVX512;
        }
        isa = swk_isa_resolve(cap);
        __atomic_store_n(&selected_isa, isa, __ATOMIC_RELAXED);
    }
    return isa;
}

static void run(int isa, size_t m, size_t n, size_t k, const float *a, size_t lda,
                const float *pb, const float *bias, float *c, size_t ldc, int epilogue) {
    if (m == 0 || n == 0) return;
    int act = epilogue;
    if (k == 0) {
        for (size_t i = 0; i < m; i++) {
            for (size_t j = 0; j < n; j++) {
                float v = bias ? bias[j] : 0.0f;
                swk_vf4 w = {v, v, v, v};
                c[i * ldc + j] = epilogue4(act, w)[0];
            }
        }
        return;
    }
    switch (isa) {
#if SWK_X86
        case SWK_ISA_AVX512: gemm_avx512(m, n, k, a, lda, pb, bias, c, ldc, act); return;
        case SWK_ISA_AVX2: gemm_avx2(m, n, k, a, lda, pb, bias, c, ldc, act); return;
#endif
        default: gemm_scalar(m, n, k, a, lda, pb, bias, c, ldc, act); return;
    }
}

void swk_sgemm_packed(size_t m, size_t n, size_t k, const float *a, size_t lda,
                      const float *packed_b, const float *bias, float *c, size_t ldc,
                      int epilogue) {
    run(swk_isa_selected(), m, n, k, a, lda, packed_b, bias, c, ldc, epilogue);
}

void swk_sgemm_packed_isa(int isa, size_t m, size_t n, size_t k, const float *a, size_t lda,
                          const float *packed_b, const float *bias, float *c, size_t ldc,
                          int epilogue) {
    run(swk_isa_resolve(isa), m, n, k, a, lda, packed_b, bias, c, ldc, epilogue);
}
