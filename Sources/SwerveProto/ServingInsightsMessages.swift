internal import CSwerveProto

// Swift value types for `swerve.v1.ServingInsights` (protos/swerve_serving.proto).

public struct PathStatisticsRequest: ProtoMessage, Equatable {
    public var name = ""
    public var version = ""
    public init(name: String = "", version: String = "") { self.name = name; self.version = version }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.firstTwo.check(bytes, "PathStatisticsRequest")
        (name, version) = try decode(bytes, "PathStatisticsRequest", unpack: swerve__v1__path_statistics_request__unpack, free: swerve__v1__path_statistics_request__free_unpacked) { (str($0.name), str($0.version)) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__PathStatisticsRequest(); swerve__v1__path_statistics_request__init(&m); m.name = a.cString(name); m.version = a.cString(version)
        return encode(m, arena: a, size: swerve__v1__path_statistics_request__get_packed_size, pack: swerve__v1__path_statistics_request__pack)
    }
}

/// How one model version is served and what its traffic looks like.
public struct VersionPathStatistics: Sendable, Equatable {
    public var name = "", version = "", mode = "", activePath = ""
    public var tableCells: UInt64 = 0, tableBytes: UInt64 = 0, tableBuildMs: UInt64 = 0, tableLookups: UInt64 = 0, tableFallbacks: UInt64 = 0
    public var cacheHits: UInt64 = 0, cacheMisses: UInt64 = 0, cacheEvictions: UInt64 = 0, cacheBytes: UInt64 = 0, cacheEntries: UInt64 = 0, cacheCapacityBytes: UInt64 = 0
    public var coalesced: UInt64 = 0, batcherRequests: UInt64 = 0, pathSwitches: UInt64 = 0
    public var cardinality: Double = 0, peakedness: Double = 0
    public init() {}
}

public struct PathStatisticsResponse: ProtoMessage, Equatable {
    public var models: [VersionPathStatistics] = []
    public init(models: [VersionPathStatistics] = []) { self.models = models }

    public init(serializedBytes bytes: [UInt8]) throws {
        models = try decode(bytes, "PathStatisticsResponse", unpack: swerve__v1__path_statistics_response__unpack, free: swerve__v1__path_statistics_response__free_unpacked) { m in
            msgs(m.n_models, m.models) { p in
                var s = VersionPathStatistics()
                s.name = str(p.name); s.version = str(p.version); s.mode = str(p.mode); s.activePath = str(p.active_path)
                s.tableCells = p.table_cells; s.tableBytes = p.table_bytes; s.tableBuildMs = p.table_build_ms
                s.tableLookups = p.table_lookups; s.tableFallbacks = p.table_fallbacks
                s.cacheHits = p.cache_hits; s.cacheMisses = p.cache_misses; s.cacheEvictions = p.cache_evictions
                s.cacheBytes = p.cache_bytes; s.cacheEntries = p.cache_entries; s.cacheCapacityBytes = p.cache_capacity_bytes
                s.coalesced = p.coalesced; s.batcherRequests = p.batcher_requests; s.pathSwitches = p.path_switches
                s.cardinality = p.cardinality; s.peakedness = p.peakedness
                return s
            }
        }
    }

    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        let entries = models.map { s -> Swerve__V1__VersionPathStatistics in
            var p = Swerve__V1__VersionPathStatistics(); swerve__v1__version_path_statistics__init(&p)
            p.name = a.cString(s.name); p.version = a.cString(s.version); p.mode = a.cString(s.mode); p.active_path = a.cString(s.activePath)
            p.table_cells = s.tableCells; p.table_bytes = s.tableBytes; p.table_build_ms = s.tableBuildMs
            p.table_lookups = s.tableLookups; p.table_fallbacks = s.tableFallbacks
            p.cache_hits = s.cacheHits; p.cache_misses = s.cacheMisses; p.cache_evictions = s.cacheEvictions
            p.cache_bytes = s.cacheBytes; p.cache_entries = s.cacheEntries; p.cache_capacity_bytes = s.cacheCapacityBytes
            p.coalesced = s.coalesced; p.batcher_requests = s.batcherRequests; p.path_switches = s.pathSwitches
            p.cardinality = s.cardinality; p.peakedness = s.peakedness
            return p
        }
        var m = Swerve__V1__PathStatisticsResponse(); swerve__v1__path_statistics_response__init(&m)
        m.n_models = entries.count; m.models = a.boxes(entries)
        return encode(m, arena: a, size: swerve__v1__path_statistics_response__get_packed_size, pack: swerve__v1__path_statistics_response__pack)
    }
}

// MARK: - RolloutStatistics

public struct RolloutStatisticsRequest: ProtoMessage, Equatable {
    public var name = ""
    public init(name: String = "") { self.name = name }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.firstTwo.check(bytes, "RolloutStatisticsRequest")
        name = try decode(bytes, "RolloutStatisticsRequest", unpack: swerve__v1__rollout_statistics_request__unpack, free: swerve__v1__rollout_statistics_request__free_unpacked) { str($0.name) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__RolloutStatisticsRequest(); swerve__v1__rollout_statistics_request__init(&m); m.name = a.cString(name)
        return encode(m, arena: a, size: swerve__v1__rollout_statistics_request__get_packed_size, pack: swerve__v1__rollout_statistics_request__pack)
    }
}

