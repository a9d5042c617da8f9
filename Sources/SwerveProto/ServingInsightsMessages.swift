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

// MARK: - Drift

public struct DriftRequest: ProtoMessage, Equatable {
    public var name = ""
    public var version = ""
    public init(name: String = "", version: String = "") { self.name = name; self.version = version }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.firstTwo.check(bytes, "DriftRequest")
        (name, version) = try decode(bytes, "DriftRequest", unpack: swerve__v1__drift_request__unpack, free: swerve__v1__drift_request__free_unpacked) { (str($0.name), str($0.version)) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__DriftRequest(); swerve__v1__drift_request__init(&m); m.name = a.cString(name); m.version = a.cString(version)
        return encode(m, arena: a, size: swerve__v1__drift_request__get_packed_size, pack: swerve__v1__drift_request__pack)
    }
}

/// One feature in one window (`swerve.v1.FeatureWindow`).
public struct FeatureWindow: Sendable, Equatable {
    public var count: UInt64 = 0, missing: UInt64 = 0
    public var mean: Double = .nan
    public var quantiles: [Double] = []
    public var binCounts: [UInt64] = []
    public var psi: Double = .nan, ksStatistic: Double = .nan, ksPValue: Double = .nan
    public var outOfVocabulary: [String] = []
    public var outOfVocabularyCounts: [UInt64] = []
    public init() {}
}

/// One watched feature, its reference and its windows (`swerve.v1.FeatureDrift`).
public struct FeatureDrift: Sendable, Equatable {
    public var name = "", kind = "", input = ""
    public var column: UInt32 = 0
    public var referenceCount: UInt64 = 0
    public var referenceMean: Double = 0, referenceStd: Double = 0
    public var binEdges: [Double] = []
    public var categories: [String] = []
    public var referenceProportions: [Double] = []
    public var windows: [FeatureWindow] = []
    public init() {}
}

public struct OutputWindow: Sendable, Equatable {
    public var count: UInt64 = 0
    public var classes: [String] = []
    public var classCounts: [UInt64] = []
    public var scoreCount: UInt64 = 0
    public var scoreMean: Double = .nan
    public var scoreQuantiles: [Double] = []
    public init() {}
}

public struct OutputDrift: Sendable, Equatable {
    public var name = "", kind = ""
    public var windows: [OutputWindow] = []
    public init() {}
}

public struct DriftWindow: Sendable, Equatable {
    public var startMs: UInt64 = 0, endMs: UInt64 = 0, rows: UInt64 = 0
    public var drifted: UInt32 = 0
    public init(startMs: UInt64 = 0, endMs: UInt64 = 0, rows: UInt64 = 0, drifted: UInt32 = 0) {
        self.startMs = startMs; self.endMs = endMs; self.rows = rows; self.drifted = drifted
    }
}

/// One version's drift monitor (`swerve.v1.VersionDrift`).
public struct VersionDrift: Sendable, Equatable {
    public var name = "", version = ""
    public var sampleRate: Double = 0
    public var windowSeconds: UInt64 = 0, minSamples: UInt64 = 0
    public var psiThreshold: Double = 0
    public var samplesObserved: UInt64 = 0, samplesDropped: UInt64 = 0
    public var unmapped: [String] = []
    public var quantileLevels: [Double] = []
    public var windows: [DriftWindow] = []
    public var features: [FeatureDrift] = []
    public var outputs: [OutputDrift] = []
    public init() {}
}

public struct DriftResponse: ProtoMessage, Equatable {
    public var versions: [VersionDrift] = []
    public init(versions: [VersionDrift] = []) { self.versions = versions }

