import Atomics
import Logging
import Metrics
import SwerveInference
import SwerveRepository
import Synchronization

/// What statistics and metrics show about a version's serving paths.
public struct PathStatistics: Sendable, Equatable {
    public var mode: ServingMode
    /// The path new requests take now: "static", "cached" or "dynamic".
    public var activePath: String
    public var tableCells = 0
    public var tableBytes = 0
    public var tableBuildMs = 0
    public var tableLookups: UInt64 = 0
    /// Requests with a value outside the static domain, computed instead.
    public var tableFallbacks: UInt64 = 0
    public var cacheHits: UInt64 = 0
    public var cacheMisses: UInt64 = 0
    public var cacheEvictions: UInt64 = 0
    public var cacheBytes = 0
    public var cacheEntries = 0
    public var cacheCapacityBytes = 0
    public var coalesced: UInt64 = 0
    public var batcherRequests: UInt64 = 0
    public var pathSwitches = 0
    /// Distinct inputs in the last measured window (auto mode).
    public var cardinality: Double = 0
    /// Share of the last window's traffic on its top-k inputs (auto mode).
    public var peakedness: Double = 0
}

/// Answers cache hits with stored bytes: the server's encoding of a request's outputs, for one
/// wire form (say, typed or raw contents). The cache keeps one encoding per form per entry.
public protocol CachedResponseEncoder: Sendable {
    /// Which encoding this is; requests with equal keys and equal forms get equal bytes.
    var form: Int { get }
    /// Encodes outputs (from the cache) in this form.
    func encode(_ outputs: [Tensor]) -> [UInt8]
    /// Answers the request with bytes from `encode`, fresh or stored.
    func send(encoded: [UInt8])
}

/// Routes one model version's requests through the static table, the response cache with in-flight
/// coalescing, or straight to the batcher, as its `ServingMode` and (in `auto`) the measured
/// cardinality and peakedness of its traffic decide. Every path returns what the batched core
/// returns for the same inputs.
final class ServingPaths: Sendable {
    let mode: ServingMode
    let table: StaticTable?
    let tableBuildMs: Int
    let cache: ResponseCache?
    private let coalescer = InFlightCoalescer<RequestKey, Computed, ServingError>()
    /// The version's ModelStatistics, which table lookups and cache hits and misses update.
    private let modelStatistics: VersionStatistics
    /// Cache hits answered from stored bytes never reach the caller's outputs; their predictions
    /// are counted here.
    private let evidence: RolloutEvidence
    /// The auto-mode decision, used when `selects` (auto mode with a cache budget and no table).
    /// The auto decision and the costs it weighs (moving means of key building and cache
    /// lookups, measured on sampled requests).
    struct Selection {
        var selector: PathSelector
        var keyNs = MovingMean()
        var lookupNs = MovingMean()
        /// Encoding a computed response (sampled requests that had an encoder).
        var encodeNs = MovingMean()
    }
    private let selector = Mutex(Selection(selector: PathSelector(ServingPaths.selectorConfiguration)))
    private let selects: Bool
    private let requestCounter = ManagedAtomic<UInt64>(0)

    /// The sketches see one request in `sampleEvery`, so auto mode costs little while the cache is
    /// off (no key is built for the other requests); windows hold 4,096 sampled requests.
    static let sampleEvery: UInt64 = 4
    static let selectorConfiguration: PathSelector.Configuration = {
        var c = PathSelector.Configuration()
        c.window = SlidingWindowSketch.Configuration(length: .requests(4096))
        return c
    }()
    private let cacheActive: ManagedAtomic<Bool>
    private let counts = Mutex(Counts())
    private let metrics: PathMetrics

    struct Counts {
        var tableLookups: UInt64 = 0, tableFallbacks: UInt64 = 0
        var cacheHits: UInt64 = 0, cacheMisses: UInt64 = 0
        var coalesced: UInt64 = 0, batcher: UInt64 = 0
        var lastEvictions: UInt64 = 0
    }

    struct PathMetrics: Sendable {
        let tableLookups, cacheHits, cacheMisses, cacheEvictions, coalesced, switches: Counter
        let cacheBytes: Gauge
        let cacheOn: Gauge
        init(model: String, version: Int) {
            let d = [("model", model), ("version", String(version))]
            tableLookups = Counter(label: "swerve_static_table_lookups_total", dimensions: d)
            cacheHits = Counter(label: "swerve_cache_hits_total", dimensions: d)
            cacheMisses = Counter(label: "swerve_cache_misses_total", dimensions: d)
            cacheEvictions = Counter(label: "swerve_cache_evictions_total", dimensions: d)
            coalesced = Counter(label: "swerve_coalesced_requests_total", dimensions: d)
            switches = Counter(label: "swerve_path_switches_total", dimensions: d)
            cacheBytes = Gauge(label: "swerve_cache_bytes", dimensions: d)
            cacheOn = Gauge(label: "swerve_cache_enabled", dimensions: d)
        }
    }

