import Synchronization
import SwerveInference

/// A thread-safe, byte-bounded cache split into shards, each a `CacheCore` behind its own mutex,
/// so that concurrent requests for different keys rarely wait on each other.
///
/// The budget is split evenly: each shard holds at most `capacityBytes / shardCount` bytes, so the
/// total never exceeds `capacityBytes`, and an entry larger than one shard's budget is not stored.
public final class ShardedCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    fileprivate final class Shard: Sendable {
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

    @inline(__always) fileprivate func shard(for key: Key) -> Shard {
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

/// A response cache entry: the outputs of one request, plus the encodings of them the server
/// has sent (one per wire form, e.g. typed and raw contents), so that a hit answers with bytes
/// ready to go. Encodings are charged to the cache budget when they are added.
public final class CachedOutputs: Sendable, Equatable {
    public let tensors: [Tensor]
    /// `valueBytes(of: tensors)`, computed once.
    public let tensorBytes: Int
    private let forms = Mutex<[(form: Int, bytes: [UInt8])]>([])

    public init(_ tensors: [Tensor], tensorBytes: Int? = nil) {
        self.tensors = tensors
        self.tensorBytes = tensorBytes ?? ResponseCache.valueBytes(of: tensors)
    }

    /// The encoding stored for `form`, if any.
    public func encoded(form: Int) -> [UInt8]? {
        forms.withLock { forms in
            for f in forms where f.form == form { return f.bytes }
            return nil
        }
    }

    /// Stores the encoding for `form` unless one is stored already or the encodings would then
    /// take more than `limit` bytes; returns the bytes of all stored encodings when it stored.
    func store(form: Int, _ bytes: [UInt8], limit: Int) -> Int? {
        forms.withLock { forms in
            if forms.contains(where: { $0.form == form }) { return nil }
            let total = forms.reduce(bytes.count) { $0 + $1.bytes.count }
            guard total <= limit else { return nil }
            forms.append((form, bytes))
            return total
        }
    }

    /// Entries compare by their outputs.
    public static func == (a: CachedOutputs, b: CachedOutputs) -> Bool { a.tensors == b.tensors }
}

/// The response cache of one model version: request keys to the model's outputs for them.
public typealias ResponseCache = ShardedCache<RequestKey, CachedOutputs>

extension ShardedCache where Key == RequestKey, Value == CachedOutputs {
    /// A response cache of at most `capacityBytes`, sharded and tracked by the keys' XXH64 hash, so
    /// that the same traffic meets the same evictions in every run. See `init(capacityBytes:…)`.
    public convenience init(budget capacityBytes: Int, policy: CachePolicy = .s3fifo, shards: Int? = nil) {
        self.init(capacityBytes: capacityBytes, policy: policy, shards: shards, stableHash: { $0.hash })
    }

    /// Bytes charged per entry on top of its key and value: the index slot, the slab node and the
    /// array headers. An estimate; it keeps many tiny entries from looking free.
    public static var entryOverheadBytes: Int { 160 }

    /// Bytes of `outputs` in memory: element bytes plus a fixed overhead per tensor (shape array,
    /// enum box) and per BYTES element (its array header).
    public static func valueBytes(of outputs: [Tensor]) -> Int {
        var total = 0
        for t in outputs {
            total += 64 + 8 * t.shape.count
            if case .bytes(let v) = t.data {
                total += v.reduce(0) { $0 + 32 + $1.count }
            } else {
                total += RequestKey.dataByteCount(t.data)
            }
        }
        return total
    }

    /// What an entry of `key` and a value of `valueBytes` bytes costs against the budget.
    public static func cost(key: RequestKey, valueBytes: Int) -> Int {
        key.byteCount + valueBytes + entryOverheadBytes
    }

    /// Stores the outputs of the request `key`. The entry costs the key's bytes, the value's bytes
    /// (`valueBytes`, computed from `outputs` when nil) and a fixed overhead.
    @discardableResult
    public func put(_ key: RequestKey, _ outputs: [Tensor], valueBytes: Int? = nil) -> Bool {
        let entry = CachedOutputs(outputs, tensorBytes: valueBytes)
        return put(key, entry, cost: Self.cost(key: key, valueBytes: entry.tensorBytes))
    }

    /// Adds the encoding `bytes` for `form` to `entry` and charges the entry for it, if `entry`
    /// is still the one held under `key` and the encoding fits in the entry's shard beside it
    /// (else the entry stays as it is and later hits encode again). Returns whether it stored.
    /// Checked and charged under the shard's lock, so concurrent hits charge exactly what is held.
    @discardableResult
    public func addEncoding(_ key: RequestKey, _ entry: CachedOutputs, form: Int, _ bytes: [UInt8]) -> Bool {
        let base = Self.cost(key: key, valueBytes: entry.tensorBytes)
        return shard(for: key).core.withLock { core in
            guard core.peek(key) === entry,
                  let encoded = entry.store(form: form, bytes, limit: shardCapacityBytes - base)
            else { return false }
            return core.recharge(key, cost: base + encoded)
        }
    }
}

/// Hands out response-cache budgets from one server-wide total: each model version may take up to
/// `perModelFraction` of the total, and never more than is left. Thread-safe.
public final class CacheBudget: Sendable {
    /// The server-wide byte budget for all response caches together.
    public let totalBytes: Int
    /// The largest share of `totalBytes` one model version may take.
    public let perModelFraction: Double
    private let grants = Mutex<[String: Int]>([:])

    public init(totalBytes: Int, perModelFraction: Double = 0.25) {
        precondition(totalBytes >= 0, "cache budget must not be negative")
        precondition(perModelFraction > 0 && perModelFraction <= 1, "perModelFraction must be in (0, 1]")
        self.totalBytes = totalBytes
        self.perModelFraction = perModelFraction
    }

    /// The budget granted to `owner` (e.g. "model:version"): its share, or what is left if less.
    /// Asking again for the same owner returns its existing grant. 0 means: run without a cache.
    public func grant(to owner: String) -> Int {
        grants.withLock { g in
            if let existing = g[owner] { return existing }
            let used = g.values.reduce(0, +)
            let share = Int(Double(totalBytes) * perModelFraction)
            let granted = max(0, min(share, totalBytes - used))
            g[owner] = granted
            return granted
        }
    }

    /// Returns `owner`'s budget to the pool (when its version unloads).
    public func release(_ owner: String) {
        _ = grants.withLock { $0.removeValue(forKey: owner) }
    }

    /// Bytes granted and not yet released.
    public var grantedBytes: Int { grants.withLock { $0.values.reduce(0, +) } }
}
