internal import CSwerveProto

// Swift value types for the non-inference RPCs of `inference.GRPCInferenceService`
// and for `grpc.health.v1.Health`.

public struct ServerLiveRequest: ProtoMessage, Equatable {
    public init() {}
    public init(serializedBytes bytes: [UInt8]) throws {
        try decode(bytes, "ServerLiveRequest", unpack: inference__server_live_request__unpack, free: inference__server_live_request__free_unpacked) { _ in }
    }
    public func serializedBytes() -> [UInt8] { [] }
}

public struct ServerLiveResponse: ProtoMessage, Equatable {
    public var live = false
    public init(live: Bool = false) { self.live = live }
    public init(serializedBytes bytes: [UInt8]) throws {
        live = try decode(bytes, "ServerLiveResponse", unpack: inference__server_live_response__unpack, free: inference__server_live_response__free_unpacked) { $0.live != 0 }
    }
    public func serializedBytes() -> [UInt8] {
        var m = Inference__ServerLiveResponse(); inference__server_live_response__init(&m); m.live = live ? 1 : 0
        return encode(m, size: inference__server_live_response__get_packed_size, pack: inference__server_live_response__pack)
    }
}

public struct ServerReadyRequest: ProtoMessage, Equatable {
    public init() {}
    public init(serializedBytes bytes: [UInt8]) throws {
        try decode(bytes, "ServerReadyRequest", unpack: inference__server_ready_request__unpack, free: inference__server_ready_request__free_unpacked) { _ in }
    }
    public func serializedBytes() -> [UInt8] { [] }
}

public struct ServerReadyResponse: ProtoMessage, Equatable {
    public var ready = false
    public init(ready: Bool = false) { self.ready = ready }
    public init(serializedBytes bytes: [UInt8]) throws {
        ready = try decode(bytes, "ServerReadyResponse", unpack: inference__server_ready_response__unpack, free: inference__server_ready_response__free_unpacked) { $0.ready != 0 }
    }
    public func serializedBytes() -> [UInt8] {
        var m = Inference__ServerReadyResponse(); inference__server_ready_response__init(&m); m.ready = ready ? 1 : 0
        return encode(m, size: inference__server_ready_response__get_packed_size, pack: inference__server_ready_response__pack)
    }
}

/// Name + optional version: the shape of ModelReady, ModelMetadata, ModelConfig and ModelStatistics requests.
public struct ModelReadyRequest: ProtoMessage, Equatable {
    public var name = ""
    public var version = ""
    public init(name: String = "", version: String = "") { self.name = name; self.version = version }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.firstTwo.check(bytes, "ModelReadyRequest")
        (name, version) = try decode(bytes, "ModelReadyRequest", unpack: inference__model_ready_request__unpack, free: inference__model_ready_request__free_unpacked) { (str($0.name), str($0.version)) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Inference__ModelReadyRequest(); inference__model_ready_request__init(&m); m.name = a.cString(name); m.version = a.cString(version)
        return encode(m, arena: a, size: inference__model_ready_request__get_packed_size, pack: inference__model_ready_request__pack)
    }
}

public struct ModelReadyResponse: ProtoMessage, Equatable {
    public var ready = false
    public init(ready: Bool = false) { self.ready = ready }
    public init(serializedBytes bytes: [UInt8]) throws {
        ready = try decode(bytes, "ModelReadyResponse", unpack: inference__model_ready_response__unpack, free: inference__model_ready_response__free_unpacked) { $0.ready != 0 }
    }
    public func serializedBytes() -> [UInt8] {
        var m = Inference__ModelReadyResponse(); inference__model_ready_response__init(&m); m.ready = ready ? 1 : 0
        return encode(m, size: inference__model_ready_response__get_packed_size, pack: inference__model_ready_response__pack)
    }
}