    /// Whether a version in `mode` (with or without a static table) has a response cache at all.
    static func wantsCache(mode: ServingMode, hasTable: Bool) -> Bool {
        !hasTable && (mode == .cached || mode == .auto)
    }

    init(mode: ServingMode, table: StaticTable?, tableBuildMs: Int, cacheBytes: Int, model: String, version: Int,
         statistics: VersionStatistics, evidence: RolloutEvidence = RolloutEvidence()) {
        self.mode = mode
        self.evidence = evidence
        self.modelStatistics = statistics
        self.table = table
        self.tableBuildMs = tableBuildMs
        let wantsCache = Self.wantsCache(mode: mode, hasTable: table != nil) && cacheBytes > 0
        cache = wantsCache ? ResponseCache(budget: cacheBytes) : nil
        selects = mode == .auto && wantsCache
        cacheActive = ManagedAtomic(mode == .cached && wantsCache)
        metrics = PathMetrics(model: model, version: version)
        metrics.cacheOn.record(cacheActive.load(ordering: .relaxed) ? 1 : 0)
    }

    /// Serves from the table when every row is in its domain; otherwise returns false.
    ///
    /// ModelStatistics counts a lookup as one execution of `rows` rows whose compute_infer is the
    /// lookup (see `VersionStatisticsSnapshot` for why not as a cache hit).
    func serveFromTable(_ inputs: [Tensor], rows: Int, completion: @Sendable (Result<[Tensor], ServingError>) -> Void) -> Bool {
        guard let table else { return false }
        let start = monotonicNanos()
        guard let outputs = table.outputs(for: inputs) else {
            counts.withLock { $0.tableFallbacks += 1 }
            return false
        }
        let lookup = ExecutionTimes(inferNs: monotonicNanos() - start)
        modelStatistics.recordExecution(rows: rows, lookup)
        modelStatistics.recordComputed(lookup)
        counts.withLock { $0.tableLookups += 1 }
        metrics.tableLookups.increment()
        completion(.success(outputs))
        return true
    }

    /// Whether the cache path is on now.
    var cacheOn: Bool { cacheActive.load(ordering: .relaxed) }

    /// Whether this computed request's encoding is timed for the cost rule (auto mode, one in
    /// `encodeSampleEvery`: two clock reads and a lock on the selector).
    func sampleEncodeCost() -> Bool {
        selects && encodeCounter.loadThenWrappingIncrement(ordering: .relaxed) % Self.encodeSampleEvery == 0
    }
    private let encodeCounter = ManagedAtomic<UInt64>(0)
    static let encodeSampleEvery: UInt64 = 64

    /// Whether this request feeds the auto-mode sketches (one in `sampleEvery`).
    func sampleThisRequest() -> Bool {
        selects && requestCounter.loadThenWrappingIncrement(ordering: .relaxed) % Self.sampleEvery == 0
    }

    /// Feeds the auto-mode sketches; switches the cache path when the selector decides so.
    /// `keyNs`: what building this request's key took; `computeNs`: what computing it is
    /// measured to cost (nil before the batcher has measured it). The lookup's cost is the
    /// measured mean of the cache's lookups (on sampled requests).
    func observe(_ key: RequestKey, keyNs: UInt64 = 0, computeNs: Double? = nil) {
        let switched = selector.withLock { s -> Bool? in
            s.keyNs.add(Double(keyNs))
            if let computeNs {
                // A lookup's cost is known once the cache has run (a probe and a byte comparison,
                // small beside building the key, which hashes the same bytes).
                s.selector.costs = PathSelector.Costs(
                    computeNs: computeNs, keyNs: s.keyNs.value + s.lookupNs.value, encodeNs: s.encodeNs.value)
            }
            return s.selector.observe(key.hash)
        }
        if let on = switched {
            cacheActive.store(on, ordering: .relaxed)
            metrics.switches.increment()
            metrics.cacheOn.record(on ? 1 : 0)
        }
    }

    var usesKeys: Bool { cache != nil }

