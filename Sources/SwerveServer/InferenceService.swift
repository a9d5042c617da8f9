import Dispatch
import Foundation
import Logging
import Metrics
import NIOCore
import SwerveInference
import SwerveProto
import SwerveRPC
import SwerveRepository
import SwerveServing
import SwerveStatus
import SwerveTransport
import Synchronization

/// Serves `inference.GRPCInferenceService` and `grpc.health.v1.Health` over the transport.
/// Cheap RPCs are answered on the event loop; ModelInfer is decoded and validated on the event loop,
/// computed on the model's worker threads, and encoded there; repository loads run on a utility queue.
public final class InferenceService: GRPCCallHandler {
    public static let serverName = "swerve"
    public static let serverVersion = "0.1.0"
    /// Reported as the model platform: the format is ONNX, run by Swerve's own core.
    public static let platform = "swerve_onnx"
    static let extensions = ["model_repository", "model_configuration", "statistics", "health"]
    /// AppendExamples calls in flight per AppendLabels call unless configured (`--feedback-concurrency`).
    public static let defaultFeedbackConcurrency = 8

    let manager: ModelManager
    let logger: Logger
    /// Triton's strict readiness (`--strict-readiness`): ServerReady and health also require every
    /// expected model to be ready (see `ModelManager.readiness(strict:)`).
    public let strictReadiness: Bool
    /// True once start-up loading has ended (`setReady`).
    private let startedUp = Atomic<Bool>(false)
    private let shuttingDown = Atomic<Bool>(false)
    /// RepositoryModelLoad/Unload calls running now; each has a thread of its own, so a slow load
    /// of one model never holds up a call about another.
    private let controlCalls = Atomic<Int>(0)
    /// The most RepositoryModelLoad/Unload calls running at once; more get RESOURCE_EXHAUSTED.
    static let maxControlCalls = 16
    /// `swerve_requests_total` of requests whose model did not resolve, by status code
    /// (resolved models count in their own `RequestMetrics`).
    private let unresolvedCounters = Mutex<[Int: Counter]>([:])
    /// Admits RepositoryModelLoad/Unload only with the admin token, when the server has one
    /// (`--admin-token-file`); every other call is open.
    public let controlPlane: ControlPlaneGuard
    /// Where models with `prediction_log` in their config.json log their sampled requests.
    public let predictionLogs: PredictionLogs
    /// Takes sampled requests to the versions' drift monitors, off the request path.
    let driftSampling: DriftSampling
    /// Joins labels with logged predictions (`swerve.v1.Feedback`).
    let feedback: FeedbackService

    /// `predictionLogRoot`: the prediction logs' directory (default `<repository>/.predictions`).
    public init(manager: ModelManager, logger: Logger, strictReadiness: Bool = true, controlPlane: ControlPlaneGuard? = nil,
                predictionLogRoot: URL? = nil, feedbackTrainer: (host: String, port: Int)? = nil,
                feedbackConcurrency: Int = InferenceService.defaultFeedbackConcurrency) {
        self.manager = manager
        self.logger = logger
        self.strictReadiness = strictReadiness
        self.controlPlane = controlPlane ?? .open(logger: logger)
        self.predictionLogs = PredictionLogs(
            root: predictionLogRoot ?? manager.repository.root.appendingPathComponent(".predictions"), logger: logger)
        self.driftSampling = DriftSampling(monitors: { manager.readyModels().compactMap(\.monitor) })
        self.feedback = FeedbackService(manager: manager, logRoot: predictionLogs.root, trainer: feedbackTrainer,
                                        forwardConcurrency: feedbackConcurrency, logger: logger)
    }

    /// Marks start-up loading done (true), so readiness follows the models from then on, or not
    /// done (false: never ready).
    public func setReady(_ value: Bool) { startedUp.store(value, ordering: .releasing) }
    public func beginShutdown() {
        shuttingDown.store(true, ordering: .releasing)
    }