public struct ServerMetadataRequest: ProtoMessage, Equatable {
    public init() {}
    public init(serializedBytes bytes: [UInt8]) throws {
        try decode(bytes, "ServerMetadataRequest", unpack: inference__server_metadata_request__unpack, free: inference__server_metadata_request__free_unpacked) { _ in }
    }
    public func serializedBytes() -> [UInt8] { [] }
}

public struct ServerMetadataResponse: ProtoMessage, Equatable {
    public var name = ""
    public var version = ""
    public var extensions: [String] = []
    public init(name: String = "", version: String = "", extensions: [String] = []) { self.name = name; self.version = version; self.extensions = extensions }
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try decode(bytes, "ServerMetadataResponse", unpack: inference__server_metadata_response__unpack, free: inference__server_metadata_response__free_unpacked) {
            ServerMetadataResponse(name: str($0.name), version: str($0.version), extensions: strs($0.n_extensions, $0.extensions))
        }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Inference__ServerMetadataResponse(); inference__server_metadata_response__init(&m)
        m.name = a.cString(name); m.version = a.cString(version)
        m.n_extensions = extensions.count; m.extensions = a.cStrings(extensions)
        return encode(m, arena: a, size: inference__server_metadata_response__get_packed_size, pack: inference__server_metadata_response__pack)
    }
}

public struct ModelMetadataRequest: ProtoMessage, Equatable {
    public var name = ""
    public var version = ""
    public init(name: String = "", version: String = "") { self.name = name; self.version = version }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.firstTwo.check(bytes, "ModelMetadataRequest")
        (name, version) = try decode(bytes, "ModelMetadataRequest", unpack: inference__model_metadata_request__unpack, free: inference__model_metadata_request__free_unpacked) { (str($0.name), str($0.version)) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Inference__ModelMetadataRequest(); inference__model_metadata_request__init(&m); m.name = a.cString(name); m.version = a.cString(version)
        return encode(m, arena: a, size: inference__model_metadata_request__get_packed_size, pack: inference__model_metadata_request__pack)
    }
}

public struct TensorMetadata: Sendable, Equatable {
    public var name: String
    public var datatype: String
    public var shape: [Int64]
    public init(name: String, datatype: String, shape: [Int64]) { self.name = name; self.datatype = datatype; self.shape = shape }
}

public struct ModelMetadataResponse: ProtoMessage, Equatable {
    public var name = ""
    public var versions: [String] = []
    public var platform = ""
    public var inputs: [TensorMetadata] = []
    public var outputs: [TensorMetadata] = []
    public init() {}
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try decode(bytes, "ModelMetadataResponse", unpack: inference__model_metadata_response__unpack, free: inference__model_metadata_response__free_unpacked) { m in
            var r = ModelMetadataResponse()
            r.name = str(m.name); r.versions = strs(m.n_versions, m.versions); r.platform = str(m.platform)
            let read = { (t: Inference__ModelMetadataResponse__TensorMetadata) in TensorMetadata(name: str(t.name), datatype: str(t.datatype), shape: vals(t.n_shape, t.shape)) }
            r.inputs = msgs(m.n_inputs, m.inputs, read)
            r.outputs = msgs(m.n_outputs, m.outputs, read)
            return r
        }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Inference__ModelMetadataResponse(); inference__model_metadata_response__init(&m)
        m.name = a.cString(name); m.platform = a.cString(platform)
        m.n_versions = versions.count; m.versions = a.cStrings(versions)
        let build = { (t: TensorMetadata) -> Inference__ModelMetadataResponse__TensorMetadata in
            var c = Inference__ModelMetadataResponse__TensorMetadata(); inference__model_metadata_response__tensor_metadata__init(&c)
            c.name = a.cString(t.name); c.datatype = a.cString(t.datatype); c.n_shape = t.shape.count; c.shape = a.array(t.shape)
            return c
        }
        m.n_inputs = inputs.count; m.inputs = a.boxes(inputs.map(build))
        m.n_outputs = outputs.count; m.outputs = a.boxes(outputs.map(build))
        return encode(m, arena: a, size: inference__model_metadata_response__get_packed_size, pack: inference__model_metadata_response__pack)
    }
}

