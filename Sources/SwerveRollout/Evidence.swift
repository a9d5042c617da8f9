import Foundation
import SwerveProto

/// One version's rollout evidence over a window, summed over replicas: what the canary and the
/// stable version are compared on.
///
/// Replicas export counters since the version loaded (`VersionEvidence`); a window is the
/// difference of two reads. A replica whose counters went down restarted or reloaded the version
/// in between: its end counters (everything since the reload, all inside the window) are used.
public struct EvidenceCounts: Sendable, Equatable {
    public var requests: UInt64 = 0
    public var failures: UInt64 = 0
    /// Per bucket of ``EvidenceWindow/latencyBoundsMicros`` plus one overflow bucket.
    public var latencyCounts: [UInt64] = []
    /// "class", "score" or "" (no prediction in the window).
    public var predictionKind = ""
    /// Rows predicted per class.
    public var classCounts: [String: UInt64] = [:]
    /// Per bucket of ``EvidenceWindow/scoreBounds`` plus one overflow bucket.
    public var scoreCounts: [UInt64] = []
    public var scoreCount: UInt64 = 0
    public var scoreSum: Double = 0
    public var scoreSumSquares: Double = 0

    public init() {}

    /// The counters of one replica's evidence record.
    public init(_ e: VersionEvidence) {
        requests = e.requests
        failures = e.failures
        latencyCounts = e.latencyCounts
        predictionKind = e.predictionKind
        for (i, c) in e.classes.enumerated() where i < e.classCounts.count {
            classCounts[c, default: 0] += e.classCounts[i]
        }
        scoreCounts = e.scoreCounts
        scoreCount = e.scoreCount
        scoreSum = e.scoreSum
        scoreSumSquares = e.scoreSumSquares
    }

    /// `end - start` for one replica; `end` alone when any counter went down (a reload).
    public static func window(start: EvidenceCounts?, end: EvidenceCounts) -> EvidenceCounts {
        guard let start else { return end }
        func down(_ a: [UInt64], _ b: [UInt64]) -> Bool { a.count != b.count || zip(a, b).contains { $1 < $0 } }
        let reset = end.requests < start.requests || end.failures < start.failures || end.scoreCount < start.scoreCount
            || (!start.latencyCounts.isEmpty && down(start.latencyCounts, end.latencyCounts))
            || (!start.scoreCounts.isEmpty && down(start.scoreCounts, end.scoreCounts))
            || start.classCounts.contains { end.classCounts[$0.key, default: 0] < $0.value }
        if reset { return end }
        var w = EvidenceCounts()
        w.requests = end.requests - start.requests
        w.failures = end.failures - start.failures
        w.latencyCounts = start.latencyCounts.isEmpty ? end.latencyCounts : zip(end.latencyCounts, start.latencyCounts).map { $0 - $1 }
        w.predictionKind = end.predictionKind
        for (c, n) in end.classCounts {
            let d = n - start.classCounts[c, default: 0]
            if d > 0 { w.classCounts[c] = d }
        }
        w.scoreCounts = start.scoreCounts.isEmpty ? end.scoreCounts : zip(end.scoreCounts, start.scoreCounts).map { $0 - $1 }
        w.scoreCount = end.scoreCount - start.scoreCount
        w.scoreSum = end.scoreSum - start.scoreSum
        w.scoreSumSquares = end.scoreSumSquares - start.scoreSumSquares
        return w
    }

    /// Adds another replica's window (bucket arrays of equal length; a shorter one is padded).
    public mutating func add(_ o: EvidenceCounts) {
        requests += o.requests
        failures += o.failures
        latencyCounts = Self.sum(latencyCounts, o.latencyCounts)
        if predictionKind.isEmpty { predictionKind = o.predictionKind }
        else if !o.predictionKind.isEmpty && o.predictionKind != predictionKind { predictionKind = "mixed" }
        for (c, n) in o.classCounts { classCounts[c, default: 0] += n }
        scoreCounts = Self.sum(scoreCounts, o.scoreCounts)
        scoreCount += o.scoreCount
        scoreSum += o.scoreSum
        scoreSumSquares += o.scoreSumSquares
    }

