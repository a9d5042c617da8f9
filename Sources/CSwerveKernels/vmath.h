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
#include "vmath_impl.h"
#undef VF
#undef VI
#undef FN
#undef MADD

#if defined(__x86_64__) || defined(__i386__)
typedef float swk_vf8 __attribute__((vector_size(32)));
typedef int swk_vi8 __attribute__((vector_size(32)));
typedef float swk_vf16 __attribute__((vector_size(64)));
typedef int swk_vi16 __attribute__((vector_size(64)));
#define MADD(a, b, c) __builtin_elementwise_fma((a), (b), (c))

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define VF swk_vf8
#define VI swk_vi8
#define FN(name) swk_vm8_##name
#include "vmath_impl.h"
#undef VF
#undef VI
#undef FN
#pragma clang attribute pop

#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512dq,fma"))), apply_to = function)
#define VF swk_vf16
#define VI swk_vi16
#define FN(name) swk_vm16_##name
#include "vmath_impl.h"
#undef VF
#undef VI
#undef FN
#pragma clang attribute pop
#undef MADD
#endif

#endif
