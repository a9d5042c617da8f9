// The vector math kernels (CSwerveKernels/CSwerveMath.h) as seen from outside the core: which
// functions and instruction-set variants exist, and how far each is from libm (for
// `swerve bench --math` and the README's accuracy table).
import CSwerveKernels

public enum VectorMath {
    /// A vectorized function and the input range its accuracy is stated over.
    public struct Function: Sendable {
        public let name: String
        let id: Int32
        public let range: ClosedRange<Float>
        /// Whether its error is stated relative to max(|y|, 1) (functions that cancel) rather than in ulp.
        public let mixedError: Bool
    }

    public static let functions: [Function] = [
        Function(name: "exp", id: SWK_FN_EXP, range: -104...89, mixedError: false),
        Function(name: "log", id: SWK_FN_LOG, range: 0...Float.greatestFiniteMagnitude, mixedError: false),
        Function(name: "tanh", id: SWK_FN_TANH, range: -10...10, mixedError: false),
        Function(name: "sigmoid", id: SWK_FN_SIGMOID, range: -104...89, mixedError: false),
        Function(name: "erf", id: SWK_FN_ERF, range: -5...5, mixedError: false),
        Function(name: "softplus", id: SWK_FN_SOFTPLUS, range: -104...89, mixedError: false),
        Function(name: "rsqrt", id: SWK_FN_RSQRT, range: 0...Float.greatestFiniteMagnitude, mixedError: false),
        Function(name: "gelu", id: SWK_FN_GELU, range: -10...10, mixedError: true),
        Function(name: "gelu_tanh", id: SWK_FN_GELU_TANH, range: -10...10, mixedError: true),
    ]

    /// The instruction-set variants this CPU runs, best last, and the one in use.
    public static var variants: [String] { PackedGemmISA.allCases.filter(\.isSupported).map { "\($0)" } }
    public static var selected: String { "\(PackedGemmISA.selected)" }

    /// How far `function` on `variant` is from double-precision libm.
    public struct Error: Sendable {
        public var count: UInt64
        public var specialMismatches: UInt64
        public var maxULP: Double
        public var maxRelative: Double
        public var maxAbsolute: Double
        public var maxMixed: Double
        public var worstInput: Float
    }

    /// Every `stride`-th float of `range` (in bit-pattern order) through `function` on `variant`.
    public static func measure(_ function: Function, variant: String, range: ClosedRange<Float>? = nil, stride: UInt64 = 1) -> Error {
        let isa = PackedGemmISA.allCases.first { "\($0)" == variant } ?? .scalar
        let r = range ?? function.range
        var e = swk_vmath_error()
        swk_vmath_measure(isa.rawValue, function.id, r.lowerBound, r.upperBound, stride, &e)
        return Error(count: e.count, specialMismatches: e.special_mismatches, maxULP: e.max_ulp, maxRelative: e.max_rel,
                     maxAbsolute: e.max_abs, maxMixed: e.max_mixed, worstInput: e.worst_x)
    }

    /// `function` on `variant` over `x` into `y` (same count); for timing.
    public static func apply(_ function: Function, variant: String, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        let isa = PackedGemmISA.allCases.first { "\($0)" == variant } ?? .scalar
        swk_vmath_isa(isa.rawValue, function.id, count, x, y)
    }
}
