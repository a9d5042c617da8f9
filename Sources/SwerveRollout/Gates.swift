import Foundation
/// The checks a canary must pass at every step of a rollout, compared with the stable version on
/// the same window.
public struct RolloutGates: Sendable, Equatable {
    /// Fail when the canary's error rate exceeds the stable version's by more than this (0.001 =
    /// 0.1 percentage point).
    public var maxErrorRate: Double = 0.001
    /// Fail when canary p99 / stable p99 exceeds this (p99 from the summed latency histograms).
    public var maxP99Ratio: Double = 1.5
    /// Fail when the prediction distributions differ by more than this: total variation distance
    /// for classes, Kolmogorov–Smirnov distance for scores.
    public var maxPredictionShift: Double = 0.1
    /// Fewest requests each side needs in a window before it is judged (0: any number, but at
    /// least one).
    public var minRequests: UInt64 = 50
    /// A shift above `maxPredictionShift` fails only when it is also statistically significant:
    /// its p-value (chi-square test of homogeneity for classes, two-sample Kolmogorov–Smirnov for
    /// scores) is below this. Two samples of a few hundred predictions from the same model differ
    /// by a TVD of ~0.05–0.1 by chance alone; this keeps small windows from rolling back a good
    /// version, while a real shift on enough traffic is far below it.
    public var shiftSignificance: Double = 0.001

    public init(maxErrorRate: Double = 0.001, maxP99Ratio: Double = 1.5, maxPredictionShift: Double = 0.1, minRequests: UInt64 = 50,
                shiftSignificance: Double = 0.001) {
        self.maxErrorRate = maxErrorRate
        self.maxP99Ratio = maxP99Ratio
        self.maxPredictionShift = maxPredictionShift
        self.minRequests = minRequests
        self.shiftSignificance = shiftSignificance
    }

    /// Why these gates cannot be used, or nil.
    public var problem: String? {
        if !(maxErrorRate >= 0 && maxErrorRate <= 1) { return "--max-error-rate must be within 0...1, not \(maxErrorRate)" }
        if !(maxP99Ratio >= 1 && maxP99Ratio.isFinite) { return "--max-p99-ratio must be a number >= 1, not \(maxP99Ratio)" }
        if !(maxPredictionShift >= 0 && maxPredictionShift <= 1) { return "--max-prediction-shift must be within 0...1, not \(maxPredictionShift)" }
        if !(shiftSignificance > 0 && shiftSignificance <= 1) { return "--shift-significance must be within (0, 1], not \(shiftSignificance)" }
        return nil
    }

    public var summary: String {
        "error rate <= stable + \(maxErrorRate), p99 <= \(maxP99Ratio) x stable, prediction shift <= \(maxPredictionShift) (or not significant at p < \(shiftSignificance)), at least \(minRequests) requests a side"
    }
}

/// Canary against stable over one window: the figures compared and the checks' verdict.
public struct WindowComparison: Sendable {
    public var canary: EvidenceCounts
    /// The stable side: this window's, or (at 100%, where stable takes no traffic) an earlier one.
    public var stable: EvidenceCounts
    /// Whether `stable` comes from an earlier window (or the stable version's life so far).
    public var stableBaseline: String?
    public var latencyBoundsMicros: [Double]
    public var scoreBounds: [Double]

    public init(canary: EvidenceCounts, stable: EvidenceCounts, stableBaseline: String? = nil, latencyBoundsMicros: [Double], scoreBounds: [Double]) {
        self.canary = canary
        self.stable = stable
        self.stableBaseline = stableBaseline
        self.latencyBoundsMicros = latencyBoundsMicros
        self.scoreBounds = scoreBounds
    }

    public var canaryP99: (value: Double, overflow: Bool)? {
        EvidenceStatistics.quantile(0.99, counts: canary.latencyCounts, bounds: latencyBoundsMicros)
    }
    public var stableP99: (value: Double, overflow: Bool)? {
        EvidenceStatistics.quantile(0.99, counts: stable.latencyCounts, bounds: latencyBoundsMicros)
    }

    /// canary p99 / stable p99 (nil when either has no latency figures).
    public var p99Ratio: Double? {
        guard let c = canaryP99, let s = stableP99 else { return nil }
        // Interpolation can put a quantile near 0 in the first bucket; never divide by less than
        // the first bound's tenth.
        let floor = (latencyBoundsMicros.first ?? 1) / 10
        return max(c.value, floor) / max(s.value, floor)
    }

    /// What kind of prediction distance `shift` is: "classes TVD", "scores KS" or nil.
    public var shiftKind: String? {
        switch (canary.predictionKind, stable.predictionKind) {
        case ("class", "class"): "classes TVD"
        case ("score", "score"): "scores KS"
        case ("", _), (_, ""): nil
        default: "kinds differ"
        }
    }

