/// How a response cache chooses what to evict.
public enum CachePolicy: String, Sendable, CaseIterable {
    /// S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP 2023): new
    /// entries wait in a small FIFO (10% of the bytes); only those requested again while there move
    /// to the main FIFO, the others leave a hash in a ghost queue so that a quick return goes straight
    /// to main. Main is a CLOCK with 2-bit frequency counters. One-hit wonders and scans pass through
    /// the small queue without disturbing the hot set, and a hit only bumps a counter (no list move).
    case s3fifo
    /// Least recently used: a hit moves the entry to the head; the tail is evicted. The baseline.
    case lru
}

/// Counters of a cache (or of all shards of a sharded cache, summed).
public struct CacheStats: Sendable, Equatable {
    public var hits: UInt64 = 0
    public var misses: UInt64 = 0
    /// New entries stored.
    public var insertions: UInt64 = 0
    /// Puts that replaced the value of an entry already present.
    public var updates: UInt64 = 0
    /// Entries dropped to make room (explicit removals are not counted).
    public var evictions: UInt64 = 0
    /// Puts refused because the entry alone is larger than the (shard's) budget.
    public var rejections: UInt64 = 0
    /// Bytes charged by the entries held now.
    public var bytes: Int = 0
    /// Entries held now.
    public var entries: Int = 0
    /// The byte budget.
    public var capacityBytes: Int = 0

    public init() {}

    /// hits / (hits + misses); 0 before the first lookup.
    public var hitRatio: Double { hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses) }

    /// The sum of two shards' counters.
    public static func + (a: CacheStats, b: CacheStats) -> CacheStats {
        var s = CacheStats()
        s.hits = a.hits + b.hits
        s.misses = a.misses + b.misses
        s.insertions = a.insertions + b.insertions
        s.updates = a.updates + b.updates
        s.evictions = a.evictions + b.evictions
        s.rejections = a.rejections + b.rejections
        s.bytes = a.bytes + b.bytes
        s.entries = a.entries + b.entries
        s.capacityBytes = a.capacityBytes + b.capacityBytes
        return s
    }
}

/// A byte-bounded cache with S3-FIFO or LRU eviction, as a plain single-threaded value: no locks,
/// no clocks. `ShardedCache` puts one behind a mutex per shard.
///
/// Invariant: the bytes charged by the entries held never exceed `capacity`; an entry whose cost
/// alone exceeds `capacity` is not stored.
///
/// Entries live in a slab (`nodes`) linked into doubly linked lists by index, so that moving,
/// unlinking and reusing a slot allocate nothing.
struct CacheCore<Key: Hashable, Value> {
    /// The byte budget.
    let capacity: Int
    let policy: CachePolicy
    /// S3-FIFO: the small queue's target size in bytes (10% of the budget by default).
    let smallCapacity: Int
    /// S3-FIFO: the main queue's target size in bytes (the rest of the budget).
    let mainCapacity: Int
    /// S3-FIFO: an entry leaving the small queue moves to main if it was hit at least this often there.
    let moveToMainThreshold: UInt8
    /// The hash the ghost queue remembers evicted keys by (stable across runs when the caller's is).
    let ghostHash: @Sendable (Key) -> UInt64

    private static var smallQueue: UInt8 { 0 }
    private static var mainQueue: UInt8 { 1 }
    private static var noQueue: UInt8 { 255 }
    private static var maxFrequency: UInt8 { 3 }

    fileprivate struct Node {
        var key: Key?
        var value: Value?
        var cost: Int
        var freq: UInt8
        var queue: UInt8
        var prev: Int32
        var next: Int32
    }

    private struct List {
        var head: Int32 = -1
        var tail: Int32 = -1
        var count = 0
        var bytes = 0
    }

    private var index: [Key: Int32] = [:]
    private var nodes: [Node] = []
    private var freeSlots: [Int32] = []
    /// [small, main]; LRU uses only main.
    private var lists = [List(), List()]
    private var ghost: GhostQueue
    private var counters = CacheStats()

    /// A cache holding at most `capacity` bytes.
    init(capacity: Int, policy: CachePolicy, smallFraction: Double = 0.1, moveToMainThreshold: UInt8 = 1,
         ghostHash: @escaping @Sendable (Key) -> UInt64) {
        precondition(capacity >= 0, "cache capacity must not be negative")
        precondition(smallFraction > 0 && smallFraction < 1, "smallFraction must be in (0, 1)")
        self.capacity = capacity
        self.policy = policy
        self.smallCapacity = max(1, Int(Double(capacity) * smallFraction))
        self.mainCapacity = max(0, capacity - smallCapacity)
        self.moveToMainThreshold = moveToMainThreshold
        self.ghostHash = ghostHash
        // The ghost remembers about as many evicted entries as main holds (the paper's sizing).
        self.ghost = GhostQueue(capacityBytes: policy == .s3fifo ? mainCapacity : 0)
        counters.capacityBytes = capacity
    }

