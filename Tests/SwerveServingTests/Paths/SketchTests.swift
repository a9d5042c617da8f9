import Foundation
import Testing
import SwerveInference
@testable import SwerveServing

@Suite struct HyperLogLogTests {
    @Test(arguments: [1_000, 100_000, 1_000_000])
    func estimatesWithinAFewPercent(distinct: Int) {
        var hll = HyperLogLog(precision: 12)
        // Every value twice: duplicates must not count.
        for round in 0..<2 {
            for i in 0..<(round == 0 ? distinct : distinct / 10) { hll.add(UInt64(i)) }
        }
        let e = hll.estimate()
        let error = abs(e - Double(distinct)) / Double(distinct)
        print("HyperLogLog p=12: \(distinct) distinct → \(Int(e)) (\(String(format: "%.2f", error * 100))% off; classic \(Int(hll.classicEstimate())))")
        #expect(error < 0.04)
    }

    @Test func smallCardinalitiesAreNearlyExact() {
        var hll = HyperLogLog()
        #expect(hll.estimate() == 0)
        for i in 0..<10 { hll.add(PathsFixtures.itemHash(i)) }
        #expect(abs(hll.estimate() - 10) < 0.5)
        #expect(abs(hll.classicEstimate() - 10) < 0.5)
    }

    @Test func mergeIsTheSketchOfTheUnion() {
        var a = HyperLogLog(), b = HyperLogLog(), union = HyperLogLog()
        for i in 0..<50_000 { a.add(UInt64(i)); union.add(UInt64(i)) }
        for i in 30_000..<90_000 { b.add(UInt64(i)); union.add(UInt64(i)) }
        a.merge(b)
        #expect(a == union)
        #expect(abs(a.estimate() - 90_000) / 90_000 < 0.04)
        a.reset()
        #expect(a.isEmpty && a.estimate() == 0)
    }
}

@Suite struct SpaceSavingTests {
    @Test func findsTheTrueTopItemsOfAZipfStream() {
        let zipf = ZipfSampler(n: 10_000, exponent: 1.1)
        var rng = SplitMix64(seed: 3)
        var ss = SpaceSaving(capacity: 256)
        var truth = [Int](repeating: 0, count: 10_000)
        for _ in 0..<200_000 {
            let r = zipf.next(using: &rng)
            truth[r] += 1
            ss.add(PathsFixtures.itemHash(r))
        }
        let top = ss.top(10)
        let expected = Set((0..<10).map(PathsFixtures.itemHash))
        #expect(Set(top.map(\.hash)) == expected)
        for c in top {
            let rank = (0..<10).first { PathsFixtures.itemHash($0) == c.hash }!
            #expect(c.guaranteed <= UInt64(truth[rank]) && UInt64(truth[rank]) <= c.count)
        }
        let trueShare = Double(truth.sorted(by: >).prefix(64).reduce(0, +)) / 200_000
        let measured = ss.topShare(64)
        print("SpaceSaving: top-64 share of Zipf(1.1) over 10k: measured \(measured), true \(trueShare)")
        #expect(measured <= trueShare && measured > trueShare - 0.05)
    }

    @Test func flatTrafficHasNoHeavyHitters() {
        var ss = SpaceSaving(capacity: 256)
        var rng = SplitMix64(seed: 4)
        for _ in 0..<10_000 { ss.add(rng.next()) }
        #expect(ss.total == 10_000)
        #expect(ss.topShare(64) < 0.02)
    }
}

@Suite struct PathSelectorTests {
    func configuration(onThreshold: Double = 0.3, offThreshold: Double = 0.1) -> PathSelector.Configuration {
        var c = PathSelector.Configuration()
        c.window = .init(length: .requests(10_000))
        c.onThreshold = onThreshold
        c.offThreshold = offThreshold
        return c
    }

    @Test func switchesOnForZipfAndOffForUniformTraffic() {
        var selector = PathSelector(configuration())
        var rng = SplitMix64(seed: 11)
        let zipf = ZipfSampler(n: 1_000_000, exponent: 1.1)
        for _ in 0..<50_000 { selector.observe(PathsFixtures.itemHash(zipf.next(using: &rng))) }
        #expect(selector.cacheOn)
        #expect(selector.switches == 1)
        let zipfPeakedness = selector.peakedness, zipfCardinality = selector.cardinality
        #expect(selector.peakedness >= 0.3)

        for _ in 0..<50_000 { selector.observe(rng.next()) }  // uniform over 2^64
        #expect(!selector.cacheOn)
        #expect(selector.switches == 2)
        print("PathSelector: Zipf(1.1)/1M window: peakedness \(zipfPeakedness), distinct \(Int(zipfCardinality)); uniform window: peakedness \(selector.peakedness), distinct \(Int(selector.cardinality))")
        #expect(selector.peakedness < 0.05)
        #expect(abs(selector.cardinality - 10_000) / 10_000 < 0.04)
    }

    @Test func smallDomainIsCachedEvenWhenFlat() {
        var selector = PathSelector(configuration())
        var rng = SplitMix64(seed: 12)
        for _ in 0..<20_000 { selector.observe(PathsFixtures.itemHash(Int(rng.next() % 500))) }
        #expect(selector.cacheOn)
        #expect(abs(selector.cardinality - 500) < 25)
        #expect(selector.peakedness < 0.3)  // on because of the repeat ratio, not the top-k share

        var disabled = configuration()
        disabled.cacheableDistinct = 0
        var topOnly = PathSelector(disabled)
        for _ in 0..<20_000 { topOnly.observe(PathsFixtures.itemHash(Int(rng.next() % 500))) }
        #expect(!topOnly.cacheOn)
    }

