import Dispatch
import Foundation
import Logging
import SwerveProto
import SwerveRPC
import SwerveRepository
import SwerveStatus
import SwerveTraining
import SwerveTransport

/// Serves `swerve.v1.Trainer`: a job manager over `TrainingPipeline` / `ContinuousJob`, the
/// example logs behind AppendExamples, and the registry (ListVersions, Promote, Rollback).
///
/// Jobs run one at a time per model (a serial queue per model; a continuous job's rounds are
/// queued there too, between static jobs). State under `stateDirectory`:
/// `logs/<model>/` (the write-ahead logs), `continuous/<model>/` (checkpoint, warm-start model,
/// `job.json` so a restarted trainer resumes the job).
public final class TrainerService: GRPCCallHandler, @unchecked Sendable {
    public let repository: URL
    public let stateDirectory: URL
    let logger: Logger
    private let lock = NSLock()
    private var jobs: [String: JobRecord] = [:]
    private var jobOrder: [String] = []
    private var queues: [String: DispatchQueue] = [:]
    private var logs: [String: ExampleLog] = [:]
    /// One per model log: appends all or nothing, with idempotency keys.
    private var appenders: [String: ExampleAppender] = [:]
    private var continuousByModel: [String: String] = [:]
    private var shuttingDown = false
    private let blockingQueue = DispatchQueue(label: "swerve.trainer.blocking", attributes: .concurrent)
    /// Admits the calls that change state (SubmitJob, CancelJob, AppendExamples, PromoteVersion,
    /// RollbackVersion) only with the admin token, when the trainer has one; WatchJob, ListJobs
    /// and ListVersions are open.
    public let controlPlane: ControlPlaneGuard

    public init(repository: URL, stateDirectory: URL, logger: Logger, controlPlane: ControlPlaneGuard? = nil) {
        self.repository = repository
        self.stateDirectory = stateDirectory
        self.logger = logger
        self.controlPlane = controlPlane ?? .open(logger: logger)
    }

    enum Method: String, CaseIterable {
        case submitJob = "/swerve.v1.Trainer/SubmitJob"
        case watchJob = "/swerve.v1.Trainer/WatchJob"
        case listJobs = "/swerve.v1.Trainer/ListJobs"
        case cancelJob = "/swerve.v1.Trainer/CancelJob"
        case appendExamples = "/swerve.v1.Trainer/AppendExamples"
        case listVersions = "/swerve.v1.Trainer/ListVersions"
        case promoteVersion = "/swerve.v1.Trainer/PromoteVersion"
        case rollbackVersion = "/swerve.v1.Trainer/RollbackVersion"

        /// Whether the method changes state, so needs the admin token when there is one. A
        /// switch without `default`: a method added later must say.
        var changesState: Bool {
            switch self {
            case .submitJob, .cancelJob, .appendExamples, .promoteVersion, .rollbackVersion: true
            case .watchJob, .listJobs, .listVersions: false
            }
        }
    }

    public func handle(_ call: GRPCServerCall) {
        guard let method = Method(rawValue: call.method) else {
            call.finish(GRPCStatus(.unimplemented, "method \(call.method) is not implemented by the Swerve trainer"))
            return
        }
        // Before the request is decoded or anything touched.
        if method.changesState, !controlPlane.admit(call) { return }
        switch method {
        case .submitJob: blocking(call) { (r: SubmitJobRequest) in try self.submit(r) }
        case .watchJob: watch(call)
        case .listJobs: unary(call) { (r: ListJobsRequest) in try self.listJobs(r) }
        case .cancelJob: unary(call) { (r: JobRef) in try self.cancel(r) }
        case .appendExamples: blocking(call) { (r: AppendExamplesRequest) in try self.append(r) }
        case .listVersions: blocking(call) { (r: ModelRef) in try self.listVersions(r) }
        case .promoteVersion:
            blocking(call) { (r: VersionRef) in try self.steer(r) { try $0.promote(model: r.modelName, version: Int(r.version), reason: "PromoteVersion") } }
        case .rollbackVersion:
            blocking(call) { (r: VersionRef) in try self.steer(r) { try $0.rollback(model: r.modelName, to: Int(r.version), reason: "RollbackVersion") } }
        }
    }

    // MARK: - Plumbing

    private func unary<Req: ProtoMessage, Resp: ProtoMessage>(_ call: GRPCServerCall, _ body: (Req) throws -> Resp) {
        serveUnary(call, body)
    }