    /// Bytes charged by the entries held.
    var bytes: Int { lists[0].bytes + lists[1].bytes }
    /// Entries held.
    var count: Int { index.count }

    /// Counters, with the current bytes and entries.
    var stats: CacheStats {
        var s = counters
        s.bytes = bytes
        s.entries = count
        return s
    }

    /// The value for `key`, counting a hit or a miss.
    mutating func get(_ key: Key) -> Value? {
        guard let i = index[key] else {
            counters.misses += 1
            return nil
        }
        counters.hits += 1
        switch policy {
        case .s3fifo:
            if nodes[Int(i)].freq < Self.maxFrequency { nodes[Int(i)].freq += 1 }
        case .lru:
            if lists[Int(Self.mainQueue)].head != i {
                unlink(i)
                pushHead(i, Self.mainQueue)
            }
        }
        return nodes[Int(i)].value
    }

    /// Whether `key` is held, without counting a lookup or touching its recency.
    func contains(_ key: Key) -> Bool { index[key] != nil }

    /// The value held under `key`, without counting a lookup or touching its recency.
    func peek(_ key: Key) -> Value? { index[key].flatMap { nodes[Int($0)].value } }

    /// Charges `key`'s entry `cost` bytes from now on (its value grew or shrank), evicting as
    /// needed; nothing happens when the key is not held. Returns whether it is still held.
    @discardableResult
    mutating func recharge(_ key: Key, cost: Int) -> Bool {
        precondition(cost >= 0, "cache entry cost must not be negative")
        guard let i = index[key] else { return false }
        guard cost <= capacity else {
            counters.rejections += 1
            unlink(i)
            release(i)
            return false
        }
        let q = Int(nodes[Int(i)].queue)
        lists[q].bytes += cost - nodes[Int(i)].cost
        nodes[Int(i)].cost = cost
        while bytes > capacity { evictOne() }
        return index[key] != nil
    }

    /// Stores `value` under `key`, charging `cost` bytes, evicting as needed. Returns false when the
    /// entry was not stored because `cost` exceeds the whole budget (an older value under the same
    /// key is dropped then, since it is stale).
    @discardableResult
    mutating func put(_ key: Key, _ value: Value, cost: Int) -> Bool {
        precondition(cost >= 0, "cache entry cost must not be negative")
        if let i = index[key] {
            if cost <= capacity {
                nodes[Int(i)].value = value
                counters.updates += 1
            }
            return recharge(key, cost: cost)
        }
        guard cost <= capacity else {
            counters.rejections += 1
            return false
        }
        while bytes + cost > capacity { evictOne() }
        let queue: UInt8
        switch policy {
        case .lru: queue = Self.mainQueue
        case .s3fifo: queue = ghost.remove(ghostHash(key)) ? Self.mainQueue : Self.smallQueue
        }
        let i = allocate(Node(key: key, value: value, cost: cost, freq: 0, queue: Self.noQueue, prev: -1, next: -1))
        pushHead(i, queue)
        index[key] = i
        counters.insertions += 1
        return true
    }

    /// Drops `key`; returns whether it was held.
    @discardableResult
    mutating func remove(_ key: Key) -> Bool {
        guard let i = index[key] else { return false }
        unlink(i)
        release(i)
        return true
    }

    /// Drops every entry and the ghost history; the counters stay.
    mutating func removeAll() {
        index.removeAll()
        nodes.removeAll()
        freeSlots.removeAll()
        lists = [List(), List()]
        ghost.removeAll()
    }

    // MARK: Eviction

    /// One eviction step; call only while something is held. Repeated calls always free bytes:
    /// a step either evicts an entry or moves small-queue entries to main (after which the small
    /// queue is empty or over its share no more, so the next step evicts from main).
    private mutating func evictOne() {
        precondition(count > 0, "evictOne on an empty cache")
        switch policy {
        case .lru:
            let t = lists[Int(Self.mainQueue)].tail
            unlink(t)
            evict(t)
        case .s3fifo:
            if lists[Int(Self.mainQueue)].bytes > mainCapacity || lists[Int(Self.smallQueue)].count == 0 {
                evictMain()
            } else {
                evictSmall()
            }
        }
    }

    /// S3-FIFO: the small queue's tail moves to main if it was hit while there, otherwise it is
    /// evicted and remembered in the ghost queue. Repeats until one entry has left the cache or the
    /// small queue is empty.
    private mutating func evictSmall() {
        while lists[Int(Self.smallQueue)].count > 0 {
            let t = lists[Int(Self.smallQueue)].tail
            unlink(t)
            if nodes[Int(t)].freq >= moveToMainThreshold {
                nodes[Int(t)].freq = 0
                pushHead(t, Self.mainQueue)
            } else {
                ghost.add(ghostHash(nodes[Int(t)].key!), cost: nodes[Int(t)].cost)
                evict(t)
                return
            }
        }
    }

