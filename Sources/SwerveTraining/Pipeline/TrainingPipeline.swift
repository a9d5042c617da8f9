import Foundation
import SwerveInference
import SwerveRepository

/// How a pipeline run ended.
public enum PipelineState: String, Sendable, Codable {
    /// Passed its gates; published and promoted.
    case succeeded
    /// The batch failed validation (quarantined) or the candidate failed its gates (recorded, not published).
    case rejected
    case failed
    case cancelled
}

/// What a pipeline run produced.
public struct PipelineResult: Sendable {
    public var state: PipelineState
    /// The published version (succeeded only).
    public var version: Int?
    /// Holdout metrics overall and per slice ("column=value").
    public var metrics: [String: Double]
    public var sliceMetrics: [String: [String: Double]]
    /// Why it was rejected or failed.
    public var reasons: [String]
    /// The quarantine folder (validation failure) or rejected-lineage file (gate failure).
    public var reportPath: String?
    /// Rows read.
    public var rows: Int
    /// The trained model (when training ran), for warm starts.
    public var model: TrainedModel?
    /// The whole training outcome (when training ran and reached the gates): the summary, the
    /// training statistics and the ONNX bytes, published or not.
    public var outcome: TrainingOutcome?
    /// The lineage that was published or recorded.
    public var lineage: Lineage?

    public init(state: PipelineState, version: Int? = nil, metrics: [String: Double] = [:], sliceMetrics: [String: [String: Double]] = [:],
                reasons: [String] = [], reportPath: String? = nil, rows: Int = 0, model: TrainedModel? = nil, lineage: Lineage? = nil,
                outcome: TrainingOutcome? = nil) {
        self.state = state
        self.version = version
        self.metrics = metrics
        self.sliceMetrics = sliceMetrics
        self.reasons = reasons
        self.reportPath = reportPath
        self.rows = rows
        self.model = model
        self.lineage = lineage
        self.outcome = outcome
    }

    /// One line for a person.
    public var summary: String {
        switch state {
        case .succeeded:
            return "published version \(version ?? 0) (" + metrics.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.4f", $0.value))" }.joined(separator: ", ") + ")"
        case .rejected: return "rejected: " + reasons.joined(separator: "; ") + (reportPath.map { " (report: \($0))" } ?? "")
        case .failed: return "failed: " + reasons.joined(separator: "; ")
        case .cancelled: return "cancelled" + (reasons.isEmpty ? "" : ": " + reasons.joined(separator: "; "))
        }
    }
}

/// A progress line from a running job.
public struct PipelineEvent: Sendable {
    public var line: String
    public var epoch: EpochProgress?
    public init(line: String, epoch: EpochProgress? = nil) {
        self.line = line
        self.epoch = epoch
    }
}

/// Runs training jobs end to end against a model repository: read → validate against the serving
/// version's reference statistics (quarantine on failure) → split → train → evaluate (holdout,
/// overall and per slice) → gates (thresholds, no regression against the serving version) →
/// publish with lineage and reference statistics, and promote; or record the rejection.
public struct TrainingPipeline: Sendable {
    public let repository: URL
    public var registry: ModelRegistry { ModelRegistry(repository: repository) }

    public init(repository: URL) { self.repository = repository }

    /// `<repo>/.quarantine/<model>/`.
    public func quarantine(for model: String) -> Quarantine {
        Quarantine(directory: ModelRepository(root: repository).quarantineDirectory(model))
    }

    /// A static job: the CSV file at `spec.dataPath`. Errors in the data or configuration end the
    /// job `failed`; they are returned, not thrown. The gRPC trainer's SubmitJob and
    /// `swerve train --repository` both run this. `warmStart` continues from a previous model
    /// (training from scratch when it cannot be warm-started).
    public func run(_ spec: PipelineSpec, warmStart: TrainedModel? = nil, cancel: CancellationToken = CancellationToken(),
                    progress: @escaping @Sendable (PipelineEvent) -> Void = { _ in }) -> PipelineResult {
        let started = Date()
        do {
            let spec = try spec.validated()
            guard let path = spec.dataPath else { throw TrainingError(.invalidConfiguration, "a static job needs a data file") }
            progress(PipelineEvent(line: "reading \(path)"))
            let table = try CSVTable(contentsOfFile: path)
            let batch = try ValidationBatch(table: table)
            return try runBatch(spec, batch: batch, source: ["file": path], files: [URL(fileURLWithPath: path)],
                                started: started, warmStart: warmStart, cancel: cancel, progress: progress)
        } catch let e as PipelineCancelled {
            return PipelineResult(state: .cancelled, reasons: [e.reason])
        } catch {
            return PipelineResult(state: .failed, reasons: ["\(error)"])
        }
    }

