import Dispatch
import Synchronization
import Testing
import SwerveInference
@testable import SwerveServing

@Suite struct CacheCoreTests {
    func core(_ capacity: Int, _ policy: CachePolicy) -> CacheCore<Int, Int> {
        CacheCore(capacity: capacity, policy: policy, ghostHash: { UInt64(bitPattern: Int64($0)) })
    }

    @Test(arguments: CachePolicy.allCases)
    func basicOperations(policy: CachePolicy) {
        var c = core(100, policy)
        #expect(c.get(1) == nil)
        let stored = c.put(1, 10, cost: 30)
        #expect(stored)
        #expect(c.get(1) == 10)
        let updated = c.put(1, 11, cost: 40)  // update in place
        #expect(updated)
        #expect(c.get(1) == 11)
        #expect(c.bytes == 40 && c.count == 1)
        let tooLarge = c.put(2, 20, cost: 101)  // larger than the whole budget
        #expect(!tooLarge)
        #expect(c.get(2) == nil)
        let removed = c.remove(1), removedAgain = c.remove(1)
        #expect(removed && !removedAgain)
        #expect(c.bytes == 0 && c.count == 0)
        let s = c.stats
        #expect(s.hits == 2 && s.misses == 2 && s.insertions == 1 && s.updates == 1 && s.rejections == 1 && s.evictions == 0)
        #expect(c.checkInvariants())
    }

    @Test func lruEvictsLeastRecentlyUsed() {
        var c = core(30, .lru)
        c.put(1, 1, cost: 10); c.put(2, 2, cost: 10); c.put(3, 3, cost: 10)
        _ = c.get(1)
        c.put(4, 4, cost: 10)  // evicts 2, the least recently used
        #expect(c.contains(1) && !c.contains(2) && c.contains(3) && c.contains(4))
        #expect(c.stats.evictions == 1)
    }

