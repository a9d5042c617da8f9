import Atomics
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Metrics
import SwerveInference
import SwerveRepository

/// What a worker hands a request it computed: its rows of the outputs, and the stages of the
/// execution as this request saw them (for ModelStatistics; the consumer records them, so that a
/// request that several callers share, see `ServingPaths.serveCached`, counts once per caller).
struct Computed: Sendable {
    var outputs: [Tensor]
    var times: ExecutionTimes
}

/// Who receives a computed request's answer, when that is an object already (the transport's
/// responder): a job holding it needs no closures, so a request allocates none for its answer.
public protocol InferReceiver: AnyObject, Sendable {
    /// Whether the caller gave up (checked before the request is computed).
    var isCancelled: Bool { get }
    /// The outputs in the model's output order, or why there are none; called once.
    func complete(_ result: Result<[Tensor], ServingError>)
}

/// A receiver made of two closures (`ServedModel.infer`'s closure form).
final class ClosureReceiver: InferReceiver {
    private let cancelled: @Sendable () -> Bool
    private let completion: @Sendable (Result<[Tensor], ServingError>) -> Void
    init(isCancelled: @escaping @Sendable () -> Bool, completion: @escaping @Sendable (Result<[Tensor], ServingError>) -> Void) {
        cancelled = isCancelled
        self.completion = completion
    }
    var isCancelled: Bool { cancelled() }
    func complete(_ result: Result<[Tensor], ServingError>) { completion(result) }
}

/// One queued inference request: the inputs in the model's input order, all with `rows` rows,
/// and who gets the answer: closures (which count the request's compute statistics themselves),
/// or a receiver (whose requests the batcher counts, a batch at a time, in `execute`).
final class InferJob: @unchecked Sendable {
    // Immutable after creation; handed from the submitting thread to one worker under the batcher's lock.
    let inputs: [Tensor]
    let rows: Int
    private let cancelledClosure: (@Sendable () -> Bool)?
    private let completionClosure: (@Sendable (Result<Computed, ServingError>) -> Void)?
    private let receiver: (any InferReceiver)?
    /// Set under the batcher's lock when queued: no request was queued and no worker busy, so
    /// its queue wait is the cost of the hop to a worker (`InlinePolicy`).
    var foundIdle = false

    init(inputs: [Tensor], rows: Int, isCancelled: @escaping @Sendable () -> Bool,
         completion: @escaping @Sendable (Result<Computed, ServingError>) -> Void) {
        self.inputs = inputs
        self.rows = rows
        cancelledClosure = isCancelled
        completionClosure = completion
        receiver = nil
    }

    /// A job that answers `receiver`; `execute` counts its execution's stages.
    init(inputs: [Tensor], rows: Int, receiver: any InferReceiver) {
        self.inputs = inputs
        self.rows = rows
        cancelledClosure = nil
        completionClosure = nil
        self.receiver = receiver
    }

    @inline(__always)
    func isCancelled() -> Bool {
        if let receiver { return receiver.isCancelled }
        return cancelledClosure!()
    }

    /// Whether the answer goes to a receiver (whose statistics the batch records in one go,
    /// `DynamicBatcher.execute`, before the answers leave).
    var answersReceiver: Bool { receiver != nil }

    /// The answer. A receiver gets the outputs alone: its statistics are counted by `execute`,
    /// the only place a job succeeds.
    func completion(_ result: Result<Computed, ServingError>) {
        guard let receiver else { return completionClosure!(result) }
        receiver.complete(result.map(\.outputs))
    }
}

/// Nanoseconds on the monotonic clock: the clock `DispatchTime.now().uptimeNanoseconds` (and so
/// `NIODeadline`, which request deadlines are) reads on Linux, read directly — through Dispatch it
/// is two calls more, and the serving path reads it a few times per request.
@inline(__always) public func monotonicNanos() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
}

/// CPU time of the calling thread: what an execution really cost, not counting the time the
/// thread waited for a core (on a busy machine a wall-clock figure is mostly that wait).
@inline(__always) func threadCPUNanos() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
}