    private func blocking<Req: ProtoMessage, Resp: ProtoMessage>(_ call: GRPCServerCall, _ body: @escaping @Sendable (Req) throws -> Resp) {
        serveBlocking(call, on: blockingQueue, body)
    }

    private func queue(for model: String) -> DispatchQueue {
        lock.lock()
        defer { lock.unlock() }
        if let q = queues[model] { return q }
        let q = DispatchQueue(label: "swerve.trainer.model.\(model)")
        queues[model] = q
        return q
    }

    // MARK: - Jobs

    /// Parses and checks a SubmitJob request into a pipeline spec.
    func spec(for r: SubmitJobRequest, jobID: String) throws -> PipelineSpec {
        try ModelRepository.validateModelName(r.modelName)
        guard let kind = ModelKind(rawValue: r.modelKind) else {
            throw GRPCStatus(.invalidArgument, "model_kind '\(r.modelKind)' is not one of \(ModelKind.allCases.map(\.rawValue))")
        }
        guard !r.schemaJSON.isEmpty else { throw GRPCStatus(.invalidArgument, "schema_json is required") }
        var schema = try DataSchema.decode(Array(r.schemaJSON.utf8), source: "schema_json")
        if !r.label.isEmpty, r.label != schema.label {
            for i in schema.columns.indices where schema.columns[i].type == .label && schema.columns[i].name != r.label {
                schema.columns[i].type = .ignore
            }
            schema.label = r.label
            schema = try schema.validated()
        }
        let hp = try Hyperparameters(kind: kind, r.hyperparameters)
        var gates: GateConfig? = nil
        if !r.gatesJSON.isEmpty {
            do {
                gates = try JSONDecoder().decode(GateConfig.self, from: Data(r.gatesJSON.utf8))
            } catch {
                throw GRPCStatus(.invalidArgument, "gates_json: \(error)")
            }
        }
        let spec = PipelineSpec(
            modelName: r.modelName, schema: schema, configuration: hp.configuration, dataPath: r.dataPath.isEmpty ? nil : r.dataPath,
            gates: gates, sliceColumn: r.sliceColumn.isEmpty ? nil : r.sliceColumn, validationFraction: hp.validation,
            holdoutFraction: hp.holdout, startedBy: r.startedBy.isEmpty ? nil : r.startedBy, jobID: jobID,
            rawHyperparameters: r.hyperparameters)
        return try spec.validated()
    }