    private static func sum(_ a: [UInt64], _ b: [UInt64]) -> [UInt64] {
        (0..<max(a.count, b.count)).map { (a.indices.contains($0) ? a[$0] : 0) + (b.indices.contains($0) ? b[$0] : 0) }
    }

    /// failures / requests; nil without requests.
    public var errorRate: Double? { requests == 0 ? nil : Double(failures) / Double(requests) }

    /// Mean of the scores (score predictions only).
    public var scoreMean: Double? { scoreCount == 0 ? nil : scoreSum / Double(scoreCount) }
}

/// Statistics on bucketed evidence: quantiles of latency histograms, and the distance between
/// two prediction distributions.
public enum EvidenceStatistics {
    /// The `q` quantile (0...1) of a histogram with upper bounds `bounds` (ascending) and
    /// `bounds.count + 1` counts (the last one: above every bound), interpolated linearly inside
    /// the bucket that holds it (the first bucket starts at 0). A quantile in the overflow bucket
    /// is the last bound (a lower estimate; `overflow` says so). nil for an empty histogram.
    public static func quantile(_ q: Double, counts: [UInt64], bounds: [Double]) -> (value: Double, overflow: Bool)? {
        let total = counts.reduce(0, +)
        guard total > 0, !bounds.isEmpty else { return nil }
        // The rank of the quantile: the smallest r with r >= q * total (1-based).
        let rank = max(1, (q * Double(total)).rounded(.up))
        var seen = 0.0
        for (i, c) in counts.enumerated() where c > 0 {
            let before = seen
            seen += Double(c)
            if seen >= rank {
                if i >= bounds.count { return (bounds[bounds.count - 1], true) }
                let lower = i == 0 ? 0 : bounds[i - 1]
                let upper = bounds[i]
                return (lower + (upper - lower) * (rank - before) / Double(c), false)
            }
        }
        return (bounds[bounds.count - 1], true)
    }

    /// Total variation distance between two class-frequency distributions: half the sum of the
    /// absolute differences of the shares, 0 (equal) ... 1 (disjoint). nil when either is empty.
    public static func totalVariation(_ a: [String: UInt64], _ b: [String: UInt64]) -> Double? {
        let ta = Double(a.values.reduce(0, +)), tb = Double(b.values.reduce(0, +))
        guard ta > 0, tb > 0 else { return nil }
        let keys = Set(a.keys).union(b.keys)
        return keys.reduce(0.0) { $0 + abs(Double(a[$1, default: 0]) / ta - Double(b[$1, default: 0]) / tb) } / 2
    }

    /// Kolmogorov–Smirnov distance between two binned distributions over the same bins: the
    /// largest absolute difference of their cumulative shares, 0 ... 1. nil when either is empty.
    public static func kolmogorovSmirnov(_ a: [UInt64], _ b: [UInt64]) -> Double? {
        let ta = Double(a.reduce(0, +)), tb = Double(b.reduce(0, +))
        guard ta > 0, tb > 0 else { return nil }
        var ca = 0.0, cb = 0.0, d = 0.0
        for i in 0..<max(a.count, b.count) {
            ca += Double(a.indices.contains(i) ? a[i] : 0)
            cb += Double(b.indices.contains(i) ? b[i] : 0)
            d = max(d, abs(ca / ta - cb / tb))
        }
        return d
    }

