/// One threshold on one metric: `accuracy ≥ 0.8`, `log_loss ≤ 0.5`.
public struct MetricRule: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Comparison: String, Codable, Sendable {
        case atLeast = "at_least"
        case atMost = "at_most"
    }

    public var metric: String
    public var comparison: Comparison
    public var threshold: Double

    public init(metric: String, _ comparison: Comparison, _ threshold: Double) {
        self.metric = metric
        self.comparison = comparison
        self.threshold = threshold
    }

    public static func atLeast(_ metric: String, _ threshold: Double) -> MetricRule { MetricRule(metric: metric, .atLeast, threshold) }
    public static func atMost(_ metric: String, _ threshold: Double) -> MetricRule { MetricRule(metric: metric, .atMost, threshold) }

    func holds(_ value: Double) -> Bool {
        guard value.isFinite else { return false }
        return comparison == .atLeast ? value >= threshold : value <= threshold
    }

    public var description: String { "\(metric) \(comparison == .atLeast ? ">=" : "<=") \(threshold)" }
}

/// The gates a candidate must pass before it is published as `validated`: absolute thresholds
/// overall and per slice, and no regression beyond a margin against the version serving now.
public struct GateConfig: Codable, Sendable, Equatable {
    /// Rules on the overall metrics.
    public var overall: [MetricRule]
    /// Rules every slice must meet.
    public var everySlice: [MetricRule]
    /// Rules for named slices, in addition to `everySlice`.
    public var slices: [String: [MetricRule]]
    /// Largest allowed worsening, per metric, of the candidate against the serving version
    /// (absolute units of the metric; 0 = must be at least as good). Checked overall, and per
    /// slice when the serving version's slice metrics are given.
    public var maxRegression: [String: Double]
    /// Whether higher is better, for metrics the regression check must orient. Known metrics
    /// (accuracy, auc, f1, precision, recall, r2 up; log_loss, rmse, mae, mse down) need no entry.
    public var higherIsBetter: [String: Bool]
    /// Whether a rule naming a metric the candidate did not report fails (true) or is skipped.
    public var missingMetricFails: Bool

    public init(
        overall: [MetricRule] = [], everySlice: [MetricRule] = [], slices: [String: [MetricRule]] = [:],
        maxRegression: [String: Double] = [:], higherIsBetter: [String: Bool] = [:], missingMetricFails: Bool = true
    ) {
        self.overall = overall
        self.everySlice = everySlice
        self.slices = slices
        self.maxRegression = maxRegression
        self.higherIsBetter = higherIsBetter
        self.missingMetricFails = missingMetricFails
    }

    static let knownHigherIsBetter: [String: Bool] = [
        "accuracy": true, "auc": true, "roc_auc": true, "f1": true, "precision": true, "recall": true, "r2": true,
        "log_loss": false, "logloss": false, "rmse": false, "mae": false, "mse": false, "brier": false,
    ]

    func isHigherBetter(_ metric: String) -> Bool? { higherIsBetter[metric] ?? Self.knownHigherIsBetter[metric] }

    enum CodingKeys: String, CodingKey {
        case overall, slices
        case everySlice = "every_slice"
        case maxRegression = "max_regression"
        case higherIsBetter = "higher_is_better"
        case missingMetricFails = "missing_metric_fails"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        overall = try c.decodeIfPresent([MetricRule].self, forKey: .overall) ?? []
        everySlice = try c.decodeIfPresent([MetricRule].self, forKey: .everySlice) ?? []
        slices = try c.decodeIfPresent([String: [MetricRule]].self, forKey: .slices) ?? [:]
        maxRegression = try c.decodeIfPresent([String: Double].self, forKey: .maxRegression) ?? [:]
        higherIsBetter = try c.decodeIfPresent([String: Bool].self, forKey: .higherIsBetter) ?? [:]
        missingMetricFails = try c.decodeIfPresent(Bool.self, forKey: .missingMetricFails) ?? true
    }

