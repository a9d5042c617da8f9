import Foundation

/// Counts distinct values in a stream of 64-bit hashes in `2^precision` bytes (4 KiB at the
/// default precision 12, for a standard error of about 1.04 / sqrt(4096) = 1.6%).
///
/// The estimate is Ertl's improved estimator ("New cardinality estimation algorithms for
/// HyperLogLog sketches", 2017, algorithm 6): it corrects the classic estimator's bias over the
/// whole range without HLL++'s empirical tables, and for small cardinalities it reduces to linear
/// counting (its `sigma` term is the linear-counting correction for empty registers). With 64-bit
/// hashes no large-range correction is needed. `classicEstimate()` is the textbook estimator with
/// linear counting below 2.5m, kept for comparison.
///
/// Inputs pass through a bijective mixer first, so poorly distributed values (small integers)
/// are fine. Sketches of the same precision merge by register-wise maximum.
public struct HyperLogLog: Sendable, Equatable {
    /// log2 of the number of registers.
    public let precision: Int
    /// One register per bucket: the largest leading-zero rank seen there.
    public private(set) var registers: [UInt8]

    /// An empty sketch with `2^precision` registers, `precision` in 4...18.
    public init(precision: Int = 12) {
        precondition((4...18).contains(precision), "HyperLogLog precision must be in 4...18")
        self.precision = precision
        self.registers = [UInt8](repeating: 0, count: 1 << precision)
    }

    /// Adds one observation.
    @inline(__always)
    public mutating func add(_ hash: UInt64) {
        let x = Hash64.mix(hash)
        let index = Int(truncatingIfNeeded: x >> UInt64(64 - precision))
        let rest = x << UInt64(precision)
        let rank = UInt8(min(rest.leadingZeroBitCount, 64 - precision) + 1)
        if rank > registers[index] { registers[index] = rank }
    }

    /// Adds everything `other` has seen (same precision).
    public mutating func merge(_ other: HyperLogLog) {
        precondition(other.precision == precision, "cannot merge HyperLogLog sketches of precisions \(precision) and \(other.precision)")
        for i in registers.indices where other.registers[i] > registers[i] { registers[i] = other.registers[i] }
    }

    /// Forgets everything, keeping the storage.
    public mutating func reset() {
        registers.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    /// True before the first `add`.
    public var isEmpty: Bool { registers.allSatisfy { $0 == 0 } }

    /// The estimated number of distinct hashes added.
    public func estimate() -> Double {
        let m = Double(registers.count)
        let q = 64 - precision
        var histogram = [Int](repeating: 0, count: q + 2)
        for r in registers { histogram[Int(r)] += 1 }
        if histogram[0] == registers.count { return 0 }
        var z = m * Self.tau(1 - Double(histogram[q + 1]) / m)
        for k in stride(from: q, through: 1, by: -1) { z = 0.5 * (z + Double(histogram[k])) }
        z += m * Self.sigma(Double(histogram[0]) / m)
        let alphaInfinity = 1 / (2 * log(2.0))
        return alphaInfinity * m * m / z
    }

    /// The textbook estimate (Flajolet et al. 2007) with linear counting when it is below 2.5m and
    /// some register is still empty. Biased by a few percent just above 2.5m.
    public func classicEstimate() -> Double {
        let m = Double(registers.count)
        var sum = 0.0
        var zeros = 0
        for r in registers {
            sum += Double(sign: .plus, exponent: -Int(r), significand: 1)
            if r == 0 { zeros += 1 }
        }
        let alpha = 0.7213 / (1 + 1.079 / m)
        let raw = alpha * m * m / sum
        if raw <= 2.5 * m && zeros > 0 { return m * log(m / Double(zeros)) }
        return raw
    }

    private static func sigma(_ x0: Double) -> Double {
        if x0 == 1 { return .infinity }
        var x = x0, y = 1.0, z = x0, previous = 0.0
        repeat {
            x *= x
            previous = z
            z += x * y
            y += y
        } while z != previous
        return z
    }

    private static func tau(_ x0: Double) -> Double {
        if x0 == 0 || x0 == 1 { return 0 }
        var x = x0, y = 1.0, z = 1 - x0, previous = 0.0
        repeat {
            x = x.squareRoot()
            previous = z
            y *= 0.5
            z -= (1 - x) * (1 - x) * y
        } while z != previous
        return z / 3
    }
}

/// Finds the heavy hitters of a stream of 64-bit hashes with `capacity` counters (Metwally et al.,
/// "Efficient computation of frequent and top-k elements in data streams", 2005).
///
/// Every item with a true count above `total / capacity` is guaranteed to hold a counter. A
/// counter's `count` overestimates its item's true count by at most its `error`, so
/// `count - error` is a guaranteed lower bound. The counters sit in a min-heap, so an update is
/// O(log capacity).
public struct SpaceSaving: Sendable {
    /// One monitored item.
    public struct Counter: Sendable, Equatable {
        public var hash: UInt64
        /// Upper bound of the item's count.
        public var count: UInt64
        /// How much of `count` may belong to the items this counter replaced.
        public var error: UInt64
        /// Lower bound of the item's count.
        public var guaranteed: UInt64 { count - error }
    }

