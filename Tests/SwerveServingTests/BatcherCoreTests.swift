import Testing
@testable import SwerveServing

/// The batcher's rules, driven by hand with explicit times: no threads, no sleeps.
@Suite struct BatcherCoreTests {
    typealias Core = BatcherCore<String>
    let us: UInt64 = 1_000

    func core(max: Int = 8, delayUs: UInt64 = 500, queue: Int = 100) -> Core {
        Core(maxBatchSize: max, maxQueueDelayNs: delayUs * 1_000, maxQueueSize: queue)
    }

    @Test func idleModelRunsAtOnce() {
        var c = core()
        let accepted = c.enqueue("a", rows: 1, nowNs: 0, deadlineNs: nil)
        #expect(accepted)
        let d = c.next(nowNs: 0)
        #expect(d.batch.map(\.payload) == ["a"])
        #expect(c.busyWorkers == 1)
    }

    @Test func emptyQueueWaitsForWork() {
        var c = core()
        let d = c.next(nowNs: 0)
        #expect(d.batch.isEmpty && d.expired.isEmpty && d.wakeAtNs == nil)
    }

    @Test func requestsQueuedWhileBusyFormOneBatch() {
        var c = core()
        _ = c.enqueue("a", rows: 1, nowNs: 0, deadlineNs: nil)
        _ = c.next(nowNs: 0)                      // worker 1 busy with "a"
        for (i, p) in ["b", "c", "d"].enumerated() { _ = c.enqueue(p, rows: 2, nowNs: UInt64(i) * us, deadlineNs: nil) }
        // A second worker finds a partial batch while worker 1 is busy: it waits for the delay.
        let wait = c.next(nowNs: 3 * us)
        #expect(wait.batch.isEmpty)
        #expect(wait.wakeAtNs == 500 * us)
        // After the delay it takes everything queued, in order.
        let d = c.next(nowNs: 500 * us)
        #expect(d.batch.map(\.payload) == ["b", "c", "d"])
        #expect(c.busyWorkers == 2)
        c.batchFinished(); c.batchFinished()
        #expect(c.busyWorkers == 0)
    }

    @Test func fullBatchRunsWithoutWaiting() {
        var c = core(max: 4)
        _ = c.enqueue("busy", rows: 1, nowNs: 0, deadlineNs: nil)
        _ = c.next(nowNs: 0)
        _ = c.enqueue("a", rows: 2, nowNs: 1, deadlineNs: nil)
        _ = c.enqueue("b", rows: 2, nowNs: 2, deadlineNs: nil)
        let d = c.next(nowNs: 3)
        #expect(d.batch.map(\.payload) == ["a", "b"])
    }

    @Test func aRequestsRowsStayTogether() {
        var c = core(max: 4)
        _ = c.enqueue("busy", rows: 1, nowNs: 0, deadlineNs: nil)
        _ = c.next(nowNs: 0)
        _ = c.enqueue("a", rows: 3, nowNs: 1, deadlineNs: nil)
        _ = c.enqueue("b", rows: 3, nowNs: 2, deadlineNs: nil)   // does not fit beside "a": not split
        let first = c.next(nowNs: 3)
        #expect(first.batch.map(\.payload) == ["a"])
        #expect(first.batch.map(\.rows) == [3])
        c.batchFinished(); c.batchFinished()
        let second = c.next(nowNs: 4)
        #expect(second.batch.map(\.payload) == ["b"])
    }

    @Test func noBatchingRunsOneRequestPerExecution() {
        var c = core(max: 0)
        _ = c.enqueue("a", rows: 5, nowNs: 0, deadlineNs: nil)
        _ = c.enqueue("b", rows: 5, nowNs: 0, deadlineNs: nil)
        let first = c.next(nowNs: 0); #expect(first.batch.map(\.payload) == ["a"])
        let second = c.next(nowNs: 0); #expect(second.batch.map(\.payload) == ["b"])
    }

    @Test func boundedQueueRefuses() {
        var c = core(queue: 2)
        let a = c.enqueue("a", rows: 1, nowNs: 0, deadlineNs: nil)
        let b = c.enqueue("b", rows: 1, nowNs: 0, deadlineNs: nil)
        let refused = c.enqueue("c", rows: 1, nowNs: 0, deadlineNs: nil)
        #expect(a && b && !refused)
        _ = c.next(nowNs: 0)
        let afterDequeue = c.enqueue("c", rows: 1, nowNs: 0, deadlineNs: nil)
        #expect(afterDequeue)
    }

    @Test func expiredRequestsAreHandedBackNotRun() {
        var c = core()
        _ = c.enqueue("late", rows: 1, nowNs: 0, deadlineNs: 10)
        _ = c.enqueue("ok", rows: 1, nowNs: 0, deadlineNs: 1_000_000)
        let d = c.next(nowNs: 20)
        #expect(d.expired.map(\.payload) == ["late"])
        #expect(d.batch.map(\.payload) == ["ok"])
        #expect(c.queuedRows == 0)
    }

    @Test func queuedRowsTrackEnqueueAndDequeue() {
        var c = core(max: 100)
        for i in 0..<200 { _ = c.enqueue("r\(i)", rows: 3, nowNs: 0, deadlineNs: nil) }
        #expect(c.queuedRequests == 100)   // the queue bound (100) refused the rest
        var seen: [String] = []
        while c.queuedRequests > 0 {
            let d = c.next(nowNs: 0)
            seen += d.batch.map(\.payload)
            #expect(d.batch.reduce(0) { $0 + $1.rows } <= 100)
            c.batchFinished()
        }
        #expect(seen == (0..<100).map { "r\($0)" })
        #expect(c.queuedRows == 0)
    }
}