    /// Checks a candidate. `serving`/`servingPerSlice` are the metrics of the version serving now
    /// (from its lineage, `ModelRegistry.servingMetrics`), nil for a model's first version.
    public func evaluate(
        candidate: [String: Double], perSlice: [String: [String: Double]] = [:],
        serving: [String: Double]? = nil, servingPerSlice: [String: [String: Double]]? = nil
    ) -> GateDecision {
        var failures: [GateFailure] = []

        func check(_ rules: [MetricRule], _ metrics: [String: Double], slice: String?) {
            for rule in rules {
                guard let value = metrics[rule.metric] else {
                    if missingMetricFails { failures.append(GateFailure(kind: .missingMetric, metric: rule.metric, slice: slice, actual: nil, limit: nil, rule: rule.description)) }
                    continue
                }
                if !rule.holds(value) {
                    failures.append(GateFailure(kind: .threshold, metric: rule.metric, slice: slice, actual: value, limit: rule.threshold, rule: rule.description))
                }
            }
        }

        func regression(_ metrics: [String: Double], _ baseline: [String: Double], slice: String?) {
            for (metric, margin) in maxRegression.sorted(by: { $0.key < $1.key }) {
                guard let old = baseline[metric] else { continue }
                guard let up = isHigherBetter(metric) else {
                    failures.append(GateFailure(kind: .unknownDirection, metric: metric, slice: slice, actual: nil, limit: nil, rule: "max_regression \(metric) needs higher_is_better"))
                    continue
                }
                guard let new = metrics[metric] else {
                    if missingMetricFails { failures.append(GateFailure(kind: .missingMetric, metric: metric, slice: slice, actual: nil, limit: nil, rule: "max_regression \(metric)")) }
                    continue
                }
                let limit = up ? old - margin : old + margin
                let ok = new.isFinite && (up ? new >= limit : new <= limit)
                if !ok {
                    failures.append(GateFailure(kind: .regression, metric: metric, slice: slice, actual: new, limit: limit,
                                                rule: "\(metric) within \(margin) of serving \(old)"))
                }
            }
        }

        check(overall, candidate, slice: nil)
        for slice in perSlice.keys.sorted() {
            check(everySlice + (slices[slice] ?? []), perSlice[slice] ?? [:], slice: slice)
        }
        for slice in slices.keys.sorted() where perSlice[slice] == nil && missingMetricFails {
            failures.append(GateFailure(kind: .missingSlice, metric: nil, slice: slice, actual: nil, limit: nil, rule: "slice \(slice) has rules"))
        }
        if let serving { regression(candidate, serving, slice: nil) }
        if let servingPerSlice {
            for slice in perSlice.keys.sorted() {
                if let base = servingPerSlice[slice] { regression(perSlice[slice] ?? [:], base, slice: slice) }
            }
        }
        return failures.isEmpty ? .pass : .reject(failures)
    }
}

/// One failed gate rule.
public struct GateFailure: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Codable, Sendable {
        case threshold, regression
        case missingMetric = "missing_metric"
        case missingSlice = "missing_slice"
        case unknownDirection = "unknown_direction"
    }

    public var kind: Kind
    public var metric: String?
    /// nil for an overall rule.
    public var slice: String?
    public var actual: Double?
    /// The bound the value had to meet.
    public var limit: Double?
    public var rule: String

    public var description: String {
        let scope = slice.map { "slice \($0)" } ?? "overall"
        switch kind {
        case .threshold: return "\(scope): \(metric ?? "?") = \(actual.map { "\($0)" } ?? "?") fails \(rule)"
        case .regression: return "\(scope): \(metric ?? "?") = \(actual.map { "\($0)" } ?? "?") regresses past \(limit.map { "\($0)" } ?? "?") (\(rule))"
        case .missingMetric: return "\(scope): metric \(metric ?? "?") not reported (\(rule))"
        case .missingSlice: return "\(scope): not evaluated, but it has rules"
        case .unknownDirection: return "\(scope): \(rule)"
        }
    }
}

/// The outcome of the gates.
public enum GateDecision: Sendable, Equatable {
    case pass
    case reject([GateFailure])

    public var passed: Bool { if case .pass = self { true } else { false } }

    /// Each failed rule, for a person (empty on pass).
    public var reasons: [String] {
        if case .reject(let f) = self { return f.map(\.description) }
        return []
    }

    public var failures: [GateFailure] {
        if case .reject(let f) = self { return f }
        return []
    }
}

/// Checks a candidate's metrics against `config`; see `GateConfig.evaluate`.
public func evaluateGates(
    _ config: GateConfig, candidate: [String: Double], perSlice: [String: [String: Double]] = [:],
    serving: [String: Double]? = nil, servingPerSlice: [String: [String: Double]]? = nil
) -> GateDecision {
    config.evaluate(candidate: candidate, perSlice: perSlice, serving: serving, servingPerSlice: servingPerSlice)
}
