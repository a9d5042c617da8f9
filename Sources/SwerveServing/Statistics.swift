import Synchronization

/// Cumulative count and nanoseconds of one kind of event.
public struct DurationStat: Sendable, Equatable {
    public var count: UInt64 = 0
    public var ns: UInt64 = 0
    public init(count: UInt64 = 0, ns: UInt64 = 0) { self.count = count; self.ns = ns }
    mutating func add(_ ns: UInt64, count: UInt64 = 1) { self.count &+= count; self.ns &+= ns }
}

/// The stages of one model execution as one request saw them: how long it waited, then how long
/// the execution it took part in spent copying inputs in, running, and handing outputs back.
/// Every request in a batch gets the whole batch's compute durations (as in Triton).
public struct ExecutionTimes: Sendable, Equatable {
    public var queueNs: UInt64 = 0
    public var inputNs: UInt64 = 0
    public var inferNs: UInt64 = 0
    public var outputNs: UInt64 = 0
    public init(queueNs: UInt64 = 0, inputNs: UInt64 = 0, inferNs: UInt64 = 0, outputNs: UInt64 = 0) {
        self.queueNs = queueNs; self.inputNs = inputNs; self.inferNs = inferNs; self.outputNs = outputNs
    }
}

/// What ModelStatistics reports for one model version, with the meaning the comments of Triton's
/// `grpc_service.proto` give each field:
///
/// - `success`, `fail`: one per *request*, with its duration from the server holding the whole
///   request message to the answer being handed to the transport (a failure: to its status).
///   `success` includes cache hits and table lookups. A request whose model did not resolve
///   belongs to no version and is not counted.
/// - `queue`: one per successful request, *including cache hits* (whose queue time is 0: a hit
///   waits in no queue). perf_analyzer finds the version it measures by `queue.count` growing, so
///   every answered request must count here.
/// - `computeInput/Infer/Output`: one per successful request that was computed (not a cache hit),
///   each with the durations of the execution it took part in.
/// - `cacheHit`: response-cache hits, with the time to look the entry up and produce the response
///   bytes. `cacheMiss`: lookups that missed, with the lookup time plus, for the request that
///   computed the entry, the time to insert it.
/// - `inferenceCount`: rows inferred, summed over successful executions (a batch of 64 rows adds
///   64 whether it came as one request or 64); cache hits add nothing.
/// - `executionCount`: successful model executions (batches); cache hits add nothing.
/// - `batches`: per executed batch size (rows), that size's executions and compute durations, so
///   `executionCount == Σ batches[s].computeInfer.count` and `inferenceCount == Σ s × count`.
/// - `lastInferenceMs`: wall clock of the latest successful request (hits included).
///
/// Swerve's own paths map onto these as follows:
///
/// - **Static table** (Triton has no such path): a lookup counts as an *execution* of the model
///   whose `computeInfer` is the lookup time (input and output stages 0, queue 0): it adds to
///   `inferenceCount` (its rows), `executionCount`, `batches[rows]` and the compute stages, never
///   to `cacheHit`/`cacheMiss`. The table *is* the model, evaluated ahead of time over its whole
///   finite domain: there is no miss, no insertion and no response cache in the config, so
///   counting lookups as hits would report a 100% hit ratio of a cache that does not exist (and
///   perf_analyzer, which reads `response_cache.enable` from the config to decide whether to
///   print cache figures, would then warn about hit latency on a model without a cache and put
///   the lookup time under "overhead"). As executions, perf_analyzer shows them as
///   `Inference count`/`Execution count` and attributes the lookup time to "compute infer".
/// - **Response cache**: a hit is a Triton cache hit (success, queue, cacheHit); a miss adds to
///   `cacheMiss` and then is computed like any other request.
/// - **Coalesced requests** (a miss that joins the identical request already being computed):
///   they took part in that execution as requests in one batch do, so each gets its queue and
///   compute stages from it; the shared execution is counted once in `executionCount` and
///   `inferenceCount`.
public struct VersionStatisticsSnapshot: Sendable, Equatable {
    public struct Batch: Sendable, Equatable {
        public var batchSize: Int
        public var computeInput = DurationStat(), computeInfer = DurationStat(), computeOutput = DurationStat()
    }
    public var lastInferenceMs: UInt64 = 0
    public var inferenceCount: UInt64 = 0
    public var executionCount: UInt64 = 0
    public var success = DurationStat(), fail = DurationStat(), queue = DurationStat()
    public var computeInput = DurationStat(), computeInfer = DurationStat(), computeOutput = DurationStat()
    public var cacheHit = DurationStat(), cacheMiss = DurationStat()
    public var batches: [Int: Batch] = [:]
}