    /// Whether the server is ready, and if not, why: the one answer behind ServerReady, gRPC
    /// health ("" and "inference.GRPCInferenceService") and any HTTP readiness endpoint.
    ///
    /// Not ready before start-up loading has ended, after shutdown began, with no ready model
    /// version at all, and, with `strictReadiness`, while an expected model is not ready (see
    /// `ModelManager.readiness(strict:)`; a model unloaded through RepositoryModelUnload is no
    /// longer expected).
    public func readiness() -> ModelManager.Readiness {
        if shuttingDown.load(ordering: .acquiring) { return .init(ready: false, reason: "draining: shutting down after a termination signal") }
        if !startedUp.load(ordering: .acquiring) { return .init(ready: false, reason: "loading models at start-up") }
        return manager.readiness(strict: strictReadiness)
    }

    /// `readiness().ready`.
    public var isReady: Bool { readiness().ready }

    enum Method: String, CaseIterable {
        case modelInfer = "/inference.GRPCInferenceService/ModelInfer"
        case serverLive = "/inference.GRPCInferenceService/ServerLive"
        case serverReady = "/inference.GRPCInferenceService/ServerReady"
        case modelReady = "/inference.GRPCInferenceService/ModelReady"
        case serverMetadata = "/inference.GRPCInferenceService/ServerMetadata"
        case modelMetadata = "/inference.GRPCInferenceService/ModelMetadata"
        case modelConfig = "/inference.GRPCInferenceService/ModelConfig"
        case modelStatistics = "/inference.GRPCInferenceService/ModelStatistics"
        case repositoryIndex = "/inference.GRPCInferenceService/RepositoryIndex"
        case repositoryModelLoad = "/inference.GRPCInferenceService/RepositoryModelLoad"
        case repositoryModelUnload = "/inference.GRPCInferenceService/RepositoryModelUnload"
        case healthCheck = "/grpc.health.v1.Health/Check"
        case healthWatch = "/grpc.health.v1.Health/Watch"
        case pathStatistics = "/swerve.v1.ServingInsights/PathStatistics"
        case rolloutStatistics = "/swerve.v1.ServingInsights/RolloutStatistics"
        case drift = "/swerve.v1.ServingInsights/Drift"
        case appendLabels = "/swerve.v1.Feedback/AppendLabels"

        /// Whether the method changes state, so needs the admin token when there is one. A
        /// switch without `default`: a method added later must say.
        var changesState: Bool {
            switch self {
            // Labels become training data: with an admin token, only its holders feed them.
            case .repositoryModelLoad, .repositoryModelUnload, .appendLabels: true
            case .modelInfer, .serverLive, .serverReady, .modelReady, .serverMetadata, .modelMetadata, .modelConfig,
                 .modelStatistics, .repositoryIndex, .healthCheck, .healthWatch, .pathStatistics, .rolloutStatistics, .drift: false
            }
        }
    }

    /// The requests of one read that would compute inline are computed together at its end
    /// (`InlineBurst`): one batch per model version on the event loop.
    public func dispatchBurst(_ body: (_ flush: () -> Void) -> Void) {
        InlineBurst.run(body)
    }

