internal import CSwerveProto

// Swift value types for `swerve.v1.Trainer` (protos/swerve_training.proto).

/// Reads a protobuf-c map<string, string> (entries with key/value).
private func readStringMap<E>(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<E>?>?,
                              key: (E) -> UnsafeMutablePointer<CChar>?, value: (E) -> UnsafeMutablePointer<CChar>?) -> [String: String] {
    var out: [String: String] = [:]
    for e in msgs(n, p, { $0 }) { out[str(key(e))] = str(value(e)) }
    return out
}

public struct SubmitJobRequest: ProtoMessage, Equatable {
    public var modelName = "", modelKind = "", dataPath = "", schemaJSON = "", label = ""
    public var continuous = false
    public var hyperparameters: [String: String] = [:]
    public var gatesJSON = "", startedBy = "", sliceColumn = ""
    public var pollSeconds: UInt32 = 0
    public init() {}

    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields(strings: [1, 2, 3, 4, 5, 8, 9, 10], nested: [7: StringFields(strings: [1, 2])]).check(bytes, "SubmitJobRequest")
        self = try decode(bytes, "SubmitJobRequest", unpack: swerve__v1__submit_job_request__unpack, free: swerve__v1__submit_job_request__free_unpacked) { m in
            var r = SubmitJobRequest()
            r.modelName = str(m.model_name); r.modelKind = str(m.model_kind); r.dataPath = str(m.data_path)
            r.schemaJSON = str(m.schema_json); r.label = str(m.label); r.continuous = m.continuous != 0
            r.hyperparameters = readStringMap(m.n_hyperparameters, m.hyperparameters, key: { $0.key }, value: { $0.value })
            r.gatesJSON = str(m.gates_json); r.startedBy = str(m.started_by); r.sliceColumn = str(m.slice_column)
            r.pollSeconds = m.poll_seconds
            return r
        }
    }

    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__SubmitJobRequest(); swerve__v1__submit_job_request__init(&m)
        m.model_name = a.cString(modelName); m.model_kind = a.cString(modelKind); m.data_path = a.cString(dataPath)
        m.schema_json = a.cString(schemaJSON); m.label = a.cString(label); m.continuous = continuous ? 1 : 0
        let entries = hyperparameters.sorted { $0.key < $1.key }.map { kv -> Swerve__V1__SubmitJobRequest__HyperparametersEntry in
            var e = Swerve__V1__SubmitJobRequest__HyperparametersEntry(); swerve__v1__submit_job_request__hyperparameters_entry__init(&e)
            e.key = a.cString(kv.key); e.value = a.cString(kv.value)
            return e
        }
        m.n_hyperparameters = entries.count; m.hyperparameters = a.boxes(entries)
        m.gates_json = a.cString(gatesJSON); m.started_by = a.cString(startedBy); m.slice_column = a.cString(sliceColumn)
        m.poll_seconds = pollSeconds
        return encode(m, arena: a, size: swerve__v1__submit_job_request__get_packed_size, pack: swerve__v1__submit_job_request__pack)
    }
}

public struct JobRef: ProtoMessage, Equatable {
    public var jobID = ""
    public init(jobID: String = "") { self.jobID = jobID }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.firstTwo.check(bytes, "JobRef")
        jobID = try decode(bytes, "JobRef", unpack: swerve__v1__job_ref__unpack, free: swerve__v1__job_ref__free_unpacked) { str($0.job_id) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__JobRef(); swerve__v1__job_ref__init(&m); m.job_id = a.cString(jobID)
        return encode(m, arena: a, size: swerve__v1__job_ref__get_packed_size, pack: swerve__v1__job_ref__pack)
    }
}

public struct JobStatus: ProtoMessage, Equatable {
    public var jobID = "", modelName = "", state = "", message = ""
    public var publishedVersion: Int64 = 0
    public var examplesSeen: UInt64 = 0
    public var createdUnixMs: Int64 = 0, updatedUnixMs: Int64 = 0
    public init() {}

    init(_ m: Swerve__V1__JobStatus) {
        jobID = str(m.job_id); modelName = str(m.model_name); state = str(m.state); message = str(m.message)
        publishedVersion = m.published_version; examplesSeen = m.examples_seen
        createdUnixMs = m.created_unix_ms; updatedUnixMs = m.updated_unix_ms
    }

    func build(_ a: Arena) -> Swerve__V1__JobStatus {
        var m = Swerve__V1__JobStatus(); swerve__v1__job_status__init(&m)
        m.job_id = a.cString(jobID); m.model_name = a.cString(modelName); m.state = a.cString(state); m.message = a.cString(message)
        m.published_version = publishedVersion; m.examples_seen = examplesSeen
        m.created_unix_ms = createdUnixMs; m.updated_unix_ms = updatedUnixMs
        return m
    }

