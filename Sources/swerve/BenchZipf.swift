import Foundation

/// Draws ranks from a Zipf distribution: rank `r` (0-based, 0 most popular) out of `n` items is
/// drawn with probability proportional to `1 / (r + 1)^s`.
///
/// Uses rejection-inversion sampling (Hörmann and Derflinger, "Rejection-inversion to generate
/// variates from monotone discrete distributions", 1996): O(1) memory and expected O(1) time for
/// any `n` and any `s > 0`, with no precomputed table, so a benchmark can draw from a domain of
/// 10^9 items as cheaply as from 10. `benchmarks/paths_replay.py` ports it exactly (with
/// `SplitMix64` as the source of bits) to replay the stream `swerve bench --inputs zipf:S` sent.
struct ZipfGenerator: Sendable {
    /// The number of items; ranks are `0..<n`.
    let n: Int
    /// The exponent `s`.
    let exponent: Double
    private let hIntegralX1: Double
    private let hIntegralN: Double
    private let squeeze: Double

    /// A sampler over `n >= 1` items with exponent `s > 0`.
    init(n: Int, exponent s: Double) {
        precondition(n >= 1, "ZipfGenerator needs at least one item")
        precondition(s > 0, "ZipfGenerator needs a positive exponent")
        self.n = n
        self.exponent = s
        hIntegralX1 = Self.hIntegral(1.5, s) - 1
        hIntegralN = Self.hIntegral(Double(n) + 0.5, s)
        squeeze = 2 - Self.hIntegralInverse(Self.hIntegral(2.5, s) - Self.h(2, s), s)
    }

    /// The next rank, in `0..<n`.
    func next(using rng: inout some RandomNumberGenerator) -> Int {
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

    /// The exact probability of rank `r` (O(n) per call), to check the sampler against.
    func probability(ofRank r: Int) -> Double {
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
