"""Fits the rational tanh of Sources/CSwerveKernels/vmath_impl.h: tanh(x) ~ x*P(x^2)/Q(x^2) on
[0, 9], P of 7 coefficients (odd powers 1..13), Q of 4 (even powers 0..6, Q(0) = 1), by
iteratively reweighted least squares on the relative error (Loeb + Lawson). Prints the
coefficients and the error of a float32 Horner evaluation; `swerve bench --math` measures the
kernel itself. Usage: .venv/bin/python scripts/fit_tanh.py"""
import numpy as np
np.set_printoptions(precision=17)
C = 9.0
NP, NQ = 7, 4   # numerator coefficients (odd powers x^1..x^13), denominator (x^0..x^6 even), q0 = 1
xs = np.concatenate([np.linspace(1e-4, C, 40000), C * (1 - np.cos(np.linspace(0, np.pi/2, 20000)))])
xs = np.unique(xs[xs > 0])
t = np.tanh(xs)
z = xs * xs
w = 1.0 / t
coef = None
for it in range(60):
    A = np.zeros((len(xs), NP + NQ - 1))
    for k in range(NP): A[:, k] = xs * z**k
    for k in range(1, NQ): A[:, NP + k - 1] = -t * z**k
    b = t.copy()
    scale = np.abs(A).max(axis=0)
    sol, *_ = np.linalg.lstsq((A / scale) * w[:, None], b * w, rcond=None)
    sol = sol / scale
    p = sol[:NP]; q = np.concatenate([[1.0], sol[NP:]])
    P = sum(p[k] * xs * z**k for k in range(NP)); Q = sum(q[k] * z**k for k in range(NQ))
    err = (P / Q - t) / t
    # Lawson: emphasise where the error is large; Loeb: divide by Q
    w = w * (np.abs(err) + 1e-30) ** 0.5
    w = w / w.max()
    w2 = 1.0 / (np.abs(Q) * t)
    if it % 10 == 0 or it == 59: print(it, np.abs(err).max())
    w = np.sqrt(w * w2 / (w2.max()))
print("p", repr(p)); print("q", repr(q))
# float32 evaluation (Horner, no FMA) relative error in ulps
x32 = np.float32(xs); z32 = x32 * x32
pp = np.float32(p[-1])
for k in range(NP - 2, -1, -1): pp = pp * z32 + np.float32(p[k])
qq = np.float32(q[-1])
for k in range(NQ - 2, -1, -1): qq = qq * z32 + np.float32(q[k])
y = (x32 * pp) / qq
ref = np.tanh(x32.astype(np.float64))
ulp = np.spacing(np.float32(ref)).astype(np.float64)
print("float32 max ulp", (np.abs(y.astype(np.float64) - ref) / ulp).max(), "rel", (np.abs(y - ref)/ref).max())