/// Runs `BatcherCore`'s decisions on dedicated worker threads (never on the event loops). Each worker
/// owns a `ModelExecutor` with its own preallocated buffers, copies each request's rows straight into
/// them (one contiguous matrix per input, no intermediate concatenation), runs the model once, and
/// hands each request its own rows back.
final class DynamicBatcher: @unchecked Sendable {
    // All mutable state is guarded by `condition`.
    private let condition = NSCondition()
    private var core: BatcherCore<InferJob>
    private var stopping = false
    /// Workers take no new batch while paused (tests use it to queue requests deterministically).
    private var paused = false
    private var liveWorkers = 0
    private let finished = DispatchSemaphore(value: 0)
    private let workerCount: Int

    private let model: CompiledModel
    private let statistics: VersionStatistics
    private let label: String
    private let batchSizeRecorder: Recorder
    private let queueDepthGauge: Gauge

    /// Inline execution (see `InlinePolicy`): the decision, guarded by `condition`; requests
    /// running inline now; the event loops' executors.
    private var policy: InlinePolicy
    private var inlineRunning = 0
    /// The configured mode, readable without the lock (the policy is guarded by it).
    private let executionMode: ExecutionMode
    /// Counts executions to sample their CPU time (a system call) one in 8.
    private let cpuSample = ManagedAtomic<Int>(0)
    private let inlineExecutors: InlineExecutors
    private let inlineCounter: Counter
    private let inlineGauge: Gauge

    private let log: Logger

    init(model: CompiledModel, settings: ModelSettings, maxBatchSize: Int, statistics: VersionStatistics, modelName: String, version: Int,
         logger: Logger = Logger(label: "swerve")) {
        self.model = model
        self.log = logger
        var inlineConfiguration = InlinePolicy.Configuration()
        inlineConfiguration.maxRows = max(maxBatchSize, 1)
        self.policy = InlinePolicy(mode: settings.execution, configuration: inlineConfiguration)
        self.executionMode = settings.execution
        self.inlineExecutors = InlineExecutors(model: model)
        self.statistics = statistics
        self.core = BatcherCore(maxBatchSize: maxBatchSize,
                                maxQueueDelayNs: UInt64(settings.maxQueueDelayMicroseconds) * 1000,
                                maxQueueSize: settings.maxQueueSize)
        self.workerCount = settings.instanceCount
        self.label = "\(modelName):\(version)"
        let dims = [("model", modelName), ("version", String(version))]
        self.batchSizeRecorder = Recorder(label: "swerve_batch_size", dimensions: dims, aggregate: true)
        self.queueDepthGauge = Gauge(label: "swerve_queue_depth", dimensions: dims)
        self.inlineCounter = Counter(label: "swerve_inline_executions_total", dimensions: dims)
        self.inlineGauge = Gauge(label: "swerve_inline_active", dimensions: dims)
        inlineGauge.record(settings.execution == .inline ? 1 : 0)
    }

    /// What computing a request of `rows` rows is measured to cost: its rows at the measured cost
    /// per row, plus the hop to a worker and back unless it would run inline. Nil before any
    /// execution was measured.
    func estimatedRequestCostNs(rows: Int) -> Double? {
        condition.lock()
        defer { condition.unlock() }
        let perRow = policy.estimatedRowCostNs
        guard perRow > 0 else { return nil }
        return perRow * Double(rows) + (policy.inlineOn ? 0 : policy.hopNs)
    }