    /// Traffic whose top-k share wanders around one threshold, window after window, switches at
    /// most once: leaving again needs the other threshold.
    @Test(arguments: [0.3, 0.1])
    func doesNotFlapAroundAThreshold(level: Double) {
        var c = configuration()
        c.initiallyOn = level < 0.2  // hover at the threshold that could switch the initial state
        var selector = PathSelector(c)
        var rng = SplitMix64(seed: 13)
        var scores: [Double] = []
        for _ in 0..<40 {
            let hotShare = level + (Double(rng.next() % 1_000) / 1_000 - 0.5) * 0.08  // level ± 0.04
            for _ in 0..<10_000 {
                let hot = Double(rng.next() >> 11) * 0x1p-53 < hotShare
                let hash = hot ? PathsFixtures.itemHash(Int(rng.next() % 8)) : rng.next()
                selector.observe(hash)
            }
            scores.append(selector.lastScore)
        }
        let crossings = zip(scores, scores.dropFirst()).filter { ($0 < level) != ($1 < level) }.count
        print("PathSelector hovering at \(level): scores \(scores.min()!)...\(scores.max()!), \(crossings) threshold crossings, \(selector.switches) switches")
        #expect(crossings >= 5, "the traffic must actually hover across the threshold")
        #expect(selector.switches <= 1)
    }

    @Test func hysteresisRuleOnSyntheticWindows() {
        var selector = PathSelector(configuration())
        func window(_ share: Double) -> WindowSummary {
            WindowSummary(requests: 10_000, distinct: 9_000, topShare: share, topK: 64)
        }
        var decisions: [Bool?] = []
        for s in [0.29, 0.31, 0.29, 0.31, 0.2, 0.11, 0.09, 0.11, 0.09, 0.29] {
            decisions.append(selector.evaluate(window(s)))
        }
        #expect(decisions == [nil, true, nil, nil, nil, nil, false, nil, nil, nil])
        #expect(selector.switches == 2)

        var confirm = configuration()
        confirm.windowsToConfirm = 2
        var slow = PathSelector(confirm)
        #expect(slow.evaluate(window(0.5)) == nil)
        #expect(slow.evaluate(window(0.2)) == nil)  // the streak breaks
        #expect(slow.evaluate(window(0.5)) == nil)
        #expect(slow.evaluate(window(0.5)) == true)
        // Windows with too few requests are ignored.
        #expect(slow.evaluate(WindowSummary(requests: 10, distinct: 10, topShare: 0, topK: 64)) == nil)
        #expect(slow.cacheOn)
    }

    @Test func costAwareRuleTurnsTheCacheOnOnlyWhereItPays() {
        // A peaked window: 60% of requests on the top inputs.
        let peaked = WindowSummary(requests: 10_000, distinct: 4_000, topShare: 0.6, topK: 64)
        // A row that costs less than building and looking up its key: the cache would lose.
        var cheap = PathSelector(configuration())
        cheap.costs = PathSelector.Costs(computeNs: 300, keyNs: 400)
        #expect(cheap.evaluate(peaked) == nil)
        #expect(!cheap.cacheOn)
        // The same traffic on a costly model: on.
        var costly = PathSelector(configuration())
        costly.costs = PathSelector.Costs(computeNs: 20_000, keyNs: 400)
        #expect(costly.evaluate(peaked) == true)
        // Turning on needs the saving to cover the cost: 0.6 × 600 = 360 saved against 400 paid
        // is not enough...
        var margin = PathSelector(configuration())
        margin.costs = PathSelector.Costs(computeNs: 600, keyNs: 400)
        #expect(margin.evaluate(peaked) == nil)
        // ...but staying on needs only two thirds of it: once on, it stays on at that cost...
        margin.costs = PathSelector.Costs(computeNs: 20_000, keyNs: 400)
        #expect(margin.evaluate(peaked) == true)
        margin.costs = PathSelector.Costs(computeNs: 600, keyNs: 400)
        #expect(margin.evaluate(peaked) == nil)
        // ...and goes off when computing became much cheaper than the key.
        margin.costs = PathSelector.Costs(computeNs: 300, keyNs: 400)
        #expect(margin.evaluate(peaked) == false)
        // A hit also skips encoding the response: a row cheaper than its key still pays when
        // its encoding is counted (0.6 × (300 + 500) = 480 saved against 400 paid).
        var encoded = PathSelector(configuration())
        encoded.costs = PathSelector.Costs(computeNs: 300, keyNs: 400, encodeNs: 500)
        #expect(encoded.evaluate(peaked) == true)
        // Without measured costs the rule is the traffic shape alone.
        var unmeasured = PathSelector(configuration())
        #expect(unmeasured.evaluate(peaked) == true)
    }

    @Test func timeWindowsCloseOnTime() {
        var sketch = SlidingWindowSketch(.init(length: .nanoseconds(1_000)))
        for t in 0..<100 { #expect(sketch.observe(PathsFixtures.itemHash(t % 10), nowNs: UInt64(t * 10)) == nil) }
        let closed = sketch.observe(PathsFixtures.itemHash(0), nowNs: 1_000)
        #expect(closed?.requests == 100)
        #expect(closed.map { abs($0.distinct - 10) < 0.5 } == true)
        #expect(closed.map { abs($0.repeatRatio - 0.9) < 0.01 } == true)
        #expect(sketch.currentWindow.requests == 1)
        #expect(sketch.advance(toNs: 1_500) == nil)
        #expect(sketch.advance(toNs: 2_000)?.requests == 1)
        #expect(sketch.completedWindows == 2)
        #expect(abs(sketch.recentDistinct - 1) < 0.5)
    }
}