    public func handle(_ call: GRPCServerCall) {
        // ModelInfer is nearly all the traffic: one string comparison instead of a 14-way switch.
        if call.method == Method.modelInfer.rawValue { return modelInfer(call) }
        guard let method = Method(rawValue: call.method) else {
            call.finish(GRPCStatus(.unimplemented, "method \(call.method) is not implemented by Swerve"))
            return
        }
        // State changes: the admin token is checked before the request is decoded or anything touched.
        if method.changesState, !controlPlane.admit(call) { return }
        switch method {
        case .modelInfer: modelInfer(call)
        case .serverLive: unary(call) { (_: ServerLiveRequest) in ServerLiveResponse(live: true) }
        case .serverReady: unary(call) { (_: ServerReadyRequest) in ServerReadyResponse(ready: self.isReady) }
        case .modelReady:
            unary(call) { (r: ModelReadyRequest) in
                try Self.checkName(r.name)
                return ModelReadyResponse(ready: self.manager.isModelReady(r.name, version: r.version))
            }
        case .serverMetadata:
            unary(call) { (_: ServerMetadataRequest) in ServerMetadataResponse(name: Self.serverName, version: Self.serverVersion, extensions: Self.extensions) }
        case .modelMetadata: unary(call) { (r: ModelMetadataRequest) in try Self.checkName(r.name); return try self.modelMetadata(r) }
        case .modelConfig: unary(call) { (r: ModelConfigRequest) in try Self.checkName(r.name); return try self.modelConfig(r) }
        case .modelStatistics:
            unary(call) { (r: ModelStatisticsRequest) in try Self.checkName(r.name, emptyMeansAll: true); return try self.modelStatistics(r) }
        case .repositoryIndex: unary(call) { (r: RepositoryIndexRequest) in self.repositoryIndex(r) }
        case .repositoryModelLoad:
            blocking(call) { (r: RepositoryModelLoadRequest) in
                try Self.checkName(r.modelName)
                try self.manager.load(model: r.modelName)
                return EmptyMessage()
            }
        case .repositoryModelUnload:
            blocking(call) { (r: RepositoryModelUnloadRequest) in
                try Self.checkName(r.modelName)
                try self.manager.unload(model: r.modelName)
                return EmptyMessage()
            }
        case .healthCheck: unary(call) { (r: HealthCheckRequest) in try self.healthCheck(r) }
        case .healthWatch: healthWatch(call)
        case .pathStatistics:
            unary(call) { (r: PathStatisticsRequest) in try Self.checkName(r.name, emptyMeansAll: true); return try self.pathStatistics(r) }
        case .rolloutStatistics:
            unary(call) { (r: RolloutStatisticsRequest) in try Self.checkName(r.name); return try self.rolloutStatistics(r) }
        case .drift:
            unary(call) { (r: DriftRequest) in try Self.checkName(r.name, emptyMeansAll: true); return try self.drift(r) }
        case .appendLabels: feedback.appendLabels(call)
        }
    }

    /// INVALID_ARGUMENT for a name that is not a plain folder name (`..`, `a/b`, `/etc`, hidden,
    /// control characters, overlong: `ModelRepository.modelNameProblem`), before any lookup.
    /// `emptyMeansAll`: "" asks for every model (statistics).
    static func checkName(_ name: String, emptyMeansAll: Bool = false) throws(StorageError) {
        if emptyMeansAll && name.isEmpty { return }
        try ModelRepository.validateModelName(name)
    }

    // MARK: - Plumbing

    private func unary<Req: ProtoMessage, Resp: ProtoMessage>(_ call: GRPCServerCall, _ body: (Req) throws -> Resp) {
        serveUnary(call, body)
    }

    /// Like `unary`, but the body may block (it loads models, for up to the load timeout), so it
    /// runs off the event loop on a thread of its own: calls about different models never queue
    /// behind each other. At most `maxControlCalls` run at once.
    private func blocking<Req: ProtoMessage, Resp: ProtoMessage>(_ call: GRPCServerCall, _ body: @escaping @Sendable (Req) throws -> Resp) {
        let running = controlCalls.wrappingAdd(1, ordering: .relaxed).newValue
        guard running <= Self.maxControlCalls else {
            controlCalls.wrappingSubtract(1, ordering: .relaxed)
            call.finish(GRPCStatus(.resourceExhausted, "too many repository load/unload calls in progress (at most \(Self.maxControlCalls)); try again later"))
            return
        }
        let thread = Thread {
            nameCurrentThread("repo-control")
            serveUnary(call, body)
            self.controlCalls.wrappingSubtract(1, ordering: .relaxed)
        }
        thread.stackSize = 8 << 20
        thread.start()
    }

    // MARK: - ModelInfer

    /// What ModelInfer keeps of a request once it is decoded and checked.
    private struct PreparedInfer {
        var model: ServedModel
        var inputs: [Tensor]
        var rows: Int
        /// Output positions in response order.
        var selected: [Int]
        /// The names the request asked for (empty = all), part of the cache key.
        var requestedOutputs: [String]
        var raw: Bool
        var id: String
    }

