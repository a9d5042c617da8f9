// One width of the vector math functions. Included by vmath.h once per variant with:
//   VF / VI   float and int32 vector types of W lanes (clang vector extensions)
//   FN(name)  the variant's function name
//   MADD(a, b, c)  a·b + c (fused on FMA targets)
//   RECIP(d)  1/d (a refined hardware estimate where that is as exact as a division)
// Every function maps each lane on its own (no lane sees another), so an element's result
// depends only on its value. Special values are handled explicitly at the end of each function.
//
// Algorithms (our own code; the approach is the textbook one of Cephes, SLEEF and MLAS):
//   exp:  n = round(x·log2 e), r = x − n·ln2 (two-part Cody–Waite constant), e^r by a degree-7
//         polynomial, then ·2^n as two exact power-of-two factors, so overflow gives inf and the
//         denormal range rounds once, as libm does.
//   log:  x = m·2^e with m in [√½, √2), log(m) by an odd-order polynomial in m − 1; denormals are
//         scaled by 2^23 first.
//   tanh: x·P(x²)/Q(x²) on [−9, 9] (degrees 13 / 6, fitted here), ±1 beyond.
//   sigmoid: e = e^{−|x|}: 1/(1 + e) for x ≥ 0, e/(1 + e) below (no cancellation, denormals kept).
//   erf:  |x| < 2^−14: x + x·(2/√π − 1); else a rational x·P(x²)/Q(x²) on [−4, 4] (±1 beyond).
//   softplus: max(x, 0) + log1p(e^{−|x|}), log1p(e) = log(u)·e/(u − 1) with u = 1 + e (exact
//         for tiny e, where u − 1 = 0 gives e itself).
//   rsqrt: 1/√x (two correctly rounded operations).
//   gelu: x·½·(1 + erf(x/√2)); below −3.5 (cancellation) x·½·erfc(−x/√2) (see FN(gelu)).

#pragma clang fp contract(off)

static inline VF FN(splat)(float v) { return (VF){} + v; }
static inline VF FN(sel)(VI m, VF a, VF b) { return (VF)((m & (VI)a) | (~m & (VI)b)); }
static inline VF FN(vmax)(VF a, VF b) { return FN(sel)(a > b, a, b); }
static inline VF FN(vmin)(VF a, VF b) { return FN(sel)(a < b, a, b); }
static inline VF FN(vabs)(VF a) { return (VF)((VI)a & 0x7fffffff); }
static inline VF FN(copysign)(VF mag, VF sgn) {
    return (VF)(((VI)mag & 0x7fffffff) | ((VI)sgn & (int)0x80000000));
}

/// e^x = 2^n · e^r: n = round(x · log2 e) (to nearest even with the 1.5·2^23 trick, |x · log2 e|
/// < 2^22) in `*n`, and e^r for r = x − n·ln2 (two-part constant) by a degree-7 polynomial.
static inline VF FN(exp_reduced)(VF x, VF *n_out) {
    VF n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    VF r = MADD(n, FN(splat)(-0.693359375f), x);
    r = MADD(n, FN(splat)(2.12194440e-4f), r);
    VF p = FN(splat)(1.9875691500e-4f);
    p = MADD(p, r, FN(splat)(1.3981999507e-3f));
    p = MADD(p, r, FN(splat)(8.3334519073e-3f));
    p = MADD(p, r, FN(splat)(4.1665795894e-2f));
    p = MADD(p, r, FN(splat)(1.6666665459e-1f));
    p = MADD(p, r, FN(splat)(5.0000001201e-1f));
    *n_out = n;
    return MADD(p, r * r, r) + 1.0f;
}

static inline VF FN(exp)(VF x) {
    VF xc = FN(vmin)(FN(vmax)(x, FN(splat)(-104.0f)), FN(splat)(89.0f));
    VF n;
    VF p = FN(exp_reduced)(xc, &n);
    VI ni = __builtin_convertvector(n, VI);
    VI n1 = ni >> 1, n2 = ni - n1;  // each in [−75, 64]: 2^n1 and 2^n2 are normal
    VF y = p * (VF)((n1 + 127) << 23) * (VF)((n2 + 127) << 23);
    return FN(sel)(x != x, x, y);
}

