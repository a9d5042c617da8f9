import Foundation
import Logging
import Metrics
import SwerveInference
import SwerveRepository
import Synchronization

/// One row of the repository index: a model version (or a model, when `version` is empty) and its state.
public struct ModelIndexEntry: Sendable, Equatable {
    public enum State: String, Sendable { case ready = "READY", loading = "LOADING", unavailable = "UNAVAILABLE", unloading = "UNLOADING" }
    public var name: String
    public var version: String
    public var state: State
    public var reason: String
}

/// Owns every served model version: loads them from the repository by their version policy, swaps
/// versions without dropping requests (the new one is compiled and warmed before it takes traffic;
/// the old one drains its queue before it stops), and resolves a request's model and version.
public final class ModelManager: Sendable {
    enum Slot: Sendable {
        case loading
        case ready(ServedModel)
        case failed(String)
    }

    struct Entry: Sendable {
        var versions: [Int: Slot] = [:]

        /// The highest ready version, if any.
        var latestReady: ServedModel? {
            var best: ServedModel?
            for (v, slot) in versions {
                if case .ready(let m) = slot, v > (best?.version ?? Int.min) { best = m }
            }
            return best
        }
        /// A model-level problem (bad config.json, no versions); versions already serving keep serving.
        var error: String?
        var policy: VersionPolicy = .latest(1)
        /// False after RepositoryModelUnload: the model stays out until loaded again.
        var loaded = true
        /// The model's labels.json as last loaded (nil: none), and why the last read failed.
        var labels: ModelLabels?
        var labelsProblem: String?

        private func readyModel(_ v: Int?) -> ServedModel? {
            guard let v, case .ready(let m) = versions[v] else { return nil }
            return m
        }

        /// The version unversioned requests get when they are not the canary's: the stable label
        /// once it is ready here. Before that (or without labels), so that a canary never takes all
        /// traffic because stable is still loading: its predecessor (`previousStable`, kept loaded
        /// for this), then the highest ready version that is not the canary.
        var stable: ServedModel? {
            if let m = readyModel(labels?.stable) { return m }
            if let m = readyModel(labels?.previousStable), m.version != labels?.canary { return m }
            var best: ServedModel?
            for (v, slot) in versions where v != labels?.canary {
                if case .ready(let m) = slot, v > (best?.version ?? Int.min) { best = m }
            }
            return best ?? latestReady
        }

        /// The canary as this replica applies it: set, ready here, and not the stable version.
        var canary: ServedModel? {
            guard let m = readyModel(labels?.canary), m.version != stable?.version else { return nil }
            return m
        }

        var route: Route? {
            guard let stable else { return nil }
            guard let canary, let percent = labels?.canaryPercent, percent > 0 else { return Route(stable: stable, canary: nil, threshold: 0) }
            return Route(stable: stable, canary: canary, threshold: Route.threshold(percent: percent))
        }
    }

    /// Where a model's unversioned requests go: `stable`, or `canary` for requests whose route
    /// hash falls under `threshold` (the canary share of the 53-bit hash space).
    struct Route: Sendable {
        let stable: ServedModel
        let canary: ServedModel?
        let threshold: UInt64

        static func threshold(percent: Double) -> UInt64 {
            UInt64((min(100, max(0, percent)) / 100 * 9_007_199_254_740_992).rounded(.down))
        }

        @inline(__always) func pick(_ hash: () -> UInt64) -> ServedModel {
            guard let canary else { return stable }
            return hash() >> 11 < threshold ? canary : stable
        }
    }

    public let repository: ModelRepository
    private let logger: Logger
    private let state = Mutex(Models())

    /// Every model's entry, plus the version a request without one gets, kept in step on every
    /// change so the request path finds it with one lookup.
    struct Models: Sendable {
        private(set) var entries: [String: Entry] = [:] {
            didSet {
                defaultsByNameHash = entries.compactMap { name, e in
                    e.loaded ? e.route.map { (hash: Models.nameHash(name), name: name, route: $0) } : nil
                }.sorted { $0.hash < $1.hash }
            }
        }
        /// Loaded models' routes for unversioned requests, sorted by a hash of the name's UTF-8
        /// (`nameHash`): a request's name, which arrives as bytes, needs no String (a name over 15
        /// bytes would be allocated), and a binary search finds it (a dictionary hashed the hash
        /// again).
        private(set) var defaultsByNameHash: [(hash: UInt64, name: String, route: Route)] = []

        private static let nameSeed: UInt64 = 0x4E41_4D45  // "NAME"