    /// The cache path: a verified hit answers at once; a miss joins (or leads) the in-flight
    /// computation of the same key, and the leader's result is stored if it succeeded.
    ///
    /// With `encoder`, a hit is answered with the entry's stored encoding of the encoder's form
    /// (made and stored on the first hit) instead of through `completion`.
    ///
    /// ModelStatistics: a hit counts in cache_hit (lookup to response bytes) and queue (0 ns); a
    /// miss in cache_miss (the lookup, and for the computing request also the insertion), then
    /// every caller the computation answers (leader and coalesced waiters) gets its queue and
    /// compute stages. `lookupStartNs` is when the request began building its key.
    func serveCached(_ key: RequestKey, lookupStartNs: UInt64, encoder: (any CachedResponseEncoder)?, measureLookup: Bool = false,
                     completion: @escaping @Sendable (Result<[Tensor], ServingError>) -> Void,
                     compute: (_ done: @escaping @Sendable (Result<Computed, ServingError>) -> Void) -> Void) {
        guard let cache else {
            return compute { [modelStatistics] r in
                if case .success(let c) = r { modelStatistics.recordComputed(c.times) }
                completion(r.map(\.outputs))
            }
        }
        let found: CachedOutputs?
        if measureLookup {
            let getStart = monotonicNanos()
            found = cache.get(key)
            let getNs = Double(monotonicNanos() - getStart)
            selector.withLock { $0.lookupNs.add(getNs) }
        } else {
            found = cache.get(key)
        }
        if let hit = found {
            counts.withLock { $0.cacheHits += 1 }
            metrics.cacheHits.increment()
            guard let encoder else {
                modelStatistics.recordCacheHit(ns: monotonicNanos() - lookupStartNs)
                return completion(.success(hit.tensors))
            }
            if let bytes = hit.encoded(form: encoder.form) {
                modelStatistics.recordCacheHit(ns: monotonicNanos() - lookupStartNs)
                evidence.recordPredictions(hit.tensors)
                return encoder.send(encoded: bytes)
            }
            let bytes = encoder.encode(hit.tensors)
            if cache.addEncoding(key, hit, form: encoder.form, bytes) { publishCacheGauges() }
            modelStatistics.recordCacheHit(ns: monotonicNanos() - lookupStartNs)
            evidence.recordPredictions(hit.tensors)
            encoder.send(encoded: bytes)
            return
        }
        let lookupNs = monotonicNanos() - lookupStartNs
        counts.withLock { $0.cacheMisses += 1 }
        metrics.cacheMisses.increment()
        let role = coalescer.join(key) { [modelStatistics] r in
            if case .success(let c) = r { modelStatistics.recordComputed(c.times) }
            completion(r.map(\.outputs))
        }
        switch role {
        case .waiter:
            modelStatistics.recordCacheMiss(ns: lookupNs)
            metrics.coalesced.increment()
        case .leader(let token):
            compute { result in
                var missNs = lookupNs
                if case .success(let c) = result {
                    let insertStart = monotonicNanos()
                    _ = cache.put(key, c.outputs)
                    missNs += monotonicNanos() - insertStart
                    self.publishCacheGauges()
                }
                self.modelStatistics.recordCacheMiss(ns: missNs)
                self.coalescer.complete(token, with: result)
            }
        }
    }

    /// Answers a computed request through `encoder`, timing the encoding for the cost rule (a
    /// cache hit with a stored encoding saves it). The answer is the one `completion` would have
    /// given (the cache-hit path answers the same way).
    func answerMeasuringEncode(_ outputs: [Tensor], _ encoder: any CachedResponseEncoder) {
        let start = monotonicNanos()
        let bytes = encoder.encode(outputs)
        let ns = Double(monotonicNanos() - start)
        selector.withLock { $0.encodeNs.add(ns) }
        evidence.recordPredictions(outputs)
        encoder.send(encoded: bytes)
    }

    func countBatcher() { counts.withLock { $0.batcher += 1 } }

    private func publishCacheGauges() {
        guard let cache else { return }
        let s = cache.stats
        metrics.cacheBytes.record(s.bytes)
        let delta: UInt64 = counts.withLock { c in
            let d = s.evictions >= c.lastEvictions ? s.evictions - c.lastEvictions : 0
            c.lastEvictions = s.evictions
            return d
        }
        if delta > 0 { metrics.cacheEvictions.increment(by: Int64(delta)) }
    }

    var statistics: PathStatistics {
        let c = counts.withLock { $0 }
        var p = PathStatistics(mode: mode, activePath: table != nil ? "static" : (cacheActive.load(ordering: .relaxed) ? "cached" : "dynamic"))
        if let table {
            p.tableCells = table.domain.cellCount
            p.tableBytes = table.outputs.reduce(0) { $0 + RequestKey.dataByteCount($1.data) }
            p.tableBuildMs = tableBuildMs
        }
        p.tableLookups = c.tableLookups
        p.tableFallbacks = c.tableFallbacks
        p.cacheHits = c.cacheHits
        p.cacheMisses = c.cacheMisses
        p.batcherRequests = c.batcher
        p.coalesced = coalescer.stats.coalesced
        if let cache {
            let s = cache.stats
            p.cacheEvictions = s.evictions
            p.cacheBytes = s.bytes
            p.cacheEntries = s.entries
            p.cacheCapacityBytes = s.capacityBytes
        }
        if selects {
            selector.withLock { s in
                p.pathSwitches = s.selector.switches
                p.cardinality = s.selector.cardinality
                p.peakedness = s.selector.peakedness
            }
        }
        return p
    }
}
