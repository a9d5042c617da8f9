// Inline execution: a computed request runs on the event loop that received it, instead of going
// to a worker thread and back, when that is cheaper — measured, not configured.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SwerveInference
import SwerveRepository

/// An exponentially weighted moving mean; the first sample is taken as it is.
struct MovingMean: Sendable {
    private(set) var value: Double = 0
    private(set) var count = 0
    let weight: Double

    init(weight: Double = 0.05) { self.weight = weight }

    mutating func add(_ sample: Double) {
        value = count == 0 ? sample : value + weight * (sample - value)
        count += 1
    }
}

/// The decision, as a plain state machine: no clocks, no threads (times are monotonic
/// nanoseconds passed in; the caller serializes access).
///
/// Measured per version:
/// - the cost of a request computed alone, per row: an exponentially weighted mean of
///   execution time / rows over executions of one request (inline runs, and batcher runs that
///   held one request), with the batcher's multi-request executions as a fallback before any;
/// - the cost of the hop: the batcher's queue wait of requests that found it idle (the time from
///   handing a request to a worker until the worker starts it), doubled for the way back.
///
/// Rule (`auto`): run inline when the estimated cost of the request (rows × cost per row) is below
/// `onFraction` of the hop, and go back to the workers when it rises above `offFraction` of it
/// (hysteresis, so a cost near the threshold does not flap). Not before `minimumSamples` of
/// each have been measured. While inline, every `probeInterval`-th request still goes to the
/// workers so the hop and the cost stay measured, but no more than one each `probeSpacingNs`:
/// at tens of thousands of requests a second, one in 128 sent to the workers cost 4–19% of the
/// server's CPU per request in paired measurements (each wakes a worker, which competes with the
/// event loops for the cores, and answers across threads), and ten samples a second keep the
/// hop's moving mean current. An inline execution that takes longer than
/// `stallFactor` hops (a model whose cost grew, a slow first run) turns inline off for
/// `cooldownNs`. The caller adds the other bound: only when no batch is forming (the batcher's
/// queue is empty and no worker is busy), and only up to `maxRows` rows.
/// `inline` mode skips the cost test (the other bounds hold); `workers` never runs inline.
public struct InlinePolicy: Sendable {
    public struct Configuration: Sendable {
        public var onFraction = 0.5
        public var offFraction = 1.0
        public var minimumSamples = 16
        public var probeInterval = 128
        /// The least time between two probes.
        public var probeSpacingNs: UInt64 = 100_000_000
        public var stallFactor = 8.0
        public var cooldownNs: UInt64 = 1_000_000_000
        public var maxRows = 256
        /// Weight of a new sample in the moving means.
        public var smoothing = 0.05
        public init() {}
    }

    public let mode: ExecutionMode
    public let configuration: Configuration
    private var rowCost: MovingMean
    private var hop: MovingMean
    private var batchedRowCost: MovingMean
    /// Cost per row of executions holding one request, and how many were measured.
    public var rowCostNs: Double { rowCost.value }
    public var costSamples: Int { rowCost.count }
    /// The hop to a worker and back, and how many were measured.
    public var hopNs: Double { hop.value }
    public var hopSamples: Int { hop.count }
    /// Whether `auto` currently prefers inline (before the per-request bounds).
    public private(set) var inlineOn = false
    public private(set) var switches = 0
    private var cooldownUntilNs: UInt64 = 0
    private var counter = 0
    private var nextProbeNs: UInt64 = 0

    public init(mode: ExecutionMode, configuration: Configuration = Configuration()) {
        self.mode = mode
        self.configuration = configuration
        rowCost = MovingMean(weight: configuration.smoothing)
        hop = MovingMean(weight: configuration.smoothing)
        batchedRowCost = MovingMean(weight: configuration.smoothing)
    }

    /// One execution's time. `requests`: how many requests it held.
    public mutating func recordExecution(rows: Int, requests: Int, ns: UInt64) {
        guard rows > 0 else { return }
        let perRow = Double(ns) / Double(rows)
        if requests == 1 { rowCost.add(perRow) } else { batchedRowCost.add(perRow) }
        reconsider()
    }

    /// The queue wait of a request that found the batcher idle.
    public mutating func recordHop(ns: UInt64) {
        hop.add(2 * Double(ns))
        reconsider()
    }

    /// An inline execution finished after `ns`: far beyond the hop, inline pauses for a while.
    /// Returns whether it stalled (the cooldown began).
    @discardableResult
    public mutating func inlineFinished(ns: UInt64, nowNs: @autoclosure () -> UInt64) -> Bool {
        guard mode == .auto, hopSamples > 0, Double(ns) > configuration.stallFactor * max(hopNs, 1_000) else { return false }
        cooldownUntilNs = nowNs() + configuration.cooldownNs
        if inlineOn { inlineOn = false; switches += 1 }
        return true
    }

    /// The cost per row the rule uses: from lone executions, else from batched ones.
    public var estimatedRowCostNs: Double { costSamples > 0 ? rowCostNs : batchedRowCost.value }

    private mutating func reconsider() {
        guard mode == .auto, hopSamples >= configuration.minimumSamples,
            costSamples + batchedRowCost.count >= configuration.minimumSamples
        else { return }
        let cost = estimatedRowCostNs
        if inlineOn, cost > configuration.offFraction * hopNs {
            inlineOn = false
            switches += 1
        } else if !inlineOn, cost < configuration.onFraction * hopNs {
            inlineOn = true
            switches += 1
        }
    }

    /// Whether a request of `rows` rows should run inline (the caller still checks that no batch
    /// is forming). `nowNs` is read only during a cooldown and at a probe candidate (a clock read
    /// per request was ~0.4% of a one-row request's CPU).
    public mutating func shouldInline(rows: Int, nowNs: @autoclosure () -> UInt64) -> Bool {
        guard rows <= configuration.maxRows else { return false }
        switch mode {
        case .workers: return false
        case .inline: return true
        case .auto:
            if cooldownUntilNs != 0 {
                guard nowNs() >= cooldownUntilNs else { return false }
                cooldownUntilNs = 0
            }
            guard inlineOn,
                estimatedRowCostNs * Double(rows) < configuration.offFraction * hopNs
            else { return false }
            counter += 1
            guard counter % configuration.probeInterval == 0 else { return true }
            let now = nowNs()
            guard now >= nextProbeNs else { return true }
            nextProbeNs = now + configuration.probeSpacingNs
            return false
        }
    }
}

/// One executor per thread that runs inline work (the event loops), made on first use and kept
/// for the version's life. Bounded: past `limit` threads, requests go to the workers instead.
final class InlineExecutors: @unchecked Sendable {
    private let lock = NSLock()
    private var executors: [(thread: pthread_t, executor: ModelExecutor)] = []
    private let model: CompiledModel
    private let limit: Int

    init(model: CompiledModel, limit: Int = 16) {
        self.model = model
        self.limit = limit
    }

    /// The calling thread's executor, or nil when `limit` threads already have one.
    func forCurrentThread() -> ModelExecutor? {
        let me = pthread_self()
        lock.lock()
        defer { lock.unlock() }
        for e in executors where pthread_equal(e.thread, me) != 0 { return e.executor }
        guard executors.count < limit else { return nil }
        // Made under the lock: only the first request of each thread pays for it.
        let executor = model.makeExecutor()
        executors.append((me, executor))
        return executor
    }

    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return executors.count
    }
}
