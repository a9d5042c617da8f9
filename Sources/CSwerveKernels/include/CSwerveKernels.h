#ifndef CSWERVEKERNELS_H
#define CSWERVEKERNELS_H
// Hand-vectorized kernels for the inference core: a single-precision GEMM for constant
// weights (B packed once at model load) with a fused bias + activation epilogue.
//
// Packed B layout: column panels of 32 columns (the last panel is 16 wide when at most 16
// columns remain), each panel k-major (row p of the panel is `width` contiguous floats),
// panels back to back, columns past n zero-filled. The panel starting at column j0 begins at
// float offset j0 * k. The layout is the same for every instruction set.

#include <stddef.h>

#include "CSwerveMath.h"
#include "CSwerveTrees.h"

/// Instruction-set variants of the packed GEMM.
#define SWK_ISA_AUTO 0
#define SWK_ISA_SCALAR 1
#define SWK_ISA_AVX2 2
#define SWK_ISA_AVX512 3

/// Epilogue activations, applied after the bias with the vector math functions of CSwerveMath.h
/// (so a fused activation gives exactly what the standalone function gives).
#define SWK_EPILOGUE_NONE 0
#define SWK_EPILOGUE_RELU 1
#define SWK_EPILOGUE_TANH 2
#define SWK_EPILOGUE_SIGMOID 3
#define SWK_EPILOGUE_GELU 4
#define SWK_EPILOGUE_GELU_TANH 5

/// Floats needed for the packed form of a k×n matrix: k · round_up(n, 16).
size_t swk_sgemm_packed_b_size(size_t k, size_t n);

/// Packs alpha·B into `packed` (swk_sgemm_packed_b_size(k, n) floats, ideally 64-byte
/// aligned). B is k×n row-major with leading dimension ldb, or, when trans_b is nonzero, stored
/// transposed (n×k row-major, leading dimension ldb).
void swk_sgemm_pack_b(size_t k, size_t n, const float *b, size_t ldb, int trans_b, float alpha,
                      float *packed);

/// C[m×n] = A[m×k] · B + bias, then the activation `epilogue` (SWK_EPILOGUE_*).
/// A and C are row-major with leading dimensions lda ≥ k and ldc ≥ n; `packed_b` comes from
/// swk_sgemm_pack_b; `bias` is n floats or NULL. Uses the best variant this CPU supports
/// (SWERVE_KERNELS_ISA=scalar|avx2|avx512 in the environment caps it). Single-threaded.
void swk_sgemm_packed(size_t m, size_t n, size_t k, const float *a, size_t lda,
                      const float *packed_b, const float *bias, float *c, size_t ldc,
                      int epilogue);

/// The same with an explicit variant (SWK_ISA_*); an unsupported one falls back to the best
/// supported variant below it. For tests and benchmarks.
void swk_sgemm_packed_isa(int isa, size_t m, size_t n, size_t k, const float *a, size_t lda,
                          const float *packed_b, const float *bias, float *c, size_t ldc,
                          int epilogue);

/// Whether this CPU (and OS) can run variant `isa`.
int swk_isa_supported(int isa);

/// The variant swk_sgemm_packed uses.
int swk_isa_selected(void);

#endif
