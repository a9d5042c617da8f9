import Foundation
import SwerveInference

/// A model's version policy: which of the versions on disk are served (as TF Serving and Triton have it).
public enum VersionPolicy: Sendable, Equatable {
    /// The `n` highest versions.
    case latest(Int)
    /// Every version on disk.
    case all
    /// Exactly these versions (those present on disk).
    case specific([Int])

    /// The policy as config.json writes it (what `ModelSettings` parses back to the same policy).
    public var jsonObject: [String: Any] {
        switch self {
        case .latest(let n): ["latest": ["num_versions": n]]
        case .all: ["all": [String: Any]()]
        case .specific(let versions): ["specific": ["versions": versions]]
        }
    }

    /// The versions to serve, highest first, out of those available. A pure function of its input.
    public func select(from available: [Int]) -> [Int] {
        let sorted = available.sorted(by: >)
        switch self {
        case .latest(let n): return Array(sorted.prefix(max(1, n)))
        case .all: return sorted
        case .specific(let wanted): return sorted.filter { wanted.contains($0) }
        }
    }
}

/// A tensor override from config.json: a name with an optional datatype and shape.
public struct TensorOverride: Sendable, Equatable {
    public var name: String
    public var dataType: DataType?
    public var shape: [Int]?
}

/// The settings of one model, from `<repo>/<model>/config.json` (all keys optional).
///
/// ```json
/// {
///   "max_batch_size": 64,
///   "dynamic_batching": {"max_queue_delay_us": 500, "max_queue_size": 1024},
///   "version_policy": {"latest": {"num_versions": 1}},
///   "instance_count": 1,
///   "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}],
///   "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}]
/// }
/// ```
public struct ModelSettings: Sendable, Equatable {
    /// Most rows in one execution; 0 = the model has no batch dimension (requests run one at a time).
    /// nil = derived from the ONNX file (64 when every input's first dimension is dynamic, else 0).
    public var maxBatchSize: Int?
    /// How long an idle worker may hold a partial batch open while other workers are busy.
    public var maxQueueDelayMicroseconds: Int = 500
    /// Requests waiting beyond this many are refused with UNAVAILABLE.
    public var maxQueueSize: Int = 1024
    public var versionPolicy: VersionPolicy = .latest(1)
    /// Worker threads per model version, each with its own execution buffers.
    public var instanceCount: Int = 1
    public var inputOverrides: [TensorOverride] = []
    public var outputOverrides: [TensorOverride] = []
    /// How answers are served: see `ServingMode`.
    public var servingMode: ServingMode = .auto
    /// Where computed requests run: see `ExecutionMode`.
    public var execution: ExecutionMode = .auto
    /// Bounds on a static table (cells = input combinations, bytes = stored outputs).
    public var staticMaxCells = 1 << 20
    public var staticMaxBytes = 256 << 20
    /// Declared finite domains: input name → one value list per column of a row.
    public var declaredDomains: [String: [[DomainValue]]] = [:]
    /// This model's response cache budget in bytes; nil = the server's per-model share.
    public var cacheBytes: Int?
    /// The sampled log of served requests (`prediction_log`); nil = none.
    public var predictionLog: PredictionLogSettings?

    /// `prediction_log: {"sample_rate": R, "max_bytes": N, "join_window_seconds": J}`: log a
    /// fraction R (0...1) of served requests, keeping at most N bytes on disk (at least 64 KiB);
    /// logged requests with an id wait J seconds (default 3600, 0 = none) for a label
    /// (`swerve.v1.Feedback/AppendLabels`).
    public struct PredictionLogSettings: Sendable, Equatable {
        public var sampleRate: Double
        public var maxBytes: Int
        public var joinWindowSeconds: Int
        public init(sampleRate: Double, maxBytes: Int, joinWindowSeconds: Int = 3600) {
            self.sampleRate = sampleRate; self.maxBytes = maxBytes; self.joinWindowSeconds = joinWindowSeconds
        }
    }

    /// The drift monitor of versions with reference statistics (`monitoring`).
    public var monitoring = MonitoringSettings()

