import Foundation
import Logging
import Metrics
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
    }

    public let repository: ModelRepository
    private let logger: Logger
    private let state = Mutex(Models())

    /// Every model's entry, plus the version a request without one gets, kept in step on every
    /// change so the request path finds it with one lookup.
    struct Models: Sendable {
        private(set) var entries: [String: Entry] = [:] {
            didSet { defaults = entries.compactMapValues { $0.loaded ? $0.latestReady : nil } }
        }
        /// Loaded models' highest ready version.
        private(set) var defaults: [String: ServedModel] = [:]

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
    /// Serializes load/unload operations; the request path never takes it.
    private let loadLock = NSLock()
    private let loadedGauge = Gauge(label: "swerve_models_loaded")

    /// Hands each loaded version its response cache budget out of the server-wide total.
    public let cacheBudget: CacheBudget

    public init(repository: ModelRepository, logger: Logger,
                cacheBudget: CacheBudget = CacheBudget(totalBytes: 256 << 20, perModelFraction: 0.25)) {
        self.repository = repository
        self.logger = logger
        self.cacheBudget = cacheBudget
    }

    private func budgetOwner(_ name: String, _ version: Int) -> String { "\(name)/\(version)" }

    private func retire(_ m: ServedModel) {
        m.drainAndStop()
        cacheBudget.release(budgetOwner(m.name, m.version))
    }

    // MARK: Loading

    /// Loads every model in the repository (start-up). A model that fails is recorded, not fatal.
    public func loadAll() throws {
        for name in try repository.modelNames() {
            do { try load(model: name) } catch { /* recorded in the entry; reported by index() */ }
        }
    }

    /// Loads or reloads one model: brings its served versions in line with the version policy and what
    /// is on disk. New versions are ready before old ones are retired; if no wanted version loads, the
    /// versions serving now stay. Throws when the model ends up with no ready version.
    public func load(model name: String) throws {
        guard ModelRepository.isValidModelName(name), repository.modelExists(name) else {
            throw ServingError(.notFound, "model '\(name)' is not in the repository \(repository.root.path)")
        }
        loadLock.lock()
        defer { loadLock.unlock() }

        let settings: ModelSettings
        do {
            settings = try repository.settings(of: name)
        } catch {
            // config.json's messages start with "config.json"; say whose.
            let msg = (error as? StorageError).map { "\(name)/\($0.message)" } ?? "\(error)"
            state.withLock { s in s[name, default: Entry()].error = msg; s[name, default: Entry()].loaded = true }
            logger.error("model failed to load", metadata: ["model": "\(name)", "reason": "\(msg)"])
            throw ServingError(.failedPrecondition, msg)
        }
        let available = repository.versions(of: name)
        let wanted = settings.versionPolicy.select(from: available)

        // Versions already serving with the same settings stay as they are.
        let current: [Int: ServedModel] = state.withLock { s in
            var e = s[name, default: Entry()]
            e.loaded = true
            e.policy = settings.versionPolicy
            e.error = nil
            var ready: [Int: ServedModel] = [:]
            for (v, slot) in e.versions { if case .ready(let m) = slot { ready[v] = m } }
            for v in wanted where ready[v]?.settings != settings { e.versions[v] = .loading }
            s[name] = e
            return ready
        }

        var loadedNow: [Int: ServedModel] = [:]
        for v in wanted where current[v]?.settings != settings {
            let started = Date()
            do {
                let owner = budgetOwner(name, v)
                let m: ServedModel
                do {
                    m = try ServedModel(name: name, version: v, file: repository.modelFile(name, version: v),
                                        settings: settings, lineage: try? repository.lineage(of: name, version: v),
                                        cacheBytes: { self.cacheBudget.grant(to: owner) }, logger: logger)
                } catch {
                    cacheBudget.release(owner)
                    throw error
                }
                loadedNow[v] = m
                logger.info("model version ready", metadata: [
                    "model": "\(name)", "version": "\(v)", "max_batch_size": "\(m.maxBatchSize)",
                    "load_ms": "\(Int(Date().timeIntervalSince(started) * 1000))"])
            } catch {
                let msg = "\(error)"
                logger.error("model version failed to load", metadata: ["model": "\(name)", "version": "\(v)", "reason": "\(msg)"])
                state.withLock { s in s[name]?.versions[v] = .failed(msg) }
            }
        }

        // Publish the new versions, then retire the ones no longer wanted (only when something wanted is ready).
        let retired: [ServedModel] = state.withLock { s in
            guard var e = s[name] else { return [] }
            for (v, m) in loadedNow { e.versions[v] = .ready(m) }
            var retired: [ServedModel] = []
            let wantedReady = wanted.contains { v in if case .ready = e.versions[v] { return true } else { return false } }
            if wantedReady {
                for (v, slot) in e.versions where !wanted.contains(v) {
                    if case .ready(let m) = slot { retired.append(m) }
                    e.versions[v] = nil
                }
                // A replaced version (same number, new settings) is retired too.
                for (v, m) in loadedNow { if let old = current[v] { _ = m; retired.append(old) } }
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
            retire(m)
            logger.info("model version unloaded", metadata: ["model": "\(name)", "version": "\(m.version)"])
        }
        updateLoadedGauge()
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

    /// Unloads every version of a model: new requests get NOT_FOUND at once; queued ones finish first.
    public func unload(model name: String) throws {
        loadLock.lock()
        defer { loadLock.unlock() }
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

    /// Drains and stops every version (server shutdown).
    public func shutdown() {
        loadLock.lock()
        defer { loadLock.unlock() }
        let all: [ServedModel] = state.withLock { s in
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

    private func updateLoadedGauge() {
        let n = state.withLock { s in s.values.reduce(0) { acc, e in acc + e.versions.values.filter { if case .ready = $0 { true } else { false } }.count } }
        loadedGauge.record(n)
    }

    // MARK: Queries (the request path)

    /// The version a request names, or the highest ready version for an empty `version`.
    public func resolve(model name: String, version: String) throws(ServingError) -> ServedModel {
        let result: Result<ServedModel, ServingError> = state.withLock { s in
            if version.isEmpty, let latest = s.defaults[name] { return .success(latest) }
            guard let e = s[name], e.loaded else {
                return .failure(ServingError(.notFound, "unknown model '\(name)'"))
            }
            if version.isEmpty {
                if e.versions.values.contains(where: { if case .loading = $0 { true } else { false } }) {
                    return .failure(ServingError(.unavailable, "model '\(name)' is loading"))
                }
                return .failure(ServingError(.unavailable, "model '\(name)' has no ready version: \(e.error ?? failureReasons(e))"))
            }
            guard let v = Int(version), v > 0 else {
                return .failure(ServingError(.notFound, "model '\(name)' has no version '\(version)' (versions are positive integers)"))
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
}
