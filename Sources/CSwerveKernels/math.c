// PLACEHOLDER (replaced by the vectorized implementation on branch h12-math): libm loops with
// the API of CSwerveMath.h, so operators can be written against it in parallel.
#include "CSwerveMath.h"
#include "CSwerveKernels.h"

#include <math.h>

static float sigmoid1(float v) { return v >= 0 ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v)); }
static float softplus1(float v) { return v > 20 ? v : log1pf(expf(v)); }
static float gelu1(float v) { return v * 0.5f * (1.0f + erff(v * 0.70710678118654752f)); }
static float gelu_tanh1(float v) {
    return v * 0.5f * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
}

static float apply(int fn, float v) {
    switch (fn) {
        case SWK_FN_EXP: return expf(v);
        case SWK_FN_LOG: return logf(v);
        case SWK_FN_TANH: return tanhf(v);
        case SWK_FN_SIGMOID: return sigmoid1(v);
        case SWK_FN_ERF: return erff(v);
        case SWK_FN_SOFTPLUS: return softplus1(v);
        case SWK_FN_RSQRT: return 1.0f / sqrtf(v);
        case SWK_FN_GELU: return gelu1(v);
        case SWK_FN_GELU_TANH: return gelu_tanh1(v);
        default: return v;
    }
}

void swk_vmath_isa(int isa, int fn, size_t n, const float *x, float *y) {
    (void)isa;
    for (size_t i = 0; i < n; i++) y[i] = apply(fn, x[i]);
}

void swk_vexp(size_t n, const float *x, float *y) { swk_vmath_isa(0, SWK_FN_EXP, n, x, y); }
void swk_vlog(size_t n, const float *x, float *y) { swk_vmath_isa(0, SWK_FN_LOG, n, x, y); }
void swk_vtanh(size_t n, const float *x, float *y) { swk_vmath_isa(0, SWK_FN_TANH, n, x, y); }
void swk_vsigmoid(size_t n, const float *x, float *y) { swk_vmath_isa(0, SWK_FN_SIGMOID, n, x, y); }
void swk_verf(size_t n, const float *x, float *y) { swk_vmath_isa(0, SWK_FN_ERF, n, x, y); }
void swk_vsoftplus(size_t n, const float *x, float *y) { swk_vmath_isa(0, SWK_FN_SOFTPLUS, n, x, y); }
void swk_vrsqrt(size_t n, const float *x, float *y) { swk_vmath_isa(0, SWK_FN_RSQRT, n, x, y); }
void swk_vgelu(size_t n, const float *x, float *y) { swk_vmath_isa(0, SWK_FN_GELU, n, x, y); }
void swk_vgelu_tanh(size_t n, const float *x, float *y) { swk_vmath_isa(0, SWK_FN_GELU_TANH, n, x, y); }

void swk_softmax_rows(size_t rows, size_t len, const float *x, float *y) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * len;
        float *yr = y + r * len;
        float m = -INFINITY;
        for (size_t j = 0; j < len; j++) m = xr[j] > m ? xr[j] : m;
        float s = 0;
        for (size_t j = 0; j < len; j++) { yr[j] = expf(xr[j] - m); s += yr[j]; }
        float inv = 1.0f / s;
        for (size_t j = 0; j < len; j++) yr[j] *= inv;
    }
}