    /// Decodes the request in place, resolves the model and checks the inputs. `resolved` is set
    /// as soon as the model is known, so failures after that are counted under it.
    private func prepare(_ request: ModelInferRequestView, call: GRPCServerCall, resolved: inout ServedModel?) throws -> PreparedInfer {
        let model: ServedModel
        do {
            model = try manager.resolve(modelNameBytes: request.modelNameBytes, version: request.modelVersion,
                                        routeHash: { Self.routeHash(request, call: call) })
        } catch {
            // Only names that did not resolve are checked, so the hot path pays nothing: no served
            // model has a name that fails the check.
            try Self.checkName(request.modelName)
            throw error
        }
        resolved = model
        let (inputs, rows) = try TensorCoding.inputs(of: request, for: model)
        var selected = model.allOutputPositions
        var requested: [String] = []
        let n = request.requestedOutputCount
        if n > 0 {
            selected = []
            selected.reserveCapacity(n)
            requested.reserveCapacity(n)
            for j in 0..<n {
                let name = request.requestedOutputName(j)
                guard let i = model.outputPosition(name) else {
                    throw ServingError(.invalidArgument, "model \(model.name) has no output '\(name)'; its outputs are \(model.outputs.map(\.name).joined(separator: ", "))")
                }
                selected.append(i)
                requested.append(name)
            }
        }
        return PreparedInfer(model: model, inputs: inputs, rows: rows, selected: selected, requestedOutputs: requested,
                             raw: request.rawInputContentsCount > 0, id: request.id)
    }

    /// The hash that splits unversioned requests between a model's stable and canary versions
    /// (asked for only while a canary takes a share): of the request's route key when it sends
    /// one (`x-swerve-route-key`, `SwerveClient.routeKeyHeader`, which also steers the balancer), else of its inputs' names and
    /// bytes as sent, so one input always meets the same version and each version's cache stays
    /// warm. Seeded apart from the cache's and the balancer's hashes, so the split does not
    /// follow which replica or cache shard a key lands on.
    static func routeHash(_ request: ModelInferRequestView, call: GRPCServerCall) -> UInt64 {
        let seed: UInt64 = 0x4341_4E41_5259_2131  // "CANARY!1"
        if let keyed = call.withHeaderValue("x-swerve-route-key", { key in key.map { Hash64.xxh64($0, seed: seed) } }) {
            return keyed
        }
        var h = seed
        for i in 0..<request.inputCount {
            let input = request.input(i)
            h = Hash64.xxh64(input.nameBytes, seed: h)
            guard let c = input.contents else { continue }
            @inline(__always) func mix<T>(_ values: UnsafeBufferPointer<T>) {
                if values.count > 0 { h = Hash64.xxh64(UnsafeRawBufferPointer(values), seed: h) }
            }
            mix(c.fp32); mix(c.fp64); mix(c.int64); mix(c.int32); mix(c.uint32); mix(c.uint64); mix(c.bool)
            for j in 0..<c.bytesCount { h = Hash64.xxh64(c.bytes(j), seed: h) }
        }
        for i in 0..<request.rawInputContentsCount { h = Hash64.xxh64(request.rawInputContents(i), seed: h) }
        return h
    }

    private func modelInfer(_ call: GRPCServerCall) {
        let start = monotonicNanos()
        var resolved: ServedModel?
        var prepared: PreparedInfer?
        do {
            try call.message.withUnsafeBytes { bytes in
                try ModelInferRequest.withView(bytes) { prepared = try prepare($0, call: call, resolved: &resolved) }
            }
        } catch {
            finish(call, GRPCStatus(converting: error), start: start, served: resolved)
            return
        }
        // Moved out, not copied: a copy would retain each of its arrays and strings once more.
        guard let request = prepared.take() else { preconditionFailure("withView returned without running its body") }
        let responder = InferResponder(service: self, call: call, request: request, start: start)
        // The responder is the receiver: no closures made for the answer.
        request.model.infer(request.inputs, rows: request.rows, requestedOutputs: request.requestedOutputs,
                            deadlineNs: call.deadline?.uptimeNanoseconds, encoder: responder, receiver: responder)
    }

    /// Answers one ModelInfer call: encodes the outputs (the whole response, or, for the response
    /// cache, the outputs part that cached entries keep) and responds.
    private final class InferResponder: CachedResponseEncoder, InferReceiver {
        let service: InferenceService
        let call: GRPCServerCall
        let model: ServedModel
        /// Output positions in response order.
        let selected: [Int]
        let raw: Bool
        let id: String
        let start: UInt64