/// Thread-safe statistics of one model version, updated by the batcher's workers, the serving
/// paths and the server. See `VersionStatisticsSnapshot` for what each field counts.
public final class VersionStatistics: Sendable {
    private let state = Mutex(VersionStatisticsSnapshot())

    public init() {}

    public var snapshot: VersionStatisticsSnapshot { state.withLock { $0 } }

    /// One successful model execution (a batch of `rows` rows, or one table lookup).
    func recordExecution(rows: Int, _ t: ExecutionTimes) {
        state.withLock { s in
            s.executionCount &+= 1
            s.inferenceCount &+= UInt64(max(rows, 0))
            var b = s.batches[rows] ?? .init(batchSize: rows)
            b.computeInput.add(t.inputNs); b.computeInfer.add(t.inferNs); b.computeOutput.add(t.outputNs)
            s.batches[rows] = b
        }
    }

    /// One request answered by an execution: its queue time and the execution's compute stages.
    func recordComputed(_ t: ExecutionTimes) {
        state.withLock { s in
            s.queue.add(t.queueNs)
            s.computeInput.add(t.inputNs); s.computeInfer.add(t.inferNs); s.computeOutput.add(t.outputNs)
        }
    }

    /// `count` requests answered by one execution (a batch member, or a leader and its coalesced
    /// waiters), under one lock.
    func recordComputed(_ t: ExecutionTimes, count: UInt64) {
        guard count > 0 else { return }
        state.withLock { s in
            s.queue.add(t.queueNs &* count, count: count)
            s.computeInput.add(t.inputNs &* count, count: count)
            s.computeInfer.add(t.inferNs &* count, count: count)
            s.computeOutput.add(t.outputNs &* count, count: count)
        }
    }

    /// `count` requests answered by one execution with `stages`, whose queue waits sum to
    /// `queueTotalNs` (a batch's requests), under one lock.
    func recordComputed(_ stages: ExecutionTimes, queueTotalNs: UInt64, count: UInt64) {
        guard count > 0 else { return }
        state.withLock { s in
            s.queue.add(queueTotalNs, count: count)
            s.computeInput.add(stages.inputNs &* count, count: count)
            s.computeInfer.add(stages.inferNs &* count, count: count)
            s.computeOutput.add(stages.outputNs &* count, count: count)
        }
    }

    /// A response-cache hit that took `ns` to look up and answer; it waited in no queue.
    func recordCacheHit(ns: UInt64) {
        state.withLock { s in
            s.queue.add(0)
            s.cacheHit.add(ns)
        }
    }

    /// A response-cache lookup that missed (`ns`: the lookup, plus the insertion for the request
    /// that computed the entry).
    func recordCacheMiss(ns: UInt64) { state.withLock { $0.cacheMiss.add(ns) } }

    /// A request finished, successfully or not, `ns` after it arrived.
    public func recordRequest(success: Bool, ns: UInt64, nowMs: UInt64) {
        state.withLock { s in
            if success {
                s.success.add(ns)
                s.lastInferenceMs = max(s.lastInferenceMs, nowMs)
            } else {
                s.fail.add(ns)
            }
        }
    }
}