    /// Validates, trains, gates and publishes one batch. Used by static jobs and by each round of
    /// a continuous job (`warmStart`, `baseline` and `extra` come from there).
    func runBatch(
        _ spec: PipelineSpec, batch: ValidationBatch, source: [String: String], files: [URL] = [], started: Date,
        warmStart: TrainedModel? = nil, baselineModel: TrainedModel? = nil, extra: [String: String] = [:],
        cancel: CancellationToken, progress: @escaping @Sendable (PipelineEvent) -> Void
    ) throws -> PipelineResult {
        let model = spec.modelName
        let registry = self.registry
        let servingVersion = try? registry.servingVersion(of: model)
        let reference = servingVersion.flatMap { registry.referenceStatistics(of: model, version: $0) }

        // Validate against the schema and the serving version's reference; quarantine on failure.
        let validator = BatchValidator(schema: spec.schema.validationSchema(), reference: reference, options: spec.validationOptions)
        let report = validator.validate(batch)
        for warning in report.warnings { progress(PipelineEvent(line: "validation: \(warning)")) }
        if !report.passed {
            var src = source
            src["model"] = model
            if let servingVersion { src["reference_version"] = String(servingVersion) }
            let folder = try quarantine(for: model).quarantine(batch: batch, report: report, source: src, files: files)
            let reasons = report.errors.map(\.description)
            progress(PipelineEvent(line: "batch quarantined at \(folder.path): \(reasons.joined(separator: "; "))"))
            return PipelineResult(state: .rejected, reasons: reasons, reportPath: folder.appendingPathComponent("report.json").path, rows: batch.rowCount)
        }
        try checkCancelled(cancel)

        let data = try batch.dataset(schema: spec.schema, source: source["file"] ?? "batch")
        let job = TrainingJob(configuration: spec.configuration, validationFraction: spec.validationFraction,
                              holdoutFraction: spec.holdoutFraction, sliceColumn: spec.sliceColumn, warmStart: warmStart)
        progress(PipelineEvent(line: "training \(spec.configuration.model.rawValue) on \(data.rowCount) rows\(warmStart != nil ? " (warm start)" : "")"))
        var outcome: TrainingOutcome
        do {
            outcome = try runCancellable(job, data: data, cancel: cancel, progress: progress)
        } catch let error as TrainingError where warmStart != nil && error.code == .invalidConfiguration && error.message.contains("warm-start") {
            progress(PipelineEvent(line: "warm start impossible (\(error.message)); training from scratch"))
            var fresh = job
            fresh.warmStart = nil
            outcome = try runCancellable(fresh, data: data, cancel: cancel, progress: progress)
        }
        try checkCancelled(cancel)

        return try gateAndPublish(spec, outcome: outcome, data: data, source: source, started: started, warmStart: warmStart,
                                  baselineModel: baselineModel, extra: extra, cancel: cancel, progress: progress)
    }

    func gateAndPublish(
        _ spec: PipelineSpec, outcome: TrainingOutcome, data: Dataset, source: [String: String], started: Date,
        warmStart: TrainedModel?, baselineModel: TrainedModel?, extra: [String: String],
        cancel: CancellationToken, progress: @escaping @Sendable (PipelineEvent) -> Void
    ) throws -> PipelineResult {
        let model = spec.modelName
        let registry = self.registry
        let servingVersion = try? registry.servingVersion(of: model)
        guard let holdout = outcome.summary.holdout else {
            throw TrainingError(.invalidConfiguration, "the holdout split is empty: more rows or a larger holdout fraction are needed")
        }
        let metrics = holdout.overall.named
        let sliceMetrics = holdout.namedSlices
        progress(PipelineEvent(line: "holdout: " + metrics.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.4f", $0.value))" }.joined(separator: ", ")))

        // The baseline the candidate must not regress from: in a continuous job the previous model
        // scored on this same holdout (the serving version's stored metrics are from older data);
        // otherwise the serving version's recorded metrics.
        var serving: [String: Double]? = nil
        var servingPerSlice: [String: [String: Double]]? = nil
        if let baselineModel, let split = try? data.split(validation: spec.validationFraction, holdout: spec.holdoutFraction, seed: spec.configuration.seed),
           let base = try? EvaluationReport(model: baselineModel, data: split.holdout, sliceColumn: spec.sliceColumn) {
            serving = base.overall.named
            servingPerSlice = base.namedSlices
        } else if let s = try? registry.servingMetrics(of: model), !s.metrics.isEmpty {
            serving = s.metrics
            servingPerSlice = s.sliceMetrics
        }
        let gates = spec.gates ?? PipelineSpec.defaultGates(task: spec.schema.task, servingMetrics: serving)
        // Per-slice regression checks only with explicit gates: small slices are noisy.
        let decision = gates.evaluate(candidate: metrics, perSlice: sliceMetrics, serving: serving,
                                      servingPerSlice: spec.gates == nil ? nil : servingPerSlice)