        init(service: InferenceService, call: GRPCServerCall, request: PreparedInfer, start: UInt64) {
            self.service = service
            self.call = call
            self.model = request.model
            self.selected = request.selected
            self.raw = request.raw
            self.id = request.id
            self.start = start
        }

        /// Typed or raw contents; and, for requests without an id (most), the whole response,
        /// which is then the same for every such request with the same key.
        var form: Int { (raw ? 1 : 0) | (id.isEmpty ? 2 : 0) }

        /// Without an id: the whole response. With one: the outputs alone, a ModelInferResponse
        /// with only `outputs` (or `raw_output_contents`) set; protobuf messages concatenate by
        /// merging, so the response is then a head with name, version and id, then these bytes.
        func encode(_ outputs: [Tensor]) -> [UInt8] {
            id.isEmpty ? serialize(outputs, modelName: model.name, modelVersion: model.versionLabel, id: "")
                : serialize(outputs, modelName: "", modelVersion: "", id: "")
        }

        func send(encoded: [UInt8]) {
            if id.isEmpty { return respond(encoded) }
            let head = ModelInferResponse.serialize(modelName: model.name, modelVersion: model.versionLabel, id: id,
                                                    raw: false, outputCount: 0) { _ in preconditionFailure("no outputs") }
            respond(head + encoded)
        }

        var isCancelled: Bool { call.isCancelled }

        func complete(_ result: Result<[Tensor], ServingError>) {
            switch result {
            case .success(let outputs):
                model.evidence.recordPredictions(outputs)
                respond(serialize(outputs, modelName: model.name, modelVersion: model.versionLabel, id: id))
            case .failure(let e):
                service.finish(call, GRPCStatus(converting: e), start: start, served: model)
            }
        }

        private func serialize(_ outputs: [Tensor], modelName: String, modelVersion: String, id: String) -> [UInt8] {
            ModelInferResponse.serialize(modelName: modelName, modelVersion: modelVersion, id: id,
                                         raw: raw, outputCount: selected.count) { j in
                let i = selected[j]
                let t = outputs[i]
                return (model.outputs[i].name, t.shape, t.data)
            }
        }

        private func respond(_ bytes: [UInt8]) {
            // Counted before the answer leaves, so a client that reads statistics next sees its call.
            service.recordSuccess(model, start: start)
            // Logged, and kept for its label, before the answer leaves: a client that sends the
            // label as soon as it has the answer finds the prediction.
            if let sampler = model.predictionSampler, sampler.take(), let settings = model.settings.predictionLog {
                logPrediction(bytes, settings)
            }
            call.respond(bytes)
            if let monitor = model.monitor, monitor.sampler.take() {
                service.driftSampling.offer(model, request: call.message, response: bytes, timeMs: wallClockMs())
            }
        }

        /// Offers a sampled request and its answer to the model's prediction log: a copy of both
        /// messages queued for the log's writer, never a wait for its disk.
        @inline(never)
        private func logPrediction(_ response: [UInt8], _ settings: ModelSettings.PredictionLogSettings) {
            guard let log = model.predictionLog({ service.predictionLogs.log(model: model.name, settings: settings) }) else { return }
            let now = wallClockMs()
            log.offer(PredictionLog.Entry(timeMs: now, model: model.name, version: model.version, id: id,
                                          request: Data(call.message), response: Data(response)))
            service.feedback.record(model, id: id, request: call.message, response: response, timeMs: now)
        }
    }

    fileprivate func recordSuccess(_ model: ServedModel, start: UInt64) {
        let elapsed = monotonicNanos() - start
        model.statistics.recordRequest(success: true, ns: elapsed, nowMs: wallClockMs())
        model.requestMetrics.recordSuccess(nanoseconds: elapsed)
        model.evidence.recordRequest(success: true, nanoseconds: elapsed)
    }

