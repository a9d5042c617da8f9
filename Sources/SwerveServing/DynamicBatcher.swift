import Dispatch
import Foundation
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

/// One queued inference request: the inputs in the model's input order, all with `rows` rows.
final class InferJob: @unchecked Sendable {
    // Immutable after creation; handed from the submitting thread to one worker under the batcher's lock.
    let inputs: [Tensor]
    let rows: Int
    let isCancelled: @Sendable () -> Bool
    let completion: @Sendable (Result<Computed, ServingError>) -> Void

    init(inputs: [Tensor], rows: Int, isCancelled: @escaping @Sendable () -> Bool,
         completion: @escaping @Sendable (Result<Computed, ServingError>) -> Void) {
        self.inputs = inputs
        self.rows = rows
        self.isCancelled = isCancelled
        self.completion = completion
    }
}

@inline(__always) func monotonicNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

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

    init(model: CompiledModel, settings: ModelSettings, maxBatchSize: Int, statistics: VersionStatistics, modelName: String, version: Int) {
        self.model = model
        self.statistics = statistics
        self.core = BatcherCore(maxBatchSize: maxBatchSize,
                                maxQueueDelayNs: UInt64(settings.maxQueueDelayMicroseconds) * 1000,
                                maxQueueSize: settings.maxQueueSize)
        self.workerCount = settings.instanceCount
        self.label = "\(modelName):\(version)"
        let dims = [("model", modelName), ("version", String(version))]
        self.batchSizeRecorder = Recorder(label: "swerve_batch_size", dimensions: dims, aggregate: true)
        self.queueDepthGauge = Gauge(label: "swerve_queue_depth", dimensions: dims)
    }

    func start() {
        condition.lock()
        liveWorkers = workerCount
        condition.unlock()
        for i in 0..<workerCount {
            // Each worker makes its own executor (buffers) on its own thread.
            let thread = Thread { [self] in self.workerLoop(self.model.makeExecutor()) }
            thread.name = "swerve-worker \(label) #\(i)"
            thread.start()
        }
    }

    /// Queues a request; fails at once with UNAVAILABLE when the queue is full or the version is stopping.
    func submit(_ job: InferJob, deadlineNs: UInt64?) {
        condition.lock()
        if stopping {
            condition.unlock()
            job.completion(.failure(ServingError(.unavailable, "model \(label) is unloading")))
            return
        }
        let ok = core.enqueue(job, rows: job.rows, nowNs: monotonicNanos(), deadlineNs: deadlineNs)
        let depth = core.queuedRequests
        if ok { condition.signal() }
        condition.unlock()
        queueDepthGauge.record(depth)
        if !ok {
            job.completion(.failure(ServingError(.unavailable, "model \(label): queue is full (\(core.maxQueueSize) requests waiting); retry later")))
        }
    }

    func setPaused(_ value: Bool) {
        condition.lock()
        paused = value
        condition.broadcast()
        condition.unlock()
    }

    /// Stops taking requests, lets the workers finish everything queued, and waits for them.
    func drainAndStop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        let n = liveWorkers
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
                if !d.batch.isEmpty {
                    run(d.batch, executor)
                }
                condition.lock()
                if !d.batch.isEmpty { core.batchFinished() }
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

    private func run(_ items: [BatcherCore<InferJob>.Item], _ executor: ModelExecutor) {
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
        guard !jobs.isEmpty else { return }
        let totalRows = jobs.reduce(0) { $0 + $1.rows }
        let t1 = monotonicNanos()
        let results: [[Tensor]]
        let t2: UInt64
        do {
            // The requests' rows go straight into the executor's input buffers, one copy each, and
            // each request's rows of the outputs come straight out of its output buffers.
            let rows = try executor.compute(rowsOf: jobs.map(\.inputs))
            t2 = monotonicNanos()
            results = try executor.outputs(splitting: rows)
        } catch {
            let e = ServingError(.internal, "inference failed in \(label): \(error)")
            for j in jobs { j.completion(.failure(e)) }
            return
        }
        let t3 = monotonicNanos()
        // Only successful executions count (Triton: "successful inference executions").
        let stages = ExecutionTimes(inputNs: t1 - start, inferNs: t2 - t1, outputNs: t3 - t2)
        statistics.recordExecution(rows: totalRows, stages)
        batchSizeRecorder.record(totalRows)
        for (k, j) in jobs.enumerated() {
            var times = stages
            times.queueNs = queued[k]
            j.completion(.success(Computed(outputs: results[k], times: times)))
        }
    }
}