    /// The number of counters.
    public let capacity: Int
    private var heap: [Counter] = []
    private var position: [UInt64: Int] = [:]
    /// Observations added (with their weights).
    public private(set) var total: UInt64 = 0

    /// A summary with `capacity >= 1` counters.
    public init(capacity: Int = 256) {
        precondition(capacity >= 1, "SpaceSaving needs at least one counter")
        self.capacity = capacity
        heap.reserveCapacity(capacity)
        position.reserveCapacity(capacity)
    }

    /// Adds `weight` observations of `hash`.
    public mutating func add(_ hash: UInt64, weight: UInt64 = 1) {
        total += weight
        if let i = position[hash] {
            heap[i].count += weight
            siftDown(i)
        } else if heap.count < capacity {
            heap.append(Counter(hash: hash, count: weight, error: 0))
            position[hash] = heap.count - 1
            siftUp(heap.count - 1)
        } else {
            let evicted = heap[0]
            position.removeValue(forKey: evicted.hash)
            heap[0] = Counter(hash: hash, count: evicted.count + weight, error: evicted.count)
            position[hash] = 0
            siftDown(0)
        }
    }

    /// The `k` counters with the largest counts, largest first.
    public func top(_ k: Int) -> [Counter] {
        Array(heap.sorted { $0.count != $1.count ? $0.count > $1.count : $0.hash < $1.hash }.prefix(max(0, k)))
    }

    /// The share of all observations that certainly went to the `k` top items: the sum of their
    /// guaranteed counts over `total`. A lower bound (0 before any observation); on flat traffic
    /// it stays near 0, while the sum of raw counts would always approach 1.
    public func topShare(_ k: Int) -> Double {
        guard total > 0 else { return 0 }
        let sum = top(k).reduce(UInt64(0)) { $0 + $1.guaranteed }
        return Double(sum) / Double(total)
    }

    /// Forgets everything, keeping the storage.
    public mutating func reset() {
        heap.removeAll(keepingCapacity: true)
        position.removeAll(keepingCapacity: true)
        total = 0
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i].count < heap[parent].count else { break }
            swapAt(i, parent)
            i = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let n = heap.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < n && heap[l].count < heap[smallest].count { smallest = l }
            if r < n && heap[r].count < heap[smallest].count { smallest = r }
            if smallest == i { return }
            swapAt(i, smallest)
            i = smallest
        }
    }

    private mutating func swapAt(_ a: Int, _ b: Int) {
        heap.swapAt(a, b)
        position[heap[a].hash] = a
        position[heap[b].hash] = b
    }
}

/// What the sketches measured over one window of traffic.
public struct WindowSummary: Sendable, Equatable {
    /// Observations in the window.
    public var requests: UInt64
    /// Estimated distinct inputs in the window (HyperLogLog).
    public var distinct: Double
    /// Guaranteed share of the window's requests that went to its `topK` most frequent inputs.
    public var topShare: Double
    /// The k of `topShare`.
    public var topK: Int

    /// The share of the window's requests that repeated an input seen earlier in the window:
    /// what a cache holding every distinct input of the window would have hit, roughly.
    public var repeatRatio: Double {
        guard requests > 0 else { return 0 }
        return min(1, max(0, 1 - distinct / Double(requests)))
    }
}

