import Foundation
import Testing
@testable import SwerveTraining

@Suite struct RegistryGatesTests {
    let config = GateConfig(
        overall: [.atLeast("accuracy", 0.8), .atMost("log_loss", 0.5)],
        everySlice: [.atLeast("accuracy", 0.7)],
        slices: ["country=FR": [.atLeast("auc", 0.75)]],
        maxRegression: ["accuracy": 0.01, "log_loss": 0.02])

    @Test func passes() {
        let d = config.evaluate(
            candidate: ["accuracy": 0.86, "log_loss": 0.4],
            perSlice: ["country=FR": ["accuracy": 0.8, "auc": 0.8], "country=DE": ["accuracy": 0.75]],
            serving: ["accuracy": 0.865, "log_loss": 0.41])
        #expect(d == .pass)
        #expect(d.passed)
        #expect(d.reasons.isEmpty)
    }

    @Test func rejectsWithEveryFailedRule() {
        let d = evaluateGates(config,
            candidate: ["accuracy": 0.79, "log_loss": 0.6],
            perSlice: ["country=FR": ["accuracy": 0.8, "auc": 0.7], "country=DE": ["accuracy": 0.6]])
        #expect(!d.passed)
        let f = d.failures
        #expect(f.count == 4)
        #expect(f.contains { $0.kind == .threshold && $0.metric == "accuracy" && $0.slice == nil && $0.actual == 0.79 })
        #expect(f.contains { $0.kind == .threshold && $0.metric == "log_loss" && $0.slice == nil })
        #expect(f.contains { $0.kind == .threshold && $0.metric == "accuracy" && $0.slice == "country=DE" })
        #expect(f.contains { $0.kind == .threshold && $0.metric == "auc" && $0.slice == "country=FR" })
        #expect(d.reasons.contains { $0.contains("slice country=DE") && $0.contains("accuracy >= 0.7") })
    }

    @Test func perSliceRuleAppliesOnlyToItsSlice() {
        let d = config.evaluate(
            candidate: ["accuracy": 0.9, "log_loss": 0.3],
            perSlice: ["country=FR": ["accuracy": 0.9, "auc": 0.9], "country=DE": ["accuracy": 0.9]])  // DE has no auc: fine
        #expect(d == .pass)
        // A slice with rules that was not evaluated fails rather than passing silently.
        let missing = config.evaluate(candidate: ["accuracy": 0.9, "log_loss": 0.3], perSlice: [:])
        #expect(missing.failures.map(\.kind) == [.missingSlice])
    }

    @Test func regressionMarginAgainstServing() {
        // Accuracy 0.85 vs serving 0.87 with margin 0.01: regression. log_loss 0.43 vs 0.40 with margin 0.02: regression.
        let d = config.evaluate(candidate: ["accuracy": 0.85, "log_loss": 0.43],
                                perSlice: ["country=FR": ["accuracy": 0.8, "auc": 0.8]],
                                serving: ["accuracy": 0.87, "log_loss": 0.40])
        #expect(d.failures.map(\.kind) == [.regression, .regression])
        #expect(d.failures.map(\.metric) == ["accuracy", "log_loss"])
        #expect(abs((d.failures[0].limit ?? 0) - 0.86) < 1e-9)
        // Within the margin passes, and a first version (no serving metrics) skips the check.
        #expect(config.evaluate(candidate: ["accuracy": 0.865, "log_loss": 0.415], perSlice: ["country=FR": ["accuracy": 0.8, "auc": 0.8]],
                                serving: ["accuracy": 0.87, "log_loss": 0.40]) == .pass)
        #expect(config.evaluate(candidate: ["accuracy": 0.85, "log_loss": 0.43], perSlice: ["country=FR": ["accuracy": 0.8, "auc": 0.8]]) == .pass)
        // Per-slice regression when the serving version's slices are known.
        let s = config.evaluate(candidate: ["accuracy": 0.9, "log_loss": 0.3], perSlice: ["country=FR": ["accuracy": 0.8, "auc": 0.8]],
                                serving: ["accuracy": 0.9, "log_loss": 0.3], servingPerSlice: ["country=FR": ["accuracy": 0.9]])
        #expect(s.failures.count == 1)
        #expect(s.failures.first?.slice == "country=FR")
        #expect(s.failures.first?.kind == .regression)
    }

    @Test func missingAndNonFiniteMetricsFail() {
        let g = GateConfig(overall: [.atMost("rmse", 1.0), .atLeast("r2", 0.5)])
        let d = g.evaluate(candidate: ["rmse": .nan])
        #expect(d.failures.map(\.kind) == [.threshold, .missingMetric])
        var lenient = g
        lenient.missingMetricFails = false
        #expect(lenient.evaluate(candidate: ["rmse": 0.5]) == .pass)
        let unknown = GateConfig(maxRegression: ["custom": 0.1]).evaluate(candidate: ["custom": 1], serving: ["custom": 1])
        #expect(unknown.failures.map(\.kind) == [.unknownDirection])
    }

    @Test func configDecodesFromJSON() throws {
        let json = #"{"overall": [{"metric": "auc", "comparison": "at_least", "threshold": 0.7}], "max_regression": {"auc": 0.005}}"#
        let g = try JSONDecoder().decode(GateConfig.self, from: Data(json.utf8))
        #expect(g.overall == [.atLeast("auc", 0.7)])
        #expect(g.maxRegression == ["auc": 0.005])
        #expect(g.missingMetricFails)
    }
}
