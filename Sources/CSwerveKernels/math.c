// Vectorized single-precision math over arrays (CSwerveMath.h): the vmath.h variants run over
// whole vectors; a tail shorter than a vector goes through the same vector code in a padded
// stack buffer, so every element's result depends only on its value, never on n or its position.
#include "CSwerveMath.h"
#include "CSwerveKernels.h"
#include "kernels_internal.h"
#include "vmath.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define ARRAY_LOOP(W, VT, FNAME, fn, n, x, y)                       \
    do {                                                             \
        size_t i_ = 0;                                               \
        for (; i_ + (W) <= (n); i_ += (W)) {                         \
            VT v_;                                                   \
            memcpy(&v_, (x) + i_, sizeof v_);                        \
            v_ = FNAME(fn, v_);                                      \
            memcpy((y) + i_, &v_, sizeof v_);                        \
        }                                                            \
        if (i_ < (n)) {                                              \
            float buf_[W] = {0};                                     \
            memcpy(buf_, (x) + i_, ((n) - i_) * sizeof(float));      \
            VT v_;                                                   \
            memcpy(&v_, buf_, sizeof v_);                            \
            v_ = FNAME(fn, v_);                                      \
            memcpy(buf_, &v_, sizeof v_);                            \
            memcpy((y) + i_, buf_, ((n) - i_) * sizeof(float));      \
        }                                                            \
    } while (0)