        static func nameHash(_ name: String) -> UInt64 {
            var name = name
            return name.withUTF8 { Hash64.xxh64(UnsafeRawBufferPointer($0), seed: nameSeed) }
        }

        /// The unversioned route of the model named `name`, if loaded.
        func defaultRoute(_ name: String) -> Route? {
            var name = name
            return name.withUTF8 { defaultRoute(nameBytes: UnsafeRawBufferPointer($0)) }
        }

        /// The unversioned route of the model named by `name` (UTF-8), if loaded.
        func defaultRoute(nameBytes name: UnsafeRawBufferPointer) -> Route? {
            let hash = Hash64.xxh64(name, seed: Self.nameSeed)
            return defaultsByNameHash.withUnsafeBufferPointer { table in
                var lo = 0
                var hi = table.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if table[mid].hash < hash { lo = mid + 1 } else { hi = mid }
                }
                // Names whose hashes collide sit side by side.
                while lo < table.count, table[lo].hash == hash {
                    let own = table[lo].name.utf8
                    if own.count == name.count {
                        let equal = own.withContiguousStorageIfAvailable { own in
                            own.count == 0 || memcmp(own.baseAddress!, name.baseAddress!, own.count) == 0
                        } ?? own.elementsEqual(name)
                        if equal { return table[lo].route }
                    }
                    lo += 1
                }
                return nil
            }
        }
        /// Set by `shutdown()`: nothing is published any more; loads finishing later retire what they made.
        var closed = false
        /// Models with a load that timed out and was abandoned but whose thread has not returned yet.
        var abandoned: Set<String> = []

