import Foundation
import SwerveRepository

/// Continuous training for one model: each round pulls the examples that arrived since the last
/// round from the model's `ExampleLog` (from its `LogCheckpoint`) and/or new CSV files in a
/// watched directory (`DirectoryIngest`), scores them with the current model *before* training on
/// them (progressive validation), validates the batch, warm-starts from the last accepted model
/// (falling back to training from scratch when the model cannot be warm-started), gates,
/// publishes, and only then moves its checkpoint. A job killed at any point (even `kill -9`) and
/// recreated over the same state directory resumes where the last durable round ended.
///
/// State in `stateDirectory`: `checkpoint.json` (next log sequence), `ingest.json` (files
/// handled), `model.json` (the last accepted model, the warm start), `progressive.json`
/// (progressive-validation history).
public final class ContinuousJob: @unchecked Sendable {
    public struct Options: Sendable {
        /// Fewer new examples than this wait for the next round (the log is not consumed).
        public var minBatchRows: Int = 100
        /// At most this many log records per round.
        public var maxBatchRows: Int = 50_000
        public init(minBatchRows: Int = 100, maxBatchRows: Int = 50_000) {
            self.minBatchRows = minBatchRows
            self.maxBatchRows = maxBatchRows
        }
    }

    /// What one round did.
    public struct Round: Sendable {
        /// nil when there was nothing (or not enough) to train on.
        public var result: PipelineResult?
        /// Metrics of the previous model on this batch, scored before training on it.
        public var progressive: [String: Double]?
        public var logRange: ClosedRange<UInt64>?
        public var files: [String]
    }

    public let spec: PipelineSpec
    public let pipeline: TrainingPipeline
    public let stateDirectory: URL
    public let log: ExampleLog?
    public let options: Options
    let checkpoint: LogCheckpoint
    let ingest: DirectoryIngest?
    private let lock = NSLock()
    private(set) public var rounds = 0
    /// Examples consumed (trained on, rejected or quarantined) over the job's life, this process.
    private(set) public var examplesSeen: UInt64 = 0

    public static let nextSequenceKey = "continuous.log_next_sequence"

    public init(spec: PipelineSpec, repository: URL, stateDirectory: URL, log: ExampleLog?,
                watchDirectory: URL? = nil, settleTime: TimeInterval = 1, options: Options = Options()) throws {
        self.spec = try spec.validated()
        pipeline = TrainingPipeline(repository: repository)
        self.stateDirectory = stateDirectory
        self.log = log
        self.options = options
        try DurableFiles.makeDirectory(stateDirectory.path)
        checkpoint = LogCheckpoint(file: stateDirectory.appendingPathComponent("checkpoint.json"))
        ingest = try watchDirectory.map {
            try DirectoryIngest(directory: $0, stateFile: stateDirectory.appendingPathComponent("ingest.json"), settleTime: settleTime)
        }
        guard log != nil || ingest != nil else {
            throw TrainingError(.invalidConfiguration, "a continuous job needs an example log or a watched directory")
        }
    }

    var modelFile: URL { stateDirectory.appendingPathComponent("model.json") }
    var progressiveFile: URL { stateDirectory.appendingPathComponent("progressive.json") }

    /// The log position to resume from: the checkpoint, or further when a version (or a rejection)
    /// that consumed later records became durable before the checkpoint did.
    public func resumeSequence() throws -> UInt64 {
        var next = try checkpoint.load() ?? 1
        let registry = pipeline.registry
        for entry in registry.entries(of: spec.modelName) {
            if let s = entry.lineage?.extra[Self.nextSequenceKey].flatMap(UInt64.init) { next = max(next, s) }
        }
        for record in registry.rejected(model: spec.modelName) {
            if let s = record.lineage.extra[Self.nextSequenceKey].flatMap(UInt64.init) { next = max(next, s) }
        }
        return next
    }

    /// The last accepted model (the warm start), if any.
    public func lastModel() -> TrainedModel? { try? TrainedModel.load(path: modelFile.path) }