    /// `monitoring: {"sample_rate": R, "window_seconds": W, "windows": K, "min_samples": M,
    /// "psi_threshold": T}`: a version with `reference_stats.json` watches a fraction R (0...1,
    /// 0 = off) of the requests it answers, in windows of W seconds (1...86400), keeps the last K
    /// (1...100) closed windows, reports drift of a window once it holds M rows (≥ 10), and counts a
    /// feature as drifted above PSI T. Every key is optional.
    public struct MonitoringSettings: Sendable, Equatable {
        public var sampleRate: Double = 0.01
        public var windowSeconds: Int = 60
        public var windows: Int = 10
        public var minSamples: Int = 200
        public var psiThreshold: Double = 0.25
        public init() {}
    }

    public init() {}

    public static let defaultMaxBatchSize = 64

    /// The top-level keys of config.json.
    public enum Key: String, CaseIterable, Sendable {
        case maxBatchSize = "max_batch_size"
        case dynamicBatching = "dynamic_batching"
        case versionPolicy = "version_policy"
        case instanceCount = "instance_count"
        case inputs, outputs
        case servingMode = "serving_mode"
        case execution
        case staticTable = "static_table"
        case responseCache = "response_cache"
        case predictionLog = "prediction_log"
        case monitoring
    }

    /// Parses config.json. Unknown keys are rejected so that a typo does not silently fall back
    /// to defaults. Every failure is an `invalidConfiguration` `StorageError` naming the key.
    public init(json data: Data) throws {
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw StorageError(.invalidConfiguration, "config.json is not valid JSON: \(error.localizedDescription)")
        }
        guard let obj = parsed as? [String: Any] else {
            throw StorageError(.invalidConfiguration, "config.json must hold a JSON object")
        }
        let known = Set(Key.allCases.map(\.rawValue))
        if let unknown = obj.keys.first(where: { !known.contains($0) }) {
            throw StorageError(.invalidConfiguration, "config.json: unknown key '\(unknown)' (known: \(known.sorted().joined(separator: ", ")))")
        }
        if let v = obj[Key.maxBatchSize.rawValue] {
            guard let n = v as? Int, n >= 0 else { throw StorageError(.invalidConfiguration, "config.json: max_batch_size must be an integer >= 0") }
            maxBatchSize = n
        }
        if let db = obj[Key.dynamicBatching.rawValue] {
            guard let d = db as? [String: Any] else { throw StorageError(.invalidConfiguration, "config.json: dynamic_batching must be an object") }
            if let v = d["max_queue_delay_us"] {
                guard let n = v as? Int, n >= 0 else { throw StorageError(.invalidConfiguration, "config.json: dynamic_batching.max_queue_delay_us must be an integer >= 0") }
                maxQueueDelayMicroseconds = n
            }
            if let v = d["max_queue_size"] {
                guard let n = v as? Int, n >= 1 else { throw StorageError(.invalidConfiguration, "config.json: dynamic_batching.max_queue_size must be an integer >= 1") }
                maxQueueSize = n
            }
        }
        if let v = obj[Key.instanceCount.rawValue] {
            guard let n = v as? Int, n >= 1, n <= 64 else { throw StorageError(.invalidConfiguration, "config.json: instance_count must be an integer in 1...64") }
            instanceCount = n
        }
        if let vp = obj[Key.versionPolicy.rawValue] {
            versionPolicy = try Self.parsePolicy(vp)
        }
        if let v = obj[Key.servingMode.rawValue] {
            guard let str = v as? String, let mode = ServingMode(rawValue: str) else {
                throw StorageError(.invalidConfiguration, "config.json: serving_mode must be one of \(ServingMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            servingMode = mode
        }
        if let v = obj[Key.execution.rawValue] {
            guard let str = v as? String, let mode = ExecutionMode(rawValue: str) else {
                throw StorageError(.invalidConfiguration, "config.json: execution must be one of \(ExecutionMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            execution = mode
        }
        if let v = obj[Key.staticTable.rawValue] {
            guard let d = v as? [String: Any] else { throw StorageError(.invalidConfiguration, "config.json: static_table must be an object") }
            if let n = d["max_cells"] {
                guard let n = n as? Int, n >= 1 else { throw StorageError(.invalidConfiguration, "config.json: static_table.max_cells must be a positive integer") }
                staticMaxCells = n
            }
            if let n = d["max_bytes"] {
                guard let n = n as? Int, n >= 1 else { throw StorageError(.invalidConfiguration, "config.json: static_table.max_bytes must be a positive integer") }
                staticMaxBytes = n
            }
            if let doms = d["domains"] {
                guard let doms = doms as? [String: Any] else {
                    throw StorageError(.invalidConfiguration, #"config.json: static_table.domains must map input names to lists of columns, e.g. {"color": [["red", "green"]]}"#)
                }
                for (name, cols) in doms {
                    guard let cols = cols as? [[Any]], !cols.isEmpty else {
                        throw StorageError(.invalidConfiguration, "config.json: static_table.domains.\(name) must be a non-empty list of value lists (one per column)")
                    }
                    declaredDomains[name] = try cols.map { col in
                        try col.map { x in
                            guard let v = DomainValue(json: x) else {
                                throw StorageError(.invalidConfiguration, "config.json: static_table.domains.\(name): \(x) is not a string, integer or boolean")
                            }
                            return v
                        }
                    }
                }
            }
        }
        if let v = obj[Key.responseCache.rawValue] {
            guard let d = v as? [String: Any], let n = d["max_bytes"] as? Int, n >= 0 else {
                throw StorageError(.invalidConfiguration, #"config.json: response_cache must be {"max_bytes": N}"#)
            }
            cacheBytes = n
        }
        if let v = obj[Key.predictionLog.rawValue] {
            let usage = #"config.json: prediction_log must be {"sample_rate": R, "max_bytes": N, "join_window_seconds": J} with R in 0...1, N >= 65536 and J in 0...604800 (optional, default 3600)"#
            guard let d = v as? [String: Any], Set(d.keys).isSubset(of: ["sample_rate", "max_bytes", "join_window_seconds"]),
                  let rate = (d["sample_rate"] as? NSNumber)?.doubleValue, rate >= 0, rate <= 1,
                  let n = d["max_bytes"] as? Int, n >= 64 << 10
            else { throw StorageError(.invalidConfiguration, usage) }
            var join = 3600
            if let j = d["join_window_seconds"] {
                guard let k = j as? Int, k >= 0, k <= 604_800 else { throw StorageError(.invalidConfiguration, usage) }
                join = k
            }
            predictionLog = PredictionLogSettings(sampleRate: rate, maxBytes: n, joinWindowSeconds: join)
        }
        if let v = obj[Key.monitoring.rawValue] { monitoring = try Self.parseMonitoring(v) }
        inputOverrides = try Self.parseOverrides(obj[Key.inputs.rawValue], "inputs")
        outputOverrides = try Self.parseOverrides(obj[Key.outputs.rawValue], "outputs")
    }

    static func parseMonitoring(_ v: Any) throws -> MonitoringSettings {
        let usage = #"config.json: monitoring must be {"sample_rate": R, "window_seconds": W, "windows": K, "min_samples": M, "psi_threshold": T} (each optional) with R in 0...1, W in 1...86400, K in 1...100, M >= 10, T > 0"#
        guard let d = v as? [String: Any],
              Set(d.keys).isSubset(of: ["sample_rate", "window_seconds", "windows", "min_samples", "psi_threshold"])
        else { throw StorageError(.invalidConfiguration, usage) }
        var m = MonitoringSettings()
        func number(_ key: String) throws -> Double? {
            guard let x = d[key] else { return nil }
            // JSON true/false arrive as NSNumbers too, of Objective-C type "c".
            guard let n = x as? NSNumber, n.objCType.pointee != CChar(UInt8(ascii: "c")), n.doubleValue.isFinite else {
                throw StorageError(.invalidConfiguration, usage)
            }
            return n.doubleValue
        }
        func integer(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let x = try number(key) else { return nil }
            guard x == x.rounded(), x >= Double(range.lowerBound), x <= Double(range.upperBound) else {
                throw StorageError(.invalidConfiguration, usage)
            }
            return Int(x)
        }
        if let r = try number("sample_rate") {
            guard r >= 0, r <= 1 else { throw StorageError(.invalidConfiguration, usage) }
            m.sampleRate = r
        }
        if let w = try integer("window_seconds", 1...86_400) { m.windowSeconds = w }
        if let k = try integer("windows", 1...100) { m.windows = k }
        if let n = try integer("min_samples", 10...Int(Int32.max)) { m.minSamples = n }
        if let t = try number("psi_threshold") {
            guard t > 0 else { throw StorageError(.invalidConfiguration, usage) }
            m.psiThreshold = t
        }
        return m
    }

    static func parsePolicy(_ v: Any) throws -> VersionPolicy {
        let bad = StorageError(.invalidConfiguration, #"config.json: version_policy must be {"latest": {"num_versions": N}}, {"all": {}} or {"specific": {"versions": [..]}}"#)
        guard let d = v as? [String: Any], d.count == 1, let (key, body) = d.first else { throw bad }
        switch key {
        case "latest":
            let n = (body as? [String: Any])?["num_versions"] as? Int ?? 1
            guard n >= 1 else { throw bad }
            return .latest(n)
        case "all": return .all
        case "specific":
            guard let vs = (body as? [String: Any])?["versions"] as? [Int], !vs.isEmpty, vs.allSatisfy({ $0 > 0 }) else { throw bad }
            return .specific(vs)
        default: throw bad
        }
    }


    static func parseOverrides(_ v: Any?, _ key: String) throws -> [TensorOverride] {
        guard let v else { return [] }
        guard let list = v as? [[String: Any]] else { throw StorageError(.invalidConfiguration, "config.json: \(key) must be a list of objects") }
        return try list.map { d in
            guard let name = d["name"] as? String else { throw StorageError(.invalidConfiguration, "config.json: every entry of \(key) needs a name") }
            var o = TensorOverride(name: name)
            if let t = d["datatype"] {
                guard let s = t as? String, let dt = DataType(rawValue: s) else {
                    throw StorageError(.invalidConfiguration, "config.json: \(key) '\(name)': unknown datatype \(t)")
                }
                o.dataType = dt
            }
            if let s = d["shape"] {
                guard let dims = s as? [Int], dims.allSatisfy({ $0 >= -1 }) else {
                    throw StorageError(.invalidConfiguration, "config.json: \(key) '\(name)': shape must be a list of integers (-1 for dynamic)")
                }
                o.shape = dims
            }
            return o
        }
    }
}

/// How a model's answers are served.
public enum ServingMode: String, Sendable, CaseIterable {
    /// A static table when every input has a small finite domain; otherwise the response cache is
    /// switched on and off by the measured peakedness of the traffic.
    case auto
    /// Always a precomputed table (the model fails to load if its domain is not finite and small).
    case `static`
    /// Always the response cache (with in-flight coalescing) in front of the batcher.
    case cached
    /// Always the batcher.
    case dynamic
}

/// Where a version's computed requests run (config.json `execution`).
public enum ExecutionMode: String, Sendable, CaseIterable {
    /// On the event loop that received the request when its measured cost is below the measured
    /// cost of handing it to a worker thread and back, and no batch is forming; else the workers.
    case auto
    /// On the event loop whenever no batch is forming (for models known to be cheap).
    case inline
    /// Always the batcher's worker threads.
    case workers
}

/// One value of a declared input domain, as JSON gives it.
public enum DomainValue: Sendable, Equatable {
    case int(Int64), string(String), bool(Bool)

    init?(json: Any) {
        // Foundation hands JSON true/false over as a boolean NSNumber, which also casts to Int.
        if let n = json as? NSNumber, String(describing: type(of: n)).contains("Boolean") { self = .bool(n.boolValue); return }
        if let i = json as? Int { self = .int(Int64(i)); return }
        if let s = json as? String { self = .string(s); return }
        return nil
    }
}

extension TensorOverride {
    init(name: String) { self.name = name }
}