    public init(serializedBytes bytes: [UInt8]) throws {
        versions = try decode(bytes, "DriftResponse", unpack: swerve__v1__drift_response__unpack, free: swerve__v1__drift_response__free_unpacked) { m in
            msgs(m.n_versions, m.versions) { p in
                var v = VersionDrift()
                v.name = str(p.name); v.version = str(p.version)
                v.sampleRate = p.sample_rate; v.windowSeconds = p.window_seconds; v.minSamples = p.min_samples
                v.psiThreshold = p.psi_threshold
                v.samplesObserved = p.samples_observed; v.samplesDropped = p.samples_dropped
                v.unmapped = strs(p.n_unmapped, p.unmapped)
                v.quantileLevels = vals(p.n_quantile_levels, p.quantile_levels)
                v.windows = msgs(p.n_windows, p.windows) { w in
                    DriftWindow(startMs: w.start_ms, endMs: w.end_ms, rows: w.rows, drifted: w.drifted)
                }
                v.features = msgs(p.n_features, p.features) { f in
                    var d = FeatureDrift()
                    d.name = str(f.name); d.kind = str(f.kind); d.input = str(f.input); d.column = f.column
                    d.referenceCount = f.reference_count; d.referenceMean = f.reference_mean; d.referenceStd = f.reference_std
                    d.binEdges = vals(f.n_bin_edges, f.bin_edges)
                    d.categories = strs(f.n_categories, f.categories)
                    d.referenceProportions = vals(f.n_reference_proportions, f.reference_proportions)
                    d.windows = msgs(f.n_windows, f.windows) { w in
                        var x = FeatureWindow()
                        x.count = w.count; x.missing = w.missing; x.mean = w.mean
                        x.quantiles = vals(w.n_quantiles, w.quantiles)
                        x.binCounts = vals(w.n_bin_counts, w.bin_counts)
                        x.psi = w.psi; x.ksStatistic = w.ks_statistic; x.ksPValue = w.ks_p_value
                        x.outOfVocabulary = strs(w.n_out_of_vocabulary, w.out_of_vocabulary)
                        x.outOfVocabularyCounts = vals(w.n_out_of_vocabulary_counts, w.out_of_vocabulary_counts)
                        return x
                    }
                    return d
                }
                v.outputs = msgs(p.n_outputs, p.outputs) { o in
                    var d = OutputDrift()
                    d.name = str(o.name); d.kind = str(o.kind)
                    d.windows = msgs(o.n_windows, o.windows) { w in
                        var x = OutputWindow()
                        x.count = w.count
                        x.classes = strs(w.n_classes, w.classes); x.classCounts = vals(w.n_class_counts, w.class_counts)
                        x.scoreCount = w.score_count; x.scoreMean = w.score_mean
                        x.scoreQuantiles = vals(w.n_score_quantiles, w.score_quantiles)
                        return x
                    }
                    return d
                }
                return v
            }
        }
    }

    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        let entries = versions.map { v -> Swerve__V1__VersionDrift in
            var p = Swerve__V1__VersionDrift(); swerve__v1__version_drift__init(&p)
            p.name = a.cString(v.name); p.version = a.cString(v.version)
            p.sample_rate = v.sampleRate; p.window_seconds = v.windowSeconds; p.min_samples = v.minSamples
            p.psi_threshold = v.psiThreshold
            p.samples_observed = v.samplesObserved; p.samples_dropped = v.samplesDropped
            p.n_unmapped = v.unmapped.count; p.unmapped = a.cStrings(v.unmapped)
            p.n_quantile_levels = v.quantileLevels.count; p.quantile_levels = a.array(v.quantileLevels)
            let windows = v.windows.map { w -> Swerve__V1__DriftWindow in
                var x = Swerve__V1__DriftWindow(); swerve__v1__drift_window__init(&x)
                x.start_ms = w.startMs; x.end_ms = w.endMs; x.rows = w.rows; x.drifted = w.drifted
                return x
            }
            p.n_windows = windows.count; p.windows = a.boxes(windows)
            let features = v.features.map { d -> Swerve__V1__FeatureDrift in
                var f = Swerve__V1__FeatureDrift(); swerve__v1__feature_drift__init(&f)
                f.name = a.cString(d.name); f.kind = a.cString(d.kind); f.input = a.cString(d.input); f.column = d.column
                f.reference_count = d.referenceCount; f.reference_mean = d.referenceMean; f.reference_std = d.referenceStd
                f.n_bin_edges = d.binEdges.count; f.bin_edges = a.array(d.binEdges)
                f.n_categories = d.categories.count; f.categories = a.cStrings(d.categories)
                f.n_reference_proportions = d.referenceProportions.count; f.reference_proportions = a.array(d.referenceProportions)
                let ws = d.windows.map { w -> Swerve__V1__FeatureWindow in
                    var x = Swerve__V1__FeatureWindow(); swerve__v1__feature_window__init(&x)
                    x.count = w.count; x.missing = w.missing; x.mean = w.mean
                    x.n_quantiles = w.quantiles.count; x.quantiles = a.array(w.quantiles)
                    x.n_bin_counts = w.binCounts.count; x.bin_counts = a.array(w.binCounts)
                    x.psi = w.psi; x.ks_statistic = w.ksStatistic; x.ks_p_value = w.ksPValue
                    x.n_out_of_vocabulary = w.outOfVocabulary.count; x.out_of_vocabulary = a.cStrings(w.outOfVocabulary)
                    x.n_out_of_vocabulary_counts = w.outOfVocabularyCounts.count; x.out_of_vocabulary_counts = a.array(w.outOfVocabularyCounts)
                    return x
                }
                f.n_windows = ws.count; f.windows = a.boxes(ws)
                return f
            }
            p.n_features = features.count; p.features = a.boxes(features)
            let outputs = v.outputs.map { d -> Swerve__V1__OutputDrift in
                var o = Swerve__V1__OutputDrift(); swerve__v1__output_drift__init(&o)
                o.name = a.cString(d.name); o.kind = a.cString(d.kind)
                let ws = d.windows.map { w -> Swerve__V1__OutputWindow in
                    var x = Swerve__V1__OutputWindow(); swerve__v1__output_window__init(&x)
                    x.count = w.count
                    x.n_classes = w.classes.count; x.classes = a.cStrings(w.classes)
                    x.n_class_counts = w.classCounts.count; x.class_counts = a.array(w.classCounts)
                    x.score_count = w.scoreCount; x.score_mean = w.scoreMean
                    x.n_score_quantiles = w.scoreQuantiles.count; x.score_quantiles = a.array(w.scoreQuantiles)
                    return x
                }
                o.n_windows = ws.count; o.windows = a.boxes(ws)
                return o
            }
            p.n_outputs = outputs.count; p.outputs = a.boxes(outputs)
            return p
        }
        var m = Swerve__V1__DriftResponse(); swerve__v1__drift_response__init(&m)
        m.n_versions = entries.count; m.versions = a.boxes(entries)
        return encode(m, arena: a, size: swerve__v1__drift_response__get_packed_size, pack: swerve__v1__drift_response__pack)
    }
}

