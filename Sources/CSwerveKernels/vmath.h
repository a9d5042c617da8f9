// Vector math, three variants of the same code (vmath_impl.h): AVX-512 (16 lanes), AVX2 + FMA
// (8 lanes) and portable C vectors (4 lanes: SSE2 on x86-64, NEON elsewhere, no FMA). Private
// to CSwerveKernels: math.c runs them over arrays, kernels.c applies them in the GEMM epilogue,
// so a fused activation computes exactly what the standalone one does.
#ifndef SWK_VMATH_H
#define SWK_VMATH_H

#include "CSwerveMath.h"

typedef float swk_vf4 __attribute__((vector_size(16)));
typedef int swk_vi4 __attribute__((vector_size(16)));
#define VF swk_vf4
#define VI swk_vi4
#define FN(name) swk_vm4_##name
#define MADD(a, b, c) ((a) * (b) + (c))
#define RECIP(d) (1.0f / (d))
#include "vmath_impl.h"
#undef VF
#undef VI
#undef FN
#undef MADD
#undef RECIP

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
typedef float swk_vf8 __attribute__((vector_size(32)));
typedef int swk_vi8 __attribute__((vector_size(32)));
typedef float swk_vf16 __attribute__((vector_size(64)));
typedef int swk_vi16 __attribute__((vector_size(64)));
#define MADD(a, b, c) __builtin_elementwise_fma((a), (b), (c))

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define VF swk_vf8
#define VI swk_vi8
#define FN(name) swk_vm8_##name
#define RECIP(d) (1.0f / (d))
#include "vmath_impl.h"
#undef VF
#undef VI
#undef FN
#undef RECIP
#pragma clang attribute pop

#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512dq,fma"))), apply_to = function)
#define VF swk_vf16
#define VI swk_vi16
#define FN(name) swk_vm16_##name
/// 1/d from the 14-bit estimate and one Newton step (relative error ~2^-28, under 0.1 ulp).
static inline swk_vf16 swk_recip16(swk_vf16 d) {
    swk_vf16 r = (swk_vf16)_mm512_rcp14_ps((__m512)d);
    return r * (2.0f - d * r);
}
#define RECIP(d) swk_recip16(d)
#include "vmath_impl.h"
#undef RECIP
#undef VF
#undef VI
#undef FN
#pragma clang attribute pop
#undef MADD
#endif

#endif
