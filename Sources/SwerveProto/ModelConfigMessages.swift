internal import CSwerveProto

// ModelConfig (Triton's `inference.ModelConfig` subset in protos/model_config.proto).

public struct ModelConfigRequest: ProtoMessage, Equatable {
    public var name = ""
    public var version = ""
    public init(name: String = "", version: String = "") { self.name = name; self.version = version }
    public init(serializedBytes bytes: [UInt8]) throws {
        try StringFields.firstTwo.check(bytes, "ModelConfigRequest")
        (name, version) = try decode(bytes, "ModelConfigRequest", unpack: inference__model_config_request__unpack, free: inference__model_config_request__free_unpacked) { (str($0.name), str($0.version)) }
    }
    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var m = Inference__ModelConfigRequest(); inference__model_config_request__init(&m); m.name = a.cString(name); m.version = a.cString(version)
        return encode(m, arena: a, size: inference__model_config_request__get_packed_size, pack: inference__model_config_request__pack)
    }
}

/// Triton's model configuration as Swerve reports it. Datatypes use Triton's `TYPE_*` names
/// (e.g. "TYPE_FP32"); dims exclude the batch dimension when `maxBatchSize > 0`.
public struct ModelConfig: Sendable, Equatable {
    public enum VersionPolicy: Sendable, Equatable { case latest(UInt32), all, specific([Int64]) }
    public struct Tensor: Sendable, Equatable {
        public var name: String, dataType: String, dims: [Int64]
        public init(name: String, dataType: String, dims: [Int64]) { self.name = name; self.dataType = dataType; self.dims = dims }
    }
    public var name = ""
    public var platform = ""
    public var backend = ""
    public var versionPolicy: VersionPolicy = .latest(1)
    public var maxBatchSize: Int32 = 0
    public var inputs: [Tensor] = []
    public var outputs: [Tensor] = []
    public var maxQueueDelayMicroseconds: UInt64 = 0
    public var maxQueueSize: UInt32 = 0
    public var parameters: [String: String] = [:]
    /// `response_cache.enable`: the version answers repeated requests from a response cache.
    public var responseCache = false
    public init() {}

    static let dataTypeNames = ["TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64",
                                "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64",
                                "TYPE_STRING", "TYPE_BF16"]
    static func typeName(_ t: Inference__DataType) -> String {
        let i = Int(t.rawValue)
        return i < dataTypeNames.count ? dataTypeNames[i] : "TYPE_INVALID"
    }
    static func typeValue(_ s: String) -> Inference__DataType {
        Inference__DataType(rawValue: .init(dataTypeNames.firstIndex(of: s) ?? 0))
    }
}

public struct ModelConfigResponse: ProtoMessage, Equatable {
    public var config = ModelConfig()
    public init(config: ModelConfig = ModelConfig()) { self.config = config }

    public init(serializedBytes bytes: [UInt8]) throws {
        config = try decode(bytes, "ModelConfigResponse", unpack: inference__model_config_response__unpack, free: inference__model_config_response__free_unpacked) { m in
            var c = ModelConfig()
            guard let p = m.config?.pointee else { return c }
            c.name = str(p.name); c.platform = str(p.platform); c.backend = str(p.backend)
            c.maxBatchSize = p.max_batch_size
            c.inputs = msgs(p.n_input, p.input) { ModelConfig.Tensor(name: str($0.name), dataType: ModelConfig.typeName($0.data_type), dims: vals($0.n_dims, $0.dims)) }
            c.outputs = msgs(p.n_output, p.output) { ModelConfig.Tensor(name: str($0.name), dataType: ModelConfig.typeName($0.data_type), dims: vals($0.n_dims, $0.dims)) }
            if let vp = p.version_policy?.pointee {
                switch vp.policy_choice_case {
                case INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_ALL: c.versionPolicy = .all
                case INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_SPECIFIC: c.versionPolicy = .specific(vals(vp.specific.pointee.n_versions, vp.specific.pointee.versions))
                case INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_LATEST: c.versionPolicy = .latest(vp.latest.pointee.num_versions)
                default: break
                }
            }
            if let db = p.dynamic_batching?.pointee {
                c.maxQueueDelayMicroseconds = db.max_queue_delay_microseconds
                c.maxQueueSize = db.default_queue_policy?.pointee.max_queue_size ?? 0
            }
            for e in msgs(p.n_parameters, p.parameters, { $0 }) { c.parameters[str(e.key)] = str(e.value?.pointee.string_value) }
            c.responseCache = (p.response_cache?.pointee.enable ?? 0) != 0
            return c
        }
    }

