import CSwerveKernels
import Foundation
import Testing
@testable import SwerveInference

/// The vector math kernels (CSwerveMath.h) against double-precision libm, on every variant this
/// machine runs. The strided sweeps here sample every 4,099th float of each range; `swerve bench
/// --math` walks every float (README "Vector math").
@Suite("Vector math kernels")
struct MathKernelTests {
    struct Function: CustomStringConvertible, Sendable {
        let name: String
        let id: Int32
        let range: ClosedRange<Float>
        /// Largest error allowed, in units in the last place of the correctly rounded result.
        let maxULP: Double
        /// When set, the bound is on |error| / max(|y|, 1) instead (functions that cancel, such as
        /// GELU's 1 + erf for negative x, where a relative bound means nothing).
        let maxMixed: Double?
        let reference: @Sendable (Double) -> Double
        var description: String { name }
    }

    static let functions: [Function] = [
        Function(name: "exp", id: SWK_FN_EXP, range: -104...89, maxULP: 1.5, maxMixed: nil) { Foundation.exp($0) },
        Function(name: "log", id: SWK_FN_LOG, range: 0...Float.greatestFiniteMagnitude, maxULP: 1.5, maxMixed: nil) { Foundation.log($0) },
        Function(name: "tanh", id: SWK_FN_TANH, range: -10...10, maxULP: 7, maxMixed: nil) { Foundation.tanh($0) },
        Function(name: "sigmoid", id: SWK_FN_SIGMOID, range: -104...89, maxULP: 2.5, maxMixed: nil) { x in
            x >= 0 ? 1 / (1 + Foundation.exp(-x)) : Foundation.exp(x) / (1 + Foundation.exp(x))
        },
        Function(name: "erf", id: SWK_FN_ERF, range: -5...5, maxULP: 8, maxMixed: nil) { Foundation.erf($0) },
        Function(name: "softplus", id: SWK_FN_SOFTPLUS, range: -104...89, maxULP: 3, maxMixed: nil) { x in
            x > 0 ? x + Foundation.log1p(Foundation.exp(-x)) : Foundation.log1p(Foundation.exp(x))
        },
        Function(name: "rsqrt", id: SWK_FN_RSQRT, range: 0...Float.greatestFiniteMagnitude, maxULP: 1.5, maxMixed: nil) { 1 / $0.squareRoot() },
        Function(name: "gelu", id: SWK_FN_GELU, range: -10...10, maxULP: .infinity, maxMixed: 1e-6) { x in
            x * 0.5 * (1 + Foundation.erf(x * 0.70710678118654752440))
        },
        Function(name: "gelu_tanh", id: SWK_FN_GELU_TANH, range: -10...10, maxULP: .infinity, maxMixed: 5e-7) { x in
            x * 0.5 * (1 + Foundation.tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x)))
        },
    ]

    static let variants = PackedGemmISA.allCases.filter(\.isSupported)

    static func apply(_ f: Function, _ isa: PackedGemmISA, _ x: [Float]) -> [Float] {
        var y = [Float](repeating: .nan, count: x.count)
        y.withUnsafeMutableBufferPointer { swk_vmath_isa(isa.rawValue, f.id, x.count, x, $0.baseAddress!) }
        return y
    }

    @Test("error against libm over a strided sweep of each range, every variant", arguments: functions)
    func accuracy(_ f: Function) {
        for isa in Self.variants {
            var e = swk_vmath_error()
            swk_vmath_measure(isa.rawValue, f.id, f.range.lowerBound, f.range.upperBound, 4099, &e)
            #expect(e.count > 100_000, "\(f) \(isa): only \(e.count) floats tried")
            #expect(e.special_mismatches == 0, "\(f) \(isa): NaN or inf where libm differs, e.g. at \(e.worst_x)")
            if let mixed = f.maxMixed {
                #expect(e.max_mixed <= mixed, "\(f) \(isa): error \(e.max_mixed) of max(|y|, 1) > \(mixed)")
            } else {
                #expect(e.max_ulp <= f.maxULP, "\(f) \(isa): \(e.max_ulp) ulp > \(f.maxULP) at x = \(e.worst_x)")
            }
        }
    }

    @Test("GELU's negative tail, where 1 + erf cancels, densely: within 1e-6 of max(|y|, 1)")
    func geluNegativeTail() {
        // Every 64th float of [-8, -2]: 1 + erf(x/√2) lost erf's absolute error times |x|/2 here
        // (1.25e-6 at x = -5.6 before the tail went through erfc).
        for isa in Self.variants {
            var e = swk_vmath_error()
            swk_vmath_measure(isa.rawValue, SWK_FN_GELU, -8, -2, 64, &e)
            #expect(e.count > 190_000 && e.special_mismatches == 0, "\(isa): \(e.count) floats, \(e.special_mismatches) mismatches")
            #expect(e.max_mixed <= 1e-6, "\(isa): error \(e.max_mixed) of max(|y|, 1)")
        }
    }

    /// Inputs where libm's answers are special: NaN, infinities, zeros of both signs, denormals,
    /// the float range's ends and the overflow/underflow edges of exp.
    static let specials: [Float] = [
        .nan, .infinity, -.infinity, 0, -0.0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
        .leastNormalMagnitude, -.leastNormalMagnitude, Float(bitPattern: 0x007f_ffff), -Float(bitPattern: 0x007f_ffff),
        .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 88.72, 88.73, 89, 100, -87.3, -88, -100, -103.9, -104, -110,
        1, -1, 0.625, -0.625, 4, -4, 6e-5, -6e-5, 1e-30, -1e-30,
    ]

    @Test("NaN, infinities, zeros and denormals give what libm gives", arguments: functions)
    func specialValues(_ f: Function) {
        for isa in Self.variants {
            let got = Self.apply(f, isa, Self.specials)
            for (x, y) in zip(Self.specials, got) {
                let want = f.reference(Double(x))
                let wantF = Float(want)
                if want.isNaN {
                    #expect(y.isNaN, "\(f) \(isa) (\(x)) = \(y), libm NaN")
                } else if wantF.isInfinite || wantF == 0 || y.isInfinite || y == 0 {
                    // Overflow, underflow to zero and exact zeros: the same value, the same sign.
                    #expect(y.bitPattern == wantF.bitPattern || (wantF == 0 && y == 0 && f.maxMixed != nil),
                            "\(f) \(isa) (\(x)) = \(y), libm \(wantF)")
                } else {
                    let ulp = Double(wantF.ulp)
                    let bound = f.maxMixed.map { $0 * Swift.max(1, Swift.abs(want)) } ?? f.maxULP * ulp
                    #expect(Swift.abs(Double(y) - want) <= bound, "\(f) \(isa) (\(x)) = \(y), libm \(want)")
                }
            }
        }
    }

    @Test("an element's result depends only on its value: any length, any offset, in place")
    func positionIndependence() {
        var rng = SplitMix64(seed: 99)
        let values = rng.floats(45, in: -20...20) + Self.specials
        for f in Self.functions {
            for isa in Self.variants {
                let alone = values.map { Self.apply(f, isa, [$0])[0].bitPattern }
                for length in 1...40 {
                    for offset in stride(from: 0, to: values.count - length, by: 7) {
                        let slice = Array(values[offset..<(offset + length)])
                        let got = Self.apply(f, isa, slice).map(\.bitPattern)
                        #expect(got == Array(alone[offset..<(offset + length)]), "\(f) \(isa) length \(length) offset \(offset)")
                    }
                }
                var inPlace = values
                inPlace.withUnsafeMutableBufferPointer { swk_vmath_isa(isa.rawValue, f.id, $0.count, $0.baseAddress!, $0.baseAddress!) }
                #expect(inPlace.map(\.bitPattern) == alone, "\(f) \(isa) in place")
            }
        }
    }

    @Test("softmax rows: libm's softmax to 5e-7 relative, a row the same alone or in a batch, NaN and -inf rows")
    func softmaxRows() {
        var rng = SplitMix64(seed: 5)
        for isa in Self.variants {
            for len in [1, 2, 3, 7, 8, 10, 16, 17, 33, 100] {
                let rows = 5
                var x = rng.floats(rows * len, in: -30...30)
                if len > 1 { x[len / 2] = -.infinity }  // one -inf entry in row 0: its probability is 0
                var y = [Float](repeating: 0, count: rows * len)
                y.withUnsafeMutableBufferPointer { swk_softmax_rows_isa(isa.rawValue, rows, len, x, $0.baseAddress!) }
                for r in 0..<rows {
                    let row = x[(r * len)..<((r + 1) * len)].map(Double.init)
                    let m = row.max()!
                    let e = row.map { Foundation.exp($0 - m) }
                    let s = e.reduce(0, +)
                    for j in 0..<len {
                        #expect(Swift.abs(Double(y[r * len + j]) - e[j] / s) <= 5e-7 * Swift.max(e[j] / s, 1e-3),
                                "\(isa) len \(len) [\(r), \(j)]")
                    }
                    var alone = [Float](repeating: 0, count: len)
                    let xr = Array(x[(r * len)..<((r + 1) * len)])
                    alone.withUnsafeMutableBufferPointer { swk_softmax_rows_isa(isa.rawValue, 1, len, xr, $0.baseAddress!) }
                    #expect(alone.map(\.bitPattern) == y[(r * len)..<((r + 1) * len)].map(\.bitPattern), "\(isa) len \(len) row \(r) alone")
                }
            }
            var special: [Float] = [1, .nan, 2, -.infinity, -.infinity, -.infinity]
            special.withUnsafeMutableBufferPointer { swk_softmax_rows_isa(isa.rawValue, 2, 3, $0.baseAddress!, $0.baseAddress!) }
            #expect(special.allSatisfy { $0.isNaN }, "\(isa): a NaN row and a row of -inf are NaN, as the plain softmax gives")
        }
    }
}