/// Cardinality and heavy-hitter sketches over recent traffic: a current window being filled and
/// the last completed one, so that the figures follow changes in the traffic instead of averaging
/// over all of history. Windows are a number of requests or a span of (caller-supplied, monotonic)
/// time. A plain value: the caller serializes access.
public struct SlidingWindowSketch: Sendable {
    /// How long a window is.
    public enum Length: Sendable, Equatable {
        /// A window closes after this many observations.
        case requests(Int)
        /// A window closes at the first observation (or `advance`) this long after it opened.
        case nanoseconds(UInt64)
    }

    /// Sizes of the window and of the sketches.
    public struct Configuration: Sendable, Equatable {
        public var length: Length = .requests(10_000)
        /// HyperLogLog precision (registers = 2^precision bytes).
        public var precision: Int = 12
        /// Space-Saving counters; more counters than `topK` make the guaranteed counts of the top
        /// items tighter.
        public var counters: Int = 256
        /// How many top items `topShare` sums over.
        public var topK: Int = 64

        public init(length: Length = .requests(10_000), precision: Int = 12, counters: Int = 256, topK: Int = 64) {
            self.length = length
            self.precision = precision
            self.counters = counters
            self.topK = topK
        }
    }

    public let configuration: Configuration
    private var currentDistinct: HyperLogLog
    private var previousDistinct: HyperLogLog
    private var currentTop: SpaceSaving
    private var currentRequests: UInt64 = 0
    private var windowStartNs: UInt64?
    /// The last completed window, nil until one completes.
    public private(set) var lastWindow: WindowSummary?
    /// Windows completed so far.
    public private(set) var completedWindows = 0

    public init(_ configuration: Configuration = Configuration()) {
        precondition(configuration.topK >= 1 && configuration.topK <= configuration.counters, "topK must be in 1...counters")
        if case .requests(let n) = configuration.length { precondition(n >= 1, "a window needs at least one request") }
        self.configuration = configuration
        currentDistinct = HyperLogLog(precision: configuration.precision)
        previousDistinct = HyperLogLog(precision: configuration.precision)
        currentTop = SpaceSaving(capacity: configuration.counters)
    }

    /// Records one request's hash at `nowNs` (only read for time windows). Returns the summary of
    /// the window this observation completed (request windows) or closed by arriving after its end
    /// (time windows; the observation then opens the next window).
    @discardableResult
    public mutating func observe(_ hash: UInt64, nowNs: UInt64 = 0) -> WindowSummary? {
        var closed: WindowSummary? = nil
        if case .nanoseconds = configuration.length {
            closed = advance(toNs: nowNs)
            if windowStartNs == nil { windowStartNs = nowNs }
        }
        currentDistinct.add(hash)
        currentTop.add(hash)
        currentRequests += 1
        if case .requests(let n) = configuration.length, currentRequests >= UInt64(n) {
            closed = closeWindow()
        }
        return closed
    }

    /// Time windows: closes the current window if it has lasted its length by `nowNs`, returning its
    /// summary (possibly of zero requests). Idle time spanning several windows closes one window.
    @discardableResult
    public mutating func advance(toNs nowNs: UInt64) -> WindowSummary? {
        guard case .nanoseconds(let length) = configuration.length, let start = windowStartNs else { return nil }
        guard nowNs >= start, nowNs - start >= length else { return nil }
        let s = closeWindow()
        windowStartNs = nowNs
        return s
    }

    /// The figures of the window being filled.
    public var currentWindow: WindowSummary { summary() }

    /// Estimated distinct inputs over the last completed window and the current one together.
    public var recentDistinct: Double {
        var union = previousDistinct
        union.merge(currentDistinct)
        return union.estimate()
    }

    /// The heaviest items of the window being filled, largest first.
    public func currentTopItems(_ k: Int) -> [SpaceSaving.Counter] { currentTop.top(k) }

    private func summary() -> WindowSummary {
        WindowSummary(requests: currentRequests, distinct: currentDistinct.estimate(),
                      topShare: currentTop.topShare(configuration.topK), topK: configuration.topK)
    }

    private mutating func closeWindow() -> WindowSummary {
        let s = summary()
        lastWindow = s
        completedWindows += 1
        swap(&previousDistinct, &currentDistinct)
        currentDistinct.reset()
        currentTop.reset()
        currentRequests = 0
        return s
    }
}