    /// Ends a failed call. Metric labels name only models and versions that resolved, so clients
    /// sending made-up names cannot grow the number of series.
    fileprivate func finish(_ call: GRPCServerCall, _ status: GRPCStatus, start: UInt64, served: ServedModel? = nil) {
        let elapsed = monotonicNanos() - start
        if let served {
            served.statistics.recordRequest(success: false, ns: elapsed, nowMs: wallClockMs())
            served.requestMetrics.recordFailure(code: status.code.rawValue, status: status.code.canonicalName)
            // A rollout compares what a version does with what it is given: only failures the
            // server answers for count against it. A client's malformed request (pinned to one
            // version by the canary hash when it repeats) or its cancellation says nothing of
            // the version. DEADLINE_EXCEEDED counts: a slow version causes it.
            if RolloutEvidence.countsAgainstVersion(code: status.code.rawValue) {
                served.evidence.recordRequest(success: false, nanoseconds: elapsed)
            }
        } else {
            let code = status.code
            let counter = unresolvedCounters.withLock { c in
                if let x = c[code.rawValue] { return x }
                let x = Counter(label: "swerve_requests_total", dimensions: [("model", Self.unresolvedLabel), ("version", ""), ("status", code.canonicalName)])
                c[code.rawValue] = x
                return x
            }
            counter.increment()
        }
        call.finish(status)
    }

    /// The `model` label of requests whose model or version did not resolve.
    static let unresolvedLabel = "<unresolved>"


    // MARK: - Metadata, config, statistics, repository

    private func modelMetadata(_ r: ModelMetadataRequest) throws -> ModelMetadataResponse {
        let m = try manager.resolve(model: r.name, version: r.version)
        var resp = ModelMetadataResponse()
        resp.name = m.name
        resp.versions = manager.readyVersions(of: m.name).map(String.init)
        resp.platform = Self.platform
        resp.inputs = m.inputs.map { TensorMetadata(name: $0.name, datatype: $0.dataType.rawValue, shape: $0.shape.map(Int64.init)) }
        resp.outputs = m.outputs.map { TensorMetadata(name: $0.name, datatype: $0.dataType.rawValue, shape: $0.shape.map(Int64.init)) }
        return resp
    }

    static func tritonType(_ t: DataType) -> String {
        t == .bytes ? "TYPE_STRING" : "TYPE_" + t.rawValue
    }

    private func modelConfig(_ r: ModelConfigRequest) throws -> ModelConfigResponse {
        let m = try manager.resolve(model: r.name, version: r.version)
        var c = ModelConfig()
        c.name = m.name
        c.platform = Self.platform
        c.backend = "swerve"
        c.maxBatchSize = Int32(m.maxBatchSize)
        let dims = { (info: TensorInfo) -> [Int64] in
            (m.maxBatchSize > 0 ? Array(info.shape.dropFirst()) : info.shape).map(Int64.init)
        }
        c.inputs = m.inputs.map { .init(name: $0.name, dataType: Self.tritonType($0.dataType), dims: dims($0)) }
        c.outputs = m.outputs.map { .init(name: $0.name, dataType: Self.tritonType($0.dataType), dims: dims($0)) }
        switch m.settings.versionPolicy {
        case .latest(let n): c.versionPolicy = .latest(UInt32(n))
        case .all: c.versionPolicy = .all
        case .specific(let vs): c.versionPolicy = .specific(vs.map(Int64.init))
        }
        c.maxQueueDelayMicroseconds = UInt64(m.settings.maxQueueDelayMicroseconds)
        c.maxQueueSize = UInt32(m.settings.maxQueueSize)
        c.parameters = ["instance_count": String(m.settings.instanceCount)]
        c.responseCache = m.hasResponseCache
        return ModelConfigResponse(config: c)
    }

    /// The ready versions a statistics request names: all, one model's, or one version.
    private func selectModels(name: String, version: String) throws -> [ServedModel] {
        var models = manager.readyModels()
        if !name.isEmpty {
            if version.isEmpty {
                models = models.filter { $0.name == name }
                if models.isEmpty { _ = try manager.resolve(model: name, version: "") }
            } else {
                models = [try manager.resolve(model: name, version: version)]
            }
        }
        return models
    }

