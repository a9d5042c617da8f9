#ifndef CSWERVEMATH_H
#define CSWERVEMATH_H
// Vectorized single-precision math for the inference core: each function maps n floats of x to
// y (x == y is allowed). AVX-512 and AVX2 variants are chosen at run time (the same selection
// as the packed GEMM, capped by SWERVE_KERNELS_ISA), with a portable scalar fallback. Every
// element's result depends only on its value (never on n or its position), so a row computes the
// same whatever batch it is in. NaN, infinities and denormals give what libm gives.

#include <stddef.h>
#include <stdint.h>

/// Function ids for swk_vmath_isa.
#define SWK_FN_EXP 0
#define SWK_FN_LOG 1
#define SWK_FN_TANH 2
#define SWK_FN_SIGMOID 3
#define SWK_FN_ERF 4
#define SWK_FN_SOFTPLUS 5
#define SWK_FN_RSQRT 6
#define SWK_FN_GELU 7       // x · ½ · (1 + erf(x / √2))
#define SWK_FN_GELU_TANH 8  // x · ½ · (1 + tanh(√(2/π) · (x + 0.044715 x³)))
#define SWK_FN_COUNT 9

void swk_vexp(size_t n, const float *x, float *y);
void swk_vlog(size_t n, const float *x, float *y);
void swk_vtanh(size_t n, const float *x, float *y);
void swk_vsigmoid(size_t n, const float *x, float *y);
void swk_verf(size_t n, const float *x, float *y);
void swk_vsoftplus(size_t n, const float *x, float *y);
void swk_vrsqrt(size_t n, const float *x, float *y);
void swk_vgelu(size_t n, const float *x, float *y);
void swk_vgelu_tanh(size_t n, const float *x, float *y);

/// Function `fn` (SWK_FN_*) on an explicit variant (SWK_ISA_*; an unsupported one falls back to
/// the best supported below it). For tests and benchmarks.
void swk_vmath_isa(int isa, int fn, size_t n, const float *x, float *y);

/// Softmax of `rows` contiguous rows of `len` floats: y = exp(x - max) / Σ exp(x - max), the
/// exponentials and their sum in one pass.
void swk_softmax_rows(size_t rows, size_t len, const float *x, float *y);

/// Layer normalization of `rows` contiguous rows of `len` floats: y = (x − mean) · inv · scale + bias
/// with inv = 1/√(var + epsilon). scale (and bias, when not NULL) hold `len` floats, or one float
/// when their step is 0. mean_out / inv_out (NULL to skip) get each row's mean and inv.
void swk_layernorm_rows(size_t rows, size_t len, const float *x, const float *scale, size_t scale_step,
                        const float *bias, size_t bias_step, float epsilon, float *y, float *mean_out, float *inv_out);

/// swk_softmax_rows on an explicit variant (SWK_ISA_*). For tests and benchmarks.
void swk_softmax_rows_isa(int isa, size_t rows, size_t len, const float *x, float *y);

/// How far function `fn` on variant `isa` is from the double-precision libm reference over the
/// floats from `lo` to `hi` (every `stride`-th float in bit-pattern order).
typedef struct {
    uint64_t count;               ///< floats tried
    uint64_t special_mismatches;  ///< NaN where the reference is not (or the reverse), or a wrong ±inf
    double max_ulp;               ///< largest |got − want| in units of the last place of want (as a float)
    double max_rel;               ///< largest |got − want| / |want| (|want| floored at FLT_MIN)
    double max_abs;               ///< largest |got − want|
    double max_mixed;             ///< largest |got − want| / max(|want|, 1)
    float worst_x;                ///< the input of the largest ulp error (or of the last mismatch)
} swk_vmath_error;

void swk_vmath_measure(int isa, int fn, float lo, float hi, uint64_t stride, swk_vmath_error *out);

#endif