// MARK: - Statistics

public struct ModelStatisticsRequest: ProtoMessage, Equatable {
    public var name = ""
    public var version = ""
    public init(name: String = "", version: String = "") { self.name = name; self.version = version }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.firstTwo.check(bytes, "ModelStatisticsRequest")
        (name, version) = try decode(bytes, "ModelStatisticsRequest", unpack: inference__model_statistics_request__unpack, free: inference__model_statistics_request__free_unpacked) { (str($0.name), str($0.version)) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Inference__ModelStatisticsRequest(); inference__model_statistics_request__init(&m); m.name = a.cString(name); m.version = a.cString(version)
        return encode(m, arena: a, size: inference__model_statistics_request__get_packed_size, pack: inference__model_statistics_request__pack)
    }
}

/// Count and cumulative nanoseconds (`inference.StatisticDuration`).
public struct StatisticDuration: Sendable, Equatable {
    public var count: UInt64 = 0
    public var ns: UInt64 = 0
    public init(count: UInt64 = 0, ns: UInt64 = 0) { self.count = count; self.ns = ns }
    init(_ p: UnsafeMutablePointer<Inference__StatisticDuration>?) { count = p?.pointee.count ?? 0; ns = p?.pointee.ns ?? 0 }
    func build(_ a: Arena) -> UnsafeMutablePointer<Inference__StatisticDuration> {
        var d = Inference__StatisticDuration(); inference__statistic_duration__init(&d); d.count = count; d.ns = ns
        return a.box(d)
    }
}

public struct ModelStatistics: Sendable, Equatable {
    public struct Batch: Sendable, Equatable {
        public var batchSize: UInt64
        public var computeInput = StatisticDuration(), computeInfer = StatisticDuration(), computeOutput = StatisticDuration()
        public init(batchSize: UInt64) { self.batchSize = batchSize }
    }
    public var name = ""
    public var version = ""
    public var lastInference: UInt64 = 0
    public var inferenceCount: UInt64 = 0
    public var executionCount: UInt64 = 0
    public var success = StatisticDuration(), fail = StatisticDuration(), queue = StatisticDuration()
    public var computeInput = StatisticDuration(), computeInfer = StatisticDuration(), computeOutput = StatisticDuration()
    public var cacheHit = StatisticDuration(), cacheMiss = StatisticDuration()
    public var batchStats: [Batch] = []
    public init() {}
}

