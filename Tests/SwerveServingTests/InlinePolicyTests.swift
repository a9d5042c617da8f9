import SwerveRepository
import Testing
@testable import SwerveServing

/// Inline execution's decision, driven by hand with explicit costs and times.
@Suite struct InlinePolicyTests {
    func policy(_ mode: ExecutionMode = .auto, samples: Int = 4, probe: Int = 1000) -> InlinePolicy {
        var c = InlinePolicy.Configuration()
        c.minimumSamples = samples
        c.probeInterval = probe
        c.maxRows = 64
        return InlinePolicy(mode: mode, configuration: c)
    }

    /// Feeds `n` lone executions of `rowNs` per row and `n` hops of `hopNs` one way.
    func feed(_ p: inout InlinePolicy, rowNs: UInt64, hopNs: UInt64, n: Int = 4) {
        for _ in 0..<n {
            p.recordExecution(rows: 1, requests: 1, ns: rowNs)
            p.recordHop(ns: hopNs)
        }
    }

    @Test func cheapModelGoesInlineOnceMeasured() {
        var p = policy()
        do { let decision = p.shouldInline(rows: 1, nowNs: 0); #expect(!decision, "nothing measured yet: the workers") }
        feed(&p, rowNs: 500, hopNs: 10_000, n: 3)
        do { let decision = p.shouldInline(rows: 1, nowNs: 0); #expect(!decision, "three samples are not enough") }
        feed(&p, rowNs: 500, hopNs: 10_000, n: 1)
        #expect(p.inlineOn && p.switches == 1)
        do { let decision = p.shouldInline(rows: 1, nowNs: 0); #expect(decision) }
        // A request of many rows costs more than the hop: the workers, though inline is on.
        do { let decision = p.shouldInline(rows: 50, nowNs: 0); #expect(!decision) }
        do { let decision = p.shouldInline(rows: 65, nowNs: 0); #expect(!decision, "past maxRows") }
    }

    @Test func expensiveModelStaysOnTheWorkers() {
        var p = policy()
        feed(&p, rowNs: 30_000, hopNs: 10_000, n: 20)
        #expect(!p.inlineOn)
        do { let decision = p.shouldInline(rows: 1, nowNs: 0); #expect(!decision) }
    }

    @Test func hysteresisBetweenOnAndOff() {
        var p = policy()
        // On at a cost below half the round trip (2 × 5 µs), off only above all of it.
        feed(&p, rowNs: 4_000, hopNs: 5_000, n: 4)
        #expect(p.inlineOn)
        for _ in 0..<40 { p.recordExecution(rows: 1, requests: 1, ns: 8_000) }
        #expect(p.inlineOn, "8 µs < 10 µs round trip: stays on")
        for _ in 0..<200 { p.recordExecution(rows: 1, requests: 1, ns: 20_000) }
        #expect(!p.inlineOn, "a cost that grew past the hop goes back to the workers")
        let switches = p.switches
        for _ in 0..<200 { p.recordExecution(rows: 1, requests: 1, ns: 7_000) }
        #expect(!p.inlineOn && p.switches == switches, "7 µs is above half the round trip: stays off")
    }

    @Test func aStalledInlineRunPausesInline() {
        var p = policy()
        feed(&p, rowNs: 500, hopNs: 10_000)
        do { let decision = p.shouldInline(rows: 1, nowNs: 0); #expect(decision) }
        // Within 8 hops (2 × 10 µs each): no stall, and the batcher logs nothing.
        do { let stalled = p.inlineFinished(ns: 150_000, nowNs: 4_000); #expect(!stalled) }
        #expect(p.inlineOn)
        do { let stalled = p.inlineFinished(ns: 1_000_000, nowNs: 5_000); #expect(stalled) }  // 1 ms, far beyond 8 hops
        #expect(!p.inlineOn)
        do { let decision = p.shouldInline(rows: 1, nowNs: 10_000); #expect(!decision) }
        // Measurements turn it back on, but not before the cooldown ends.
        feed(&p, rowNs: 500, hopNs: 10_000)
        #expect(p.inlineOn)
        do { let decision = p.shouldInline(rows: 1, nowNs: 500_000_000); #expect(!decision) }
        do { let decision = p.shouldInline(rows: 1, nowNs: 1_000_005_000); #expect(decision) }
    }

    @Test func probesKeepTheWorkersMeasured() {
        var p = policy(probe: 8)
        feed(&p, rowNs: 500, hopNs: 10_000)
        // Requests 10 ms apart: every 8th is a candidate (80 ms apart), and probes are at least
        // 100 ms apart: the 8th, 24th, 40th and 56th go to the workers.
        var now: UInt64 = 0
        let sparse = (1...64).map { _ in now += 10_000_000; return p.shouldInline(rows: 1, nowNs: now) }
        #expect(sparse.indices.filter { !sparse[$0] }.map { $0 + 1 } == [8, 24, 40, 56])
        // Requests 1 s apart: every 8th.
        var q = policy(probe: 8)
        feed(&q, rowNs: 500, hopNs: 10_000)
        now = 0
        let slow = (1...64).map { _ in now += 1_000_000_000; return q.shouldInline(rows: 1, nowNs: now) }
        #expect(slow.filter { !$0 }.count == 8, "every 8th request goes to the workers")
        // A burst of requests within one spacing: one probe, whatever the count.
        var r = policy(probe: 8)
        feed(&r, rowNs: 500, hopNs: 10_000)
        let burst = (1...6400).map { i in r.shouldInline(rows: 1, nowNs: 1_000_000_000 + UInt64(i) * 1_000) }
        #expect(burst.filter { !$0 }.count == 1, "6.4 ms of requests: one probe")
    }

    @Test func batchedExecutionsAreAFallbackOnly() {
        var p = policy()
        // Batched executions alone (16 requests each) give a cost estimate...
        for _ in 0..<4 {
            p.recordExecution(rows: 16, requests: 16, ns: 16 * 300)
            p.recordHop(ns: 10_000)
        }
        #expect(p.estimatedRowCostNs == 300)
        #expect(p.inlineOn)
        // ...until lone executions, the cost inline work would really have, are measured.
        p.recordExecution(rows: 1, requests: 1, ns: 25_000)
        #expect(p.estimatedRowCostNs == 25_000)
        #expect(!p.inlineOn)
    }

    @Test func overrides() {
        var always = policy(.inline)
        do { let decision = always.shouldInline(rows: 1, nowNs: 0); #expect(decision, "inline: no measurements needed") }
        do { let decision = always.shouldInline(rows: 65, nowNs: 0); #expect(!decision, "but never past maxRows") }
        var never = policy(.workers)
        feed(&never, rowNs: 1, hopNs: 1_000_000)
        do { let decision = never.shouldInline(rows: 1, nowNs: 0); #expect(!decision) }
        #expect(!never.inlineOn)
    }
}