    public init(serializedBytes bytes: [UInt8]) throws {
        self = try decode(bytes, "JobStatus", unpack: swerve__v1__job_status__unpack, free: swerve__v1__job_status__free_unpacked) { JobStatus($0) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        return encode(build(a), arena: a, size: swerve__v1__job_status__get_packed_size, pack: swerve__v1__job_status__pack)
    }
}

public struct JobEvent: ProtoMessage, Equatable {
    public var status = JobStatus()
    public var progressLine = ""
    public var epoch: UInt32 = 0
    public var trainLoss = 0.0, validationMetric = 0.0, examplesPerSecond = 0.0
    public init() {}
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try decode(bytes, "JobEvent", unpack: swerve__v1__job_event__unpack, free: swerve__v1__job_event__free_unpacked) { m in
            var e = JobEvent()
            if let s = m.status { e.status = JobStatus(s.pointee) }
            e.progressLine = str(m.progress_line); e.epoch = m.epoch
            e.trainLoss = m.train_loss; e.validationMetric = m.validation_metric; e.examplesPerSecond = m.examples_per_second
            return e
        }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__JobEvent(); swerve__v1__job_event__init(&m)
        m.status = a.box(status.build(a))
        m.progress_line = a.cString(progressLine); m.epoch = epoch
        m.train_loss = trainLoss; m.validation_metric = validationMetric; m.examples_per_second = examplesPerSecond
        return encode(m, arena: a, size: swerve__v1__job_event__get_packed_size, pack: swerve__v1__job_event__pack)
    }
}

public struct ListJobsRequest: ProtoMessage, Equatable {
    public var modelName = ""
    public init(modelName: String = "") { self.modelName = modelName }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.firstTwo.check(bytes, "ListJobsRequest")
        modelName = try decode(bytes, "ListJobsRequest", unpack: swerve__v1__list_jobs_request__unpack, free: swerve__v1__list_jobs_request__free_unpacked) { str($0.model_name) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__ListJobsRequest(); swerve__v1__list_jobs_request__init(&m); m.model_name = a.cString(modelName)
        return encode(m, arena: a, size: swerve__v1__list_jobs_request__get_packed_size, pack: swerve__v1__list_jobs_request__pack)
    }
}

public struct ListJobsResponse: ProtoMessage, Equatable {
    public var jobs: [JobStatus] = []
    public init(jobs: [JobStatus] = []) { self.jobs = jobs }
    public init(serializedBytes bytes: [UInt8]) throws {
        jobs = try decode(bytes, "ListJobsResponse", unpack: swerve__v1__list_jobs_response__unpack, free: swerve__v1__list_jobs_response__free_unpacked) { m in
            msgs(m.n_jobs, m.jobs) { JobStatus($0) }
        }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__ListJobsResponse(); swerve__v1__list_jobs_response__init(&m)
        m.n_jobs = jobs.count; m.jobs = a.boxes(jobs.map { $0.build(a) })
        return encode(m, arena: a, size: swerve__v1__list_jobs_response__get_packed_size, pack: swerve__v1__list_jobs_response__pack)
    }
}

/// One labelled example: feature values as text (CSV semantics) and the label.
public struct Example: Sendable, Equatable {
    public var features: [String: String]
    public var label: String
    public init(features: [String: String], label: String) { self.features = features; self.label = label }
}

public struct AppendExamplesRequest: ProtoMessage, Equatable {
    public var modelName = ""
    public var examples: [Example] = []
    /// "" when the client sent none.
    public var idempotencyKey = ""
    public init(modelName: String = "", examples: [Example] = [], idempotencyKey: String = "") {
        self.modelName = modelName; self.examples = examples; self.idempotencyKey = idempotencyKey
    }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields(strings: [1, 3], nested: [2: StringFields(strings: [2], nested: [1: StringFields(strings: [1, 2])])]).check(bytes, "AppendExamplesRequest")
        self = try decode(bytes, "AppendExamplesRequest", unpack: swerve__v1__append_examples_request__unpack, free: swerve__v1__append_examples_request__free_unpacked) { m in
            AppendExamplesRequest(modelName: str(m.model_name), examples: msgs(m.n_examples, m.examples) { e in
                Example(features: readStringMap(e.n_features, e.features, key: { $0.key }, value: { $0.value }), label: str(e.label))
            }, idempotencyKey: str(m.idempotency_key))
        }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__AppendExamplesRequest(); swerve__v1__append_examples_request__init(&m)
        m.model_name = a.cString(modelName)
        m.idempotency_key = a.cString(idempotencyKey)
        let built = examples.map { x -> Swerve__V1__Example in
            var e = Swerve__V1__Example(); swerve__v1__example__init(&e)
            let entries = x.features.sorted { $0.key < $1.key }.map { kv -> Swerve__V1__Example__FeaturesEntry in
                var f = Swerve__V1__Example__FeaturesEntry(); swerve__v1__example__features_entry__init(&f)
                f.key = a.cString(kv.key); f.value = a.cString(kv.value)
                return f
            }
            e.n_features = entries.count; e.features = a.boxes(entries); e.label = a.cString(x.label)
            return e
        }
        m.n_examples = built.count; m.examples = a.boxes(built)
        return encode(m, arena: a, size: swerve__v1__append_examples_request__get_packed_size, pack: swerve__v1__append_examples_request__pack)
    }
}