// MARK: - Feedback

public struct LabelFeedback: Sendable, Equatable {
    public var requestID: String
    public var label: String
    public init(requestID: String, label: String) { self.requestID = requestID; self.label = label }
}

public struct AppendLabelsRequest: ProtoMessage, Equatable {
    public var modelName = ""
    public var labels: [LabelFeedback] = []
    public init(modelName: String = "", labels: [LabelFeedback] = []) { self.modelName = modelName; self.labels = labels }

    public init(serializedBytes bytes: [UInt8]) throws {
        (modelName, labels) = try decode(bytes, "AppendLabelsRequest", unpack: swerve__v1__append_labels_request__unpack, free: swerve__v1__append_labels_request__free_unpacked) { m in
            (str(m.model_name), msgs(m.n_labels, m.labels) { LabelFeedback(requestID: str($0.request_id), label: str($0.label)) })
        }
    }

    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        let entries = labels.map { l -> Swerve__V1__LabelFeedback in
            var p = Swerve__V1__LabelFeedback(); swerve__v1__label_feedback__init(&p)
            p.request_id = a.cString(l.requestID); p.label = a.cString(l.label)
            return p
        }
        var m = Swerve__V1__AppendLabelsRequest(); swerve__v1__append_labels_request__init(&m)
        m.model_name = a.cString(modelName)
        m.n_labels = entries.count; m.labels = a.boxes(entries)
        return encode(m, arena: a, size: swerve__v1__append_labels_request__get_packed_size, pack: swerve__v1__append_labels_request__pack)
    }
}

public struct LabelOutcome: Sendable, Equatable {
    public var requestID = "", outcome = "", version = ""
    public var sequence: UInt64 = 0
    public init(requestID: String = "", outcome: String = "", version: String = "", sequence: UInt64 = 0) {
        self.requestID = requestID; self.outcome = outcome; self.version = version; self.sequence = sequence
    }
}

public struct AppendLabelsResponse: ProtoMessage, Equatable {
    public var outcomes: [LabelOutcome] = []
    public var forwarded = false
    public init(outcomes: [LabelOutcome] = [], forwarded: Bool = false) { self.outcomes = outcomes; self.forwarded = forwarded }

    public init(serializedBytes bytes: [UInt8]) throws {
        (outcomes, forwarded) = try decode(bytes, "AppendLabelsResponse", unpack: swerve__v1__append_labels_response__unpack, free: swerve__v1__append_labels_response__free_unpacked) { m in
            (msgs(m.n_outcomes, m.outcomes) { LabelOutcome(requestID: str($0.request_id), outcome: str($0.outcome), version: str($0.version), sequence: $0.sequence) },
             m.forwarded != 0)
        }
    }

    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        let entries = outcomes.map { o -> Swerve__V1__LabelOutcome in
            var p = Swerve__V1__LabelOutcome(); swerve__v1__label_outcome__init(&p)
            p.request_id = a.cString(o.requestID); p.outcome = a.cString(o.outcome); p.version = a.cString(o.version); p.sequence = o.sequence
            return p
        }
        var m = Swerve__V1__AppendLabelsResponse(); swerve__v1__append_labels_response__init(&m)
        m.n_outcomes = entries.count; m.outcomes = a.boxes(entries)
        m.forwarded = forwarded ? 1 : 0
        return encode(m, arena: a, size: swerve__v1__append_labels_response__get_packed_size, pack: swerve__v1__append_labels_response__pack)
    }
}