static inline VF FN(log)(VF x) {
    VI den = (x < 1.17549435e-38f) & (x > 0.0f);
    VF xs = FN(sel)(den, x * 8388608.0f, x);
    VI b = (VI)xs;
    VI e = ((b >> 23) & 0xff) - 126 - (den & 23);
    VF m = (VF)((b & 0x007fffff) | 0x3f000000);  // [0.5, 1)
    VI small = m < 0.707106781186547524f;
    e = e + small;  // −1 where small
    m = FN(sel)(small, m + m, m) - 1.0f;
    VF z = m * m;
    VF y = FN(splat)(7.0376836292e-2f);
    y = MADD(y, m, FN(splat)(-1.1514610310e-1f));
    y = MADD(y, m, FN(splat)(1.1676998740e-1f));
    y = MADD(y, m, FN(splat)(-1.2420140846e-1f));
    y = MADD(y, m, FN(splat)(1.4249322787e-1f));
    y = MADD(y, m, FN(splat)(-1.6668057665e-1f));
    y = MADD(y, m, FN(splat)(2.0000714765e-1f));
    y = MADD(y, m, FN(splat)(-2.4999993993e-1f));
    y = MADD(y, m, FN(splat)(3.3333331174e-1f));
    y = y * m * z;
    VF fe = __builtin_convertvector(e, VF);
    y = MADD(fe, FN(splat)(-2.12194440e-4f), y);
    y = MADD(z, FN(splat)(-0.5f), y);
    VF r = MADD(fe, FN(splat)(0.693359375f), m + y);
    r = FN(sel)(x == 0.0f, FN(splat)(-__builtin_inff()), r);
    r = FN(sel)(x < 0.0f, FN(splat)(__builtin_nanf("")), r);
    r = FN(sel)(x == __builtin_inff(), x, r);
    return FN(sel)(x != x, x, r);
}

/// tanh as x·P(x²)/Q(x²) on [−9, 9] (our fit: numerator odd of degree 13, denominator even of
/// degree 6, relative approximation error 1.6e-8), ±1 beyond (tanh rounds to 1 from 9.011 on):
/// no exp and one division, about half the operations of 1 − 2/(e^{2|x|} + 1).
static inline VF FN(tanh)(VF x) {
    VF xc = FN(vmin)(FN(vmax)(x, FN(splat)(-9.0f)), FN(splat)(9.0f));
    VF z = xc * xc;
    VF p = FN(splat)(-8.7823368977e-14f);
    p = MADD(p, z, FN(splat)(5.3928109987e-11f));
    p = MADD(p, z, FN(splat)(-2.0464905469e-08f));
    p = MADD(p, z, FN(splat)(1.1213658526e-05f));
    p = MADD(p, z, FN(splat)(3.1096502490e-03f));
    p = MADD(p, z, FN(splat)(1.3089115414e-01f));
    p = MADD(p, z, FN(splat)(9.9999999605e-01f));
    VF q = FN(splat)(2.5544242487e-04f);
    q = MADD(q, z, FN(splat)(2.4517876914e-02f));
    q = MADD(q, z, FN(splat)(4.6422443953e-01f));
    q = MADD(q, z, FN(splat)(1.0000000000e+00f));
    VF y = xc * p * RECIP(q);
    y = FN(sel)(FN(vabs)(x) >= 9.0f, FN(copysign)(FN(splat)(1.0f), x), y);
    return FN(sel)(x != x, x, y);
}

static inline VF FN(sigmoid)(VF x) {
    VF e = FN(exp)(-FN(vabs)(x));
    VF d = 1.0f + e;
    return FN(sel)(x >= 0.0f, 1.0f / d, e / d);
}

static inline VF FN(erf)(VF x) {
    VF xc = FN(vmin)(FN(vmax)(x, FN(splat)(-4.0f)), FN(splat)(4.0f));
    VF x2 = xc * xc;
    VF p = FN(splat)(-2.72614225801306e-10f);
    p = MADD(p, x2, FN(splat)(2.77068142495902e-08f));
    p = MADD(p, x2, FN(splat)(-2.10102402082508e-06f));
    p = MADD(p, x2, FN(splat)(-5.69250639462346e-05f));
    p = MADD(p, x2, FN(splat)(-7.34990630326855e-04f));
    p = MADD(p, x2, FN(splat)(-2.95459980854025e-03f));
    p = MADD(p, x2, FN(splat)(-1.60960333262415e-02f));
    VF q = FN(splat)(-1.45660718464996e-05f);
    q = MADD(q, x2, FN(splat)(-2.13374055278905e-04f));
    q = MADD(q, x2, FN(splat)(-1.68282697438203e-03f));
    q = MADD(q, x2, FN(splat)(-7.37332916720468e-03f));
    q = MADD(q, x2, FN(splat)(-1.42647390514189e-02f));
    VF r = xc * p / q;
    // Tiny |x| (denormals included): x·2/√π, written so it does not underflow early.
    VF tiny = MADD(x, FN(splat)(0.128379167095512574f), x);
    r = FN(sel)(FN(vabs)(x) < 6.103515625e-05f, tiny, r);
    return FN(sel)(x != x, x, r);
}