    /// The p-value of a chi-square test of homogeneity of two class-count tables (how likely
    /// counts this different are when both sides draw from one distribution). nil when either
    /// side is empty or there is only one class.
    ///
    /// Classes whose expected count is below 5 on either side are pooled into one cell (the
    /// chi-square approximation needs it); a pool still below 5 joins the smallest other class.
    /// With fewer than two cells left there is nothing to test: 1.
    public static func chiSquarePValue(_ a: [String: UInt64], _ b: [String: UInt64]) -> Double? {
        let ta = Double(a.values.reduce(0, +)), tb = Double(b.values.reduce(0, +))
        guard ta > 0, tb > 0 else { return nil }
        let total = ta + tb
        // Cells as (canary count, stable count), small ones pooled.
        var cells: [(Double, Double)] = []
        var pool = (0.0, 0.0)
        for k in Set(a.keys).union(b.keys) {
            let x = Double(a[k, default: 0]), y = Double(b[k, default: 0])
            guard x + y > 0 else { continue }
            if (x + y) * min(ta, tb) / total < 5 { pool.0 += x; pool.1 += y } else { cells.append((x, y)) }
        }
        if pool.0 + pool.1 > 0 {
            if (pool.0 + pool.1) * min(ta, tb) / total >= 5 || cells.isEmpty {
                cells.append(pool)
            } else if let i = cells.indices.min(by: { cells[$0].0 + cells[$0].1 < cells[$1].0 + cells[$1].1 }) {
                cells[i].0 += pool.0
                cells[i].1 += pool.1
            }
        }
        guard cells.count > 1 else { return 1 }
        var x2 = 0.0
        for (x, y) in cells {
            let row = x + y
            for (observed, side) in [(x, ta), (y, tb)] {
                let expected = row * side / total
                x2 += (observed - expected) * (observed - expected) / expected
            }
        }
        return regularizedUpperGamma(Double(cells.count - 1) / 2, x2 / 2)
    }

    /// The two class tables over the same classes: when either kept only its first classes and
    /// counted the rest as `otherClass` (a server keeps at most 64 per version), every class not
    /// named on both sides is counted as `otherClass` on both, so no class is compared with a
    /// side that could not name it.
    public static func aligned(_ a: [String: UInt64], _ b: [String: UInt64], otherClass: String = "<other>") -> ([String: UInt64], [String: UInt64]) {
        guard a[otherClass] != nil || b[otherClass] != nil else { return (a, b) }
        let common = Set(a.keys).intersection(b.keys).subtracting([otherClass])
        func fold(_ t: [String: UInt64]) -> [String: UInt64] {
            var out: [String: UInt64] = [:]
            for (k, v) in t { out[common.contains(k) ? k : otherClass, default: 0] += v }
            return out
        }
        return (fold(a), fold(b))
    }

    /// The asymptotic p-value of a two-sample Kolmogorov–Smirnov distance `d` between samples of
    /// `n` and `m` values (Stephens' correction). Over binned values (ties) it errs on the side
    /// of a larger p-value.
    public static func kolmogorovSmirnovPValue(_ d: Double, _ n: UInt64, _ m: UInt64) -> Double {
        guard n > 0, m > 0 else { return 1 }
        let ne = Double(n) * Double(m) / Double(n + m)
        let lambda = (ne.squareRoot() + 0.12 + 0.11 / ne.squareRoot()) * d
        if lambda < 0.2 { return 1 }
        var sum = 0.0
        for j in 1...100 {
            let term = 2 * (j % 2 == 1 ? 1.0 : -1.0) * exp(-2 * Double(j * j) * lambda * lambda)
            sum += term
            if abs(term) < 1e-12 { break }
        }
        return min(1, max(0, sum))
    }

    /// Q(a, x) = Γ(a, x) / Γ(a), the regularized upper incomplete gamma function (a series below
    /// a + 1, a continued fraction above, as in Numerical Recipes' gammq).
    static func regularizedUpperGamma(_ a: Double, _ x: Double) -> Double {
        guard x > 0 else { return 1 }
        let lnGammaA: Double = Foundation.lgamma(a)
        if x < a + 1 {
            var term = 1 / a, sum = term, ap = a
            for _ in 0..<1000 {
                ap += 1
                term *= x / ap
                sum += term
                if abs(term) < abs(sum) * 1e-15 { break }
            }
            return max(0, 1 - sum * exp(-x + a * log(x) - lnGammaA))
        }
        let tiny = 1e-300
        var b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d
        for i in 1...1000 {
            let an = -Double(i) * (Double(i) - a)
            b += 2
            d = an * d + b
            if abs(d) < tiny { d = tiny }
            c = b + an / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-15 { break }
        }
        return min(1, exp(-x + a * log(x) - lnGammaA) * h)
    }
}
