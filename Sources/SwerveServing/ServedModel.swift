import Atomics
import Foundation
import Logging
import Metrics
import SwerveInference
import SwerveRepository

/// One loaded, compiled and warmed-up model version, with its batcher and statistics.
public final class ServedModel: Sendable {
    public let name: String
    public let version: Int
    /// Inputs and outputs as clients see them (ONNX-derived, with config.json overrides applied).
    public let inputs: [TensorInfo]
    public let outputs: [TensorInfo]
    /// Most rows per execution; 0 = no batch dimension.
    public let maxBatchSize: Int
    public let settings: ModelSettings
    /// The version's lineage record (metadata.json); nil when it has none or it does not decode.
    public let lineage: Lineage?
    public let statistics = VersionStatistics()
    /// What a rollout compares with other versions (requests, failures, latency, predictions).
    public let evidence = RolloutEvidence()
    let batcher: DynamicBatcher
    let paths: ServingPaths
    /// `version` as the string clients and metric labels use.
    public let versionLabel: String
    /// 0 ..< outputs.count: the outputs a request without `outputs` gets.
    public let allOutputPositions: [Int]
    /// Per-version request counters and latency histogram, created once.
    public let requestMetrics: RequestMetrics
    /// Which answered requests go to the model's prediction log; nil without `prediction_log`.
    public let predictionSampler: PredictionSampler?
    /// The model's prediction log once a sampled request opened it: each later one takes it with
    /// an atomic load, not the server's table of logs (a lock and a lookup).
    private let predictionLogRef = ManagedAtomicLazyReference<PredictionLog>()

    /// The model's prediction log, opened by `open` on first use (nil: not open; asked again).
    public func predictionLog(_ open: () -> PredictionLog?) -> PredictionLog? {
        if let log = predictionLogRef.load() { return log }
        return open().map { predictionLogRef.storeIfNilThenLoad($0) }
    }

    /// The drift monitor, for a version with reference statistics and `monitoring` on.
    public let monitor: DriftMonitor?
    /// What joining labels with this version's logged predictions needs; nil without a
    /// prediction log with a join window.
    public let feedbackLayout: FeedbackLayout?
    private let inputNames: [String]
    private let inputNameBytes: [[UInt8]]
    private let inputIndex: [String: Int]
    private let outputIndex: [String: Int]