        var lineage = Lineage(
            dataFingerprint: outcome.summary.dataFingerprint.description,
            rowCounts: .init(train: outcome.summary.rows.train, validation: outcome.summary.rows.validation, holdout: outcome.summary.rows.holdout),
            schema: try? LineageJSON(encoding: spec.schema),
            hyperparameters: hyperparameterRecord(spec),
            seed: spec.configuration.seed, metrics: metrics, sliceMetrics: sliceMetrics, parentVersion: servingVersion,
            origin: Lineage.Origin(user: spec.startedBy ?? Lineage.Origin.current().user, host: ProcessInfo.processInfo.hostName, jobID: spec.jobID),
            timestamps: .init(started: started, finished: Date()), status: .candidate, extra: extra)
        lineage.extra["train_fingerprint"] = outcome.summary.trainFingerprint.description
        lineage.extra["best_epoch"] = String(outcome.summary.bestEpoch)
        lineage.extra["epochs_run"] = String(outcome.summary.history.count)
        if warmStart != nil { lineage.extra["warm_start"] = "true" }
        if let serving { lineage.extra["baseline_metrics"] = serving.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") }
        for (k, v) in source { lineage.extra["source.\(k)"] = v }

        guard decision.passed else {
            let file = try registry.recordRejected(model: model, lineage: lineage, reasons: decision.reasons)
            progress(PipelineEvent(line: "rejected by the gates: \(decision.reasons.joined(separator: "; "))"))
            return PipelineResult(state: .rejected, metrics: metrics, sliceMetrics: sliceMetrics, reasons: decision.reasons,
                                  reportPath: file.path, rows: data.rowCount, model: outcome.model, lineage: lineage, outcome: outcome)
        }
        try checkCancelled(cancel)
        lineage.transition(to: .validated, reason: "passed gates")
        let statistics = try ReferenceStatistics(outcome.trainStatistics).jsonData()
        let version = try ModelPublisher.publish(onnx: outcome.onnx, repository: repository, name: model, lineage: lineage,
                                                 referenceStatistics: statistics)
        lineage.version = version
        // A label-managed model's traffic moves by rollout (`swerve rollout`), measured on live
        // traffic, not by the gates alone: the version stays `validated` for it.
        if registry.isLabelManaged(model) {
            progress(PipelineEvent(line: "published \(model) version \(version) (validated; the model is label-managed: `swerve rollout` takes it to stable)"))
        } else {
            try registry.promote(model: model, version: version, reason: "passed gates (job \(spec.jobID ?? "-"))")
            progress(PipelineEvent(line: "published and promoted \(model) version \(version)"))
        }
        return PipelineResult(state: .succeeded, version: version, metrics: metrics, sliceMetrics: sliceMetrics,
                              rows: data.rowCount, model: outcome.model, lineage: lineage, outcome: outcome)
    }

    func hyperparameterRecord(_ spec: PipelineSpec) -> [String: LineageJSON] {
        var out: [String: LineageJSON] = [:]
        if case .object(let o)? = try? LineageJSON(encoding: spec.configuration) { out = o }
        out["holdout_fraction"] = .number(spec.holdoutFraction)
        out["validation_fraction"] = .number(spec.validationFraction)
        if let slice = spec.sliceColumn { out["slice_column"] = .string(slice) }
        if !spec.rawHyperparameters.isEmpty { out["requested"] = .object(spec.rawHyperparameters.mapValues { .string($0) }) }
        return out
    }

    func checkCancelled(_ cancel: CancellationToken) throws {
        if cancel.isCancelled { throw PipelineCancelled(reason: cancel.cancelReason) }
    }

    /// Runs the training job on its own thread (with a large stack) and waits for it to end. The
    /// token is the trainer's stop hook: a cancellation stops the training thread itself at the
    /// next epoch boundary or within `Trainer.stopCheckInterval` mini-batches, and this returns
    /// only once that thread has stopped.
    func runCancellable(_ job: TrainingJob, data: Dataset, cancel: CancellationToken,
                        progress: @escaping @Sendable (PipelineEvent) -> Void) throws -> TrainingOutcome {
        try checkCancelled(cancel)
        final class Box: @unchecked Sendable {
            var result: Result<TrainingOutcome, any Error>?
        }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            nameCurrentThread("training")
            box.result = Result {
                try job.run(on: data, progress: { epoch in progress(PipelineEvent(line: epoch.description, epoch: epoch)) },
                            shouldStop: { cancel.isCancelled })
            }
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()
        done.wait()  // the semaphore orders the thread's write of `box.result` before this read
        do {
            return try box.result!.get()
        } catch let error as TrainingError where error.code == .cancelled {
            throw PipelineCancelled(reason: "\(cancel.cancelReason) (\(error.message))")
        }
    }
}
