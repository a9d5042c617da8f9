/// The dynamic batcher's decisions as a plain state machine: no threads, no clocks (times are
/// monotonic nanoseconds passed in), so every rule is testable on its own. `DynamicBatcher` carries
/// the decisions out on worker threads.
///
/// Rules:
/// - A request's rows stay together: batches are whole requests taken from the head of the queue
///   (first come, first served) while their rows fit `maxBatchSize`.
/// - No added delay when the model is idle: if no other worker is running a batch, whatever is
///   queued runs at once. Batches form naturally while workers are busy.
/// - When another worker is busy, a free worker holds a partial batch open for at most
///   `maxQueueDelay` after its oldest request arrived, then runs it; a full batch runs at once.
/// - `maxBatchSize == 0` (a model without a batch dimension): one request per execution.
/// - The queue holds at most `maxQueueSize` requests; more are refused (UNAVAILABLE upstream).
/// - Requests whose deadline has passed are handed back as expired instead of being computed.
public struct BatcherCore<Payload> {
    public struct Item {
        public var payload: Payload
        public var rows: Int
        public var enqueuedNs: UInt64
        public var deadlineNs: UInt64?
    }

    public struct Decision {
        /// Requests to run now as one batch (possibly empty).
        public var batch: [Item] = []
        /// Requests whose deadline passed while queued.
        public var expired: [Item] = []
        /// When `batch` is empty: wake at this time to look again (nil: wait for a new request).
        public var wakeAtNs: UInt64?
    }

    public let maxBatchSize: Int
    public let maxQueueDelayNs: UInt64
    public let maxQueueSize: Int

    private var queue: [Item?] = []
    private var head = 0
    public private(set) var queuedRows = 0
    /// Workers currently running a batch.
    public private(set) var busyWorkers = 0

    public init(maxBatchSize: Int, maxQueueDelayNs: UInt64, maxQueueSize: Int) {
        self.maxBatchSize = maxBatchSize
        self.maxQueueDelayNs = maxQueueDelayNs
        self.maxQueueSize = max(1, maxQueueSize)
    }

    public var queuedRequests: Int { queue.count - head }

    /// Adds a request; false when the queue is full.
    public mutating func enqueue(_ payload: Payload, rows: Int, nowNs: UInt64, deadlineNs: UInt64?) -> Bool {
        guard queuedRequests < maxQueueSize else { return false }
        queue.append(Item(payload: payload, rows: rows, enqueuedNs: nowNs, deadlineNs: deadlineNs))
        queuedRows += rows
        return true
    }

    /// Called by a free worker. When the decision holds a batch, that worker counts as busy until `batchFinished()`.
    public mutating func next(nowNs: UInt64) -> Decision {
        var d = Decision()
        // Expired requests at the head are dropped first, so they never hold a batch open.
        while let first = peek(), let dl = first.deadlineNs, dl <= nowNs {
            d.expired.append(pop())
        }
        guard let oldest = peek() else { return d }

        var rows = 0
        var count = 0
        var full = maxBatchSize == 0
        var i = head
        while i < queue.count, let item = queue[i] {
            if maxBatchSize == 0 { count = 1; rows = item.rows; break }
            if count > 0 && rows + item.rows > maxBatchSize { full = true; break }
            rows += item.rows
            count += 1
            i += 1
        }
        if rows >= maxBatchSize { full = true }

        let waited = nowNs >= oldest.enqueuedNs ? nowNs - oldest.enqueuedNs : 0
        if full || busyWorkers == 0 || waited >= maxQueueDelayNs {
            for _ in 0..<count {
                let item = pop()
                if let dl = item.deadlineNs, dl <= nowNs { d.expired.append(item) } else { d.batch.append(item) }
            }
            if !d.batch.isEmpty { busyWorkers += 1 }
        } else {
            d.wakeAtNs = oldest.enqueuedNs + maxQueueDelayNs
        }
        return d
    }

    /// A worker finished the batch it was given.
    public mutating func batchFinished() {
        precondition(busyWorkers > 0, "batchFinished without a running batch")
        busyWorkers -= 1
    }

    /// Removes every queued request (used when a version is unloaded without draining).
    public mutating func removeAll() -> [Item] {
        var out: [Item] = []
        while peek() != nil { out.append(pop()) }
        return out
    }

    private func peek() -> Item? { head < queue.count ? queue[head] : nil }

    private mutating func pop() -> Item {
        let item = queue[head]!
        queue[head] = nil
        head += 1
        queuedRows -= item.rows
        if head > 64 && head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
        return item
    }
}
