import SwerveProto
import Testing
@testable import SwerveRollout

@Suite struct EvidenceStatisticsTests {
    let bounds: [Double] = [1000, 2000, 4000, 8000]

    @Test func quantileInterpolatesInsideItsBucket() throws {
        // 100 requests: 50 in (0,1ms], 40 in (1,2ms], 10 in (2,4ms].
        let counts: [UInt64] = [50, 40, 10, 0, 0]
        let p50 = try #require(EvidenceStatistics.quantile(0.5, counts: counts, bounds: bounds))
        #expect(p50.value == 1000 && !p50.overflow)
        let p99 = try #require(EvidenceStatistics.quantile(0.99, counts: counts, bounds: bounds))
        // Rank 99 is the 9th of 10 in (2000, 4000]: 2000 + 2000 * 9 / 10.
        #expect(abs(p99.value - 3800) < 1e-9)
        let p90 = try #require(EvidenceStatistics.quantile(0.9, counts: counts, bounds: bounds))
        #expect(abs(p90.value - 2000) < 1e-9)
    }

    @Test func quantileInTheOverflowBucketIsTheLastBoundAndSaysSo() throws {
        let q = try #require(EvidenceStatistics.quantile(0.99, counts: [1, 0, 0, 0, 99], bounds: bounds))
        #expect(q.value == 8000 && q.overflow)
        #expect(EvidenceStatistics.quantile(0.99, counts: [0, 0, 0, 0, 0], bounds: bounds) == nil)
        #expect(EvidenceStatistics.quantile(0.99, counts: [], bounds: bounds) == nil)
    }

    @Test func totalVariationDistance() {
        #expect(EvidenceStatistics.totalVariation(["a": 5, "b": 5], ["a": 50, "b": 50]) == 0)
        #expect(EvidenceStatistics.totalVariation(["a": 10], ["b": 3]) == 1)
        // (0.7,0.3) vs (0.4,0.6): (0.3 + 0.3) / 2.
        let d = EvidenceStatistics.totalVariation(["a": 7, "b": 3], ["a": 4, "b": 6])!
        #expect(abs(d - 0.3) < 1e-12)
        #expect(EvidenceStatistics.totalVariation([:], ["a": 1]) == nil)
    }

    @Test func kolmogorovSmirnovOnBins() {
        #expect(EvidenceStatistics.kolmogorovSmirnov([1, 1, 1, 1], [5, 5, 5, 5]) == 0)
        // CDFs (0.5, 1) vs (0, 0.5, 1): the largest gap is 0.5.
        #expect(EvidenceStatistics.kolmogorovSmirnov([5, 5, 0], [0, 5, 5]) == 0.5)
        #expect(EvidenceStatistics.kolmogorovSmirnov([10, 0], [0, 10]) == 1)
        #expect(EvidenceStatistics.kolmogorovSmirnov([0, 0], [1, 1]) == nil)
    }

    func evidence(_ requests: UInt64, failures: UInt64 = 0, latency: [UInt64], classes: [(String, UInt64)]) -> EvidenceCounts {
        var e = VersionEvidence()
        e.requests = requests
        e.failures = failures
        e.latencyCounts = latency
        e.predictionKind = "class"
        e.classes = classes.map(\.0)
        e.classCounts = classes.map(\.1)
        return EvidenceCounts(e)
    }

    @Test func windowIsEndMinusStart() {
        let start = evidence(100, failures: 1, latency: [60, 40, 0, 0, 0], classes: [("a", 70), ("b", 30)])
        let end = evidence(250, failures: 4, latency: [100, 140, 10, 0, 0], classes: [("a", 100), ("b", 120), ("c", 30)])
        let w = EvidenceCounts.window(start: start, end: end)
        #expect(w.requests == 150 && w.failures == 3)
        #expect(w.latencyCounts == [40, 100, 10, 0, 0])
        #expect(w.classCounts == ["a": 30, "b": 90, "c": 30])
        #expect(EvidenceCounts.window(start: nil, end: end) == end)
    }

    @Test func aReloadedVersionsWindowIsItsCountersSinceTheReload() {
        let start = evidence(1000, latency: [600, 400, 0, 0, 0], classes: [("a", 1000)])
        let end = evidence(40, latency: [20, 20, 0, 0, 0], classes: [("a", 40)])
        #expect(EvidenceCounts.window(start: start, end: end) == end)
        // A class count that went down is a reset too.
        let odd = evidence(1100, latency: [700, 400, 0, 0, 0], classes: [("a", 10), ("b", 1090)])
        #expect(EvidenceCounts.window(start: start, end: odd) == odd)
    }

