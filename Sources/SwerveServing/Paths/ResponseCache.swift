import Synchronization
import SwerveInference

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