// One loop per (variant, function): `fn` is a constant in each instantiation, so the switch in
// FN(apply) folds away and the function inlines into the loop.
#define DEFINE_LOOPS(W, VT, PREFIX, ATTR)                                                      \
    ATTR static void PREFIX##_loop_exp(size_t n, const float *x, float *y) {                   \
        ARRAY_LOOP(W, VT, PREFIX##_apply, SWK_FN_EXP, n, x, y);                                \
    }                                                                                          \
    ATTR static void PREFIX##_loop_log(size_t n, const float *x, float *y) {                   \
        ARRAY_LOOP(W, VT, PREFIX##_apply, SWK_FN_LOG, n, x, y);                                \
    }                                                                                          \
    ATTR static void PREFIX##_loop_tanh(size_t n, const float *x, float *y) {                  \
        ARRAY_LOOP(W, VT, PREFIX##_apply, SWK_FN_TANH, n, x, y);                               \
    }                                                                                          \
    ATTR static void PREFIX##_loop_sigmoid(size_t n, const float *x, float *y) {               \
        ARRAY_LOOP(W, VT, PREFIX##_apply, SWK_FN_SIGMOID, n, x, y);                            \
    }                                                                                          \
    ATTR static void PREFIX##_loop_erf(size_t n, const float *x, float *y) {                   \
        ARRAY_LOOP(W, VT, PREFIX##_apply, SWK_FN_ERF, n, x, y);                                \
    }                                                                                          \
    ATTR static void PREFIX##_loop_softplus(size_t n, const float *x, float *y) {              \
        ARRAY_LOOP(W, VT, PREFIX##_apply, SWK_FN_SOFTPLUS, n, x, y);                           \
    }                                                                                          \
    ATTR static void PREFIX##_loop_rsqrt(size_t n, const float *x, float *y) {                 \
        ARRAY_LOOP(W, VT, PREFIX##_apply, SWK_FN_RSQRT, n, x, y);                              \
    }                                                                                          \
    ATTR static void PREFIX##_loop_gelu(size_t n, const float *x, float *y) {                  \
        ARRAY_LOOP(W, VT, PREFIX##_apply, SWK_FN_GELU, n, x, y);                               \
    }                                                                                          \
    ATTR static void PREFIX##_loop_gelu_tanh(size_t n, const float *x, float *y) {             \
        ARRAY_LOOP(W, VT, PREFIX##_apply, SWK_FN_GELU_TANH, n, x, y);                          \
    }                                                                                          \
    static void (*const PREFIX##_loops[SWK_FN_COUNT])(size_t, const float *, float *) = {     \
        PREFIX##_loop_exp, PREFIX##_loop_log, PREFIX##_loop_tanh, PREFIX##_loop_sigmoid,       \
        PREFIX##_loop_erf, PREFIX##_loop_softplus, PREFIX##_loop_rsqrt, PREFIX##_loop_gelu,    \
        PREFIX##_loop_gelu_tanh};

DEFINE_LOOPS(4, swk_vf4, swk_vm4, )
#if defined(__x86_64__) || defined(__i386__)
DEFINE_LOOPS(8, swk_vf8, swk_vm8, __attribute__((target("avx2,fma"))))
DEFINE_LOOPS(16, swk_vf16, swk_vm16, __attribute__((target("avx512f,avx512vl,avx512dq,fma"))))
#endif

static void run_fn(int isa, int fn, size_t n, const float *x, float *y) {
    if (fn < 0 || fn >= SWK_FN_COUNT || n == 0) return;
    switch (isa) {
#if defined(__x86_64__) || defined(__i386__)
        case SWK_ISA_AVX512: swk_vm16_loops[fn](n, x, y); return;
        case SWK_ISA_AVX2: swk_vm8_loops[fn](n, x, y); return;
#endif
        default: swk_vm4_loops[fn](n, x, y); return;
    }
}

void swk_vmath_isa(int isa, int fn, size_t n, const float *x, float *y) {
    run_fn(swk_isa_resolve(isa), fn, n, x, y);
}

void swk_vexp(size_t n, const float *x, float *y) { run_fn(swk_isa_selected(), SWK_FN_EXP, n, x, y); }
void swk_vlog(size_t n, const float *x, float *y) { run_fn(swk_isa_selected(), SWK_FN_LOG, n, x, y); }
void swk_vtanh(size_t n, const float *x, float *y) { run_fn(swk_isa_selected(), SWK_FN_TANH, n, x, y); }
void swk_vsigmoid(size_t n, const float *x, float *y) { run_fn(swk_isa_selected(), SWK_FN_SIGMOID, n, x, y); }
void swk_verf(size_t n, const float *x, float *y) { run_fn(swk_isa_selected(), SWK_FN_ERF, n, x, y); }
void swk_vsoftplus(size_t n, const float *x, float *y) { run_fn(swk_isa_selected(), SWK_FN_SOFTPLUS, n, x, y); }
void swk_vrsqrt(size_t n, const float *x, float *y) { run_fn(swk_isa_selected(), SWK_FN_RSQRT, n, x, y); }
void swk_vgelu(size_t n, const float *x, float *y) { run_fn(swk_isa_selected(), SWK_FN_GELU, n, x, y); }
void swk_vgelu_tanh(size_t n, const float *x, float *y) { run_fn(swk_isa_selected(), SWK_FN_GELU_TANH, n, x, y); }

// MARK: Softmax

// Per row: the maximum, then e^(x − max) stored and summed in one pass, then one scaling pass.
// Lanes past the row's end are −inf (they add e^−inf = 0). A NaN anywhere makes the row NaN (its
// e^(NaN − max) joins the sum), and a row of −inf is NaN (−inf − −inf), as the plain three-loop
// softmax gives.
#define LOAD_PADDED(W, VT, v, p, cnt)                                                          \
    do {                                                                                       \
        if ((cnt) == (W)) {                                                                    \
            memcpy(&(v), (p), sizeof(v));                                                      \
        } else {                                                                               \
            float b_[W];                                                                       \
            for (size_t l_ = 0; l_ < (W); l_++) b_[l_] = l_ < (cnt) ? (p)[l_] : -__builtin_inff(); \
            memcpy(&(v), b_, sizeof(v));                                                       \
        }                                                                                      \
    } while (0)

#define SOFTMAX_ROWS(W, VT, PREFIX)                                                            \
    for (size_t r_ = 0; r_ < rows; r_++) {                                                     \
        const float *xr = x + r_ * len;                                                        \
        float *yr = y + r_ * len;                                                              \
        VT mx = PREFIX##_splat(-__builtin_inff());                                             \
        for (size_t j = 0; j < len; j += W) {                                                  \
            size_t cnt = len - j < W ? len - j : W;                                            \
            VT v;                                                                              \
            LOAD_PADDED(W, VT, v, xr + j, cnt);                                                \
            mx = PREFIX##_vmax(mx, v);                                                         \
        }                                                                                      \
        float m = -__builtin_inff();                                                           \
        for (int l = 0; l < W; l++) m = mx[l] > m ? mx[l] : m;                                 \
        VT sum = PREFIX##_splat(0.0f);                                                         \
        for (size_t j = 0; j < len; j += W) {                                                  \
            size_t cnt = len - j < W ? len - j : W;                                            \
            VT v;                                                                              \
            LOAD_PADDED(W, VT, v, xr + j, cnt);                                                \
            v = PREFIX##_exp(v - m);                                                           \
            sum += v;                                                                          \
            float b[W];                                                                        \
            memcpy(b, &v, sizeof v);                                                           \
            memcpy(yr + j, b, cnt * sizeof(float));                                            \
        }                                                                                      \
        float s = 0;                                                                           \
        for (int l = 0; l < W; l++) s += sum[l];                                               \
        float inv = 1.0f / s;                                                                  \
        for (size_t j = 0; j < len; j++) yr[j] *= inv;                                         \
    }

static void softmax4(size_t rows, size_t len, const float *x, float *y) { SOFTMAX_ROWS(4, swk_vf4, swk_vm4) }
#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) static void softmax8(size_t rows, size_t len, const float *x, float *y) {
    SOFTMAX_ROWS(8, swk_vf8, swk_vm8)
}
__attribute__((target("avx512f,avx512vl,avx512dq,fma"))) static void softmax16(size_t rows, size_t len, const float *x, float *y) {
    SOFTMAX_ROWS(16, swk_vf16, swk_vm16)
}
#endif