    /// One round. Throws on I/O or data errors (the checkpoint does not move, so the round is
    /// retried next time); validation and gate rejections are results.
    public func runOnce(cancel: CancellationToken = CancellationToken(),
                        progress: @escaping @Sendable (PipelineEvent) -> Void = { _ in }) throws -> Round {
        lock.lock()
        defer { lock.unlock() }
        rounds += 1
        let started = Date()
        var examples: [LabelledExample] = []
        var range: ClosedRange<UInt64>? = nil
        var nextSequence: UInt64 = 1
        if let log {
            nextSequence = try resumeSequence()
            let records = try log.read(from: nextSequence, limit: options.maxBatchRows)
            if let first = records.first, let last = records.last { range = first.sequence...last.sequence }
            for record in records {
                if let example = try? record.example() { examples.append(example) }
            }
        }
        var files: [URL] = []
        if let ingest { files = try ingest.pendingFiles() }

        var batch: ValidationBatch? = nil
        var logBatch: ValidationBatch? = nil
        if examples.count >= options.minBatchRows || (!examples.isEmpty && !files.isEmpty) {
            logBatch = try ValidationBatch(examples: examples, schema: spec.schema)
        }
        // Files are appended to the log batch as rows (by column name).
        var rows: [[String: String]] = []
        if let logBatch { rows += Self.rows(of: logBatch) }
        for file in files {
            let table = try CSVTable(contentsOfFile: file.path)
            rows += table.records.map { Dictionary(uniqueKeysWithValues: zip(table.header, $0)) }
        }
        if !rows.isEmpty {
            let names = spec.schema.columns.filter { $0.type != .ignore }.map(\.name)
            batch = try ValidationBatch(columns: names.map { n in (n, .text(rows.map { $0[n] })) })
        }
        let consumedThrough = logBatch != nil ? range.map { $0.upperBound + 1 } ?? nextSequence : nextSequence
        guard let batch, batch.rowCount > 0 else {
            return Round(result: nil, progressive: nil, logRange: nil, files: [])
        }

        // Progressive validation: the current model scores the batch before it trains on it.
        let previous = lastModel()
        var progressiveMetrics: [String: Double]? = nil
        if let previous, let data = try? batch.dataset(schema: spec.schema, source: "batch") {
            var validator = ProgressiveValidator()
            _ = try? validator.scoreThenTrain(previous, on: data) { model, _ in model }
            progressiveMetrics = validator.batches.last?.named
            if let m = progressiveMetrics {
                progress(PipelineEvent(line: "progressive validation on \(data.rowCount) new rows: " + m.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.4f", $0.value))" }.joined(separator: ", ")))
                try appendProgressive(rows: data.rowCount, metrics: m)
            }
        }

        var extra: [String: String] = [:]
        if let range, logBatch != nil { extra["continuous.log_range"] = "\(range.lowerBound)-\(range.upperBound)" }
        if log != nil { extra[Self.nextSequenceKey] = String(consumedThrough) }
        if !files.isEmpty { extra["continuous.files"] = files.map(\.lastPathComponent).joined(separator: ",") }
        if let progressiveMetrics {
            for (k, v) in progressiveMetrics { extra["progressive.\(k)"] = String(v) }
        }
        var source: [String: String] = ["kind": "continuous"]
        if let range, logBatch != nil { source["log_range"] = "\(range.lowerBound)-\(range.upperBound)" }
        if !files.isEmpty { source["files"] = files.map(\.path).joined(separator: ",") }

        var result = try pipeline.runBatch(spec, batch: batch, source: source, files: files, started: started,
                                           warmStart: previous, baselineModel: previous, extra: extra,
                                           cancel: cancel, progress: progress)
        // The outcome is durable (published, recorded as rejected, or quarantined): now the model
        // state, then the checkpoint and the files.
        if result.state == .succeeded, let model = result.model {
            try DurableFiles.replace(model.encodeJSON(), at: modelFile.path)
        }
        if log != nil, logBatch != nil { try checkpoint.save(nextSequence: consumedThrough) }
        for file in files { try ingest?.markProcessed(file) }
        examplesSeen += UInt64(batch.rowCount)
        result.model = nil
        result.outcome = nil
        return Round(result: result, progressive: progressiveMetrics, logRange: logBatch != nil ? range : nil, files: files.map(\.path))
    }

    /// Runs rounds every `interval` until `cancel` fires. Errors are reported and the schedule goes on.
    public func run(every interval: TimeInterval, cancel: CancellationToken,
                    onRound: @escaping @Sendable (Round) -> Void = { _ in },
                    onError: @escaping @Sendable (any Error) -> Void = { _ in },
                    progress: @escaping @Sendable (PipelineEvent) -> Void = { _ in }) {
        let wake = DispatchSemaphore(value: 0)
        cancel.onCancel { wake.signal() }
        while !cancel.isCancelled {
            do {
                let round = try runOnce(cancel: cancel, progress: progress)
                if round.result != nil { onRound(round) }
            } catch is PipelineCancelled {
                break
            } catch {
                onError(error)
            }
            _ = wake.wait(timeout: .now() + interval)
        }
    }

    private func appendProgressive(rows: Int, metrics: [String: Double]) throws {
        var history: [[String: Double]] = []
        if let data = DurableFiles.read(progressiveFile.path),
           let old = try? JSONDecoder().decode([[String: Double]].self, from: data) { history = old }
        var entry = metrics
        entry["rows"] = Double(rows)
        entry["unix_time"] = Date().timeIntervalSince1970
        history.append(entry)
        try DurableFiles.replace(RecordJSON.encoder().encode(history), at: progressiveFile.path)
    }

    static func rows(of batch: ValidationBatch) -> [[String: String]] {
        (0..<batch.rowCount).map { r in
            var row: [String: String] = [:]
            for name in batch.columnNames { if let v = batch.columns[name]?.text(at: r) { row[name] = v } }
            return row
        }
    }
}
