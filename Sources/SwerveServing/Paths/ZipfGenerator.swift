import Foundation

/// A small, fast, seedable random number generator (xoshiro256**, seeded through SplitMix64), so
/// that tests and `swerve bench` replay exactly the same traffic from the same seed.
/// Not for anything security-related.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// A generator whose whole output is determined by `seed`.
    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// A uniform double in [0, 1) with 53 random bits.
    public mutating func nextUnitDouble() -> Double { Double(next() >> 11) * 0x1p-53 }
}

/// Draws ranks from a Zipf distribution: rank `r` (0-based, 0 most popular) out of `n` items is
/// drawn with probability proportional to `1 / (r + 1)^s`.
///
/// Uses rejection-inversion sampling (Hörmann and Derflinger, "Rejection-inversion to generate
/// variates from monotone discrete distributions", 1996): O(1) memory and expected O(1) time for
/// any `n` and any `s > 0`, with no precomputed table, so a benchmark can draw from a domain of
/// 10^9 items as cheaply as from 10.
public struct ZipfGenerator: Sendable {
    /// The number of items; ranks are `0..<n`.
    public let n: Int
    /// The exponent `s`.
    public let exponent: Double
    private let hIntegralX1: Double
    private let hIntegralN: Double
    private let squeeze: Double

    /// A sampler over `n >= 1` items with exponent `s > 0`.
    public init(n: Int, exponent s: Double) {
        precondition(n >= 1, "ZipfGenerator needs at least one item")
        precondition(s > 0, "ZipfGenerator needs a positive exponent")
        self.n = n
        self.exponent = s
        hIntegralX1 = Self.hIntegral(1.5, s) - 1
        hIntegralN = Self.hIntegral(Double(n) + 0.5, s)
        squeeze = 2 - Self.hIntegralInverse(Self.hIntegral(2.5, s) - Self.h(2, s), s)
    }

    /// The next rank, in `0..<n`.
    public func next(using rng: inout some RandomNumberGenerator) -> Int {
        while true {
            let unit = Double(rng.next() >> 11) * 0x1p-53
            // u is uniform in (hIntegralX1, hIntegralN].
            let u = hIntegralN + unit * (hIntegralX1 - hIntegralN)
            let x = Self.hIntegralInverse(u, exponent)
            var k = Int((x + 0.5).rounded(.down))
            if k < 1 { k = 1 } else if k > n { k = n }
            if Double(k) - x <= squeeze || u >= Self.hIntegral(Double(k) + 0.5, exponent) - Self.h(Double(k), exponent) {
                return k - 1
            }
        }
    }

    /// The exact probability of rank `r`, for tests and reports (O(n) per call).
    public func probability(ofRank r: Int) -> Double {
        precondition(r >= 0 && r < n)
        var norm = 0.0
        for i in 1...n { norm += pow(Double(i), -exponent) }
        return pow(Double(r + 1), -exponent) / norm
    }

    // h(x) = x^-s, and H, the integral of h, in a form that stays exact near s = 1.
    private static func h(_ x: Double, _ s: Double) -> Double { exp(-s * log(x)) }

    private static func hIntegral(_ x: Double, _ s: Double) -> Double {
        let logX = log(x)
        return helper2((1 - s) * logX) * logX
    }

    private static func hIntegralInverse(_ x: Double, _ s: Double) -> Double {
        var t = x * (1 - s)
        if t < -1 { t = -1 }  // rounding can push t just below -1
        return exp(helper1(t) * x)
    }

    /// log(1 + x) / x, accurate near 0.
    private static func helper1(_ x: Double) -> Double {
        abs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }

    /// (exp(x) - 1) / x, accurate near 0.
    private static func helper2(_ x: Double) -> Double {
        abs(x) > 1e-8 ? expm1(x) / x : 1 + x * 0.5 * (1 + x * (1.0 / 3.0) * (1 + 0.25 * x))
    }
}
