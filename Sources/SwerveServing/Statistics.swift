import Synchronization

/// Cumulative count and nanoseconds of one kind of event.
public struct DurationStat: Sendable, Equatable {
    public var count: UInt64 = 0
    public var ns: UInt64 = 0
    mutating func add(_ ns: UInt64, count: UInt64 = 1) { self.count += count; self.ns += ns }
}

/// What ModelStatistics reports for one model version (Triton's fields).
public struct VersionStatisticsSnapshot: Sendable, Equatable {
    public struct Batch: Sendable, Equatable {
        public var batchSize: Int
        public var computeInput = DurationStat(), computeInfer = DurationStat(), computeOutput = DurationStat()
    }
    public var lastInferenceMs: UInt64 = 0
    /// Rows inferred successfully.
    public var inferenceCount: UInt64 = 0
    /// Batches executed.
    public var executionCount: UInt64 = 0
    public var success = DurationStat(), fail = DurationStat(), queue = DurationStat()
    public var computeInput = DurationStat(), computeInfer = DurationStat(), computeOutput = DurationStat()
    public var batches: [Int: Batch] = [:]
}

/// Thread-safe statistics of one model version, updated by the batcher's workers and the server.
public final class VersionStatistics: Sendable {
    private let state = Mutex(VersionStatisticsSnapshot())

    public init() {}

    public var snapshot: VersionStatisticsSnapshot { state.withLock { $0 } }

    func recordBatch(size: Int, inputNs: UInt64, inferNs: UInt64, outputNs: UInt64) {
        state.withLock { s in
            s.executionCount += 1
            s.computeInput.add(inputNs); s.computeInfer.add(inferNs); s.computeOutput.add(outputNs)
            var b = s.batches[size] ?? .init(batchSize: size)
            b.computeInput.add(inputNs); b.computeInfer.add(inferNs); b.computeOutput.add(outputNs)
            s.batches[size] = b
        }
    }

    func recordQueue(ns: UInt64) { state.withLock { $0.queue.add(ns) } }

    /// A request finished: `rows` counts toward inference_count when it succeeded.
    public func recordRequest(success: Bool, rows: Int, ns: UInt64, nowMs: UInt64) {
        state.withLock { s in
            if success {
                s.success.add(ns)
                s.inferenceCount += UInt64(rows)
                s.lastInferenceMs = nowMs
            } else {
                s.fail.add(ns)
            }
        }
    }
}