    /// The distance between the two prediction distributions (nil when a side predicted nothing).
    public var shift: Double? {
        switch (canary.predictionKind, stable.predictionKind) {
        case ("class", "class"):
            { let (c, s) = EvidenceStatistics.aligned(canary.classCounts, stable.classCounts); return EvidenceStatistics.totalVariation(c, s) }()
        case ("score", "score"): EvidenceStatistics.kolmogorovSmirnov(canary.scoreCounts, stable.scoreCounts)
        case ("", _), (_, ""): nil
        default: 1  // one side predicts classes, the other scores: as different as can be
        }
    }

    /// How likely a shift this large is by chance when canary and stable predict alike (nil when
    /// there is no shift to test; 0 when the kinds differ).
    public var shiftPValue: Double? {
        switch (canary.predictionKind, stable.predictionKind) {
        case ("class", "class"):
            { let (c, s) = EvidenceStatistics.aligned(canary.classCounts, stable.classCounts); return EvidenceStatistics.chiSquarePValue(c, s) }()
        case ("score", "score"):
            shift.map { EvidenceStatistics.kolmogorovSmirnovPValue($0, canary.scoreCounts.reduce(0, +), stable.scoreCounts.reduce(0, +)) }
        case ("", _), (_, ""): nil
        default: 0
        }
    }

    /// Which side has fewer requests than the gates ask for ("canary", "stable"), or nil.
    /// A side without a single request is never judged, even with `minRequests` 0: no evidence is
    /// not a pass.
    public func insufficient(_ gates: RolloutGates) -> String? {
        let least = max(1, gates.minRequests)
        if canary.requests < least { return "canary \(canary.requests) requests" }
        if stable.requests < least { return "stable \(stable.requests) requests" }
        return nil
    }

    /// The checks that failed, each with its figures; empty: the canary passes.
    public func failures(_ gates: RolloutGates) -> [String] {
        var out: [String] = []
        let ce = canary.errorRate ?? 0, se = stable.errorRate ?? 0
        if ce - se > gates.maxErrorRate {
            out.append("error rate \(Self.percent(ce)) vs stable \(Self.percent(se)) (more than \(Self.percent(gates.maxErrorRate)) above)")
        }
        if let r = p99Ratio, r > gates.maxP99Ratio {
            out.append("p99 \(Self.millis(canaryP99)) vs stable \(Self.millis(stableP99)): ratio \(Self.fixed(r, 2)) > \(gates.maxP99Ratio)")
        }
        if let s = shift, s > gates.maxPredictionShift {
            let p = shiftPValue ?? 0
            if p < gates.shiftSignificance {
                out.append("prediction shift \(Self.fixed(s, 3)) (\(shiftKind ?? "")) > \(gates.maxPredictionShift), p = \(Self.scientific(p))")
            }
        }
        return out
    }

    /// "canary v2: 812 req, 0.00% failed, p99 3.1 ms | stable v1: 790 req, 0.13% failed, p99 2.9 ms | p99 ratio 1.07, shift 0.021 (classes TVD)"
    public func line(canaryVersion: Int, stableVersion: Int) -> String {
        func side(_ name: String, _ v: Int, _ e: EvidenceCounts, _ p: (value: Double, overflow: Bool)?) -> String {
            "\(name) v\(v): \(e.requests) req, \(e.errorRate.map(Self.percent) ?? "-") failed, p99 \(Self.millis(p))"
        }
        var s = side("canary", canaryVersion, canary, canaryP99) + " | " + side("stable", stableVersion, stable, stableP99)
        if let b = stableBaseline { s += " (\(b))" }
        s += " | p99 ratio \(p99Ratio.map { Self.fixed($0, 2) } ?? "-")"
        s += ", shift \(shift.map { Self.fixed($0, 3) } ?? "-")\(shiftKind.map { " (\($0))" } ?? "")"
        if let p = shiftPValue { s += " p=\(Self.scientific(p))" }
        return s
    }

    static func percent(_ x: Double) -> String { fixed(x * 100, 2) + "%" }
    /// 0.034, 2.1e-07: a p-value readable at any size.
    static func scientific(_ x: Double) -> String {
        if x >= 0.001 || x == 0 { return fixed(x, 3) }
        let exponent = Int(floor(log10(x)))
        return fixed(x / pow(10, Double(exponent)), 1) + "e\(exponent)"
    }
    static func millis(_ p: (value: Double, overflow: Bool)?) -> String {
        guard let p else { return "-" }
        return (p.overflow ? ">" : "") + fixed(p.value / 1000, 2) + " ms"
    }
    static func fixed(_ x: Double, _ digits: Int) -> String {
        guard x.isFinite else { return "\(x)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let r = (x * scale).rounded() / scale
        var text = "\(r)"
        if let dot = text.firstIndex(of: ".") {
            let decimals = text.distance(from: dot, to: text.endIndex) - 1
            if decimals < digits { text += String(repeating: "0", count: digits - decimals) }
        } else if digits > 0 {
            text += "." + String(repeating: "0", count: digits)
        }
        return text
    }
}