    @Test func s3fifoKeepsEntriesHitInTheSmallQueueAndDropsOneHitWonders() {
        // 100 bytes: small queue 10, main 90. Entries of 10 bytes.
        var c = core(100, .s3fifo)
        for k in 0..<10 { c.put(k, k, cost: 10) }
        for k in 0..<5 { _ = c.get(k) }  // 0..<5 are hit once while in the small queue
        // A scan of 20 new one-hit keys: each eviction takes the small queue's tail; hit entries move
        // to main, the rest leave (into the ghost queue).
        for k in 100..<120 { c.put(k, k, cost: 10) }
        for k in 0..<5 { #expect(c.contains(k), "entry \(k) was hit and must survive the scan") }
        for k in 5..<10 { #expect(!c.contains(k), "entry \(k) was never hit and must be gone") }
        #expect(c.checkInvariants())
    }

    @Test func s3fifoGhostHitGoesStraightToMain() {
        var c = core(100, .s3fifo)
        for k in 0..<10 { c.put(k, k, cost: 10) }
        c.put(10, 10, cost: 10)  // evicts 0 (never hit) into the ghost queue
        #expect(!c.contains(0))
        c.put(0, 0, cost: 10)  // remembered: admitted to main
        // A flood of one-hit keys drains the small queue but 0, in main with no hits yet, is
        // evicted only once small is empty, so it outlives the newer small-queue entries.
        for k in 200..<209 { c.put(k, k, cost: 10) }
        #expect(c.contains(0))
        #expect(c.checkInvariants())
    }

    /// Fixed-seed property test: any mix of puts (of any cost, some larger than the budget), gets and
    /// removes keeps the bytes within the budget and the structure consistent.
    @Test(arguments: CachePolicy.allCases)
    func budgetNeverExceededUnderAFlood(policy: CachePolicy) {
        var rng = SplitMix64(seed: 7)
        let cache = ShardedCache<Int, Int>(capacityBytes: 40_000, policy: policy, shards: 4, stableHash: { UInt64($0) })
        var nextKey = 0
        for op in 0..<40_000 {
            let r = rng.next() % 10
            if r < 6 {
                nextKey += 1
                let cost = Int(rng.next() % UInt64(cache.shardCapacityBytes + 2_000)) + 1
                let stored = cache.put(nextKey, nextKey, cost: cost)
                if cost > cache.shardCapacityBytes { #expect(!stored, "an entry larger than a shard must not be stored") }
            } else if r < 9 {
                let k = Int(rng.next() % UInt64(nextKey + 1))
                if let v = cache.get(k) { #expect(v == k) }
            } else {
                cache.remove(Int(rng.next() % UInt64(nextKey + 1)))
            }
            let s = cache.stats
            #expect(s.bytes <= cache.capacityBytes)
            if op % 1_000 == 0 { #expect(cache.checkInvariants()) }
        }
        let s = cache.stats
        #expect(s.evictions > 0 && s.rejections > 0)
        #expect(cache.checkInvariants())
        cache.removeAll()
        #expect(cache.stats.entries == 0 && cache.stats.bytes == 0)
    }
}

@Suite struct ResponseCacheTests {
    @Test func storesAndReturnsTensors() {
        let cache = ResponseCache(budget: 1 << 20)
        let k = PathsFixtures.key(5)
        #expect(cache.get(k) == nil)
        #expect(cache.put(k, PathsFixtures.value(5)))
        #expect(cache.get(PathsFixtures.key(5))?.tensors == PathsFixtures.value(5))
        #expect(cache.get(PathsFixtures.key(5, version: 2)) == nil)
        let s = cache.stats
        #expect(s.entries == 1 && s.hits == 1 && s.misses == 2)
        #expect(s.bytes == ResponseCache.cost(key: k, valueBytes: ResponseCache.valueBytes(of: PathsFixtures.value(5))))
        #expect(cache.remove(k))
        #expect(cache.stats.entries == 0)
    }

    @Test func encodingsAreStoredPerFormAndCharged() {
        let cache = ResponseCache(budget: 1 << 20, shards: 1)
        let k = PathsFixtures.key(3)
        cache.put(k, PathsFixtures.value(3))
        let before = cache.stats.bytes
        let entry = cache.get(k)!
        #expect(entry.encoded(form: 0) == nil)
        cache.addEncoding(k, entry, form: 0, [1, 2, 3])
        cache.addEncoding(k, entry, form: 0, [9, 9, 9, 9])  // the first encoding of a form stays
        cache.addEncoding(k, entry, form: 2, [4, 5])
        #expect(cache.get(k)!.encoded(form: 0) == [1, 2, 3])
        #expect(cache.get(k)!.encoded(form: 2) == [4, 5])
        #expect(cache.get(k)!.encoded(form: 1) == nil)
        #expect(cache.stats.bytes == before + 5, "encodings are charged to the budget")
        #expect(cache.get(k)?.tensors == PathsFixtures.value(3))
    }

    @Test func encodingThatDoesNotFitIsNotStoredAndTheEntryStays() {
        let k = PathsFixtures.key(1)
        let cost = ResponseCache.cost(key: k, valueBytes: ResponseCache.valueBytes(of: PathsFixtures.value(1)))
        let cache = ResponseCache(budget: cost + 10, shards: 1)
        #expect(cache.put(k, PathsFixtures.value(1)))
        let entry = cache.get(k)!
        #expect(!cache.addEncoding(k, entry, form: 0, [UInt8](repeating: 7, count: 100)))
        #expect(cache.get(k)?.tensors == PathsFixtures.value(1), "the entry is kept, without the encoding")
        #expect(cache.get(k)?.encoded(form: 0) == nil)
        #expect(cache.stats.bytes == cost && cache.stats.rejections == 0)
        #expect(cache.addEncoding(k, entry, form: 0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), "one that fits is stored")
        #expect(cache.stats.bytes == cost + 10)
    }

    @Test func encodingIsChargedOnlyToTheEntryThatHoldsIt() {
        let cache = ResponseCache(budget: 1 << 20, shards: 1)
        let k = PathsFixtures.key(2)
        cache.put(k, PathsFixtures.value(2))
        let old = cache.get(k)!
        cache.put(k, PathsFixtures.value(2))  // a newer entry under the same key
        let before = cache.stats.bytes
        #expect(!cache.addEncoding(k, old, form: 0, [UInt8](repeating: 1, count: 500)))
        #expect(cache.stats.bytes == before)
        cache.remove(k)
        #expect(!cache.addEncoding(k, old, form: 1, [1]), "nor brought back once evicted")
        #expect(cache.stats.entries == 0 && cache.stats.bytes == 0)
    }

    @Test func concurrentEncodingsAreChargedExactly() async {
        let cache = ResponseCache(budget: 1 << 20, shards: 1)
        let k = PathsFixtures.key(4)
        cache.put(k, PathsFixtures.value(4))
        let base = cache.stats.bytes
        let entry = cache.get(k)!
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<16 {
                group.addTask { cache.addEncoding(k, entry, form: t % 4, [UInt8](repeating: UInt8(t), count: 10 * (t % 4 + 1))) }
            }
        }
        // Forms 0...3 hold 10, 20, 30 and 40 bytes whichever task stored each.
        #expect(cache.stats.bytes == base + 100)
        for form in 0..<4 { #expect(entry.encoded(form: form)?.count == 10 * (form + 1)) }
    }

    @Test func entryLargerThanAShardIsNotStored() {
        let cache = ResponseCache(budget: 4_000, shards: 1)
        let big = [Tensor(shape: [1, 2_000], data: .fp32(Array(repeating: 1, count: 2_000)))]
        #expect(!cache.put(PathsFixtures.key(1), big))
        #expect(cache.stats.rejections == 1 && cache.stats.entries == 0)
    }

    @Test func budgetSharesAreBounded() {
        let budget = CacheBudget(totalBytes: 1_000, perModelFraction: 0.4)
        #expect(budget.grant(to: "a:1") == 400)
        #expect(budget.grant(to: "a:1") == 400)  // same owner, same grant
        #expect(budget.grant(to: "b:1") == 400)
        #expect(budget.grant(to: "c:1") == 200)  // what is left
        #expect(budget.grant(to: "d:1") == 0)
        #expect(budget.grantedBytes == 1_000)
        budget.release("a:1")
        #expect(budget.grant(to: "d:1") == 0)  // an existing grant is not revised
        #expect(budget.grant(to: "e:1") == 400)
    }

    /// Replays a request stream against a cache the way the request path uses it (get, then put
    /// on a miss) and returns the hit ratio.
    func hitRatio(_ policy: CachePolicy, stream: [Int], entries: Int) -> Double {
        let cost = ResponseCache.cost(key: PathsFixtures.key(0), valueBytes: ResponseCache.valueBytes(of: PathsFixtures.value(0)))
        let cache = ResponseCache(budget: entries * cost, policy: policy, shards: 1)
        for id in stream {
            let k = PathsFixtures.key(id)
            if cache.get(k) == nil { cache.put(k, PathsFixtures.value(id)) }
        }
        #expect(cache.stats.bytes <= cache.capacityBytes)
        return cache.stats.hitRatio
    }

    /// A Zipf(1.1) stream over 100k inputs, interrupted every 10k requests by a scan of 3k inputs
    /// that are never asked for again; the cache holds about 1k entries.
    @Test func s3fifoBeatsLRUOnZipfWithScans() {
        var rng = SplitMix64(seed: 2024)
        let zipf = ZipfSampler(n: 100_000, exponent: 1.1)
        var stream: [Int] = []
        var scanID = 1_000_000
        for i in 0..<150_000 {
            stream.append(zipf.next(using: &rng))
            if i % 10_000 == 9_999 {
                for _ in 0..<3_000 { stream.append(scanID); scanID += 1 }
            }
        }
        let s3 = hitRatio(.s3fifo, stream: stream, entries: 1_000)
        let lru = hitRatio(.lru, stream: stream, entries: 1_000)
        print("cache hit ratio, Zipf(1.1) over 100k + one-hit scans, 1k entries: S3-FIFO \(s3), LRU \(lru) (\(stream.count) requests)")
        #expect(s3 >= lru)
        #expect(s3 > 0.3)

        var plainRng = SplitMix64(seed: 2025)
        let plain = (0..<150_000).map { _ in zipf.next(using: &plainRng) }
        let s3Plain = hitRatio(.s3fifo, stream: plain, entries: 1_000)
        let lruPlain = hitRatio(.lru, stream: plain, entries: 1_000)
        print("cache hit ratio, Zipf(1.1) over 100k, no scans, 1k entries: S3-FIFO \(s3Plain), LRU \(lruPlain)")
        #expect(s3Plain > 0.3 && lruPlain > 0.3)
    }

    /// Many threads get, put and remove overlapping keys; every hit must be the value stored under
    /// exactly that key.
    @Test(arguments: CachePolicy.allCases)
    func concurrentAccessNeverMixesUpKeys(policy: CachePolicy) {
        let cache = ResponseCache(budget: 64 << 10, policy: policy, shards: 4)
        let wrong = Atomic<Int>(0)
        let hits = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            var rng = SplitMix64(seed: UInt64(worker))
            for _ in 0..<4_000 {
                let id = Int(rng.next() % 600)
                let k = PathsFixtures.key(id)
                switch rng.next() % 10 {
                case 0:
                    cache.remove(k)
                case 1...4:
                    cache.put(k, PathsFixtures.value(id))
                default:
                    if let v = cache.get(k) {
                        hits.add(1, ordering: .relaxed)
                        if v.tensors != PathsFixtures.value(id) { wrong.add(1, ordering: .relaxed) }
                    }
                }
            }
        }
        #expect(wrong.load(ordering: .relaxed) == 0)
        #expect(hits.load(ordering: .relaxed) > 0)
        #expect(cache.stats.bytes <= cache.capacityBytes)
        #expect(cache.checkInvariants())
    }
}