public struct ModelStatisticsResponse: ProtoMessage, Equatable {
    public var modelStats: [ModelStatistics] = []
    public init(modelStats: [ModelStatistics] = []) { self.modelStats = modelStats }
    public init(serializedBytes bytes: [UInt8]) throws {
        modelStats = try decode(bytes, "ModelStatisticsResponse", unpack: inference__model_statistics_response__unpack, free: inference__model_statistics_response__free_unpacked) { m in
            msgs(m.n_model_stats, m.model_stats) { s in
                var r = ModelStatistics()
                r.name = str(s.name); r.version = str(s.version)
                r.lastInference = s.last_inference; r.inferenceCount = s.inference_count; r.executionCount = s.execution_count
                if let i = s.inference_stats?.pointee {
                    r.success = .init(i.success); r.fail = .init(i.fail); r.queue = .init(i.queue)
                    r.computeInput = .init(i.compute_input); r.computeInfer = .init(i.compute_infer); r.computeOutput = .init(i.compute_output)
                    r.cacheHit = .init(i.cache_hit); r.cacheMiss = .init(i.cache_miss)
                }
                r.batchStats = msgs(s.n_batch_stats, s.batch_stats) { b in
                    var x = ModelStatistics.Batch(batchSize: b.batch_size)
                    x.computeInput = .init(b.compute_input); x.computeInfer = .init(b.compute_infer); x.computeOutput = .init(b.compute_output)
                    return x
                }
                return r
            }
        }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Inference__ModelStatisticsResponse(); inference__model_statistics_response__init(&m)
        let stats = modelStats.map { r -> Inference__ModelStatistics in
            var s = Inference__ModelStatistics(); inference__model_statistics__init(&s)
            s.name = a.cString(r.name); s.version = a.cString(r.version)
            s.last_inference = r.lastInference; s.inference_count = r.inferenceCount; s.execution_count = r.executionCount
            var i = Inference__InferStatistics(); inference__infer_statistics__init(&i)
            i.success = r.success.build(a); i.fail = r.fail.build(a); i.queue = r.queue.build(a)
            i.compute_input = r.computeInput.build(a); i.compute_infer = r.computeInfer.build(a); i.compute_output = r.computeOutput.build(a)
            i.cache_hit = r.cacheHit.build(a); i.cache_miss = r.cacheMiss.build(a)
            s.inference_stats = a.box(i)
            let batches = r.batchStats.map { x -> Inference__InferBatchStatistics in
                var b = Inference__InferBatchStatistics(); inference__infer_batch_statistics__init(&b)
                b.batch_size = x.batchSize
                b.compute_input = x.computeInput.build(a); b.compute_infer = x.computeInfer.build(a); b.compute_output = x.computeOutput.build(a)
                return b
            }
            s.n_batch_stats = batches.count; s.batch_stats = a.boxes(batches)
            return s
        }
        m.n_model_stats = stats.count; m.model_stats = a.boxes(stats)
        return encode(m, arena: a, size: inference__model_statistics_response__get_packed_size, pack: inference__model_statistics_response__pack)
    }
}

// MARK: - Repository