/// Softmax of short rows (fewer elements than a vector): vectorized across rows instead of along
/// them. Each row's maximum is subtracted into y, one vector exp runs over the whole block, then
/// each row is summed in order and scaled. A row's result still depends only on that row.
static void softmax_short_rows(int isa, size_t rows, size_t len, const float *x, float *y) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * len;
        float *yr = y + r * len;
        float m = -__builtin_inff();
        for (size_t j = 0; j < len; j++) m = xr[j] > m ? xr[j] : m;
        for (size_t j = 0; j < len; j++) yr[j] = xr[j] - m;
    }
    run_fn(isa, SWK_FN_EXP, rows * len, y, y);
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * len;
        float s = 0;
        for (size_t j = 0; j < len; j++) s += yr[j];
        float inv = 1.0f / s;
        for (size_t j = 0; j < len; j++) yr[j] *= inv;
    }
}

void swk_softmax_rows_isa(int isa, size_t rows, size_t len, const float *x, float *y) {
    if (rows == 0 || len == 0) return;
    isa = swk_isa_resolve(isa);
    size_t lanes = isa == SWK_ISA_AVX512 ? 16 : isa == SWK_ISA_AVX2 ? 8 : 4;
    if (len < lanes) {
        softmax_short_rows(isa, rows, len, x, y);
        return;
    }
    switch (isa) {
#if defined(__x86_64__) || defined(__i386__)
        case SWK_ISA_AVX512: softmax16(rows, len, x, y); return;
        case SWK_ISA_AVX2: softmax8(rows, len, x, y); return;
#endif
        default: softmax4(rows, len, x, y); return;
    }
}

void swk_softmax_rows(size_t rows, size_t len, const float *x, float *y) {
    swk_softmax_rows_isa(swk_isa_selected(), rows, len, x, y);
}