    private func pathStatistics(_ r: PathStatisticsRequest) throws -> PathStatisticsResponse {
        PathStatisticsResponse(models: try selectModels(name: r.name, version: r.version).map { m in
            let p = m.pathStatistics
            var s = VersionPathStatistics()
            s.name = m.name; s.version = String(m.version); s.mode = p.mode.rawValue; s.activePath = p.activePath
            s.tableCells = UInt64(p.tableCells); s.tableBytes = UInt64(p.tableBytes); s.tableBuildMs = UInt64(p.tableBuildMs)
            s.tableLookups = p.tableLookups; s.tableFallbacks = p.tableFallbacks
            s.cacheHits = p.cacheHits; s.cacheMisses = p.cacheMisses; s.cacheEvictions = p.cacheEvictions
            s.cacheBytes = UInt64(p.cacheBytes); s.cacheEntries = UInt64(p.cacheEntries); s.cacheCapacityBytes = UInt64(p.cacheCapacityBytes)
            s.coalesced = p.coalesced; s.batcherRequests = p.batcherRequests; s.pathSwitches = UInt64(p.pathSwitches)
            s.cardinality = p.cardinality; s.peakedness = p.peakedness
            return s
        })
    }

    /// Per ready version with a drift monitor: its windows beside its reference. A named model
    /// without one is FAILED_PRECONDITION (it has no reference_stats.json, or monitoring is off).
    private func drift(_ r: DriftRequest) throws -> DriftResponse {
        let models = try selectModels(name: r.name, version: r.version)
        let now = wallClockMs()
        let versions = models.compactMap { $0.monitor?.report(nowMs: now) }
        if !r.name.isEmpty && versions.isEmpty {
            throw ServingError(.failedPrecondition, "model \(r.name) has no drift monitor: it needs reference_stats.json beside the version (the trainer writes it; `swerve publish --reference-data` computes it) with features that map to its inputs, and monitoring.sample_rate > 0")
        }
        return DriftResponse(versions: versions.sorted { ($0.name, Int($0.version) ?? 0) < ($1.name, Int($1.version) ?? 0) })
    }

    /// Per version of one model: its state here, the labels routed to it, and its rollout evidence.
    private func rolloutStatistics(_ r: RolloutStatisticsRequest) throws -> RolloutStatisticsResponse {
        guard let applied = manager.appliedLabels(of: r.name) else {
            throw ServingError(.notFound, "unknown model '\(r.name)'")
        }
        var out = RolloutStatisticsResponse()
        out.name = r.name
        out.latencyBoundsMicros = RolloutEvidence.latencyBoundsMicros
        out.scoreBounds = RolloutEvidence.scoreBounds
        out.stable = Int64(applied.stable)
        out.canary = Int64(applied.canary)
        out.canaryPercent = applied.canaryPercent
        out.labelsGeneration = applied.generation
        let ready = Dictionary(manager.readyModels().filter { $0.name == r.name }.map { ($0.version, $0) }, uniquingKeysWith: { a, _ in a })
        for entry in manager.index() where entry.name == r.name && !entry.version.isEmpty {
            guard let v = Int(entry.version) else { continue }
            var e = VersionEvidence()
            e.version = entry.version
            e.state = entry.state.rawValue
            e.reason = entry.reason
            if v == applied.stable { e.labels.append(ModelLabels.stableName) }
            if v == applied.canary { e.labels.append(ModelLabels.canaryName) }
            if let m = ready[v] {
                let s = m.evidence.snapshot
                e.requests = s.requests
                e.failures = s.failures
                e.latencyCounts = s.latencyCounts
                e.predictionKind = s.kind.rawValue
                e.classes = s.classes
                e.classCounts = s.classCounts
                if s.kind == .scores {
                    e.scoreCounts = s.scoreCounts
                    e.scoreCount = s.scoreCount
                    e.scoreSum = s.scoreSum
                    e.scoreSumSquares = s.scoreSumSquares
                }
            }
            out.versions.append(e)
        }
        return out
    }