    /// Whether computing on the calling thread is allowed and wanted now: the policy says so, no
    /// batch is forming (nothing queued, no worker busy), the version is not stopping. When it
    /// returns true the caller must run the request and call `endInline`.
    private func beginInline(rows: Int) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        // Alone: nothing queued, no worker busy, no other request running inline. Requests that
        // overlap go to the workers, which batch them (at high concurrency batching amortizes
        // more than the hop costs).
        guard !stopping, !paused, core.queuedRequests == 0, core.busyWorkers == 0, inlineRunning == 0,
            policy.shouldInline(rows: rows, nowNs: monotonicNanos())
        else { return false }
        inlineRunning += 1
        return true
    }

    /// `requests` inline runs ended; `m`, when they were computed, feeds the policy with the
    /// execution's sampled thread CPU time. The stall rule looks at CPU time, not wall time: on a
    /// machine shared with other processes an event loop is often preempted mid-run, and that is
    /// no reason to leave inline execution for a while.
    private func endInline(_ requests: Int, _ m: Measured?) {
        condition.lock()
        if let m, let ns = m.computeNs {
            let before = policy.inlineOn
            policy.recordExecution(rows: m.rows, requests: m.requests, ns: ns)
            let stalled = policy.inlineFinished(ns: ns, nowNs: monotonicNanos())
            noteDecision(since: before, stalledNs: stalled ? ns : nil)
        }
        inlineRunning -= requests
        if stopping && inlineRunning == 0 { condition.broadcast() }
        condition.unlock()
    }

    /// Runs `job` on the calling thread with its own executor, as a one-request batch. Returns
    /// false (nothing done) when it should go to the workers.
    private func runInline(_ job: InferJob) -> Bool {
        guard beginInline(rows: job.rows) else { return false }
        guard let executor = inlineExecutors.forCurrentThread() else {
            endInline(1, nil)
            return false
        }
        let measured = execute([job], queued: nil, executor)
        if measured != nil { inlineCounter.increment() }
        endInline(1, measured)
        return true
    }

    func start() {
        condition.lock()
        liveWorkers = workerCount
        condition.unlock()
        for i in 0..<workerCount {
            // Each worker makes its own executor (buffers) on its own thread.
            let thread = Thread { [self] in
                nameCurrentThread("wk\(i) \(label)")  // "wk0 breast_canc" in top -H
                self.workerLoop(self.model.makeExecutor())
            }
            thread.start()
        }
    }

    /// Computes a request on the calling thread when inline execution says so (see
    /// `InlinePolicy`) — inside a burst (`InlineBurst`) together with the burst's other requests
    /// when it ends — else queues it; fails at once with UNAVAILABLE when the queue is full or the
    /// version is stopping. A request already past its deadline or cancelled is not computed.
    func submit(_ job: InferJob, deadlineNs: UInt64?) {
        if executionMode != .workers, !job.isCancelled(), deadlineNs.map({ $0 > monotonicNanos() }) ?? true {
            if let burst = InlineBurst.current {
                if deferToBurst(job, burst) {
                    burst.add(job, deadlineNs: deadlineNs, to: self)
                    return
                }
            } else if runInline(job) {
                return
            }
        }
        enqueue(job, deadlineNs: deadlineNs)
    }

    private func enqueue(_ job: InferJob, deadlineNs: UInt64?) {
        condition.lock()
        if stopping {
            condition.unlock()
            job.completion(.failure(ServingError(.unavailable, "model \(label) is unloading")))
            return
        }
        job.foundIdle = core.queuedRequests == 0 && core.busyWorkers == 0
        let ok = core.enqueue(job, rows: job.rows, nowNs: monotonicNanos(), deadlineNs: deadlineNs)
        let depth = core.queuedRequests
        if ok { condition.signal() }
        condition.unlock()
        queueDepthGauge.record(depth)
        if !ok {
            job.completion(.failure(ServingError(.unavailable, "model \(label): queue is full (\(core.maxQueueSize) requests waiting); retry later")))
        }
    }

    /// Whether `job` joins the burst's batch for this version: the policy would run it inline
    /// (without the "alone" rule: the burst is the batch) and the burst's rows stay within
    /// `maxRows` and, once costs are measured, within about four hops of computing, so one
    /// burst does not hold its event loop long. Counted as running inline until `runDeferred`.
    private func deferToBurst(_ job: InferJob, _ burst: InlineBurst) -> Bool {
        let rows = burst.rows(for: self) + job.rows
        condition.lock()
        defer { condition.unlock() }
        var limit = policy.configuration.maxRows
        if policy.mode == .auto, policy.hopNs > 0, policy.estimatedRowCostNs > 0 {
            limit = min(limit, max(1, Int(4 * policy.hopNs / policy.estimatedRowCostNs)))
        }
        guard !stopping, !paused, rows <= limit, policy.shouldInline(rows: job.rows, nowNs: monotonicNanos()) else { return false }
        inlineRunning += 1
        return true
    }

    /// Computes a burst's deferred requests for this version as one batch on the calling thread
    /// (the event loop that received them); to the workers if this thread may not have an
    /// executor.
    func runDeferred(_ entries: [InlineBurst.Deferred]) {
        guard let executor = inlineExecutors.forCurrentThread() else {
            endInline(entries.count, nil)
            for e in entries { enqueue(e.job, deadlineNs: e.deadlineNs) }
            return
        }
        let now = monotonicNanos()
        var jobs: [InferJob] = []
        jobs.reserveCapacity(entries.count)
        for e in entries {
            if e.job.isCancelled() {
                e.job.completion(.failure(ServingError(.cancelled, "request cancelled by the client")))
            } else if let d = e.deadlineNs, d <= now {
                e.job.completion(.failure(.deadlineExceeded))
            } else {
                jobs.append(e.job)
            }
        }
        let measured = jobs.isEmpty ? nil : execute(jobs, queued: nil, executor)
        if measured != nil { inlineCounter.increment() }
        endInline(entries.count, measured)
    }

    func setPaused(_ value: Bool) {
        condition.lock()
        paused = value
        condition.broadcast()
        condition.unlock()
    }

    /// Stops taking requests, lets the workers finish everything queued, and waits for them.
    func drainAndStop() {
        // Requests this thread deferred to its open burst count as running inline: run them now.
        InlineBurst.current?.flush(self)
        condition.lock()
        stopping = true
        condition.broadcast()
        let n = liveWorkers
        // Inline runs that began before `stopping` finish first; none begins after it.
        while inlineRunning > 0 { condition.wait() }
        condition.unlock()
        for _ in 0..<n { finished.wait() }
        queueDepthGauge.record(0)
    }

    private func workerLoop(_ executor: ModelExecutor) {
        condition.lock()
        while true {
            if paused && !stopping { condition.wait(); continue }
            let d = core.next(nowNs: monotonicNanos())
            let depth = core.queuedRequests
            if !d.batch.isEmpty || !d.expired.isEmpty {
                condition.unlock()
                queueDepthGauge.record(depth)
                for item in d.expired {
                    item.payload.completion(.failure(.deadlineExceeded))
                }
                var measured: Measured?
                if !d.batch.isEmpty {
                    measured = run(d.batch, executor)
                }
                condition.lock()
                if !d.batch.isEmpty { core.batchFinished() }
                if let measured { record(measured) }
                continue
            }
            if stopping && core.queuedRequests == 0 { break }
            if let wake = d.wakeAtNs {
                let now = monotonicNanos()
                if wake > now {
                    _ = condition.wait(until: Date(timeIntervalSinceNow: Double(wake - now) / 1e9))
                }
            } else {
                condition.wait()
            }
        }
        liveWorkers -= 1
        condition.unlock()
        finished.signal()
    }

    /// What a worker's execution tells the inline policy.
    private struct Measured {
        var rows: Int, requests: Int
        /// Sampled: nil for most executions.
        var computeNs: UInt64?
        /// The queue wait of a lone request that found the batcher idle.
        var hopNs: UInt64?
    }

    /// Whether this execution's CPU time is measured: one in 8 (it takes a system call).
    private func sampleCPU() -> Bool {
        cpuSample.loadThenWrappingIncrement(ordering: .relaxed) % 8 == 0
    }

    /// Feeds the policy (under the lock) and logs when its decision changes.
    private func record(_ m: Measured) {
        let before = policy.inlineOn
        if let ns = m.computeNs { policy.recordExecution(rows: m.rows, requests: m.requests, ns: ns) }
        if let hop = m.hopNs { policy.recordHop(ns: hop) }
        noteDecision(since: before)
    }

    /// When the policy changed its mind since `before` (under the lock), from a worker's
    /// execution or an inline one: the gauge and one log line saying why. `stalledNs`: an inline
    /// execution took that long and paused inline execution.
    private func noteDecision(since before: Bool, stalledNs: UInt64? = nil) {
        guard policy.inlineOn != before else { return }
        let p = policy
        inlineGauge.record(p.inlineOn ? 1 : 0)
        let why = if let stalledNs {
            "an inline execution took \(stalledNs / 1_000) µs, over \(Int(p.configuration.stallFactor))x the hop to a worker and back (\(Int(p.hopNs)) ns), so inline execution pauses for \(p.configuration.cooldownNs / 1_000_000) ms"
        } else {
            "a request row costs \(Int(p.estimatedRowCostNs)) ns, the hop to a worker and back \(Int(p.hopNs)) ns"
        }
        log.info("\(p.inlineOn ? "computing on the event loops" : "computing on the workers"): \(why)", metadata: ["model": "\(label)"])
    }

    @discardableResult
    private func run(_ items: [BatcherCore<InferJob>.Item], _ executor: ModelExecutor) -> Measured? {
        let start = monotonicNanos()
        var jobs: [InferJob] = []
        var queued: [UInt64] = []
        jobs.reserveCapacity(items.count)
        queued.reserveCapacity(items.count)
        for item in items {
            if item.payload.isCancelled() {
                item.payload.completion(.failure(ServingError(.cancelled, "request cancelled by the client")))
            } else {
                jobs.append(item.payload)
                queued.append(start >= item.enqueuedNs ? start - item.enqueuedNs : 0)
            }
        }
        guard !jobs.isEmpty else { return nil }
        guard var measured = execute(jobs, queued: queued, executor, since: start) else { return nil }
        measured.hopNs = jobs.count == 1 && items.count == 1 && jobs[0].foundIdle ? queued[0] : nil
        return measured
    }

    /// Computes `jobs` as one batch with `executor` and completes each (`queued`: each one's
    /// queue wait, for its statistics, nil when none waited (inline); `since`: when the batch began to be put together).
    private func execute(_ jobs: [InferJob], queued: [UInt64]?, _ executor: ModelExecutor, since start: UInt64? = nil) -> Measured? {
        let t1 = monotonicNanos()
        let start = start ?? t1
        let totalRows = jobs.reduce(0) { $0 + $1.rows }
        let cpu1 = sampleCPU() ? threadCPUNanos() : 0
        let results: [[Tensor]]
        let t2: UInt64
        let cpuCost: UInt64?
        do {
            // The requests' rows go straight into the executor's input buffers, one copy each, and
            // each request's rows of the outputs come straight out of its output buffers.
            let rows = try executor.compute(rowsOf: jobs.map(\.inputs))
            t2 = monotonicNanos()
            cpuCost = cpu1 == 0 ? nil : threadCPUNanos() - cpu1
            results = try executor.outputs(splitting: rows)
        } catch {
            let e = ServingError(.internal, "inference failed in \(label): \(error)")
            for j in jobs { j.completion(.failure(e)) }
            return nil
        }
        let t3 = monotonicNanos()
        // Only successful executions count (Triton: "successful inference executions").
        let stages = ExecutionTimes(inputNs: t1 - start, inferNs: t2 - t1, outputNs: t3 - t2)
        statistics.recordExecution(rows: totalRows, stages)
        batchSizeRecorder.record(totalRows)
        // The receivers' requests are counted under one lock for the batch, before any answer
        // leaves (a client reading statistics next sees its call); the others count their own.
        var receivers: UInt64 = 0
        var receiversQueueNs: UInt64 = 0
        for (k, j) in jobs.enumerated() where j.answersReceiver {
            receivers += 1
            receiversQueueNs &+= queued?[k] ?? 0
        }
        statistics.recordComputed(stages, queueTotalNs: receiversQueueNs, count: receivers)
        for (k, j) in jobs.enumerated() {
            var times = stages
            times.queueNs = queued?[k] ?? 0
            j.completion(.success(Computed(outputs: results[k], times: times)))
        }
        return Measured(rows: totalRows, requests: jobs.count, computeNs: cpuCost, hopNs: nil)
    }
}
