import Foundation

/// Zipf-distributed ranks for test traffic: rank `r` (0-based, 0 the most popular) out of `n` is
/// drawn with probability proportional to `1 / (r + 1)^s`.
///
/// By plain inversion of the cumulative distribution, tabulated once: obviously exact and good
/// enough for the few million draws a test makes. `swerve bench` has its own O(1)-memory sampler
/// (rejection-inversion, `ZipfGenerator` in Sources/swerve), whose exact stream the Python replay in
/// benchmarks/ ports; these tests only need the distribution.
struct ZipfSampler: Sendable {
    /// `cumulative[r]` = P(rank ≤ r); the last entry is 1.
    private let cumulative: [Double]

    /// A sampler over `n >= 1` items with exponent `s > 0`.
    init(n: Int, exponent s: Double) {
        precondition(n >= 1 && s > 0)
        var running = 0.0
        var weights = [Double](repeating: 0, count: n)
        for r in 0..<n {
            running += pow(Double(r + 1), -s)
            weights[r] = running
        }
        cumulative = weights.map { $0 / running }
    }

    /// The number of items.
    var n: Int { cumulative.count }

    /// The exact probability of rank `r`.
    func probability(ofRank r: Int) -> Double {
        r == 0 ? cumulative[0] : cumulative[r] - cumulative[r - 1]
    }

    /// The next rank, in `0..<n`: the first whose cumulative probability exceeds a uniform draw.
    func next(using rng: inout some RandomNumberGenerator) -> Int {
        let u = Double(rng.next() >> 11) * 0x1p-53
        var lo = 0, hi = cumulative.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] > u { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}