    public func serializedBytes() -> [UInt8] {
        let a = Arena()
        var p = Inference__ModelConfig(); inference__model_config__init(&p)
        p.name = a.cString(config.name); p.platform = a.cString(config.platform); p.backend = a.cString(config.backend)
        p.max_batch_size = config.maxBatchSize
        let ins = config.inputs.map { t -> Inference__ModelInput in
            var i = Inference__ModelInput(); inference__model_input__init(&i)
            i.name = a.cString(t.name); i.data_type = ModelConfig.typeValue(t.dataType); i.n_dims = t.dims.count; i.dims = a.array(t.dims)
            return i
        }
        p.n_input = ins.count; p.input = a.boxes(ins)
        let outs = config.outputs.map { t -> Inference__ModelOutput in
            var o = Inference__ModelOutput(); inference__model_output__init(&o)
            o.name = a.cString(t.name); o.data_type = ModelConfig.typeValue(t.dataType); o.n_dims = t.dims.count; o.dims = a.array(t.dims)
            return o
        }
        p.n_output = outs.count; p.output = a.boxes(outs)
        var vp = Inference__ModelVersionPolicy(); inference__model_version_policy__init(&vp)
        switch config.versionPolicy {
        case .latest(let n):
            var l = Inference__ModelVersionPolicy__Latest(); inference__model_version_policy__latest__init(&l); l.num_versions = n
            vp.policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_LATEST; vp.latest = a.box(l)
        case .all:
            var x = Inference__ModelVersionPolicy__All(); inference__model_version_policy__all__init(&x)
            vp.policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_ALL; vp.all = a.box(x)
        case .specific(let vs):
            var s = Inference__ModelVersionPolicy__Specific(); inference__model_version_policy__specific__init(&s)
            s.n_versions = vs.count; s.versions = a.array(vs)
            vp.policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_SPECIFIC; vp.specific = a.box(s)
        }
        p.version_policy = a.box(vp)
        if config.maxBatchSize > 0 {
            var db = Inference__ModelDynamicBatching(); inference__model_dynamic_batching__init(&db)
            db.max_queue_delay_microseconds = config.maxQueueDelayMicroseconds
            var q = Inference__ModelQueuePolicy(); inference__model_queue_policy__init(&q); q.max_queue_size = config.maxQueueSize
            db.default_queue_policy = a.box(q)
            p.dynamic_batching = a.box(db)
        }
        let entries = config.parameters.sorted { $0.key < $1.key }.map { kv -> Inference__ModelConfig__ParametersEntry in
            var e = Inference__ModelConfig__ParametersEntry(); inference__model_config__parameters_entry__init(&e)
            var v = Inference__ModelParameter(); inference__model_parameter__init(&v); v.string_value = a.cString(kv.value)
            e.key = a.cString(kv.key); e.value = a.box(v)
            return e
        }
        p.n_parameters = entries.count; p.parameters = a.boxes(entries)
        if config.responseCache {
            var rc = Inference__ModelResponseCache(); inference__model_response_cache__init(&rc); rc.enable = 1
            p.response_cache = a.box(rc)
        }
        var m = Inference__ModelConfigResponse(); inference__model_config_response__init(&m)
        m.config = a.box(p)
        return encode(m, arena: a, size: inference__model_config_response__get_packed_size, pack: inference__model_config_response__pack)
    }
}