        subscript(name: String) -> Entry? {
            get { entries[name] }
            set { entries[name] = newValue }
        }
        subscript(name: String, default value: @autoclosure () -> Entry) -> Entry {
            get { entries[name] ?? value() }
            set { entries[name] = newValue }
        }
        var values: Dictionary<String, Entry>.Values { entries.values }
    }

    /// How models are read and loaded.
    public struct LoadOptions: Sendable {
        /// The most bytes of a model.onnx read (`--max-model-bytes`); a larger file fails its
        /// version's load, naming the file and the limit, without being read.
        public var maxModelBytes = CompiledModel.defaultMaxFileBytes
        /// How long one model's load (reading, compiling, warming up and building the static table
        /// of every version it loads) may take (`--model-load-timeout`). Past it the load is
        /// abandoned: its versions are reported failed, and whatever it produces later is
        /// discarded, never installed.
        public var loadTimeout: Duration = .seconds(600)
        /// Models loaded at once by `loadAll` and `load(models:)`.
        public var parallelLoads = max(2, ProcessInfo.processInfo.activeProcessorCount)

        public init() {}
    }

    public let options: LoadOptions

    /// Everything one version's load needs. The test seam `loader` receives it.
    struct VersionLoad: Sendable {
        var name: String
        var version: Int
        var file: URL
        var settings: ModelSettings
        var lineage: Lineage?
        var reference: ReferenceStatistics? = nil
        var maxModelBytes: Int
        var cacheBytes: @Sendable () -> Int
        var logger: Logger
    }

    /// Builds a served version: reads, compiles, warms up (the real one is `ServedModel.init`).
    /// Tests replace it to make a load slow or fail on cue.
    typealias VersionLoader = @Sendable (VersionLoad) throws -> ServedModel

    static let defaultLoader: VersionLoader = { r in
        try ServedModel(name: r.name, version: r.version, file: r.file, settings: r.settings, lineage: r.lineage,
                        reference: r.reference, maxModelBytes: r.maxModelBytes, cacheBytes: r.cacheBytes, logger: r.logger)
    }

    private let loader: VersionLoader
    /// Serializes each model's own loads and unloads; different models never wait for each other.
    private let gates = ModelGates()
    private let loadedGauge = Gauge(label: "swerve_models_loaded")
    private let abandonedGauge = Gauge(label: "swerve_model_loads_abandoned")

    /// Hands each loaded version its response cache budget out of the server-wide total.
    public let cacheBudget: CacheBudget

    public convenience init(repository: ModelRepository, logger: Logger,
                            cacheBudget: CacheBudget = CacheBudget(totalBytes: 256 << 20, perModelFraction: 0.25),
                            options: LoadOptions = LoadOptions()) {
        self.init(repository: repository, logger: logger, cacheBudget: cacheBudget, options: options, loader: Self.defaultLoader)
    }

    init(repository: ModelRepository, logger: Logger, cacheBudget: CacheBudget, options: LoadOptions, loader: @escaping VersionLoader) {
        self.repository = repository
        self.logger = logger
        self.cacheBudget = cacheBudget
        self.options = options
        self.loader = loader
    }

    private func budgetOwner(_ name: String, _ version: Int) -> String { "\(name)/\(version)" }

    /// How long a version replaced by a load (a new version, a label move, a promotion) keeps
    /// taking work after no request can resolve to it any more: a request that resolved it just
    /// before the swap, on an event loop, still reaches its batcher instead of meeting one that
    /// is stopping (UNAVAILABLE, which a balancer cannot retry).
    static let retireGrace: Duration = .seconds(1)

    private func retireAfterGrace(_ m: ServedModel) {
        let (seconds, attoseconds) = Self.retireGrace.components
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))) {
            self.retire(m)
        }
    }

    private func retire(_ m: ServedModel) {
        m.drainAndStop()
        cacheBudget.release(budgetOwner(m.name, m.version))
    }

    private func countFailure(_ name: String, _ reason: String) {
        Counter(label: "swerve_model_load_failures_total", dimensions: [("model", name), ("reason", reason)]).increment()
    }

    // MARK: Loading

    /// Loads every model in the repository (start-up), up to `options.parallelLoads` at once, so
    /// one slow model does not hold back the others. A model that fails is recorded, not fatal.
    public func loadAll() throws {
        _ = load(models: try repository.modelNames())
    }

    /// Loads or reloads each of `names`, up to `options.parallelLoads` at once; returns the
    /// failures by model name (each is also recorded in the index and logged).
    @discardableResult
    public func load(models names: [String]) -> [String: any Error] {
        let next = Mutex(0)
        let failures = Mutex<[String: any Error]>([:])
        let group = DispatchGroup()
        for _ in 0..<min(options.parallelLoads, names.count) {
            group.enter()
            let thread = Thread {
                nameCurrentThread("model-load")
                while true {
                    let i = next.withLock { i in defer { i += 1 }; return i }
                    guard i < names.count else { break }
                    do { try self.load(model: names[i]) } catch { failures.withLock { $0[names[i]] = error } }
                }
                group.leave()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        group.wait()
        return failures.withLock { $0 }
    }

    /// How long a load or unload waits for another one of the same model to end: that one ends
    /// within the load timeout, so this only runs out when something is badly wrong.
    private var gateWait: Duration { options.loadTimeout + .seconds(10) }

    /// Loads or reloads one model: brings its served versions in line with the version policy and what
    /// is on disk. New versions are ready before old ones are retired; if no wanted version loads, the
    /// versions serving now stay. Throws when the model ends up with no ready version.
    ///
    /// Loads and unloads of one model run one at a time; those of different models run at once.
    /// The versions are built on a thread of their own and waited for at most
    /// `options.loadTimeout`; a load that takes longer is abandoned (see `LoadAttempt`).
    public func load(model name: String) throws {
        guard ModelRepository.isValidModelName(name), repository.modelExists(name) else {
            throw ServingError(.notFound, "model '\(name)' is not in the repository \(repository.root.path)")
        }
        guard gates.enter(name, waiting: gateWait) else {
            throw ServingError(.unavailable, "model '\(name)': another load or unload of it is still in progress; try again later")
        }
        defer { gates.leave(name) }
        try loadHoldingGate(name)
    }

    private func loadHoldingGate(_ name: String) throws {
        if let refusal: ServingError = state.withLock({ s in
            if s.closed { return ServingError(.unavailable, "the server is shutting down") }
            if s.abandoned.contains(name) {
                return ServingError(.unavailable, "model '\(name)': an earlier load that exceeded the load timeout (\(Self.seconds(options.loadTimeout))) is still running; try again once it has ended")
            }
            return nil
        }) {
            throw refusal
        }

        let settings: ModelSettings
        do {
            settings = try repository.settings(of: name)
        } catch {
            // config.json's messages start with "config.json"; say whose.
            let msg = (error as? StorageError).map { "\(name)/\($0.message)" } ?? "\(error)"
            state.withLock { s in s[name, default: Entry()].error = msg; s[name, default: Entry()].loaded = true }
            logger.error("model failed to load", metadata: ["model": "\(name)", "reason": "\(msg)"])
            countFailure(name, "config")
            throw ServingError(.failedPrecondition, msg)
        }
        let available = repository.versions(of: name)
        // A labels.json that cannot be read keeps the labels last loaded: routing never jumps
        // because of a broken file; the problem is logged and shown in RepositoryIndex.
        var labels: ModelLabels?
        var labelsProblem: String?
        do {
            labels = try repository.labels(of: name)
        } catch {
            labelsProblem = "\(ModelRepository.labelsFileName): \((error as? StorageError)?.message ?? "\(error)")"
            labels = state.withLock { $0[name]?.labels }
            logger.error("cannot read the model's labels; keeping the labels last read", metadata: ["model": "\(name)", "reason": "\(labelsProblem!)"])
        }
        let wanted = ModelLabels.wantedVersions(policy: settings.versionPolicy, labels: labels, available: available)

        // Versions already serving with the same settings stay as they are; one serving with other
        // settings keeps serving until its replacement is ready.
        let current: [Int: ServedModel] = state.withLock { s in
            var e = s[name, default: Entry()]
            e.loaded = true
            e.policy = settings.versionPolicy
            e.error = nil
            var ready: [Int: ServedModel] = [:]
            for (v, slot) in e.versions { if case .ready(let m) = slot { ready[v] = m } }
            for v in wanted where ready[v] == nil { e.versions[v] = .loading }
            s[name] = e
            return ready
        }

        let toLoad = wanted.filter { current[$0]?.settings != settings }.sorted(by: >)
        let requests = toLoad.map { v in
            let owner = budgetOwner(name, v)
            return VersionLoad(name: name, version: v, file: repository.modelFile(name, version: v), settings: settings,
                               lineage: try? repository.lineage(of: name, version: v),
                               reference: repository.referenceStatistics(of: name, version: v), maxModelBytes: options.maxModelBytes,
                               cacheBytes: { self.cacheBudget.grant(to: owner) }, logger: logger)
        }
        var outcomes: [Int: Result<ServedModel, any Error>] = [:]
        if !requests.isEmpty {
            let attempt = LoadAttempt(
                requests: requests, loader: loader,
                failed: { r in self.cacheBudget.release(self.budgetOwner(r.name, r.version)) },
                abandonedEnded: { late in self.abandonedLoadEnded(name, discarding: late) })
            outcomes = attempt.finish(within: options.loadTimeout) {
                // Noted before the thread can end, so no later load of this model starts while it runs.
                let n = state.withLock { s in s.abandoned.insert(name); return s.abandoned.count }
                abandonedGauge.record(n)
            }
        }

        var loadedNow: [Int: ServedModel] = [:]
        for r in requests {
            let v = r.version
            let msg: String
            switch outcomes[v] {
            case .success(let m)?:
                loadedNow[v] = m
                continue
            case .failure(let error)?:
                msg = "\(error)"
                countFailure(name, "error")
            case nil:
                msg = "load timed out after \(Self.seconds(options.loadTimeout)) (--model-load-timeout); it was abandoned and whatever it produces later is discarded"
                countFailure(name, "timeout")
            }
            logger.error("model version failed to load", metadata: ["model": "\(name)", "version": "\(v)", "reason": "\(msg)"])
            state.withLock { s in s[name]?.versions[v] = .failed(msg) }
        }

        // Publish the new versions, then retire the ones no longer wanted (only when something wanted is ready).
        let retired: [ServedModel] = state.withLock { s in
            if s.closed { return Array(loadedNow.values) }
            guard var e = s[name] else { return Array(loadedNow.values) }
            for (v, m) in loadedNow { e.versions[v] = .ready(m) }
            // New labels take effect with the versions they name (a label whose version is not
            // ready here is not applied: see `Entry.stable` and `Entry.canary`).
            e.labels = labels
            e.labelsProblem = labelsProblem
            var retired: [ServedModel] = []
            let wantedReady = wanted.contains { v in if case .ready = e.versions[v] { return true } else { return false } }
            if wantedReady {
                for (v, slot) in e.versions where !wanted.contains(v) {
                    if case .ready(let m) = slot { retired.append(m) }
                    e.versions[v] = nil
                }
                // A replaced version (same number, new settings) is retired too.
                for (v, _) in loadedNow { if let old = current[v] { retired.append(old) } }
            } else {
                // Nothing wanted loaded: keep what serves now; drop failed/never-loaded slots not wanted.
                for (v, slot) in e.versions where !wanted.contains(v) {
                    if case .ready = slot { continue }
                    e.versions[v] = nil
                }
            }
            if available.isEmpty { e.error = "no versions: expected <repo>/\(name)/<positive integer>/model.onnx" }
            s[name] = e
            return retired
        }
        for m in retired {
            retireAfterGrace(m)
            logger.info("model version unloaded", metadata: ["model": "\(name)", "version": "\(m.version)"])
        }
        updateLoadedGauge()
        publishLabelGauges(name)
        for (v, m) in loadedNow.sorted(by: { $0.key < $1.key }) where !retired.contains(where: { $0 === m }) {
            logger.info("model version ready", metadata: ["model": "\(name)", "version": "\(v)", "max_batch_size": "\(m.maxBatchSize)"])
        }
        let failures: [String] = state.withLock { s in
            wanted.compactMap { v in if case .failed(let why) = s[name]?.versions[v] { "version \(v): \(why)" } else { nil } }
        }
        if !failures.isEmpty {
            let serving = readyVersions(of: name)
            let still = serving.isEmpty ? "" : " (still serving version\(serving.count == 1 ? "" : "s") \(serving.map(String.init).joined(separator: ", ")))"
            throw ServingError(.failedPrecondition, "model '\(name)' failed to load \(failures.joined(separator: "; "))\(still)")
        }
        if readyVersions(of: name).isEmpty {
            throw ServingError(.failedPrecondition, "model '\(name)' has no ready version: \(available.isEmpty ? "no versions on disk" : "none loaded")")
        }
    }

    /// Called by an abandoned `LoadAttempt` once its thread has returned: discards what it built
    /// (it was never published) and lets the model be loaded again.
    private func abandonedLoadEnded(_ name: String, discarding late: [ServedModel]) {
        for m in late {
            retire(m)
            logger.warning("discarded a model version whose load had timed out", metadata: ["model": "\(name)", "version": "\(m.version)"])
        }
        let count = state.withLock { s in s.abandoned.remove(name); return s.abandoned.count }
        abandonedGauge.record(count)
        logger.info("abandoned model load ended", metadata: ["model": "\(name)"])
    }

    static func seconds(_ d: Duration) -> String {
        let (s, atto) = d.components
        let ms = s * 1000 + atto / 1_000_000_000_000_000
        return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(Double(ms) / 1000) s"
    }

    /// Unloads every version of a model: new requests get NOT_FOUND at once; queued ones finish first.
    public func unload(model name: String) throws {
        guard gates.enter(name, waiting: gateWait) else {
            throw ServingError(.unavailable, "model '\(name)': another load or unload of it is still in progress; try again later")
        }
        defer { gates.leave(name) }
        let retired: [ServedModel] = try state.withLock { s in
            guard var e = s[name], e.loaded else {
                throw ServingError(.notFound, "model '\(name)' is not loaded")
            }
            var out: [ServedModel] = []
            for (_, slot) in e.versions { if case .ready(let m) = slot { out.append(m) } }
            e.versions = [:]
            e.loaded = false
            e.error = nil
            s[name] = e
            return out
        }
        for m in retired { retire(m) }
        updateLoadedGauge()
        logger.info("model unloaded", metadata: ["model": "\(name)"])
    }

    /// Drains and stops every version (server shutdown). Does not wait for loads in progress: they
    /// retire what they build instead of publishing it.
    public func shutdown() {
        let all: [ServedModel] = state.withLock { s in
            s.closed = true
            var out: [ServedModel] = []
            for (name, e) in s.entries {
                for (_, slot) in e.versions { if case .ready(let m) = slot { out.append(m) } }
                s[name]?.versions = [:]
            }
            return out
        }
        for m in all { retire(m) }
        updateLoadedGauge()
    }

    /// `swerve_model_label_version{model,label}` (0: none) and `swerve_canary_percent{model}`, as
    /// this server applies them.
    private func publishLabelGauges(_ name: String) {
        guard let a = appliedLabels(of: name) else { return }
        Gauge(label: "swerve_model_label_version", dimensions: [("model", name), ("label", ModelLabels.stableName)]).record(a.stable)
        Gauge(label: "swerve_model_label_version", dimensions: [("model", name), ("label", ModelLabels.canaryName)]).record(a.canary)
        Gauge(label: "swerve_canary_percent", dimensions: [("model", name)]).record(a.canaryPercent)
        if let previous = state.withLock({ $0[name]?.labels?.generation }) {
            Gauge(label: "swerve_labels_generation", dimensions: [("model", name)]).record(Double(previous))
        }
    }

    private func updateLoadedGauge() {
        let n = state.withLock { s in s.values.reduce(0) { acc, e in acc + e.versions.values.filter { if case .ready = $0 { true } else { false } }.count } }
        loadedGauge.record(n)
    }

    // MARK: Queries (the request path)

    /// The version a request names: a number, a label (`stable`, `canary`), or, for an empty
    /// `version`, the model's stable version (the highest ready one for a model without labels).
    /// Requests that may meet the canary use `resolve(model:version:routeHash:)`.
    public func resolve(model name: String, version: String) throws(ServingError) -> ServedModel {
        try resolve(model: name, version: version, routeHash: { UInt64.max })
    }

    /// The unversioned route of the loaded model named by `name` (UTF-8): the request path's
    /// lookup, without making a String of the name.
    func defaultRoute(nameBytes name: UnsafeRawBufferPointer) -> Route? {
        state.withLock { $0.defaultRoute(nameBytes: name) }
    }

    /// `resolve(model:version:routeHash:)` for a name given as its UTF-8 bytes (as the request
    /// carries it): an unversioned request to a loaded model makes no String.
    public func resolve(modelNameBytes name: UnsafeRawBufferPointer, version: String, routeHash: () -> UInt64) throws(ServingError) -> ServedModel {
        if version.isEmpty, name.count > 0, let route = defaultRoute(nameBytes: name) { return route.pick(routeHash) }
        return try resolve(model: String(decoding: name, as: UTF8.self), version: version, routeHash: routeHash)
    }

    /// Like `resolve(model:version:)`, but an empty `version` goes to the canary for the
    /// configured share of requests: those whose `routeHash` (asked for only when the model has a
    /// canary) falls in the share, so one input always meets the same version.
    public func resolve(model name: String, version: String, routeHash: () -> UInt64) throws(ServingError) -> ServedModel {
        // The common case: an unversioned request. The route is read under the lock; the hash
        // (which reads the request's inputs) is computed outside it.
        if version.isEmpty, let route = state.withLock({ $0.defaultRoute(name) }) { return route.pick(routeHash) }
        let result: Result<ServedModel, ServingError> = state.withLock { s in
            if version.isEmpty, let route = s.defaultRoute(name) { return .success(route.pick({ UInt64.max })) }
            guard let e = s[name], e.loaded else {
                return .failure(ServingError(.notFound, "unknown model '\(name)'"))
            }
            if version.isEmpty {
                if e.versions.values.contains(where: { if case .loading = $0 { true } else { false } }) {
                    return .failure(ServingError(.unavailable, "model '\(name)' is loading"))
                }
                return .failure(ServingError(.unavailable, "model '\(name)' has no ready version: \(e.error ?? failureReasons(e))"))
            }
            let v: Int
            if let n = Int(version), n > 0 {
                v = n
            } else if version == ModelLabels.stableName {
                guard let m = e.stable else {
                    return .failure(ServingError(.unavailable, "model '\(name)' has no ready version: \(e.error ?? failureReasons(e))"))
                }
                return .success(m)
            } else if version == ModelLabels.canaryName {
                guard let c = e.labels?.canary else {
                    return .failure(ServingError(.notFound, "model '\(name)' has no canary version"))
                }
                if let m = e.canary { return .success(m) }
                v = c
            } else {
                return .failure(ServingError(.notFound, "model '\(name)' has no version '\(version)' (a version is a positive integer or a label: stable, canary)"))
            }
            switch e.versions[v] {
            case .ready(let m): return .success(m)
            case .loading: return .failure(ServingError(.unavailable, "model '\(name)' version \(v) is loading"))
            case .failed(let why): return .failure(ServingError(.unavailable, "model '\(name)' version \(v) failed to load: \(why)"))
            case nil: return .failure(ServingError(.notFound, "model '\(name)' has no version \(v) being served"))
            }
        }
        return try result.get()
    }

    /// The labels a model's traffic follows on this server now.
    public struct AppliedLabels: Sendable, Equatable {
        /// What unversioned requests get (0: nothing ready).
        public var stable: Int
        /// The canary as applied here (0: none, or not ready here), and its share.
        public var canary: Int
        public var canaryPercent: Double
        /// The labels.json generation last loaded (0: none).
        public var generation: UInt64
        /// Why labels.json could not be read at the last load, if it could not.
        public var problem: String?
    }

    /// The labels a model's traffic follows now, nil for a model not loaded.
    public func appliedLabels(of name: String) -> AppliedLabels? {
        state.withLock { s in
            guard let e = s[name], e.loaded else { return nil }
            let canary = e.canary
            return AppliedLabels(stable: e.stable?.version ?? 0, canary: canary?.version ?? 0,
                                 canaryPercent: canary == nil ? 0 : (e.labels?.canaryPercent ?? 0),
                                 generation: e.labels?.generation ?? 0, problem: e.labelsProblem)
        }
    }

    private func failureReasons(_ e: Entry) -> String {
        let reasons = e.versions.sorted { $0.key > $1.key }.compactMap { v, slot -> String? in
            if case .failed(let why) = slot { return "version \(v): \(why)" } else { return nil }
        }
        return reasons.isEmpty ? "none loaded" : reasons.joined(separator: "; ")
    }

    /// Ready versions of a model, ascending.
    public func readyVersions(of name: String) -> [Int] {
        state.withLock { s in
            (s[name]?.versions ?? [:]).compactMap { v, slot in if case .ready = slot { v } else { nil } }.sorted()
        }
    }

    /// Every ready model version, for statistics.
    public func readyModels() -> [ServedModel] {
        state.withLock { s in
            s.values.flatMap { e in e.versions.values.compactMap { if case .ready(let m) = $0 { m } else { nil } } }
        }.sorted { ($0.name, $0.version) < ($1.name, $1.version) }
    }

    /// True once every model present at start-up has been tried; models that failed do not count against it.
    public func isModelReady(_ name: String, version: String) -> Bool {
        (try? resolve(model: name, version: version)) != nil
    }

    /// The repository index: every model folder on disk or known, with each version's state.
    public func index(readyOnly: Bool = false) -> [ModelIndexEntry] {
        let onDisk = (try? repository.modelNames()) ?? []
        let known = state.withLock { $0.entries }
        var out: [ModelIndexEntry] = []
        for name in Set(onDisk).union(known.keys).sorted() {
            guard let e = known[name] else {
                out.append(.init(name: name, version: "", state: .unavailable, reason: "not loaded"))
                continue
            }
            if !e.loaded {
                out.append(.init(name: name, version: "", state: .unavailable, reason: "unloaded"))
                continue
            }
            if let err = e.error, e.versions.isEmpty {
                out.append(.init(name: name, version: "", state: .unavailable, reason: err))
            }
            for (v, slot) in e.versions.sorted(by: { $0.key < $1.key }) {
                switch slot {
                case .ready: out.append(.init(name: name, version: String(v), state: .ready, reason: e.error.map { "serving; last load failed: \($0)" } ?? ""))
                case .loading: out.append(.init(name: name, version: String(v), state: .loading, reason: ""))
                case .failed(let why): out.append(.init(name: name, version: String(v), state: .unavailable, reason: why))
                }
            }
        }
        return readyOnly ? out.filter { $0.state == .ready } : out
    }

    /// The model's configured version policy (as last loaded).
    public func policy(of name: String) -> VersionPolicy? { state.withLock { $0[name]?.policy } }

    // MARK: Readiness

    /// Whether the models serve as the repository says they should, and if not, why.
    public struct Readiness: Sendable, Equatable {
        public var ready: Bool
        /// Why not ready (the first model found wanting); empty when ready.
        public var reason: String

        public init(ready: Bool, reason: String) {
            self.ready = ready
            self.reason = reason
        }
    }

    /// Whether the server's models are ready.
    ///
    /// Never ready with no ready model version at all, nor after `shutdown()`. With `strict`
    /// (Triton's strict readiness), also not ready while a model that is expected, i.e. loaded at
    /// start-up, by the poller or by RepositoryModelLoad and not unloaded since, is not fully ready:
    /// it has no ready version yet, a version its policy wants failed to load (or timed out), or
    /// its config.json is unreadable. A version loading while the model already serves another is
    /// a rollout in progress and does not count against it. Without `strict`, one ready version
    /// anywhere is enough.
    public func readiness(strict: Bool) -> Readiness {
        state.withLock { s in
            if s.closed { return Readiness(ready: false, reason: "shutting down") }
            if s.defaultsByNameHash.isEmpty { return Readiness(ready: false, reason: "no model version is ready") }
            guard strict else { return Readiness(ready: true, reason: "") }
            for name in s.entries.keys.sorted() {
                if let why = Self.notServing(s.entries[name]!, name: name) { return Readiness(ready: false, reason: why) }
            }
            return Readiness(ready: true, reason: "")
        }
    }

    /// Whether one model serves: it is loaded and has a ready version; with `strict`, also as
    /// `readiness(strict:)` requires of every expected model.
    public func isServing(_ name: String, strict: Bool) -> Bool {
        state.withLock { s in
            guard !s.closed, let e = s[name], e.loaded, e.latestReady != nil else { return false }
            return !strict || Self.notServing(e, name: name) == nil
        }
    }

    /// Why an expected model is not ready, or nil (also nil for unloaded models: they are not expected).
    ///
    /// A model that still serves a ready version keeps the server ready when a newer version
    /// fails to load (or its config.json turns unreadable): every replica of a fleet reads the
    /// same repository, so one bad publication would otherwise take them all out of rotation at
    /// once, and a balancer with no replica left fails every request. The failure is logged,
    /// counted (`swerve_model_load_failures_total`) and shown per version in RepositoryIndex and
    /// ModelReady.
    private static func notServing(_ e: Entry, name: String) -> String? {
        guard e.loaded else { return nil }
        if e.latestReady != nil { return nil }
        if let err = e.error { return "model '\(name)': \(err)" }
        for (v, slot) in e.versions.sorted(by: { $0.key < $1.key }) {
            switch slot {
            case .ready: continue
            case .loading: return "model '\(name)' version \(v) is loading"
            case .failed(let why): return "model '\(name)' version \(v) failed to load: \(why)"
            }
        }
        return "model '\(name)' has no ready version"
    }

    /// Loads that timed out and whose threads have not returned yet, by model (for tests and metrics).
    public var abandonedLoads: Set<String> { state.withLock { $0.abandoned } }
}

/// One model's load in progress: its versions are built one after another on a thread of its own,
/// which the loading caller waits for at most the load timeout.
///
/// A blocked or slow build cannot be cancelled (a compile has no cancellation points, and
/// `read(2)` of a regular file is not interruptible), so a load past its timeout is *abandoned*:
/// the caller reports its unfinished versions failed and goes on, the thread stops before any
/// version it has not started, and whatever it still finishes is handed to
/// `ModelManager.abandonedLoadEnded`, which retires it. Results only reach the manager's state
/// through the waiting caller, under the model's gate, so a late completion can never install a
/// stale version. Until the thread returns, a new load of the model is refused (one stray thread
/// per model at most).
private final class LoadAttempt: Sendable {
    private struct State {
        var results: [Int: Result<ServedModel, any Error>] = [:]
        var abandoned = false
        var finished = false
        /// Built after abandonment: retired when the thread ends.
        var late: [ServedModel] = []
    }
    private let state = Mutex(State())
    private let done = DispatchSemaphore(value: 0)

    /// Starts building `requests` (one model's versions) on a new thread. `failed` runs for each
    /// version whose build threw; `abandonedEnded` runs on the thread, once, when it returns after
    /// `finish` abandoned it, with the versions it built too late.
    init(requests: [ModelManager.VersionLoad], loader: @escaping ModelManager.VersionLoader,
         failed: @escaping @Sendable (ModelManager.VersionLoad) -> Void,
         abandonedEnded: @escaping @Sendable ([ServedModel]) -> Void) {
        let thread = Thread { [self] in
            nameCurrentThread("model-build")
            for r in requests {
                if state.withLock({ $0.abandoned }) { break }
                let result: Result<ServedModel, any Error>
                do { result = .success(try loader(r)) } catch { result = .failure(error) }
                if case .failure = result { failed(r) }
                state.withLock { s in
                    if !s.abandoned {
                        s.results[r.version] = result
                    } else if case .success(let m) = result {
                        s.late.append(m)
                    }
                }
            }
            let (wasAbandoned, late) = state.withLock { s in
                s.finished = true
                return (s.abandoned, s.late)
            }
            done.signal()
            if wasAbandoned { abandonedEnded(late) }
        }
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Waits until every version is built or `timeout` passes. Returns the versions that ended;
    /// when some did not, the attempt is abandoned first, with `onAbandon` run under the
    /// attempt's lock (so it happens before `abandonedEnded` can run). Every result is either
    /// returned here or handed to `abandonedEnded`, never both, never neither.
    func finish(within timeout: Duration, onAbandon: () -> Void) -> [Int: Result<ServedModel, any Error>] {
        let (s, atto) = timeout.components
        let ns = max(0, s) * 1_000_000_000 + atto / 1_000_000_000
        _ = done.wait(timeout: .now() + .nanoseconds(Int(clamping: ns)))
        return state.withLock { s in
            if !s.finished {
                s.abandoned = true
                onAbandon()
            }
            return s.results
        }
    }
}

/// A gate per model name: `enter` waits (up to a bound) while another holder has the same name.
final class ModelGates: Sendable {
    private let condition = NSCondition()
    nonisolated(unsafe) private var busy: Set<String> = []

    /// True once `name` is held by the caller; false when `waiting` ran out first.
    func enter(_ name: String, waiting: Duration) -> Bool {
        let (s, atto) = waiting.components
        let deadline = Date(timeIntervalSinceNow: Double(s) + Double(atto) / 1e18)
        condition.lock()
        defer { condition.unlock() }
        while busy.contains(name) {
            if !condition.wait(until: deadline) && busy.contains(name) { return false }
        }
        busy.insert(name)
        return true
    }

    func leave(_ name: String) {
        condition.lock()
        busy.remove(name)
        condition.broadcast()
        condition.unlock()
    }
}