// MARK: Layer normalization

// Per row: the mean, then the mean square of the deviations (two passes over a row in L1, which
// cannot go negative the way E[x²] − E[x]² can), then (x − mean) · inv · scale + bias. Vector
// accumulators over whole vectors, the tail in order; the result depends only on the row.
#define LAYERNORM_ROWS(W, VT, PREFIX)                                                          \
    for (size_t r = 0; r < rows; r++) {                                                        \
        const float *xr = x + r * len;                                                         \
        float *yr = y + r * len;                                                               \
        size_t full = len / W * W;                                                             \
        VT acc = PREFIX##_splat(0.0f);                                                         \
        for (size_t j = 0; j < full; j += W) {                                                 \
            VT v;                                                                              \
            memcpy(&v, xr + j, sizeof v);                                                      \
            acc += v;                                                                          \
        }                                                                                      \
        float sum = 0;                                                                         \
        for (int l = 0; l < W; l++) sum += acc[l];                                             \
        for (size_t j = full; j < len; j++) sum += xr[j];                                      \
        float mean = sum / (float)len;                                                         \
        VT sq = PREFIX##_splat(0.0f);                                                          \
        for (size_t j = 0; j < full; j += W) {                                                 \
            VT v;                                                                              \
            memcpy(&v, xr + j, sizeof v);                                                      \
            v -= mean;                                                                         \
            sq += v * v;                                                                       \
        }                                                                                      \
        float ss = 0;                                                                          \
        for (int l = 0; l < W; l++) ss += sq[l];                                               \
        for (size_t j = full; j < len; j++) ss += (xr[j] - mean) * (xr[j] - mean);             \
        float inv = 1.0f / sqrtf(ss / (float)len + epsilon);                                   \
        if (mean_out) mean_out[r] = mean;                                                      \
        if (inv_out) inv_out[r] = inv;                                                         \
        if (scale_step && (!bias || bias_step)) {                                              \
            for (size_t j = 0; j < full; j += W) {                                             \
                VT v, sc, b = PREFIX##_splat(0.0f);                                            \
                memcpy(&v, xr + j, sizeof v);                                                  \
                memcpy(&sc, scale + j, sizeof sc);                                             \
                if (bias) memcpy(&b, bias + j, sizeof b);                                      \
                v = (v - mean) * inv * sc + b;                                                 \
                memcpy(yr + j, &v, sizeof v);                                                  \
            }                                                                                  \
        } else {                                                                               \
            full = 0;                                                                          \
        }                                                                                      \
        for (size_t j = full; j < len; j++)                                                    \
            yr[j] = (xr[j] - mean) * inv * scale[j * scale_step] + (bias ? bias[j * bias_step] : 0.0f); \
    }

static void layernorm4(size_t rows, size_t len, const float *x, const float *scale, size_t scale_step,
                       const float *bias, size_t bias_step, float epsilon, float *y, float *mean_out, float *inv_out) {
    LAYERNORM_ROWS(4, swk_vf4, swk_vm4)
}
#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) static void layernorm8(size_t rows, size_t len, const float *x, const float *scale,
        size_t scale_step, const float *bias, size_t bias_step, float epsilon, float *y, float *mean_out, float *inv_out) {
    LAYERNORM_ROWS(8, swk_vf8, swk_vm8)
}
__attribute__((target("avx512f,avx512vl,avx512dq,fma"))) static void layernorm16(size_t rows, size_t len, const float *x,
        const float *scale, size_t scale_step, const float *bias, size_t bias_step, float epsilon, float *y,
        float *mean_out, float *inv_out) {
    LAYERNORM_ROWS(16, swk_vf16, swk_vm16)
}
#endif

