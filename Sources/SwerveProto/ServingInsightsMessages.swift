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
