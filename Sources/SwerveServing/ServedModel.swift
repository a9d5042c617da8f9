import Foundation
import SwerveInference

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
    /// The version's lineage record (metadata.json), flattened to strings.
    public let metadata: [String: String]
    public let statistics = VersionStatistics()
    let batcher: DynamicBatcher
    private let inputIndex: [String: Int]
    private let outputIndex: [String: Int]

    /// Compiles the file, applies the settings, warms the model up with one zero row, and starts its workers.
    init(name: String, version: Int, file: URL, settings: ModelSettings, metadata: [String: String]) throws {
        let compiled: CompiledModel
        do {
            compiled = try CompiledModel(contentsOfFile: file.path)
        } catch {
            throw ServingError(.failedPrecondition, "\(name) version \(version): \(error)")
        }
        self.name = name
        self.version = version
        self.settings = settings
        self.metadata = metadata
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
        inputIndex = Dictionary(uniqueKeysWithValues: inputs.enumerated().map { ($1.name, $0) })
        outputIndex = Dictionary(uniqueKeysWithValues: outputs.enumerated().map { ($1.name, $0) })

        // Warm-up: one row of zeros through a throwaway executor, so a model that cannot run never takes traffic.
        let warm = inputs.map { info in Tensor(zeros: info.dataType, shape: info.shape.map { $0 < 0 ? 1 : $0 }) }
        do {
            _ = try compiled.makeExecutor().run(warm)
        } catch {
            throw ServingError(.failedPrecondition, "\(name) version \(version) failed its warm-up run: \(error)")
        }
        batcher = DynamicBatcher(model: compiled, settings: settings, maxBatchSize: maxBatchSize, statistics: statistics, modelName: name, version: version)
        batcher.start()
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

    /// Checks named input tensors against the model and returns them in the model's input order,
    /// with the number of rows (the batch dimension, or 1 for models without one).
    public func validate(_ named: [(String, Tensor)]) throws(ServingError) -> (inputs: [Tensor], rows: Int) {
        var ordered = [Tensor?](repeating: nil, count: inputs.count)
        for (n, t) in named {
            guard let i = inputIndex[n] else {
                throw ServingError(.invalidArgument, "model \(name) has no input '\(n)'; its inputs are \(inputs.map(\.name).joined(separator: ", "))")
            }
            guard ordered[i] == nil else { throw ServingError(.invalidArgument, "input '\(n)' is given twice") }
            ordered[i] = t
        }
        var rows = -1
        var result: [Tensor] = []
        result.reserveCapacity(inputs.count)
        for (i, info) in inputs.enumerated() {
            guard let t = ordered[i] else {
                throw ServingError(.invalidArgument, "missing input '\(info.name)' for model \(name)")
            }
            guard t.dataType == info.dataType else {
                throw ServingError(.invalidArgument, "input '\(info.name)' must be \(info.dataType.rawValue), got \(t.dataType.rawValue)")
            }
            let fits = t.shape.count == info.shape.count && zip(t.shape, info.shape).allSatisfy { $1 == -1 || $0 == $1 }
            guard fits else {
                throw ServingError(.invalidArgument, "input '\(info.name)' must have shape \(info.shape) (-1 = any), got \(t.shape)")
            }
            let r = maxBatchSize > 0 ? t.shape[0] : 1
            if rows == -1 { rows = r } else if rows != r {
                throw ServingError(.invalidArgument, "inputs disagree on the batch size: '\(info.name)' has \(r) rows, others \(rows)")
            }
            result.append(t)
        }
        if maxBatchSize > 0 {
            guard rows >= 1 else { throw ServingError(.invalidArgument, "the batch dimension must be at least 1, got \(rows)") }
            guard rows <= maxBatchSize else {
                throw ServingError(.invalidArgument, "batch of \(rows) rows exceeds max_batch_size \(maxBatchSize) of model \(name)")
            }
        }
        return (result, max(rows, 1))
    }

    /// Queues validated inputs (from `validate`) for the batcher. `completion` runs on a worker thread
    /// (or at once on refusal) with the outputs in the model's output order.
    public func infer(_ inputs: [Tensor], rows: Int, deadlineNs: UInt64?, isCancelled: @escaping @Sendable () -> Bool,
                      completion: @escaping @Sendable (Result<[Tensor], ServingError>) -> Void) {
        batcher.submit(InferJob(inputs: inputs, rows: rows, isCancelled: isCancelled, completion: completion), deadlineNs: deadlineNs)
    }

    /// Requests waiting in this version's queue.
    public var queuedRequests: Int { batcher.queuedRequests }

    func drainAndStop() { batcher.drainAndStop() }
}