    /// Compiles the file, applies the settings, warms the model up with one zero row, and starts its workers.
    /// The file must be a regular file (or a symlink to one) of at most `maxModelBytes`.
    init(name: String, version: Int, file: URL, settings: ModelSettings, lineage: Lineage?, reference: ReferenceStatistics? = nil,
         maxModelBytes: Int = CompiledModel.defaultMaxFileBytes, cacheBytes: () -> Int, logger: Logger) throws {
        let compiled: CompiledModel
        let present = ModelRepository.modelFilesPresent(in: file.deletingLastPathComponent())
        if present.count > 1 {
            throw ServingError(.failedPrecondition, "\(name) version \(version): the version folder holds \(present.joined(separator: " and ")); keep one model file per version")
        }
        do {
            // A native tree model's input takes the name config.json gives it ("input" without one).
            compiled = try CompiledModel(contentsOfFile: file.path, maxBytes: maxModelBytes, nativeInputName: settings.inputOverrides.first?.name)
        } catch {
            throw ServingError(.failedPrecondition, "\(name) version \(version): \(error)")
        }
        self.name = name
        self.version = version
        self.settings = settings
        self.lineage = lineage
        self.inputs = try Self.apply(settings.inputOverrides, to: compiled.inputs, kind: "input", model: name)
        self.outputs = try Self.apply(settings.outputOverrides, to: compiled.outputs, kind: "output", model: name)
        let batchable = inputs.allSatisfy { $0.shape.first == -1 }
        if let m = settings.maxBatchSize {
            if m > 0 && !batchable {
                throw ServingError(.failedPrecondition, "\(name): max_batch_size \(m) needs every input's first dimension to be dynamic (-1), but inputs are \(inputs.map { "\($0.name)\($0.shape)" }.joined(separator: ", "))")
            }
            maxBatchSize = m
        } else {
            maxBatchSize = batchable ? ModelSettings.defaultMaxBatchSize : 0
        }
        inputNames = inputs.map(\.name)
        inputNameBytes = inputs.map { Array($0.name.utf8) }
        versionLabel = String(version)
        allOutputPositions = Array(outputs.indices)
        requestMetrics = RequestMetrics(model: name, version: versionLabel)
        predictionSampler = settings.predictionLog.map { PredictionSampler(rate: $0.sampleRate) }
        let (ins, outs, batched) = (inputs, outputs, maxBatchSize > 0)
        let monitor = reference.flatMap {
            DriftMonitor(model: name, version: version, reference: $0, inputs: ins, outputs: outs, batched: batched,
                         settings: settings.monitoring, nowMs: UInt64(Date().timeIntervalSince1970 * 1000))
        }
        self.monitor = monitor
        if let monitor, !monitor.unmapped.isEmpty {
            logger.warning("\(name) version \(version): drift monitor: reference features not found in the inputs: \(monitor.unmapped.joined(separator: ", "))")
        }
        if let log = settings.predictionLog, log.joinWindowSeconds > 0 {
            let placed = reference.map { DriftMonitor.resolve(reference: $0, inputs: ins, batched: batched).0 } ?? []
            let classes = compiled.metadata["swerve.classes"].flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) }
            feedbackLayout = FeedbackLayout(model: name, version: version,
                                            features: placed.map { FeatureColumn(name: $0.name, input: $0.inputName, column: $0.column) },
                                            classNames: classes)
        } else {
            feedbackLayout = nil
        }
        // The holdout figures of the lineage, beside the online ones labels give.
        for (metric, value) in lineage?.metrics ?? [:] where value.isFinite {
            Gauge(label: "swerve_holdout_metric", dimensions: [("model", name), ("version", String(version)), ("metric", metric)]).record(value)
        }
        inputIndex = Dictionary(uniqueKeysWithValues: inputs.enumerated().map { ($1.name, $0) })
        outputIndex = Dictionary(uniqueKeysWithValues: outputs.enumerated().map { ($1.name, $0) })

        // Warm-up: one row of zeros through a throwaway executor, so a model that cannot run never takes traffic.
        let warm = inputs.map { info in Tensor(zeros: info.dataType, shape: info.shape.map { $0 < 0 ? 1 : $0 }) }
        do {
            _ = try compiled.makeExecutor().run(warm)
        } catch {
            throw ServingError(.failedPrecondition, "\(name) version \(version) failed its warm-up run: \(error)")
        }
        // The static table is complete before the version takes traffic.
        var table: StaticTable?
        var buildMs = 0
        if settings.servingMode == .static || settings.servingMode == .auto {
            let started = Date()
            table = try Self.buildTable(compiled: compiled, inputs: inputs, outputs: outputs, maxBatchSize: maxBatchSize,
                                        settings: settings, name: name, version: version, logger: logger)
            buildMs = Int(Date().timeIntervalSince(started) * 1000)
        }
        // Only versions that can use a cache take a share of the server's cache budget.
        let budget = ServingPaths.wantsCache(mode: settings.servingMode, hasTable: table != nil) ? (settings.cacheBytes ?? cacheBytes()) : 0
        paths = ServingPaths(mode: settings.servingMode, table: table, tableBuildMs: buildMs,
                             cacheBytes: budget, model: name, version: version, statistics: statistics,
                             evidence: evidence)
        batcher = DynamicBatcher(model: compiled, settings: settings, maxBatchSize: maxBatchSize, statistics: statistics, modelName: name, version: version,
                                 logger: logger)
        batcher.start()
    }

    /// The finite input domain, declared in config.json or derived from the graph; nil when some
    /// input element has none.
    static func staticDomain(inputs: [TensorInfo], derived: [InputColumnDomain], settings: ModelSettings,
                             batched: Bool, name: String) throws -> StaticDomain? {
        var domainInputs: [StaticDomain.Input] = []
        var columns: [StaticDomain.Column] = []
        for (i, info) in inputs.enumerated() {
            let rowShape = batched ? Array(info.shape.dropFirst()) : info.shape
            guard rowShape.allSatisfy({ $0 >= 0 }) else { return nil }
            let width = rowShape.reduce(1, *)
            domainInputs.append(.init(name: info.name, dataType: info.dataType, rowShape: rowShape))
            if let declared = settings.declaredDomains[info.name] {
                guard declared.count == width else {
                    throw ServingError(.failedPrecondition, "\(name)/config.json: static_table.domains.\(info.name) lists \(declared.count) columns but a row of '\(info.name)' has \(width) elements")
                }
                for (e, values) in declared.enumerated() {
                    columns.append(.init(input: i, element: e, values: try tensorData(values, info.dataType, input: info.name, model: name)))
                }
                continue
            }
            let found = derived.filter { $0.input == info.name }
            for e in 0..<width {
                guard let d = found.first(where: { $0.element == e }) else { return nil }
                columns.append(.init(input: i, element: e, values: d.values))
            }
        }
        return try StaticDomain(inputs: domainInputs, columns: columns, batched: batched)
    }

    private static func tensorData(_ values: [DomainValue], _ dt: DataType, input: String, model: String) throws -> TensorData {
        let bad = ServingError(.failedPrecondition, "\(model)/config.json: static_table.domains.\(input) has values that are not \(dt.rawValue)")
        switch dt {
        case .int64: return .int64(try values.map { if case .int(let v) = $0 { v } else { throw bad } })
        case .int32: return .int32(try values.map { if case .int(let v) = $0, let x = Int32(exactly: v) { x } else { throw bad } })
        case .bool: return .bool(try values.map { if case .bool(let v) = $0 { v } else { throw bad } })
        case .bytes: return .bytes(try values.map { if case .string(let v) = $0 { Array(v.utf8) } else { throw bad } })
        default:
            throw ServingError(.failedPrecondition, "\(model)/config.json: static_table.domains.\(input): only INT64, INT32, BOOL and BYTES inputs can have declared domains")
        }
    }

    /// Builds the static table when the mode asks for one and the domain is finite and within bounds.
    /// `static` mode fails the load otherwise; `auto` falls back to the cache/batcher paths.
    static func buildTable(compiled: CompiledModel, inputs: [TensorInfo], outputs: [TensorInfo], maxBatchSize: Int,
                           settings: ModelSettings, name: String, version: Int, logger: Logger) throws -> StaticTable? {
        let mode = settings.servingMode
        let refuse = { (why: String) throws -> StaticTable? in
            if mode == .static { throw ServingError(.failedPrecondition, "\(name) version \(version): serving_mode is static but \(why)") }
            logger.debug("no static table", metadata: ["model": "\(name)", "version": "\(version)", "reason": "\(why)"])
            return nil
        }
        guard let domain = try staticDomain(inputs: inputs, derived: compiled.derivedInputDomains, settings: settings,
                                            batched: maxBatchSize > 0, name: name) else {
            return try refuse("not every input has a finite domain (declare one in config.json static_table.domains)")
        }
        let limits = StaticTable.Limits(maxCells: settings.staticMaxCells, maxBytes: settings.staticMaxBytes)
        let estimate = StaticTable.estimate(domain: domain, outputs: outputs, limits: limits)
        if let why = estimate.refusal { return try refuse(why) }
        let executor = compiled.makeExecutor()
        let total = domain.cellCount
        var nextReport = 0
        logger.info("building static table", metadata: ["model": "\(name)", "version": "\(version)", "cells": "\(total)"])
        let table = try StaticTable.build(
            domain: domain, outputNames: outputs.map(\.name), maxRows: 1024, limits: limits,
            run: { try executor.run($0) },
            progress: { done, total in
                let pct = total == 0 ? 100 : done * 100 / total
                if pct >= nextReport {
                    logger.info("static table progress", metadata: ["model": "\(name)", "version": "\(version)", "rows": "\(done)/\(total)", "percent": "\(pct)"])
                    nextReport = pct + 10
                }
            })
        return table
    }

    private static func apply(_ overrides: [TensorOverride], to infos: [TensorInfo], kind: String, model: String) throws -> [TensorInfo] {
        var out = infos
        for o in overrides {
            guard let i = out.firstIndex(where: { $0.name == o.name }) else {
                throw ServingError(.failedPrecondition, "\(model)/config.json names \(kind) '\(o.name)', which the model does not have (it has \(infos.map(\.name).joined(separator: ", ")))")
            }
            if let dt = o.dataType {
                guard dt == out[i].dataType else {
                    throw ServingError(.failedPrecondition, "\(model)/config.json: \(kind) '\(o.name)' is \(out[i].dataType.rawValue) in the model, not \(dt.rawValue)")
                }
            }
            if let shape = o.shape {
                let model = out[i].shape
                let compatible = shape.count == model.count && zip(shape, model).allSatisfy { a, b in a == b || b == -1 || (a == -1 && b == -1) }
                guard compatible else {
                    throw ServingError(.failedPrecondition, "\(model)/config.json: \(kind) '\(o.name)' shape \(shape) does not fit the model's \(model)")
                }
                out[i].shape = shape
            }
        }
        return out
    }

    /// Index of an output by name, for requests that ask for a subset of outputs.
    public func outputPosition(_ name: String) -> Int? { outputIndex[name] }

    /// Position of the input whose name has these UTF-8 bytes, without making a String.
    public func inputPosition(utf8 name: UnsafeRawBufferPointer) -> Int? {
        for (i, candidate) in inputNameBytes.enumerated() where candidate.count == name.count {
            let equal = candidate.withUnsafeBytes { c in c.count == 0 || memcmp(c.baseAddress!, name.baseAddress!, c.count) == 0 }
            if equal { return i }
        }
        return nil
    }

    /// The error for an input name the model does not have.
    public func unknownInput(_ name: String) -> ServingError {
        ServingError(.invalidArgument, "model \(self.name) has no input '\(name)'; its inputs are \(inputs.map(\.name).joined(separator: ", "))")
    }

    /// The error for an input given twice.
    public static func duplicateInput(_ name: String) -> ServingError {
        ServingError(.invalidArgument, "input '\(name)' is given twice")
    }

    /// Checks named input tensors against the model and returns them in the model's input order,
    /// with the number of rows (the batch dimension, or 1 for models without one).
    public func validate(_ named: [(String, Tensor)]) throws(ServingError) -> (inputs: [Tensor], rows: Int) {
        var ordered = [Tensor?](repeating: nil, count: inputs.count)
        for (n, t) in named {
            guard let i = inputIndex[n] else { throw unknownInput(n) }
            guard ordered[i] == nil else { throw Self.duplicateInput(n) }
            ordered[i] = t
        }
        return try validate(ordered: ordered)
    }

    /// `validate` for tensors already placed at their input positions (nil = not given).
    public func validate(ordered: [Tensor?]) throws(ServingError) -> (inputs: [Tensor], rows: Int) {
        // Up to the first slot not given, which `check` then names as the missing input.
        let given = ordered.prefix { $0 != nil }.map { $0! }
        return (given, try check(given))
    }

    /// `validate` for tensors given in the model's input order (the usual request): no
    /// reordering, no copy. Fewer tensors than inputs means the next input is missing.
    public func validate(inOrder given: [Tensor]) throws(ServingError) -> (inputs: [Tensor], rows: Int) {
        (given, try check(given))
    }

    /// Whether `shape` has `declared`'s rank and every dimension `declared` fixes (-1 = any).
    @inline(__always)
    private static func fits(_ shape: [Int], _ declared: [Int]) -> Bool {
        guard shape.count == declared.count else { return false }
        for d in 0..<shape.count where declared[d] != -1 && declared[d] != shape[d] { return false }
        return true
    }

    /// Checks the tensors of the inputs in order (an input past `given`'s end is missing; tensors
    /// past the model's inputs are not looked at) and returns the number of rows. Reads tensors and
    /// input descriptions in place: copies of each (name, shape, data) were five retains and
    /// releases per request.
    private func check(_ given: [Tensor]) throws(ServingError) -> Int {
        var rows = -1
        for i in 0..<inputs.count {
            guard i < given.count else {
                throw ServingError(.invalidArgument, "missing input '\(inputs[i].name)' for model \(name)")
            }
            guard given[i].dataType == inputs[i].dataType else {
                throw ServingError(.invalidArgument, "input '\(inputs[i].name)' must be \(inputs[i].dataType.rawValue), got \(given[i].dataType.rawValue)")
            }
            guard Self.fits(given[i].shape, inputs[i].shape) else {
                throw ServingError(.invalidArgument, "input '\(inputs[i].name)' must have shape \(inputs[i].shape) (-1 = any), got \(given[i].shape)")
            }
            let r = maxBatchSize > 0 ? given[i].shape[0] : 1
            if rows == -1 { rows = r } else if rows != r {
                throw ServingError(.invalidArgument, "inputs disagree on the batch size: '\(inputs[i].name)' has \(r) rows, others \(rows)")
            }
        }
        if maxBatchSize > 0 {
            guard rows >= 1 else { throw ServingError(.invalidArgument, "the batch dimension must be at least 1, got \(rows)") }
            guard rows <= maxBatchSize else {
                throw ServingError(.invalidArgument, "batch of \(rows) rows exceeds max_batch_size \(maxBatchSize) of model \(name)")
            }
        }
        return max(rows, 1)
    }

    /// Queues validated inputs (from `validate`) for the batcher. `completion` runs on a worker thread
    /// (or at once on refusal) with the outputs in the model's output order.
    ///
    /// The request takes the static table when its rows are all in the table's domain; else, when the
    /// cache path is on, the response cache (key: model, version, `requestedOutputs`, every input's
    /// name, datatype, shape and bytes) with in-flight coalescing; else the batcher.
    ///
    /// With `encoder`, a cache hit is answered through `encoder.send(encoded:)` with the cached
    /// encoding of the outputs, not through `completion`. A request past `deadlineNs` (monotonic,
    /// as `DispatchTime.uptimeNanoseconds`) fails with `ServingError.deadlineExceeded` on every path.
    public func infer(_ inputs: [Tensor], rows: Int, requestedOutputs: [String] = [], deadlineNs: UInt64?,
                      encoder: (any CachedResponseEncoder)? = nil,
                      isCancelled: @escaping @Sendable () -> Bool,
                      completion: @escaping @Sendable (Result<[Tensor], ServingError>) -> Void) {
        infer(inputs, rows: rows, requestedOutputs: requestedOutputs, deadlineNs: deadlineNs, encoder: encoder,
              receiver: ClosureReceiver(isCancelled: isCancelled, completion: completion))
    }

    /// `infer` answering an object (the transport's responder): a request computed by the batcher
    /// then allocates no closures for its answer; the table and cache paths wrap it in one.
    public func infer(_ inputs: [Tensor], rows: Int, requestedOutputs: [String] = [], deadlineNs: UInt64?,
                      encoder: (any CachedResponseEncoder)? = nil, receiver: any InferReceiver) {
        // The deadline is checked here, before any path, so a table lookup or a cache hit is not
        // answered OK past it either; the batcher also drops requests that expire in its queue.
        if let deadlineNs, deadlineNs <= monotonicNanos() { return receiver.complete(.failure(.deadlineExceeded)) }
        if paths.serveFromTable(inputs, rows: rows, completion: { receiver.complete($0) }) { return }
        if paths.usesKeys {
            let cacheOn = paths.cacheOn
            let sampled = paths.sampleThisRequest()
            let lookupStart = cacheOn || sampled ? monotonicNanos() : 0
            // While the cache is off, only sampled requests pay for a key.
            let key = (cacheOn || sampled)
                ? RequestKey(model: name, version: version, outputs: requestedOutputs, inputNames: inputNames, inputs: inputs) : nil
            if sampled, let key {
                // The cost-aware rule weighs what the key took against what computing costs.
                paths.observe(key, keyNs: monotonicNanos() - lookupStart, computeNs: batcher.estimatedRequestCostNs(rows: rows))
            }
            if cacheOn, let key {
                // A shared computation must not die with one caller: no cancellation, no deadline
                // (each caller's own deadline is enforced by the transport).
                paths.serveCached(key, lookupStartNs: lookupStart, encoder: encoder, measureLookup: sampled,
                                  completion: { receiver.complete($0) }) { done in
                    batcher.submit(InferJob(inputs: inputs, rows: rows, isCancelled: { false }, completion: done), deadlineNs: nil)
                }
                return
            }
        }
        paths.countBatcher()
        if let encoder, paths.usesKeys, paths.sampleEncodeCost() {
            // Now and then the encoding of a computed answer is timed: the cost-aware rule counts
            // it among what a cache hit saves.
            batcher.submit(InferJob(inputs: inputs, rows: rows, isCancelled: { receiver.isCancelled }) { [statistics, paths] r in
                guard case .success(let c) = r else { return receiver.complete(r.map(\.outputs)) }
                statistics.recordComputed(c.times)
                paths.answerMeasuringEncode(c.outputs, encoder)
            }, deadlineNs: deadlineNs)
            return
        }
        batcher.submit(InferJob(inputs: inputs, rows: rows, receiver: receiver), deadlineNs: deadlineNs)
    }

    /// Whether this version has a response cache (ModelConfig's `response_cache.enable`): `cached`
    /// or `auto` mode without a static table and with a cache budget. In `auto` mode the cache may
    /// be switched off for a while; hits and misses are then 0.
    public var hasResponseCache: Bool { paths.usesKeys }

    /// The serving paths' figures: mode, active path, table, cache, coalescing, measured traffic.
    public var pathStatistics: PathStatistics { paths.statistics }

    func drainAndStop() {
        batcher.drainAndStop()
        monitor?.retire()
    }
}
