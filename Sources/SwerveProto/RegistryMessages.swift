internal import CSwerveProto

// Swift value types for `swerve.v1.Registry` (protos/swerve_registry.proto). The proto's
// `ModelLabels` is `RegistryLabels` here: SwerveRepository's `ModelLabels` (labels.json) owns the name.

public struct RegistryWatchRequest: ProtoMessage, Equatable {
    /// Empty: every model.
    public var modelName = ""
    public init(modelName: String = "") { self.modelName = modelName }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields(strings: [1]).check(bytes, "RegistryWatchRequest")
        modelName = try decode(bytes, "RegistryWatchRequest", unpack: swerve__v1__registry_watch_request__unpack, free: swerve__v1__registry_watch_request__free_unpacked) { str($0.model_name) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__RegistryWatchRequest(); swerve__v1__registry_watch_request__init(&m); m.model_name = a.cString(modelName)
        return encode(m, arena: a, size: swerve__v1__registry_watch_request__get_packed_size, pack: swerve__v1__registry_watch_request__pack)
    }
}

/// A model's labels on the wire (`swerve.v1.ModelLabels`). Versions are positive; 0 = no such label.
public struct RegistryLabels: ProtoMessage, Equatable {
    public var modelName = ""
    public var stable: Int64 = 0
    public var canary: Int64 = 0
    /// 0...100.
    public var canaryPercent: Double = 0
    public var previousStable: Int64 = 0
    /// 0: no labels.json; +1 on every change.
    public var generation: UInt64 = 0
    public var reason = ""
    /// ISO 8601.
    public var updated = ""

    public init(modelName: String = "", stable: Int64 = 0, canary: Int64 = 0, canaryPercent: Double = 0, previousStable: Int64 = 0,
                generation: UInt64 = 0, reason: String = "", updated: String = "") {
        self.modelName = modelName; self.stable = stable; self.canary = canary; self.canaryPercent = canaryPercent
        self.previousStable = previousStable; self.generation = generation; self.reason = reason; self.updated = updated
    }

    static let stringFields = StringFields(strings: [1, 7, 8])