/// One model version's state on a replica, the labels the replica routes to it, and the evidence a
/// rollout compares: counters since the version loaded (a client reads twice and subtracts).
public struct VersionEvidence: Sendable, Equatable {
    public var version = "", state = "", reason = ""
    public var labels: [String] = []
    public var requests: UInt64 = 0, failures: UInt64 = 0
    /// Per bucket of `RolloutStatisticsResponse.latencyBoundsMicros`, plus one overflow bucket.
    public var latencyCounts: [UInt64] = []
    /// "class", "score" or "" (no prediction seen yet).
    public var predictionKind = ""
    public var classes: [String] = []
    public var classCounts: [UInt64] = []
    /// Per bucket of `RolloutStatisticsResponse.scoreBounds`, plus one overflow bucket.
    public var scoreCounts: [UInt64] = []
    public var scoreCount: UInt64 = 0
    public var scoreSum: Double = 0, scoreSumSquares: Double = 0
    public init() {}
}

public struct RolloutStatisticsResponse: ProtoMessage, Equatable {
    public var name = ""
    public var latencyBoundsMicros: [Double] = []
    public var scoreBounds: [Double] = []
    /// The labels as the replica applies them now (0: none) and the labels.json generation they come from.
    public var stable: Int64 = 0, canary: Int64 = 0
    public var canaryPercent: Double = 0
    public var labelsGeneration: UInt64 = 0
    public var versions: [VersionEvidence] = []
    public init() {}

    public init(serializedBytes bytes: [UInt8]) throws {
        self = try decode(bytes, "RolloutStatisticsResponse", unpack: swerve__v1__rollout_statistics_response__unpack, free: swerve__v1__rollout_statistics_response__free_unpacked) { m in
            var r = RolloutStatisticsResponse()
            r.name = str(m.name)
            r.latencyBoundsMicros = vals(m.n_latency_bounds_us, m.latency_bounds_us)
            r.scoreBounds = vals(m.n_score_bounds, m.score_bounds)
            r.stable = m.stable; r.canary = m.canary; r.canaryPercent = m.canary_percent; r.labelsGeneration = m.labels_generation
            r.versions = msgs(m.n_versions, m.versions) { p in
                var e = VersionEvidence()
                e.version = str(p.version); e.state = str(p.state); e.reason = str(p.reason)
                e.labels = strs(p.n_labels, p.labels)
                e.requests = p.requests; e.failures = p.failures
                e.latencyCounts = vals(p.n_latency_counts, p.latency_counts)
                e.predictionKind = str(p.prediction_kind)
                e.classes = strs(p.n_classes, p.classes); e.classCounts = vals(p.n_class_counts, p.class_counts)
                e.scoreCounts = vals(p.n_score_counts, p.score_counts)
                e.scoreCount = p.score_count; e.scoreSum = p.score_sum; e.scoreSumSquares = p.score_sum_squares
                return e
            }
            return r
        }
    }

    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        let entries = versions.map { e -> Swerve__V1__VersionEvidence in
            var p = Swerve__V1__VersionEvidence(); swerve__v1__version_evidence__init(&p)
            p.version = a.cString(e.version); p.state = a.cString(e.state); p.reason = a.cString(e.reason)
            p.n_labels = e.labels.count; p.labels = a.cStrings(e.labels)
            p.requests = e.requests; p.failures = e.failures
            p.n_latency_counts = e.latencyCounts.count; p.latency_counts = a.array(e.latencyCounts)
            p.prediction_kind = a.cString(e.predictionKind)
            p.n_classes = e.classes.count; p.classes = a.cStrings(e.classes)
            p.n_class_counts = e.classCounts.count; p.class_counts = a.array(e.classCounts)
            p.n_score_counts = e.scoreCounts.count; p.score_counts = a.array(e.scoreCounts)
            p.score_count = e.scoreCount; p.score_sum = e.scoreSum; p.score_sum_squares = e.scoreSumSquares
            return p
        }
        var m = Swerve__V1__RolloutStatisticsResponse(); swerve__v1__rollout_statistics_response__init(&m)
        m.name = a.cString(name)
        m.n_latency_bounds_us = latencyBoundsMicros.count; m.latency_bounds_us = a.array(latencyBoundsMicros)
        m.n_score_bounds = scoreBounds.count; m.score_bounds = a.array(scoreBounds)
        m.stable = stable; m.canary = canary; m.canary_percent = canaryPercent; m.labels_generation = labelsGeneration
        m.n_versions = entries.count; m.versions = a.boxes(entries)
        return encode(m, arena: a, size: swerve__v1__rollout_statistics_response__get_packed_size, pack: swerve__v1__rollout_statistics_response__pack)
    }
}
