/// A connection's open streams by HTTP/2 stream ID: an open-addressing table with linear probing
/// and backward-shift deletion. Every callback of a request looks its stream up (begin, headers,
/// data, end, response, close: about eight lookups per request); `Dictionary` hashes each key
/// with SipHash, this multiplies it by a per-table random odd number and keeps the top bits
/// (Fibonacci hashing), so a client cannot tell which stream IDs would collide (and a probe run
/// is never longer than the streams open at once, which the concurrent-stream limit bounds).
///
/// Its size follows the streams open at once (at most the advertised concurrent-stream limit
/// plus a few): it doubles past half full and, above `shrinkFloor` slots, halves when fewer than
/// an eighth are in use. Below the floor it keeps its size: a client that opens a burst of streams
/// and lets them all close (h2load -m 16, any batching client) would otherwise regrow and shrink
/// it with two array allocations on every burst (1.5% of the server's CPU at h2load 8×16).
struct StreamTable<Value: AnyObject> {
    private var keys: [Int32]
    private var values: [Value?]
    private var shift: UInt32
    private let multiplier: UInt32
    private(set) var count = 0

    private static var minimumCapacity: Int { 16 }
    /// 256 slots: 3 KiB per connection, up to 128 streams open without a resize.
    private static var shrinkFloor: Int { 256 }

    init() {
        keys = Array(repeating: 0, count: Self.minimumCapacity)
        values = Array(repeating: nil, count: Self.minimumCapacity)
        shift = UInt32(32 - Self.minimumCapacity.trailingZeroBitCount)
        multiplier = UInt32.random(in: 0...UInt32.max) | 1
    }

    var isEmpty: Bool { count == 0 }
    /// Slots (for tests of the resizing rule).
    var capacity: Int { keys.count }
    private var mask: Int { keys.count - 1 }

    @inline(__always)
    private func home(_ key: Int32) -> Int {
        Int((UInt32(bitPattern: key) &* multiplier) >> shift)
    }

    /// The slot holding `key`, or nil. Stream 0 is the connection, never a stream: it marks a
    /// free slot.
    @inline(__always)
    private func slot(of key: Int32) -> Int? {
        guard key != 0 else { return nil }
        var i = home(key)
        while true {
            let k = keys[i]
            if k == key { return i }
            if k == 0 { return nil }
            i = (i + 1) & mask
        }
    }

    subscript(key: Int32) -> Value? {
        get { slot(of: key).flatMap { values[$0] } }
        set {
            if let newValue { insert(key, newValue) } else { removeValue(forKey: key) }
        }
    }

    private mutating func insert(_ key: Int32, _ value: Value) {
        precondition(key != 0, "stream 0 is the connection")
        if let i = slot(of: key) {
            values[i] = value
            return
        }
        if (count + 1) * 2 > keys.count { resize(keys.count * 2) }
        var i = home(key)
        while keys[i] != 0 { i = (i + 1) & mask }
        keys[i] = key
        values[i] = value
        count += 1
    }

    @discardableResult
    mutating func removeValue(forKey key: Int32) -> Value? {
        guard var hole = slot(of: key) else { return nil }
        let removed = values[hole]
        keys[hole] = 0
        values[hole] = nil
        count -= 1
        // Backward shift: move later entries of the run into the hole when their home allows,
        // so lookups never need tombstones.
        var i = (hole + 1) & mask
        while keys[i] != 0 {
            let h = home(keys[i])
            // The entry at i may move to the hole when its home is not in (hole, i] (cyclically).
            let movable = hole <= i ? (h <= hole || h > i) : (h <= hole && h > i)
            if movable {
                keys[hole] = keys[i]
                values[hole] = values[i]
                keys[i] = 0
                values[i] = nil
                hole = i
            }
            i = (i + 1) & mask
        }
        if keys.count > Self.shrinkFloor && count * 8 < keys.count { resize(keys.count / 2) }
        return removed
    }

    private mutating func resize(_ capacity: Int) {
        let oldKeys = keys, oldValues = values
        keys = Array(repeating: 0, count: capacity)
        values = Array(repeating: nil, count: capacity)
        shift = UInt32(32 - capacity.trailingZeroBitCount)
        for (k, v) in zip(oldKeys, oldValues) where k != 0 {
            var i = home(k)
            while keys[i] != 0 { i = (i + 1) & mask }
            keys[i] = k
            values[i] = v
        }
    }

    /// The open streams, in no particular order.
    var allValues: [Value] { values.compactMap { $0 } }

    mutating func removeAll() {
        self = StreamTable()
    }
}