    init(_ m: Swerve__V1__ModelLabels) {
        self.init(modelName: str(m.model_name), stable: m.stable, canary: m.canary, canaryPercent: m.canary_percent,
                  previousStable: m.previous_stable, generation: m.generation, reason: str(m.reason), updated: str(m.updated))
    }
    func build(_ a: Arena) -> Swerve__V1__ModelLabels {
        var m = Swerve__V1__ModelLabels(); swerve__v1__model_labels__init(&m)
        m.model_name = a.cString(modelName); m.stable = stable; m.canary = canary; m.canary_percent = canaryPercent
        m.previous_stable = previousStable; m.generation = generation; m.reason = a.cString(reason); m.updated = a.cString(updated)
        return m
    }
    public init(serializedBytes bytes: [UInt8]) throws {
        try Self.stringFields.check(bytes, "ModelLabels")
        self = try decode(bytes, "ModelLabels", unpack: swerve__v1__model_labels__unpack, free: swerve__v1__model_labels__free_unpacked) { RegistryLabels($0) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        return encode(build(a), arena: a, size: swerve__v1__model_labels__get_packed_size, pack: swerve__v1__model_labels__pack)
    }
}

/// One regular file of a version folder.
public struct RegistryFile: Sendable, Equatable, Hashable {
    public var name: String
    public var size: UInt64
    /// Lowercase hex.
    public var sha256: String
    public init(name: String = "", size: UInt64 = 0, sha256: String = "") { self.name = name; self.size = size; self.sha256 = sha256 }
}

/// A version a replica must hold, with its lineage status and its files.
public struct RegistryVersion: Sendable, Equatable {
    public var version: Int64
    public var status: String
    public var files: [RegistryFile]
    public init(version: Int64 = 0, status: String = "", files: [RegistryFile] = []) { self.version = version; self.status = status; self.files = files }
}

/// One model's state in a Watch stream (or, with `endOfSnapshot`, the end of the initial state).
public struct RegistryModel: ProtoMessage, Equatable {
    public var modelName = ""
    public var removed = false
    /// config.json as stored; empty: none.
    public var config: [UInt8] = []
    public var labels: RegistryLabels? = nil
    /// Ascending.
    public var versions: [RegistryVersion] = []
    public var endOfSnapshot = false
    public init(modelName: String = "", removed: Bool = false, config: [UInt8] = [], labels: RegistryLabels? = nil,
                versions: [RegistryVersion] = [], endOfSnapshot: Bool = false) {
        self.modelName = modelName; self.removed = removed; self.config = config; self.labels = labels
        self.versions = versions; self.endOfSnapshot = endOfSnapshot
    }

    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields(strings: [1], nested: [4: RegistryLabels.stringFields, 5: StringFields(strings: [2], nested: [3: StringFields(strings: [1, 3])])])
            .check(bytes, "RegistryModel")
        self = try decode(bytes, "RegistryModel", unpack: swerve__v1__registry_model__unpack, free: swerve__v1__registry_model__free_unpacked) { m in
            var r = RegistryModel()
            r.modelName = str(m.model_name); r.removed = m.removed != 0; r.config = bytesOf(m.config)
            if let l = m.labels { r.labels = RegistryLabels(l.pointee) }
            r.versions = msgs(m.n_versions, m.versions) { v in
                RegistryVersion(version: v.version, status: str(v.status), files: msgs(v.n_files, v.files) { f in
                    RegistryFile(name: str(f.name), size: f.size, sha256: str(f.sha256))
                })
            }
            r.endOfSnapshot = m.end_of_snapshot != 0
            return r
        }
    }

    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__RegistryModel(); swerve__v1__registry_model__init(&m)
        m.model_name = a.cString(modelName); m.removed = removed ? 1 : 0; m.config = a.binary(config)
        if let labels { m.labels = a.box(labels.build(a)) }
        let built = versions.map { v -> Swerve__V1__RegistryVersion in
            var rv = Swerve__V1__RegistryVersion(); swerve__v1__registry_version__init(&rv)
            rv.version = v.version; rv.status = a.cString(v.status)
            let files = v.files.map { f -> Swerve__V1__RegistryFile in
                var rf = Swerve__V1__RegistryFile(); swerve__v1__registry_file__init(&rf)
                rf.name = a.cString(f.name); rf.size = f.size; rf.sha256 = a.cString(f.sha256)
                return rf
            }
            rv.n_files = files.count; rv.files = a.boxes(files)
            return rv
        }
        m.n_versions = built.count; m.versions = a.boxes(built)
        m.end_of_snapshot = endOfSnapshot ? 1 : 0
        return encode(m, arena: a, size: swerve__v1__registry_model__get_packed_size, pack: swerve__v1__registry_model__pack)
    }
}

public struct FetchVersionRequest: ProtoMessage, Equatable {
    public var modelName = ""
    public var version: Int64 = 0
    public init(modelName: String = "", version: Int64 = 0) { self.modelName = modelName; self.version = version }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields(strings: [1]).check(bytes, "FetchVersionRequest")
        (modelName, version) = try decode(bytes, "FetchVersionRequest", unpack: swerve__v1__fetch_version_request__unpack, free: swerve__v1__fetch_version_request__free_unpacked) { (str($0.model_name), $0.version) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__FetchVersionRequest(); swerve__v1__fetch_version_request__init(&m); m.model_name = a.cString(modelName); m.version = version
        return encode(m, arena: a, size: swerve__v1__fetch_version_request__get_packed_size, pack: swerve__v1__fetch_version_request__pack)
    }
}

/// A piece of one file of a version; a file's last chunk carries its size and SHA-256.
public struct VersionChunk: ProtoMessage, Equatable {
    public var file = ""
    public var offset: UInt64 = 0
    public var data: [UInt8] = []
    public var last = false
    public var fileSize: UInt64 = 0
    public var sha256 = ""
    public init(file: String = "", offset: UInt64 = 0, data: [UInt8] = [], last: Bool = false, fileSize: UInt64 = 0, sha256: String = "") {
        self.file = file; self.offset = offset; self.data = data; self.last = last; self.fileSize = fileSize; self.sha256 = sha256
    }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields(strings: [1, 6]).check(bytes, "VersionChunk")
        self = try decode(bytes, "VersionChunk", unpack: swerve__v1__version_chunk__unpack, free: swerve__v1__version_chunk__free_unpacked) { m in
            VersionChunk(file: str(m.file), offset: m.offset, data: bytesOf(m.data), last: m.last != 0, fileSize: m.file_size, sha256: str(m.sha256))
        }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__VersionChunk(); swerve__v1__version_chunk__init(&m)
        m.file = a.cString(file); m.offset = offset; m.data = a.binary(data); m.last = last ? 1 : 0
        m.file_size = fileSize; m.sha256 = a.cString(sha256)
        return encode(m, arena: a, size: swerve__v1__version_chunk__get_packed_size, pack: swerve__v1__version_chunk__pack)
    }
}