public struct AppendExamplesResponse: ProtoMessage, Equatable {
    public var firstSequence: UInt64 = 0
    public var count: UInt64 = 0
    /// True when the request's idempotency key had landed before: nothing was written.
    public var replayed = false
    public init(firstSequence: UInt64 = 0, count: UInt64 = 0, replayed: Bool = false) {
        self.firstSequence = firstSequence; self.count = count; self.replayed = replayed
    }
    public init(serializedBytes bytes: [UInt8]) throws {
        (firstSequence, count, replayed) = try decode(bytes, "AppendExamplesResponse", unpack: swerve__v1__append_examples_response__unpack, free: swerve__v1__append_examples_response__free_unpacked) { ($0.first_sequence, $0.count, $0.replayed != 0) }
    }
    public func serializedBytes() -> [UInt8] {
        var m = Swerve__V1__AppendExamplesResponse(); swerve__v1__append_examples_response__init(&m)
        m.first_sequence = firstSequence; m.count = count; m.replayed = replayed ? 1 : 0
        return encode(m, size: swerve__v1__append_examples_response__get_packed_size, pack: swerve__v1__append_examples_response__pack)
    }
}

public struct ModelRef: ProtoMessage, Equatable {
    public var modelName = ""
    public init(modelName: String = "") { self.modelName = modelName }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.firstTwo.check(bytes, "ModelRef")
        modelName = try decode(bytes, "ModelRef", unpack: swerve__v1__model_ref__unpack, free: swerve__v1__model_ref__free_unpacked) { str($0.model_name) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__ModelRef(); swerve__v1__model_ref__init(&m); m.model_name = a.cString(modelName)
        return encode(m, arena: a, size: swerve__v1__model_ref__get_packed_size, pack: swerve__v1__model_ref__pack)
    }
}

public struct VersionRef: ProtoMessage, Equatable {
    public var modelName = ""
    public var version: Int64 = 0
    public init(modelName: String = "", version: Int64 = 0) { self.modelName = modelName; self.version = version }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields(strings: [1]).check(bytes, "VersionRef")
        (modelName, version) = try decode(bytes, "VersionRef", unpack: swerve__v1__version_ref__unpack, free: swerve__v1__version_ref__free_unpacked) { (str($0.model_name), $0.version) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__VersionRef(); swerve__v1__version_ref__init(&m); m.model_name = a.cString(modelName); m.version = version
        return encode(m, arena: a, size: swerve__v1__version_ref__get_packed_size, pack: swerve__v1__version_ref__pack)
    }
}

public struct VersionInfo: ProtoMessage, Equatable {
    public var modelName = ""
    public var version: Int64 = 0
    public var status = ""
    public var lineageJSON = ""
    public init(modelName: String = "", version: Int64 = 0, status: String = "", lineageJSON: String = "") {
        self.modelName = modelName; self.version = version; self.status = status; self.lineageJSON = lineageJSON
    }
    init(_ m: Swerve__V1__VersionInfo) {
        self.init(modelName: str(m.model_name), version: m.version, status: str(m.status), lineageJSON: str(m.lineage_json))
    }
    func build(_ a: Arena) -> Swerve__V1__VersionInfo {
        var m = Swerve__V1__VersionInfo(); swerve__v1__version_info__init(&m)
        m.model_name = a.cString(modelName); m.version = version; m.status = a.cString(status); m.lineage_json = a.cString(lineageJSON)
        return m
    }
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try decode(bytes, "VersionInfo", unpack: swerve__v1__version_info__unpack, free: swerve__v1__version_info__free_unpacked) { VersionInfo($0) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        return encode(build(a), arena: a, size: swerve__v1__version_info__get_packed_size, pack: swerve__v1__version_info__pack)
    }
}

public struct ListVersionsResponse: ProtoMessage, Equatable {
    public var versions: [VersionInfo] = []
    public init(versions: [VersionInfo] = []) { self.versions = versions }
    public init(serializedBytes bytes: [UInt8]) throws {
        versions = try decode(bytes, "ListVersionsResponse", unpack: swerve__v1__list_versions_response__unpack, free: swerve__v1__list_versions_response__free_unpacked) { m in
            msgs(m.n_versions, m.versions) { VersionInfo($0) }
        }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__ListVersionsResponse(); swerve__v1__list_versions_response__init(&m)
        m.n_versions = versions.count; m.versions = a.boxes(versions.map { $0.build(a) })
        return encode(m, arena: a, size: swerve__v1__list_versions_response__get_packed_size, pack: swerve__v1__list_versions_response__pack)
    }
}