    @Test func sumOverReplicas() {
        var total = EvidenceCounts()
        total.add(evidence(10, failures: 1, latency: [5, 5, 0], classes: [("a", 10)]))
        total.add(evidence(20, latency: [10, 5, 5], classes: [("a", 5), ("b", 15)]))
        #expect(total.requests == 30 && total.failures == 1)
        #expect(total.latencyCounts == [15, 10, 5])
        #expect(total.classCounts == ["a": 15, "b": 15])
        #expect(total.predictionKind == "class")
    }

    @Test func gatesJudgeEachCheck() {
        let gates = RolloutGates(maxErrorRate: 0.01, maxP99Ratio: 1.5, maxPredictionShift: 0.1, minRequests: 50)
        let stable = evidence(1000, failures: 10, latency: [900, 100, 0, 0, 0], classes: [("a", 500), ("b", 500)])
        func compare(_ c: EvidenceCounts) -> WindowComparison {
            WindowComparison(canary: c, stable: stable, latencyBoundsMicros: bounds, scoreBounds: [])
        }
        #expect(compare(stable).failures(gates).isEmpty)
        // 3% vs 1%: 2 points above, more than 1.
        let errors = compare(evidence(100, failures: 3, latency: [90, 10, 0, 0, 0], classes: [("a", 50), ("b", 50)])).failures(gates)
        #expect(errors.count == 1 && errors[0].hasPrefix("error rate 3.00% vs stable 1.00%"))
        // 1.9% vs 1%: within 1 point: passes.
        #expect(compare(evidence(1000, failures: 19, latency: [900, 100, 0, 0, 0], classes: [("a", 500), ("b", 500)])).failures(gates).isEmpty)
        let slow = compare(evidence(100, latency: [0, 10, 90, 0, 0], classes: [("a", 50), ("b", 50)])).failures(gates)
        #expect(slow.count == 1 && slow[0].hasPrefix("p99"))
        let shifted = compare(evidence(100, latency: [90, 10, 0, 0, 0], classes: [("a", 80), ("b", 20)])).failures(gates)
        #expect(shifted.count == 1 && shifted[0].hasPrefix("prediction shift 0.300 (classes TVD)"))
        #expect(compare(evidence(49, latency: [49, 0, 0, 0, 0], classes: [("a", 49)])).insufficient(gates) == "canary 49 requests")
        #expect(compare(stable).insufficient(RolloutGates(minRequests: 1001)) == "canary 1000 requests")
    }

    @Test func scoresAreComparedWithKolmogorovSmirnov() {
        var a = VersionEvidence(), b = VersionEvidence()
        a.predictionKind = "score"; a.requests = 100; a.scoreCounts = [50, 50, 0]; a.scoreCount = 100
        b.predictionKind = "score"; b.requests = 100; b.scoreCounts = [0, 50, 50]; b.scoreCount = 100
        let c = WindowComparison(canary: EvidenceCounts(a), stable: EvidenceCounts(b), latencyBoundsMicros: bounds, scoreBounds: [0.5, 1])
        #expect(c.shiftKind == "scores KS")
        #expect(c.shift == 0.5)
        #expect(c.failures(RolloutGates()).first?.hasPrefix("prediction shift 0.500 (scores KS)") == true)
    }

    @Test func optionsAndGatesRefuseNonsense() {
        var o = RolloutOptions(model: "m", version: 2)
        #expect(o.problem == nil)
        o.steps = [50, 25]
        #expect(o.problem?.contains("increase") == true)
        o.steps = [0, 50]
        #expect(o.problem?.contains("(0, 100]") == true)
        o.steps = [10, 101]
        #expect(o.problem != nil)
        o.steps = [10]
        o.gates.maxP99Ratio = 0.5
        #expect(o.problem?.contains("max-p99-ratio") == true)
        o.gates.maxP99Ratio = .nan
        #expect(o.problem != nil)
        o.gates = RolloutGates(maxPredictionShift: 2)
        #expect(o.problem != nil)
        o = RolloutOptions(model: "m", version: 0)
        #expect(o.problem != nil)
    }