public struct LabelsRequest: ProtoMessage, Equatable {
    public var modelName = ""
    public init(modelName: String = "") { self.modelName = modelName }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields(strings: [1]).check(bytes, "LabelsRequest")
        modelName = try decode(bytes, "LabelsRequest", unpack: swerve__v1__labels_request__unpack, free: swerve__v1__labels_request__free_unpacked) { str($0.model_name) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__LabelsRequest(); swerve__v1__labels_request__init(&m); m.model_name = a.cString(modelName)
        return encode(m, arena: a, size: swerve__v1__labels_request__get_packed_size, pack: swerve__v1__labels_request__pack)
    }
}

public struct SetLabelsRequest: ProtoMessage, Equatable {
    public var labels = RegistryLabels()
    public var force = false
    public init(labels: RegistryLabels = RegistryLabels(), force: Bool = false) { self.labels = labels; self.force = force }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields(nested: [1: RegistryLabels.stringFields]).check(bytes, "SetLabelsRequest")
        self = try decode(bytes, "SetLabelsRequest", unpack: swerve__v1__set_labels_request__unpack, free: swerve__v1__set_labels_request__free_unpacked) { m in
            SetLabelsRequest(labels: m.labels.map { RegistryLabels($0.pointee) } ?? RegistryLabels(), force: m.force != 0)
        }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__SetLabelsRequest(); swerve__v1__set_labels_request__init(&m)
        m.labels = a.box(labels.build(a)); m.force = force ? 1 : 0
        return encode(m, arena: a, size: swerve__v1__set_labels_request__get_packed_size, pack: swerve__v1__set_labels_request__pack)
    }
}

public struct SetVersionStatusRequest: ProtoMessage, Equatable {
    public var modelName = ""
    public var version: Int64 = 0
    public var status = ""
    public var reason = ""
    public init(modelName: String = "", version: Int64 = 0, status: String = "", reason: String = "") {
        self.modelName = modelName; self.version = version; self.status = status; self.reason = reason
    }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields(strings: [1, 3, 4]).check(bytes, "SetVersionStatusRequest")
        self = try decode(bytes, "SetVersionStatusRequest", unpack: swerve__v1__set_version_status_request__unpack, free: swerve__v1__set_version_status_request__free_unpacked) { m in
            SetVersionStatusRequest(modelName: str(m.model_name), version: m.version, status: str(m.status), reason: str(m.reason))
        }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__SetVersionStatusRequest(); swerve__v1__set_version_status_request__init(&m)
        m.model_name = a.cString(modelName); m.version = version; m.status = a.cString(status); m.reason = a.cString(reason)
        return encode(m, arena: a, size: swerve__v1__set_version_status_request__get_packed_size, pack: swerve__v1__set_version_status_request__pack)
    }
}

public struct SetVersionStatusResponse: ProtoMessage, Equatable {
    public var status = ""
    public init(status: String = "") { self.status = status }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields(strings: [1]).check(bytes, "SetVersionStatusResponse")
        status = try decode(bytes, "SetVersionStatusResponse", unpack: swerve__v1__set_version_status_response__unpack, free: swerve__v1__set_version_status_response__free_unpacked) { str($0.status) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__SetVersionStatusResponse(); swerve__v1__set_version_status_response__init(&m); m.status = a.cString(status)
        return encode(m, arena: a, size: swerve__v1__set_version_status_response__get_packed_size, pack: swerve__v1__set_version_status_response__pack)
    }
}

/// A version's lineage status and the reason of its last change (GetVersionStatus).
public struct VersionStatus: ProtoMessage, Equatable {
    /// Empty when the version has no lineage record.
    public var status = ""
    public var reason = ""
    public init(status: String = "", reason: String = "") { self.status = status; self.reason = reason }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.firstTwo.check(bytes, "VersionStatus")
        (status, reason) = try decode(bytes, "VersionStatus", unpack: swerve__v1__version_status__unpack, free: swerve__v1__version_status__free_unpacked) { (str($0.status), str($0.reason)) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Swerve__V1__VersionStatus(); swerve__v1__version_status__init(&m); m.status = a.cString(status); m.reason = a.cString(reason)
        return encode(m, arena: a, size: swerve__v1__version_status__get_packed_size, pack: swerve__v1__version_status__pack)
    }
}
