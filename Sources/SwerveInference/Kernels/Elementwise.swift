// Elementwise arithmetic with numpy-style broadcasting, and activation functions.
import CSwerveKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Element types the arithmetic operators accept. Integer operations wrap instead of trapping,
/// and integer division by zero yields 0 (ONNX leaves it undefined; a server must not crash).
protocol ArithmeticScalar {
    static func add(_ a: Self, _ b: Self) -> Self
    static func sub(_ a: Self, _ b: Self) -> Self
    static func mul(_ a: Self, _ b: Self) -> Self
    static func div(_ a: Self, _ b: Self) -> Self
}

extension Float: ArithmeticScalar {
    @inline(__always) static func add(_ a: Float, _ b: Float) -> Float { a + b }
    @inline(__always) static func sub(_ a: Float, _ b: Float) -> Float { a - b }
    @inline(__always) static func mul(_ a: Float, _ b: Float) -> Float { a * b }
    @inline(__always) static func div(_ a: Float, _ b: Float) -> Float { a / b }
}

extension Double: ArithmeticScalar {
    @inline(__always) static func add(_ a: Double, _ b: Double) -> Double { a + b }
    @inline(__always) static func sub(_ a: Double, _ b: Double) -> Double { a - b }
    @inline(__always) static func mul(_ a: Double, _ b: Double) -> Double { a * b }
    @inline(__always) static func div(_ a: Double, _ b: Double) -> Double { a / b }
}

extension FixedWidthInteger {
    @inline(__always) static func add(_ a: Self, _ b: Self) -> Self { a &+ b }
    @inline(__always) static func sub(_ a: Self, _ b: Self) -> Self { a &- b }
    @inline(__always) static func mul(_ a: Self, _ b: Self) -> Self { a &* b }
    @inline(__always) static func div(_ a: Self, _ b: Self) -> Self {
        if b == 0 { return 0 }
        return a.dividedReportingOverflow(by: b).partialValue
    }
}

extension Int64: ArithmeticScalar {}
extension Int32: ArithmeticScalar {}

enum BinaryOp: Sendable {
    case add, sub, mul, div
}

/// out = a ⊙ b with numpy broadcasting; shapes come from the frame.
struct BinaryKernel<T: ArithmeticScalar>: Kernel {
    let op: BinaryOp
    let a: Int, b: Int, out: Int

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    @_specialize(where T == Int64)
    @_specialize(where T == Int32)
    func execute(_ frame: Frame) {
        switch op {
        case .add: broadcastBinary(frame, a, b, out, T.add)
        case .sub: broadcastBinary(frame, a, b, out, T.sub)
        case .mul: broadcastBinary(frame, a, b, out, T.mul)
        case .div: broadcastBinary(frame, a, b, out, T.div)
        }
    }
}

/// Whether `small`'s dims, ignoring leading 1s, equal the trailing dims of `big`.
private func isTrailingSuffix(_ frame: Frame, _ small: Int, of big: Int) -> Bool {
    let rs = frame.rank(small), rb = frame.rank(big)
    var i = 0
    while i < rs && frame.dim(small, i) == 1 { i += 1 }
    let remaining = rs - i
    if remaining > rb { return false }
    for k in 0..<remaining where frame.dim(small, i + k) != frame.dim(big, rb - remaining + k) { return false }
    return true
}

@inline(__always)
func broadcastBinary<T>(_ frame: Frame, _ a: Int, _ b: Int, _ out: Int, _ f: (T, T) -> T) {
    let pa = frame.pointer(a, T.self), pb = frame.pointer(b, T.self), po = frame.pointer(out, T.self)
    let n = frame.count(out), na = frame.count(a), nb = frame.count(b)
    if n == 0 { return }
    if na == n && nb == n {
        for i in 0..<n { po[i] = f(pa[i], pb[i]) }
    } else if nb == 1 && na == n {
        let y = pb[0]
        for i in 0..<n { po[i] = f(pa[i], y) }
    } else if na == 1 && nb == n {
        let x = pa[0]
        for i in 0..<n { po[i] = f(x, pb[i]) }
    } else if na == n && isTrailingSuffix(frame, b, of: out) {
        // The common bias case: b repeats along the leading dims.
        var i = 0
        while i < n {
            for j in 0..<nb { po[i + j] = f(pa[i + j], pb[j]) }
            i += nb
        }
    } else if nb == n && isTrailingSuffix(frame, a, of: out) {
        var i = 0
        while i < n {
            for j in 0..<na { po[i + j] = f(pa[j], pb[i + j]) }
            i += na
        }
    } else {
        broadcastGeneral(frame, a, b, out, f)
    }
}