public struct RepositoryIndexRequest: ProtoMessage, Equatable {
    public var repositoryName = ""
    public var ready = false
    public init(repositoryName: String = "", ready: Bool = false) { self.repositoryName = repositoryName; self.ready = ready }
    public init(serializedBytes bytes: [UInt8]) throws {
        (repositoryName, ready) = try decode(bytes, "RepositoryIndexRequest", unpack: inference__repository_index_request__unpack, free: inference__repository_index_request__free_unpacked) { (str($0.repository_name), $0.ready != 0) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Inference__RepositoryIndexRequest(); inference__repository_index_request__init(&m); m.repository_name = a.cString(repositoryName); m.ready = ready ? 1 : 0
        return encode(m, arena: a, size: inference__repository_index_request__get_packed_size, pack: inference__repository_index_request__pack)
    }
}

public struct RepositoryIndexResponse: ProtoMessage, Equatable {
    public struct ModelIndex: Sendable, Equatable {
        public var name: String, version: String, state: String, reason: String
        public init(name: String, version: String, state: String, reason: String) { self.name = name; self.version = version; self.state = state; self.reason = reason }
    }
    public var models: [ModelIndex] = []
    public init(models: [ModelIndex] = []) { self.models = models }
    public init(serializedBytes bytes: [UInt8]) throws {
        models = try decode(bytes, "RepositoryIndexResponse", unpack: inference__repository_index_response__unpack, free: inference__repository_index_response__free_unpacked) { m in
            msgs(m.n_models, m.models) { ModelIndex(name: str($0.name), version: str($0.version), state: str($0.state), reason: str($0.reason)) }
        }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Inference__RepositoryIndexResponse(); inference__repository_index_response__init(&m)
        let entries = models.map { x -> Inference__RepositoryIndexResponse__ModelIndex in
            var e = Inference__RepositoryIndexResponse__ModelIndex(); inference__repository_index_response__model_index__init(&e)
            e.name = a.cString(x.name); e.version = a.cString(x.version); e.state = a.cString(x.state); e.reason = a.cString(x.reason)
            return e
        }
        m.n_models = entries.count; m.models = a.boxes(entries)
        return encode(m, arena: a, size: inference__repository_index_response__get_packed_size, pack: inference__repository_index_response__pack)
    }
}

public struct RepositoryModelLoadRequest: ProtoMessage, Equatable {
    public var repositoryName = ""
    public var modelName = ""
    public init(repositoryName: String = "", modelName: String = "") { self.repositoryName = repositoryName; self.modelName = modelName }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.firstTwo.check(bytes, "RepositoryModelLoadRequest")
        (repositoryName, modelName) = try decode(bytes, "RepositoryModelLoadRequest", unpack: inference__repository_model_load_request__unpack, free: inference__repository_model_load_request__free_unpacked) { (str($0.repository_name), str($0.model_name)) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Inference__RepositoryModelLoadRequest(); inference__repository_model_load_request__init(&m); m.repository_name = a.cString(repositoryName); m.model_name = a.cString(modelName)
        return encode(m, arena: a, size: inference__repository_model_load_request__get_packed_size, pack: inference__repository_model_load_request__pack)
    }
}

public struct RepositoryModelUnloadRequest: ProtoMessage, Equatable {
    public var repositoryName = ""
    public var modelName = ""
    public init(repositoryName: String = "", modelName: String = "") { self.repositoryName = repositoryName; self.modelName = modelName }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.firstTwo.check(bytes, "RepositoryModelUnloadRequest")
        (repositoryName, modelName) = try decode(bytes, "RepositoryModelUnloadRequest", unpack: inference__repository_model_unload_request__unpack, free: inference__repository_model_unload_request__free_unpacked) { (str($0.repository_name), str($0.model_name)) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Inference__RepositoryModelUnloadRequest(); inference__repository_model_unload_request__init(&m); m.repository_name = a.cString(repositoryName); m.model_name = a.cString(modelName)
        return encode(m, arena: a, size: inference__repository_model_unload_request__get_packed_size, pack: inference__repository_model_unload_request__pack)
    }
}

/// The empty responses of RepositoryModelLoad and RepositoryModelUnload.
public struct EmptyMessage: ProtoMessage, Equatable {
    public init() {}
    public init(serializedBytes bytes: [UInt8]) throws {
        try decode(bytes, "empty message", unpack: inference__repository_model_load_response__unpack, free: inference__repository_model_load_response__free_unpacked) { _ in }
    }
    public func serializedBytes() -> [UInt8] { [] }
}

// MARK: - Health

public struct HealthCheckRequest: ProtoMessage, Equatable {
    public var service = ""
    public init(service: String = "") { self.service = service }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.firstTwo.check(bytes, "HealthCheckRequest")
        service = try decode(bytes, "HealthCheckRequest", unpack: grpc__health__v1__health_check_request__unpack, free: grpc__health__v1__health_check_request__free_unpacked) { str($0.service) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Grpc__Health__V1__HealthCheckRequest(); grpc__health__v1__health_check_request__init(&m); m.service = a.cString(service)
        return encode(m, arena: a, size: grpc__health__v1__health_check_request__get_packed_size, pack: grpc__health__v1__health_check_request__pack)
    }
}

public struct HealthCheckResponse: ProtoMessage, Equatable {
    public enum ServingStatus: Int32, Sendable { case unknown = 0, serving = 1, notServing = 2, serviceUnknown = 3 }
    public var status: ServingStatus = .unknown
    public init(status: ServingStatus = .unknown) { self.status = status }
    public init(serializedBytes bytes: [UInt8]) throws {
        let raw = try decode(bytes, "HealthCheckResponse", unpack: grpc__health__v1__health_check_response__unpack, free: grpc__health__v1__health_check_response__free_unpacked) { $0.status.rawValue }
        status = ServingStatus(rawValue: Int32(raw)) ?? .unknown
    }
    public func serializedBytes() -> [UInt8] {
        var m = Grpc__Health__V1__HealthCheckResponse(); grpc__health__v1__health_check_response__init(&m)
        m.status = Grpc__Health__V1__HealthCheckResponse__ServingStatus(rawValue: .init(status.rawValue))
        return encode(m, size: grpc__health__v1__health_check_response__get_packed_size, pack: grpc__health__v1__health_check_response__pack)
    }
}