static inline VF FN(softplus)(VF x) {
    VF e = FN(exp)(-FN(vabs)(x));
    VF u = 1.0f + e;
    VF um1 = u - 1.0f;
    VF lp = FN(sel)(um1 == 0.0f, e, FN(log)(u) * (e / um1));
    return FN(vmax)(x, FN(splat)(0.0f)) + lp;
}

static inline VF FN(rsqrt)(VF x) { return 1.0f / __builtin_elementwise_sqrt(x); }

/// x·½·erfc(−x/√2) for x < 0 (`gelu` takes it there only): no cancellation. erfc(z) =
/// t·e^{−z² + P(t)}, t = 1/(1 + z/2), P of degree 9 (the Chebyshev fit of Numerical Recipes'
/// erfcc, relative error below 1.2e-7 for every z ≥ 0).
static inline VF FN(gelu_negative)(VF x) {
    VF z = -x * 0.707106781186547524f;
    VF t = 1.0f / MADD(z, FN(splat)(0.5f), FN(splat)(1.0f));
    VF p = FN(splat)(0.17087277f);
    p = MADD(p, t, FN(splat)(-0.82215223f));
    p = MADD(p, t, FN(splat)(1.48851587f));
    p = MADD(p, t, FN(splat)(-1.13520398f));
    p = MADD(p, t, FN(splat)(0.27886807f));
    p = MADD(p, t, FN(splat)(-0.18628806f));
    p = MADD(p, t, FN(splat)(0.09678418f));
    p = MADD(p, t, FN(splat)(0.37409196f));
    p = MADD(p, t, FN(splat)(1.00002368f));
    p = MADD(p, t, FN(splat)(-1.26551223f));
    return x * (0.5f * t * FN(exp)(MADD(-z, z, p)));
}

/// x·½·(1 + erf(x/√2)) where that is accurate; below x = −3.5, where 1 + erf cancels and erf's
/// absolute error (up to 4.4e-7) times |x|/2 would pass 1e-6, through erfc (`gelu_negative`), which
/// costs an exp more and is taken only when some lane needs it.
static inline VF FN(gelu)(VF x) {
    VF y = x * 0.5f * (1.0f + FN(erf)(x * 0.707106781186547524f));
    VI far = x < -3.5f;
    if (__builtin_reduce_or(far)) y = FN(sel)(far, FN(gelu_negative)(x), y);
    return y;
}

/// x·½·(1 + tanh(u)), u = √(2/π)·(x + 0.044715x³), as x·sigmoid(2u): the same value without
/// 1 + tanh's cancellation for negative x (where tanh's error times |x|/2 would approach 1e-6).
static inline VF FN(gelu_tanh)(VF x) {
    VF inner2 = 1.595769121605730712f * MADD(x * x * x, FN(splat)(0.044715f), x);
    return x * FN(sigmoid)(inner2);
}

/// Function `fn` (SWK_FN_*) of one vector.
static inline VF FN(apply)(int fn, VF v) {
    switch (fn) {
        case SWK_FN_EXP: return FN(exp)(v);
        case SWK_FN_LOG: return FN(log)(v);
        case SWK_FN_TANH: return FN(tanh)(v);
        case SWK_FN_SIGMOID: return FN(sigmoid)(v);
        case SWK_FN_ERF: return FN(erf)(v);
        case SWK_FN_SOFTPLUS: return FN(softplus)(v);
        case SWK_FN_RSQRT: return FN(rsqrt)(v);
        case SWK_FN_GELU: return FN(gelu)(v);
        case SWK_FN_GELU_TANH: return FN(gelu_tanh)(v);
        default: return v;
    }
}

#pragma clang fp contract(on)