void swk_layernorm_rows(size_t rows, size_t len, const float *x, const float *scale, size_t scale_step,
                        const float *bias, size_t bias_step, float epsilon, float *y, float *mean_out, float *inv_out) {
    if (rows == 0 || len == 0) return;
    switch (swk_isa_selected()) {
#if defined(__x86_64__) || defined(__i386__)
        case SWK_ISA_AVX512: layernorm16(rows, len, x, scale, scale_step, bias, bias_step, epsilon, y, mean_out, inv_out); return;
        case SWK_ISA_AVX2: layernorm8(rows, len, x, scale, scale_step, bias, bias_step, epsilon, y, mean_out, inv_out); return;
#endif
        default: layernorm4(rows, len, x, scale, scale_step, bias, bias_step, epsilon, y, mean_out, inv_out); return;
    }
}

// MARK: Error measurement

/// The double-precision libm reference of function `fn`.
static double reference(int fn, double v) {
    switch (fn) {
        case SWK_FN_EXP: return exp(v);
        case SWK_FN_LOG: return log(v);
        case SWK_FN_TANH: return tanh(v);
        case SWK_FN_SIGMOID: return v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
        case SWK_FN_ERF: return erf(v);
        case SWK_FN_SOFTPLUS: return v > 0 ? v + log1p(exp(-v)) : log1p(exp(v));
        case SWK_FN_RSQRT: return 1.0 / sqrt(v);
        case SWK_FN_GELU: return v * 0.5 * (1.0 + erf(v * 0.70710678118654752440));
        case SWK_FN_GELU_TANH: return v * 0.5 * (1.0 + tanh(0.79788456080286535588 * (v + 0.044715 * v * v * v)));
        default: return v;
    }
}

/// Float bit patterns in an order where adjacent keys are adjacent floats (−0 and +0 apart).
static int64_t key_of(float f) {
    int32_t b;
    memcpy(&b, &f, 4);
    return b >= 0 ? (int64_t)b : -(int64_t)(b & 0x7fffffff) - 1;
}

static float float_of(int64_t k) {
    int32_t b = k >= 0 ? (int32_t)k : (int32_t)((-(k + 1)) | 0x80000000u);
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/// The spacing of floats at |r| (the smallest denormal spacing below FLT_MIN).
static double ulp_at(double r) {
    double a = fabs(r);
    if (a < 1.1754943508222875e-38) return 1.401298464324817e-45;
    int e;
    frexp(a, &e);
    return ldexp(1.0, e - 24);
}

void swk_vmath_measure(int isa, int fn, float lo, float hi, uint64_t stride, swk_vmath_error *out) {
    memset(out, 0, sizeof *out);
    if (stride == 0) stride = 1;
    enum { B = 4096 };
    float xs[B], ys[B];
    int64_t k = key_of(lo), end = key_of(hi);
    while (k <= end) {
        size_t n = 0;
        for (; n < B && k <= end; n++, k += (int64_t)stride) xs[n] = float_of(k);
        swk_vmath_isa(isa, fn, n, xs, ys);
        for (size_t i = 0; i < n; i++) {
            double want = reference(fn, (double)xs[i]);
            double got = ys[i];
            out->count++;
            if (want != want || got != got) {
                if ((want != want) != (got != got)) { out->special_mismatches++; out->worst_x = xs[i]; }
                continue;
            }
            float wantf = (float)want;
            if (isinf(wantf) || isinf(got)) {
                if (wantf != (float)got) { out->special_mismatches++; out->worst_x = xs[i]; }
                continue;
            }
            double err = fabs(got - want);
            double ulps = err / ulp_at(want);
            double rel = err / (fabs(want) > 1.1754943508222875e-38 ? fabs(want) : 1.1754943508222875e-38);
            double mixed = err / (fabs(want) > 1.0 ? fabs(want) : 1.0);
            if (ulps > out->max_ulp) { out->max_ulp = ulps; out->worst_x = xs[i]; }
            if (rel > out->max_rel) out->max_rel = rel;
            if (err > out->max_abs) out->max_abs = err;
            if (mixed > out->max_mixed) out->max_mixed = mixed;
        }
    }
}