    /// S3-FIFO: CLOCK over main with 2-bit counters: an entry hit since it last passed the tail is
    /// reinserted at the head with its counter decremented; the first one with a zero counter goes.
    private mutating func evictMain() {
        while lists[Int(Self.mainQueue)].count > 0 {
            let t = lists[Int(Self.mainQueue)].tail
            unlink(t)
            let f = nodes[Int(t)].freq
            if f > 0 {
                nodes[Int(t)].freq = min(f, Self.maxFrequency) - 1
                pushHead(t, Self.mainQueue)
            } else {
                evict(t)
                return
            }
        }
    }

    private mutating func evict(_ i: Int32) {
        counters.evictions += 1
        release(i)
    }

    // MARK: Slab and lists

    private mutating func allocate(_ node: Node) -> Int32 {
        if let i = freeSlots.popLast() {
            nodes[Int(i)] = node
            return i
        }
        precondition(nodes.count < Int(Int32.max), "cache slab full")
        nodes.append(node)
        return Int32(nodes.count - 1)
    }

    /// Frees an unlinked node's slot and index entry.
    private mutating func release(_ i: Int32) {
        if let key = nodes[Int(i)].key { index.removeValue(forKey: key) }
        nodes[Int(i)].key = nil
        nodes[Int(i)].value = nil
        nodes[Int(i)].queue = Self.noQueue
        freeSlots.append(i)
    }

    private mutating func pushHead(_ i: Int32, _ q: UInt8) {
        let oldHead = lists[Int(q)].head
        nodes[Int(i)].queue = q
        nodes[Int(i)].prev = -1
        nodes[Int(i)].next = oldHead
        if oldHead >= 0 { nodes[Int(oldHead)].prev = i } else { lists[Int(q)].tail = i }
        lists[Int(q)].head = i
        lists[Int(q)].count += 1
        lists[Int(q)].bytes += nodes[Int(i)].cost
    }

    private mutating func unlink(_ i: Int32) {
        let q = Int(nodes[Int(i)].queue)
        precondition(q != Int(Self.noQueue), "unlink of a node in no queue")
        let p = nodes[Int(i)].prev, n = nodes[Int(i)].next
        if p >= 0 { nodes[Int(p)].next = n } else { lists[q].head = n }
        if n >= 0 { nodes[Int(n)].prev = p } else { lists[q].tail = p }
        lists[q].count -= 1
        lists[q].bytes -= nodes[Int(i)].cost
        nodes[Int(i)].queue = Self.noQueue
        nodes[Int(i)].prev = -1
        nodes[Int(i)].next = -1
    }

    /// Checks the lists against the index and the byte counts (tests only; O(n)).
    func checkInvariants() -> Bool {
        var seen = 0
        var total = 0
        for q in 0..<2 {
            var i = lists[q].head
            var prev: Int32 = -1
            var n = 0
            var b = 0
            while i >= 0 {
                let node = nodes[Int(i)]
                guard node.queue == UInt8(q), node.prev == prev, let key = node.key, index[key] == i else { return false }
                n += 1
                b += node.cost
                prev = i
                i = node.next
            }
            guard lists[q].tail == prev, lists[q].count == n, lists[q].bytes == b else { return false }
            seen += n
            total += b
        }
        return seen == index.count && total <= capacity
    }
}

/// S3-FIFO's ghost queue: hashes of entries recently evicted from the small queue, bounded by the
/// bytes they used to cost, oldest forgotten first. A false positive (two keys with one hash) only
/// admits an entry to main a little early.
struct GhostQueue {
    let capacityBytes: Int
    private var ring: [(hash: UInt64, seq: UInt64, cost: Int)] = []
    private var head = 0
    /// hash → sequence number of its newest ring entry; older ring entries for it are stale.
    private var live: [UInt64: UInt64] = [:]
    private var nextSeq: UInt64 = 0
    private(set) var bytes = 0

    init(capacityBytes: Int) { self.capacityBytes = capacityBytes }

    var count: Int { live.count }

    mutating func add(_ hash: UInt64, cost: Int) {
        guard cost <= capacityBytes else { return }
        nextSeq += 1
        ring.append((hash, nextSeq, cost))
        live[hash] = nextSeq
        bytes += cost
        while bytes > capacityBytes { popOldest() }
    }

    /// Forgets `hash`; returns whether it was remembered.
    mutating func remove(_ hash: UInt64) -> Bool { live.removeValue(forKey: hash) != nil }

    mutating func removeAll() {
        ring.removeAll()
        head = 0
        live.removeAll()
        bytes = 0
    }

    private mutating func popOldest() {
        let e = ring[head]
        head += 1
        bytes -= e.cost
        if live[e.hash] == e.seq { live.removeValue(forKey: e.hash) }
        if head > 1024 && head * 2 > ring.count {
            ring.removeFirst(head)
            head = 0
        }
    }
}

extension CacheCore: Sendable where Key: Sendable, Value: Sendable {}
extension CacheCore.Node: Sendable where Key: Sendable, Value: Sendable {}
extension GhostQueue: Sendable {}