    @Test func significanceTestsMatchKnownValues() {
        // Chi-square critical values at p = 0.05: 3.841 (1 df), 5.991 (2 df); 10.828 at 0.001 (1 df).
        #expect(abs(EvidenceStatistics.regularizedUpperGamma(0.5, 3.841 / 2) - 0.05) < 1e-3)
        #expect(abs(EvidenceStatistics.regularizedUpperGamma(1.0, 5.991 / 2) - 0.05) < 1e-3)
        #expect(abs(EvidenceStatistics.regularizedUpperGamma(0.5, 10.828 / 2) - 0.001) < 1e-4)
        #expect(EvidenceStatistics.regularizedUpperGamma(3, 0) == 1)
        // A 2x2 table: 30/70 against 50/50, 100 each: chi-square 8.33, p = 0.0039.
        let p = EvidenceStatistics.chiSquarePValue(["a": 30, "b": 70], ["a": 50, "b": 50])!
        #expect(abs(p - 0.0039) < 2e-4, "\(p)")
        #expect(EvidenceStatistics.chiSquarePValue(["a": 5], ["a": 9]) == 1, "one class: nothing to test")
        #expect(EvidenceStatistics.chiSquarePValue([:], ["a": 9]) == nil)
        // Rare classes are pooled: 3 rare classes seen once each on one side do not make a
        // difference on their own (they would give chi-square ~9 with 3 more degrees of freedom).
        let pooled = EvidenceStatistics.chiSquarePValue(["a": 100, "b": 100, "x": 1, "y": 1, "z": 1], ["a": 100, "b": 100])!
        #expect(pooled > 0.05, "\(pooled)")
        // Kolmogorov's distribution: lambda 1.358 ~ p 0.05, 1.949 ~ p 0.001.
        let ne = 200.0 * 200 / 400
        let d05 = 1.358 / (ne.squareRoot() + 0.12 + 0.11 / ne.squareRoot())
        #expect(abs(EvidenceStatistics.kolmogorovSmirnovPValue(d05, 200, 200) - 0.05) < 2e-3)
        #expect(EvidenceStatistics.kolmogorovSmirnovPValue(0, 200, 200) == 1)
        #expect(EvidenceStatistics.kolmogorovSmirnovPValue(1, 200, 200) < 1e-20)
    }

    /// Two windows of the same model differ by chance; only a shift that is also significant fails.
    @Test func aChanceShiftInASmallWindowPassesARealOneFails() {
        func window(_ canary: [String: UInt64], _ stable: [String: UInt64]) -> WindowComparison {
            var c = EvidenceCounts(), s = EvidenceCounts()
            c.predictionKind = "class"; s.predictionKind = "class"
            c.classCounts = canary; s.classCounts = stable
            c.requests = canary.values.reduce(0, +); s.requests = stable.values.reduce(0, +)
            return WindowComparison(canary: c, stable: s, latencyBoundsMicros: [], scoreBounds: [])
        }
        let gates = RolloutGates()
        // 60 requests a side, TVD 0.15: well within chance (p ~ 0.25).
        let small = window(["0": 20, "1": 20, "2": 20], ["0": 29, "1": 16, "2": 15])
        #expect(small.shift! > gates.maxPredictionShift)
        #expect(small.failures(gates).isEmpty, "\(small.shiftPValue!)")
        // The same proportions over 20x the traffic: significant, fails.
        let large = window(["0": 400, "1": 400, "2": 400], ["0": 580, "1": 320, "2": 300])
        #expect(large.failures(gates).count == 1)
        #expect(large.failures(gates)[0].contains("p = "))
    }

    @Test func classesOneSideCouldNotNameAreComparedAsOther() {
        // The canary kept "a", "b" and counted the rest as <other>; stable named "c" and "d".
        let canary: [String: UInt64] = ["a": 40, "b": 40, "<other>": 20]
        let stable: [String: UInt64] = ["a": 40, "b": 40, "c": 10, "d": 10]
        #expect(EvidenceStatistics.totalVariation(canary, stable)! > 0.19)
        let (c, s) = EvidenceStatistics.aligned(canary, stable)
        #expect(c == ["a": 40, "b": 40, "<other>": 20] && s == ["a": 40, "b": 40, "<other>": 20])
        #expect(EvidenceStatistics.totalVariation(c, s) == 0)
        // Without an <other> on either side nothing is folded.
        #expect(EvidenceStatistics.aligned(["a": 1], ["b": 1]) == (["a": 1], ["b": 1]))
    }
}