    func submit(_ r: SubmitJobRequest) throws -> JobStatus {
        lock.lock()
        let closing = shuttingDown
        lock.unlock()
        if closing { throw GRPCStatus(.unavailable, "the trainer is shutting down") }
        let jobID = (r.continuous ? "cont-" : "job-") + String(UUID().uuidString.prefix(8)).lowercased()
        let spec = try spec(for: r, jobID: jobID)
        if !r.continuous {
            guard let path = spec.dataPath else { throw GRPCStatus(.invalidArgument, "data_path is required for a static job") }
            guard FileManager.default.fileExists(atPath: path) else { throw GRPCStatus(.notFound, "data file \(path) does not exist") }
        } else if let path = spec.dataPath {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
                throw GRPCStatus(.notFound, "watched directory \(path) does not exist")
            }
        }
        if r.continuous {
            lock.lock()
            let existing = continuousByModel[r.modelName].flatMap { jobs[$0] }
            lock.unlock()
            if let existing, !existing.isFinished {
                throw GRPCStatus(.alreadyExists, "model \(r.modelName) already has continuous job \(existing.id)")
            }
            // Recorded durably before the job starts, so a restarted trainer resumes it.
            let dir = continuousDir(r.modelName).path
            try DurableFiles.makeDirectory(dir)
            try DurableFiles.replace(r.serializedBytes(), at: dir + "/job.pb")
        }
        return try start(r, spec: spec, jobID: jobID).status()
    }

    func continuousDir(_ model: String) -> URL {
        stateDirectory.appendingPathComponent("continuous").appendingPathComponent(model)
    }

    @discardableResult
    func start(_ r: SubmitJobRequest, spec: PipelineSpec, jobID: String) throws -> JobRecord {
        let job = JobRecord(id: jobID, model: r.modelName, continuous: r.continuous)
        lock.lock()
        jobs[jobID] = job
        jobOrder.append(jobID)
        if r.continuous { continuousByModel[r.modelName] = jobID }
        lock.unlock()
        let q = queue(for: r.modelName)
        let pipeline = TrainingPipeline(repository: repository)
        let progress: @Sendable (PipelineEvent) -> Void = { event in job.progress(event) }
        if !r.continuous {
            q.async {
                guard !job.token.isCancelled else { job.finish(.cancelled, message: "cancelled before it started"); return }
                job.setRunning()
                let result = pipeline.run(spec, cancel: job.token, progress: progress)
                job.examplesSeen = UInt64(result.rows)
                job.finish(result.state, message: result.summary, version: result.version)
                self.logger.info("job finished", metadata: ["job": "\(jobID)", "model": "\(r.modelName)", "outcome": "\(result.summary)"])
            }
            return job
        }
        let log = try exampleLog(for: r.modelName)
        let continuous = try ContinuousJob(
            spec: spec, repository: repository, stateDirectory: continuousDir(r.modelName), log: log,
            watchDirectory: spec.dataPath.map { URL(fileURLWithPath: $0, isDirectory: true) },
            options: ContinuousJob.Options(minBatchRows: Int(r.hyperparameters["min_batch_rows"] ?? "") ?? 100))
        let interval = Double(max(1, r.pollSeconds == 0 ? 10 : r.pollSeconds))
        job.setRunning()
        // Each round runs on the model's queue, so rounds and static jobs of one model never overlap.
        let timerQueue = DispatchQueue(label: "swerve.trainer.cont.\(r.modelName)")
        @Sendable func schedule(after delay: Double) {
            timerQueue.asyncAfter(deadline: .now() + delay) {
                guard !job.token.isCancelled else { job.finish(.cancelled, message: job.token.cancelReason); return }
                q.async {
                    do {
                        let round = try continuous.runOnce(cancel: job.token, progress: progress)
                        if let result = round.result {
                            job.examplesSeen = continuous.examplesSeen
                            job.roundFinished(result)
                        }
                    } catch is PipelineCancelled {
                    } catch {
                        job.progress(PipelineEvent(line: "round failed (will retry): \(error)"))
                        self.logger.error("continuous round failed", metadata: ["job": "\(jobID)", "error": "\(error)"])
                    }
                    if job.token.isCancelled { job.finish(.cancelled, message: job.token.cancelReason) } else { schedule(after: interval) }
                }
            }
        }
        // A cancellation ends the job once any round in progress is done (the model's queue is serial).
        job.token.onCancel { q.async { job.finish(.cancelled, message: job.token.cancelReason) } }
        schedule(after: 0)
        return job
    }

    /// The largest continuous job record (job.pb) read back: a job spec, never data.
    static let maxJobFileBytes = 16 << 20

    /// Restarts the continuous jobs recorded under the state directory (after a restart).
    public func resumeContinuousJobs() {
        let dir = stateDirectory.appendingPathComponent("continuous")
        for model in ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted() {
            let file = dir.appendingPathComponent(model).appendingPathComponent("job.pb")
            guard let data = DurableFiles.read(file.path, limit: Self.maxJobFileBytes),
                  let r = try? SubmitJobRequest(serializedBytes: Array(data)) else { continue }
            let jobID = "cont-" + String(UUID().uuidString.prefix(8)).lowercased()
            do {
                try start(r, spec: spec(for: r, jobID: jobID), jobID: jobID)
                logger.info("resumed continuous job", metadata: ["job": "\(jobID)", "model": "\(model)"])
            } catch {
                logger.error("cannot resume continuous job", metadata: ["model": "\(model)", "error": "\(error)"])
            }
        }
    }

    func job(_ id: String) throws -> JobRecord {
        lock.lock()
        defer { lock.unlock() }
        guard let job = jobs[id] else { throw GRPCStatus(.notFound, "no job \(id)") }
        return job
    }

    func listJobs(_ r: ListJobsRequest) throws -> ListJobsResponse {
        if !r.modelName.isEmpty { try ModelRepository.validateModelName(r.modelName) }
        lock.lock()
        let all = jobOrder.compactMap { jobs[$0] }
        lock.unlock()
        return ListJobsResponse(jobs: all.filter { r.modelName.isEmpty || $0.model == r.modelName }.map { $0.status() })
    }

    func cancel(_ r: JobRef) throws -> JobStatus {
        let job = try job(r.jobID)
        if job.isFinished { throw GRPCStatus(.failedPrecondition, "job \(r.jobID) already ended (\(job.status().state))") }
        job.token.cancel(reason: "cancelled by CancelJob")
        if job.status().state == "queued" { job.finish(.cancelled, message: "cancelled before it started") }
        if job.continuous {
            try? FileManager.default.removeItem(at: continuousDir(job.model).appendingPathComponent("job.pb"))
        }
        return job.status()
    }

    func watch(_ call: GRPCServerCall) {
        let ref: JobRef
        do { ref = try JobRef(serializedBytes: call.message) } catch { call.finish(GRPCStatus(converting: error)); return }
        do {
            let job = try job(ref.jobID)
            job.addWatcher(call)
        } catch {
            call.finish(GRPCStatus(converting: error))
        }
    }

    // MARK: - Examples

    func exampleLog(for model: String) throws -> ExampleLog {
        try ModelRepository.validateModelName(model)
        lock.lock()
        defer { lock.unlock() }
        if let log = logs[model] { return log }
        let log = try ExampleLog(directory: stateDirectory.appendingPathComponent("logs").appendingPathComponent(model))
        logs[model] = log
        appenders[model] = ExampleAppender(log: log)
        return log
    }

    func append(_ r: AppendExamplesRequest) throws -> AppendExamplesResponse {
        guard !r.examples.isEmpty else { throw GRPCStatus(.invalidArgument, "no examples") }
        _ = try exampleLog(for: r.modelName)
        lock.lock()
        let appender = appenders[r.modelName]!
        lock.unlock()
        // All or nothing, in consecutive sequence numbers, returning once durable; a retry with
        // the same idempotency key is answered with the original numbers.
        let result = try appender.append(r.examples.map { LabelledExample(features: $0.features, label: $0.label) }, key: r.idempotencyKey)
        return AppendExamplesResponse(firstSequence: result.firstSequence, count: UInt64(result.count), replayed: result.replayed)
    }

    // MARK: - Registry

    func listVersions(_ r: ModelRef) throws -> ListVersionsResponse {
        try ModelRepository.validateModelName(r.modelName)
        let registry = ModelRegistry(repository: repository)
        guard registry.repository.modelExists(r.modelName) else {
            throw GRPCStatus(.notFound, "no model \(r.modelName) in \(repository.path)")
        }
        return ListVersionsResponse(versions: registry.entries(of: r.modelName).map { Self.info(r.modelName, $0) })
    }

    static func info(_ model: String, _ entry: ModelRegistry.VersionEntry) -> VersionInfo {
        let json = (try? entry.lineage?.jsonData()).flatMap { $0.map { String(decoding: $0, as: UTF8.self) } } ?? ""
        return VersionInfo(modelName: model, version: Int64(entry.version), status: entry.lineage?.status.rawValue ?? "unknown", lineageJSON: json)
    }

    func steer(_ r: VersionRef, _ body: (ModelRegistry) throws -> Void) throws -> VersionInfo {
        try ModelRepository.validateModelName(r.modelName)
        let registry = ModelRegistry(repository: repository)
        guard registry.repository.modelExists(r.modelName) else {
            throw GRPCStatus(.notFound, "no model \(r.modelName)")
        }
        guard r.version > 0 else { throw GRPCStatus(.invalidArgument, "version must be positive") }
        try body(registry)
        guard let entry = registry.entries(of: r.modelName).first(where: { $0.version == Int(r.version) }) else {
            throw GRPCStatus(.notFound, "\(r.modelName) has no version \(r.version)")
        }
        return Self.info(r.modelName, entry)
    }

    // MARK: - Shutdown

    /// Stops accepting jobs, cancels every job (a running one's training thread stops at its next
    /// epoch boundary or within `Trainer.stopCheckInterval` mini-batches;
    /// a continuous job's checkpoint stays at its last durable round) and waits up to `timeout`
    /// for them to end. Then closes the logs.
    public func shutdown(timeout: TimeInterval) {
        lock.lock()
        shuttingDown = true
        let all = Array(jobs.values)
        lock.unlock()
        for job in all where !job.isFinished { job.token.cancel(reason: "trainer shutting down") }
        let deadline = Date().addingTimeInterval(timeout)
        for job in all { job.waitFinished(until: deadline) }
        lock.lock()
        let open = Array(logs.values)
        lock.unlock()
        open.forEach { $0.close() }
    }
}