    private func modelStatistics(_ r: ModelStatisticsRequest) throws -> ModelStatisticsResponse {
        let models = try selectModels(name: r.name, version: r.version)
        return ModelStatisticsResponse(modelStats: models.map { m in
            let s = m.statistics.snapshot
            var out = ModelStatistics()
            out.name = m.name
            out.version = String(m.version)
            out.lastInference = s.lastInferenceMs
            out.inferenceCount = s.inferenceCount
            out.executionCount = s.executionCount
            let d = { (x: DurationStat) in StatisticDuration(count: x.count, ns: x.ns) }
            out.success = d(s.success); out.fail = d(s.fail); out.queue = d(s.queue)
            out.computeInput = d(s.computeInput); out.computeInfer = d(s.computeInfer); out.computeOutput = d(s.computeOutput)
            out.cacheHit = d(s.cacheHit); out.cacheMiss = d(s.cacheMiss)
            out.batchStats = s.batches.values.sorted { $0.batchSize < $1.batchSize }.map { b in
                var x = ModelStatistics.Batch(batchSize: UInt64(b.batchSize))
                x.computeInput = d(b.computeInput); x.computeInfer = d(b.computeInfer); x.computeOutput = d(b.computeOutput)
                return x
            }
            return out
        })
    }

    private func repositoryIndex(_ r: RepositoryIndexRequest) -> RepositoryIndexResponse {
        RepositoryIndexResponse(models: manager.index(readyOnly: r.ready).map {
            .init(name: $0.name, version: $0.version, state: $0.state.rawValue, reason: $0.reason)
        })
    }

    // MARK: - Health

    /// "" and the service name follow `readiness()`; a model name follows that model:
    /// SERVING while it is loaded and ready (with strict readiness, fully: see
    /// `ModelManager.isServing`) and the server is not shutting down.
    private func healthStatus(_ service: String) throws -> HealthCheckResponse.ServingStatus {
        if service.isEmpty || service == "inference.GRPCInferenceService" {
            return isReady ? .serving : .notServing
        }
        if manager.isServing(service, strict: strictReadiness) {
            return shuttingDown.load(ordering: .acquiring) ? .notServing : .serving
        }
        if manager.repository.modelExists(service) || manager.policy(of: service) != nil { return .notServing }
        throw GRPCStatus(.notFound, "unknown service '\(service)': use \"\" for the server or a model name")
    }

    private func healthCheck(_ r: HealthCheckRequest) throws -> HealthCheckResponse {
        HealthCheckResponse(status: try healthStatus(r.service))
    }

    /// Sends the current status, then every change (checked twice a second) until the client leaves
    /// or the server shuts down (then NOT_SERVING and the stream ends).
    private func healthWatch(_ call: GRPCServerCall) {
        let service: String
        do { service = try HealthCheckRequest(serializedBytes: call.message).service } catch {
            call.finish(GRPCStatus(converting: error)); return
        }
        let current: @Sendable () -> HealthCheckResponse.ServingStatus = { (try? self.healthStatus(service)) ?? .serviceUnknown }
        let last = Mutex(current())
        call.send(HealthCheckResponse(status: last.withLock { $0 }).serializedBytes())
        let timer = SendableTimer()
        timer.schedule(deadline: .now() + .milliseconds(500), repeating: .milliseconds(500))
        timer.setEventHandler {
            if call.isCancelled { timer.cancel(); return }
            let now = current()
            let changed = last.withLock { l -> Bool in defer { l = now }; return l != now }
            if changed { call.send(HealthCheckResponse(status: now).serializedBytes()) }
            if self.shuttingDown.load(ordering: .acquiring) {
                call.finish(.ok)
                timer.cancel()
            }
        }
        call.onCancel { timer.cancel() }
        timer.resume()
    }
}

/// A dispatch timer handed between threads; DispatchSource's own API is thread-safe.
final class SendableTimer: @unchecked Sendable {
    private let source = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
    func schedule(deadline: DispatchTime, repeating: DispatchTimeInterval) { source.schedule(deadline: deadline, repeating: repeating) }
    func setEventHandler(_ body: @escaping @Sendable () -> Void) { source.setEventHandler(handler: body) }
    func resume() { source.resume() }
    func cancel() { source.cancel() }
}

/// Milliseconds since the epoch from the coarse real-time clock (a few ms of resolution, no
/// system call): enough for "last inference" timestamps.
@inline(__always) func wallClockMs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME_COARSE, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}