/// Any broadcast: walks the output index with per-input strides (0 along broadcast dims).
private func broadcastGeneral<T>(_ frame: Frame, _ a: Int, _ b: Int, _ out: Int, _ f: (T, T) -> T) {
    let pa = frame.pointer(a, T.self), pb = frame.pointer(b, T.self), po = frame.pointer(out, T.self)
    let rank = frame.rank(out)
    withUnsafeTemporaryAllocation(of: Int.self, capacity: 4 * rank + 4) { scratch in
        let dims = scratch.baseAddress!, sa = dims + rank, sb = sa + rank, index = sb + rank
        for (v, strides) in [(a, sa), (b, sb)] {
            let r = frame.rank(v)
            var step = 1
            for i in stride(from: rank - 1, through: 0, by: -1) {
                let vi = i - (rank - r)
                if vi >= 0 && frame.dim(v, vi) != 1 {
                    strides[i] = step
                    step *= frame.dim(v, vi)
                } else {
                    strides[i] = 0
                }
            }
        }
        for i in 0..<rank {
            dims[i] = frame.dim(out, i)
            index[i] = 0
        }
        let inner = rank > 0 ? dims[rank - 1] : 1
        let ia = rank > 0 ? sa[rank - 1] : 0, ib = rank > 0 ? sb[rank - 1] : 0
        let total = frame.count(out)
        var o = 0, offA = 0, offB = 0
        while o < total {
            var xa = offA, xb = offB
            for j in 0..<inner {
                po[o + j] = f(pa[xa], pb[xb])
                xa += ia
                xb += ib
            }
            o += inner
            // Advance the outer index (all dims but the last), odometer style.
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                offA += sa[d]
                offB += sb[d]
                if index[d] < dims[d] { break }
                offA -= sa[d] * dims[d]
                offB -= sb[d] * dims[d]
                index[d] = 0
                d -= 1
            }
        }
    }
}

/// Elementwise functions of one floating-point input (FP32 and FP64). FP32 runs on the vector
/// math kernels of CSwerveMath.h; FP64 on libm.
enum UnaryOp: Sendable, Equatable {
    case relu, leakyRelu(alpha: Float), sigmoid, tanh
    case exp, log, erf, softplus, sqrt
    /// x · ½ · (1 + erf(x / √2)), ONNX Gelu with approximate = "none".
    case gelu
    /// x · ½ · (1 + tanh(√(2/π) · (x + 0.044715 x³))), ONNX Gelu with approximate = "tanh".
    case geluTanh
}

protocol FloatScalar: BinaryFloatingPoint, ArithmeticScalar {
    static func exponential(_ x: Self) -> Self
    static func hyperbolicTangent(_ x: Self) -> Self
    static func squareRoot(_ x: Self) -> Self
    /// y[i] = op(x[i]) for i < n (x == y allowed).
    static func apply(_ op: UnaryOp, _ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>, _ n: Int)
}

extension Float: FloatScalar {
    @inline(__always) static func exponential(_ x: Float) -> Float { expf(x) }
    @inline(__always) static func hyperbolicTangent(_ x: Float) -> Float { tanhf(x) }
    @inline(__always) static func squareRoot(_ x: Float) -> Float { x.squareRoot() }

    static func apply(_ op: UnaryOp, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        switch op {
        case .relu: for i in 0..<n { y[i] = x[i] > 0 ? x[i] : (x[i].isNaN ? x[i] : 0) }
        case .leakyRelu(let a): for i in 0..<n { y[i] = x[i] >= 0 ? x[i] : a * x[i] }
        case .sigmoid: swk_vsigmoid(n, x, y)
        case .tanh: swk_vtanh(n, x, y)
        case .exp: swk_vexp(n, x, y)
        case .log: swk_vlog(n, x, y)
        case .erf: swk_verf(n, x, y)
        case .softplus: swk_vsoftplus(n, x, y)
        case .sqrt: for i in 0..<n { y[i] = x[i].squareRoot() }
        case .gelu: swk_vgelu(n, x, y)
        case .geluTanh: swk_vgelu_tanh(n, x, y)
        }
    }
}

extension Double: FloatScalar {
    @inline(__always) static func exponential(_ x: Double) -> Double { Glibc.exp(x) }
    @inline(__always) static func hyperbolicTangent(_ x: Double) -> Double { Glibc.tanh(x) }
    @inline(__always) static func squareRoot(_ x: Double) -> Double { x.squareRoot() }

    static func apply(_ op: UnaryOp, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ n: Int) {
        switch op {
        case .relu: for i in 0..<n { y[i] = x[i] > 0 ? x[i] : (x[i].isNaN ? x[i] : 0) }
        case .leakyRelu(let a):
            let alpha = Double(a)
            for i in 0..<n { y[i] = x[i] >= 0 ? x[i] : alpha * x[i] }
        case .sigmoid: for i in 0..<n { y[i] = logistic(x[i]) }
        case .tanh: for i in 0..<n { y[i] = Glibc.tanh(x[i]) }
        case .exp: for i in 0..<n { y[i] = Glibc.exp(x[i]) }
        case .log: for i in 0..<n { y[i] = Glibc.log(x[i]) }
        case .erf: for i in 0..<n { y[i] = Glibc.erf(x[i]) }
        case .softplus:
            // log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x.
            for i in 0..<n { y[i] = Swift.max(x[i], 0) + Glibc.log1p(Glibc.exp(-Swift.abs(x[i]))) }
        case .sqrt: for i in 0..<n { y[i] = x[i].squareRoot() }
        case .gelu: for i in 0..<n { y[i] = x[i] * 0.5 * (1 + Glibc.erf(x[i] * 0.70710678118654752440)) }
        case .geluTanh:
            for i in 0..<n {
                let v = x[i]
                y[i] = v * 0.5 * (1 + Glibc.tanh(0.79788456080286535588 * (v + 0.044715 * v * v * v)))
            }
        }
    }
}

/// A numerically safe logistic function: never evaluates exp of a large positive number.
@inline(__always)
func logistic<T: FloatScalar>(_ x: T) -> T {
    if x >= 0 {
        return 1 / (1 + T.exponential(-x))
    }
    let e = T.exponential(x)
    return e / (1 + e)
}

struct UnaryKernel<T: FloatScalar>: Kernel {
    let op: UnaryOp
    let input: Int, out: Int

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func execute(_ frame: Frame) {
        T.apply(op, frame.pointer(input, T.self), frame.pointer(out, T.self), frame.count(out))
    }
}
