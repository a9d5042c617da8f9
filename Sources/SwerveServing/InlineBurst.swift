// Inline batching: the requests one read of a connection completed (a "burst", up to the client's
// concurrent streams) are computed together on the event loop at the burst's end, as one batch per
// model version, instead of one inline execution each or a hop to the workers.
#if canImport(Glibc)
import Glibc
#endif

/// The requests deferred during one burst on one thread. The transport runs each read's dispatch
/// of calls through `InlineBurst.run`; `DynamicBatcher.submit` defers the requests that would run
/// inline to the current burst (`current`), which hands them back per batcher when `run` returns.
/// Only the thread that opened a burst sees it (thread-local), so no locking.
public final class InlineBurst {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        precondition(pthread_key_create(&k, nil) == 0, "pthread_key_create failed")
        return k
    }()

    struct Deferred {
        let job: InferJob
        let deadlineNs: UInt64?
    }
    private var pending: [(batcher: DynamicBatcher, rows: Int, entries: [Deferred])] = []

    private init() {}

    /// Runs `body` on the calling thread as one burst: requests its calls submit that would run
    /// inline are computed when `body` returns — or when `body` calls the `flush` it is given —
    /// one batch per model version. Nested calls join the outer burst.
    public static func run(_ body: (_ flush: () -> Void) -> Void) {
        if let open = current {
            body { open.flushAll() }
            return
        }
        let burst = takeSpare() ?? InlineBurst()
        pthread_setspecific(key, Unmanaged.passUnretained(burst).toOpaque())
        body { burst.flushAll() }
        // Closed before the last batches run: whatever their completions submit goes the usual way.
        pthread_setspecific(key, nil)
        burst.flushAll()
        keepSpare(burst)
    }

    /// Each thread keeps its last burst (empty, its list's capacity kept) for the next: a burst
    /// per read was an object and a list allocated per request at one request per read.
    private static let spareKey: pthread_key_t = {
        var k = pthread_key_t()
        precondition(pthread_key_create(&k, { spare in
            if let spare { Unmanaged<InlineBurst>.fromOpaque(spare).release() }
        }) == 0, "pthread_key_create failed")
        return k
    }()

    private static func takeSpare() -> InlineBurst? {
        guard let spare = pthread_getspecific(spareKey) else { return nil }
        pthread_setspecific(spareKey, nil)
        return Unmanaged<InlineBurst>.fromOpaque(spare).takeRetainedValue()
    }

    private static func keepSpare(_ burst: InlineBurst) {
        guard burst.pending.isEmpty, pthread_getspecific(spareKey) == nil else { return }
        pthread_setspecific(spareKey, Unmanaged.passRetained(burst).toOpaque())
    }

    /// The calling thread's open burst, if any.
    static var current: InlineBurst? {
        pthread_getspecific(key).map { Unmanaged<InlineBurst>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Rows deferred to `batcher` so far in this burst.
    func rows(for batcher: DynamicBatcher) -> Int {
        pending.first { $0.batcher === batcher }?.rows ?? 0
    }

    func add(_ job: InferJob, deadlineNs: UInt64?, to batcher: DynamicBatcher) {
        if let i = pending.firstIndex(where: { $0.batcher === batcher }) {
            pending[i].rows += job.rows
            pending[i].entries.append(Deferred(job: job, deadlineNs: deadlineNs))
        } else {
            pending.append((batcher, job.rows, [Deferred(job: job, deadlineNs: deadlineNs)]))
        }
    }

    /// Runs what was deferred to `batcher` now (a batcher stopping inside the burst).
    func flush(_ batcher: DynamicBatcher) {
        guard let i = pending.firstIndex(where: { $0.batcher === batcher }) else { return }
        let entries = pending.remove(at: i).entries
        batcher.runDeferred(entries)
    }

    private func flushAll() {
        while !pending.isEmpty {
            let (batcher, _, entries) = pending.removeFirst()
            batcher.runDeferred(entries)
        }
    }
}
