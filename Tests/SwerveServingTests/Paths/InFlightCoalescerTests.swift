import Dispatch
import Synchronization
import Testing
@testable import SwerveServing

@Suite struct InFlightCoalescerTests {
    typealias Coalescer = InFlightCoalescer<String, Int, ServingError>

    /// Collects results delivered on any thread.
    final class Results: Sendable {
        let values = Mutex<[Result<Int, ServingError>]>([])
        func add(_ r: Result<Int, ServingError>) { values.withLock { $0.append(r) } }
        var all: [Result<Int, ServingError>] { values.withLock { $0 } }
    }

    @Test func concurrentJoinsComputeOnceAndShareTheResult() {
        let coalescer = Coalescer()
        let results = Results()
        let computations = Atomic<Int>(0)
        let leaderTokens = Mutex<[Coalescer.Token]>([])
        let n = 64
        // Every caller joins before anyone completes: the leader parks its token.
        DispatchQueue.concurrentPerform(iterations: n) { _ in
            let role = coalescer.join("k", completion: results.add)
            if case .leader(let token) = role {
                computations.add(1, ordering: .relaxed)
                leaderTokens.withLock { $0.append(token) }
            }
        }
        #expect(computations.load(ordering: .relaxed) == 1)
        #expect(coalescer.stats == .init(leaders: 1, coalesced: UInt64(n - 1), inFlight: 1))
        let token = leaderTokens.withLock { $0[0] }
        #expect(coalescer.complete(token, with: .success(42)) == n)
        #expect(results.all.count == n)
        #expect(results.all.allSatisfy { (try? $0.get()) == 42 })
        #expect(coalescer.stats.inFlight == 0)
        // Completing twice is harmless and delivers nothing.
        #expect(coalescer.complete(token, with: .success(7)) == 0)
        #expect(results.all.count == n)
    }

    @Test func completionFromAnotherThreadWhileJoinsRace() {
        let coalescer = Coalescer()
        let results = Results()
        let computations = Atomic<Int>(0)
        let delivered = DispatchGroup()
        let rounds = 200
        // Callers join in waves over four keys; each leader completes later on another thread.
        // Every caller gets exactly one result.
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for i in 0..<rounds {
                delivered.enter()
                coalescer.run("k\(i % 4)", completion: { r in results.add(r); delivered.leave() }) { finish in
                    let c = computations.add(1, ordering: .relaxed).newValue
                    DispatchQueue.global().async { finish(.success(c)) }
                }
            }
        }
        #expect(delivered.wait(timeout: .now() + 30) == .success)
        #expect(results.all.count == 8 * rounds)
        let stats = coalescer.stats
        #expect(Int(stats.leaders) == computations.load(ordering: .relaxed))
        #expect(stats.leaders + stats.coalesced == UInt64(8 * rounds))
        #expect(stats.inFlight == 0)
    }

    @Test func failuresReachEveryWaiter() {
        let coalescer = Coalescer()
        let results = Results()
        guard case .leader(let token) = coalescer.join("k", completion: results.add) else {
            Issue.record("the first caller must lead"); return
        }
        for _ in 0..<5 {
            guard case .waiter = coalescer.join("k", completion: results.add) else {
                Issue.record("later callers must wait"); return
            }
        }
        let error = ServingError(.unavailable, "queue full")
        coalescer.complete(token, with: .failure(error))
        #expect(results.all.count == 6)
        for r in results.all {
            guard case .failure(let e) = r else { Issue.record("expected the failure"); continue }
            #expect(e == error)
        }
        // The key is free again: the next caller leads a new computation.
        guard case .leader = coalescer.join("k", completion: results.add) else {
            Issue.record("after completion a new caller must lead"); return
        }
    }

    @Test func distinctKeysDoNotInterfere() {
        let coalescer = Coalescer()
        let a = Results(), b = Results()
        guard case .leader(let ta) = coalescer.join("a", completion: a.add),
              case .leader(let tb) = coalescer.join("b", completion: b.add),
              case .waiter = coalescer.join("a", completion: a.add)
        else { Issue.record("each key must have its own leader"); return }
        coalescer.complete(tb, with: .success(2))
        #expect(b.all.count == 1 && a.all.isEmpty)
        #expect(coalescer.stats.inFlight == 1)
        coalescer.complete(ta, with: .success(1))
        #expect(a.all.map { try? $0.get() } == [1, 1])
        #expect(b.all.map { try? $0.get() } == [2])
    }

    @Test func staleTokenDoesNotCompleteALaterComputation() {
        let coalescer = Coalescer()
        let first = Results(), second = Results()
        guard case .leader(let t1) = coalescer.join("k", completion: first.add) else { Issue.record("must lead"); return }
        coalescer.complete(t1, with: .success(1))
        guard case .leader(let t2) = coalescer.join("k", completion: second.add) else { Issue.record("must lead"); return }
        #expect(coalescer.complete(t1, with: .success(99)) == 0)
        #expect(second.all.isEmpty)
        coalescer.complete(t2, with: .success(2))
        #expect(second.all.map { try? $0.get() } == [2])
    }
}
