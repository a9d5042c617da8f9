import Synchronization
import SwerveInference

/// A thread-safe, byte-bounded cache split into shards, each a `CacheCore` behind its own mutex,
/// so that concurrent requests for different keys rarely wait on each other.
///
/// The budget is split evenly: each shard holds at most `capacityBytes / shardCount` bytes, so the
/// total never exceeds `capacityBytes`, and an entry larger than one shard's budget is not stored.
public final class ShardedCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    /// One shard: a `CacheCore` behind its own mutex (internal so that specializations such as
    /// the response cache can charge an entry under its shard's lock).
    final class Shard: Sendable {
        let core: Mutex<CacheCore<Key, Value>>
        init(_ core: CacheCore<Key, Value>) { self.core = Mutex(core) }
    }

    private let shards: [Shard]
    private let shardMask: Int
    private let stableHash: @Sendable (Key) -> UInt64
    /// The total byte budget (the sum of the shards' budgets; at most what was asked for).
    public let capacityBytes: Int
    /// Each shard's budget; also the largest entry that can be stored.
    public let shardCapacityBytes: Int
    public let policy: CachePolicy

    /// A cache of at most `capacityBytes`. `shards` (rounded down to a power of two) defaults to as
    /// many as keep each shard at 1 MiB or more, up to 16: small budgets stay in one shard so that
    /// larger entries still fit. `stableHash` picks a key's shard and names it in the ghost queue;
    /// the default, `hashValue`, is seeded per process, so pass a stable hash (as `ResponseCache`'s
    /// `init(budget:)` does) when runs must be reproducible.
    public init(capacityBytes: Int, policy: CachePolicy = .s3fifo, shards: Int? = nil,
                stableHash: @escaping @Sendable (Key) -> UInt64 = { UInt64(bitPattern: Int64($0.hashValue)) }) {
        precondition(capacityBytes >= 0, "cache budget must not be negative")
        let wanted = max(1, min(shards ?? min(16, capacityBytes / (1 << 20)), 1 << 12))
        var n = 1
        while n * 2 <= wanted { n *= 2 }
        let per = capacityBytes / n
        self.shards = (0..<n).map { _ in Shard(CacheCore(capacity: per, policy: policy, ghostHash: stableHash)) }
        self.stableHash = stableHash
        self.shardMask = n - 1
        self.capacityBytes = per * n
        self.shardCapacityBytes = per
        self.policy = policy
    }

    /// The number of shards.
    public var shardCount: Int { shards.count }

    @inline(__always) func shard(for key: Key) -> Shard {
        // Mix the hash so that keys whose hashes differ only in high bits spread too.
        shards[Int(truncatingIfNeeded: Hash64.mix(stableHash(key))) & shardMask]
    }

    /// The value stored under `key` (a hit, which also counts toward keeping it), or nil (a miss).
    public func get(_ key: Key) -> Value? {
        shard(for: key).core.withLock { $0.get(key) }
    }

    /// Stores `value` under `key`, charging `cost` bytes. Returns false when the entry is larger
    /// than a shard's budget and was not stored.
    @discardableResult
    public func put(_ key: Key, _ value: Value, cost: Int) -> Bool {
        shard(for: key).core.withLock { $0.put(key, value, cost: cost) }
    }

    /// Charges `key`'s entry `cost` bytes from now on; no-op when it is not held.
    @discardableResult
    public func recharge(_ key: Key, cost: Int) -> Bool {
        shard(for: key).core.withLock { $0.recharge(key, cost: cost) }
    }

    /// Drops `key`; returns whether it was held.
    @discardableResult
    public func remove(_ key: Key) -> Bool {
        shard(for: key).core.withLock { $0.remove(key) }
    }

    /// Drops every entry (for example when a model version is unloaded). The counters stay.
    public func removeAll() {
        for s in shards { s.core.withLock { $0.removeAll() } }
    }

    /// The counters of all shards, summed. Each shard is read under its lock; the sum is not one
    /// atomic snapshot across shards.
    public var stats: CacheStats {
        shards.reduce(CacheStats()) { sum, s in sum + s.core.withLock { $0.stats } }
    }

    /// Checks every shard's internal structure and budget (tests only).
    func checkInvariants() -> Bool {
        shards.allSatisfy { s in s.core.withLock { $0.checkInvariants() && $0.bytes <= shardCapacityBytes } }
    }
}
