import Foundation
import SwerveRepository
import SwerveStatus

/// What a training job asks for, independent of where it came from (the CLI, the gRPC service, a test).
public struct PipelineSpec: Sendable {
    public var modelName: String
    public var schema: DataSchema
    public var configuration: TrainingConfiguration
    /// A CSV file (static) or, for a continuous job, a directory watched for CSV files (optional).
    public var dataPath: String?
    /// Gates; nil = the defaults for the task (see `PipelineSpec.defaultGates`).
    public var gates: GateConfig?
    public var sliceColumn: String?
    public var validationFraction: Double
    public var holdoutFraction: Double
    public var validationOptions: ValidationOptions
    public var startedBy: String?
    public var jobID: String?
    /// The hyperparameters as the user gave them (recorded in the lineage beside the resolved configuration).
    public var rawHyperparameters: [String: String]

    public init(
        modelName: String, schema: DataSchema, configuration: TrainingConfiguration, dataPath: String? = nil,
        gates: GateConfig? = nil, sliceColumn: String? = nil, validationFraction: Double = 0.1, holdoutFraction: Double = 0.2,
        validationOptions: ValidationOptions = ValidationOptions(), startedBy: String? = nil, jobID: String? = nil,
        rawHyperparameters: [String: String] = [:]
    ) {
        self.modelName = modelName
        self.schema = schema
        self.configuration = configuration
        self.dataPath = dataPath
        self.gates = gates
        self.sliceColumn = sliceColumn
        self.validationFraction = validationFraction
        self.holdoutFraction = holdoutFraction
        self.validationOptions = validationOptions
        self.startedBy = startedBy
        self.jobID = jobID
        self.rawHyperparameters = rawHyperparameters
    }

    /// Checks everything that can be checked before any data is read: the model name, the
    /// configuration, the fractions, the slice column, the model kind against the task.
    public func validated() throws -> PipelineSpec {
        try ModelRepository.validateModelName(modelName)
        var spec = self
        spec.schema = try schema.validated()
        try configuration.validate()
        guard validationFraction >= 0, holdoutFraction > 0, validationFraction + holdoutFraction < 1 else {
            throw TrainingError(.invalidConfiguration, "holdout must be > 0 and validation ≥ 0, summing below 1")
        }
        if let sliceColumn, !spec.schema.categoricalFeatures.contains(where: { $0.name == sliceColumn }) {
            throw TrainingError(.invalidConfiguration, "the slice column '\(sliceColumn)' is not a categorical feature", column: sliceColumn)
        }
        switch (configuration.model, spec.schema.task) {
        case (.linear, .regression), (.mlp, _), (.logistic, .classification), (.softmax, .classification), (.gbdt, .classification): break
        default:
            throw TrainingError(.invalidConfiguration, "a \(configuration.model.rawValue) model cannot learn a \(spec.schema.task.rawValue) label")
        }
        if configuration.model == .logistic, let classes = spec.schema.labelColumn.classes, classes.count != 2 {
            throw TrainingError(.invalidConfiguration, "logistic regression is binary but the label has \(classes.count) classes; use softmax")
        }
        return spec
    }

    /// Default gates: classifiers need accuracy ≥ 0.5 and may lose at most 0.02 accuracy against
    /// the serving version; regressors may not be more than 5% worse in RMSE than the serving version.
    public static func defaultGates(task: DataSchema.Task, servingMetrics: [String: Double]?) -> GateConfig {
        switch task {
        case .classification:
            return GateConfig(overall: [.atLeast("accuracy", 0.5)], maxRegression: ["accuracy": 0.02])
        case .regression:
            let margin = (servingMetrics?["rmse"]).map { max(1e-12, 0.05 * $0) } ?? 0
            return GateConfig(maxRegression: ["rmse": margin])
        }
    }
}

/// Parses the `hyperparameters` map of a job (`lr`, `l2`, `epochs`, `batch_size`, `hidden`,
/// `activation`, `optimizer`, `seed`, `threads`, `patience`, `momentum`, `holdout`, `validation`;
/// gbdt: `trees`, `depth`, `min_leaf`, with `lr` defaulting to 0.1 and `l2` to 0).
public struct Hyperparameters: Sendable {
    public var configuration: TrainingConfiguration
    public var holdout: Double
    public var validation: Double

    public static let known: Set<String> = [
        "lr", "learning_rate", "l2", "epochs", "batch_size", "hidden", "activation", "optimizer", "seed", "threads",
        "patience", "momentum", "holdout", "validation", "min_batch_rows", "trees", "depth", "min_leaf",
    ]

    public init(kind: ModelKind, _ values: [String: String]) throws {
        for key in values.keys where !Self.known.contains(key) {
            throw TrainingError(.invalidConfiguration, "unknown hyperparameter '\(key)' (known: \(Self.known.sorted().joined(separator: ", ")))")
        }
        func double(_ key: String) throws -> Double? {
            guard let text = values[key] else { return nil }
            guard let v = Double(text.trimmingSpaces), v.isFinite else {
                throw TrainingError(.invalidConfiguration, "hyperparameter \(key)='\(text)' is not a number")
            }
            return v
        }
        func int(_ key: String) throws -> Int? {
            guard let text = values[key] else { return nil }
            guard let v = Int(text.trimmingSpaces) else {
                throw TrainingError(.invalidConfiguration, "hyperparameter \(key)='\(text)' is not an integer")
            }
            return v
        }
        var hidden = [64]
        if let text = values["hidden"] {
            let widths = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !widths.isEmpty, widths.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw TrainingError(.invalidConfiguration, "hyperparameter hidden='\(text)' must be comma-separated positive integers")
            }
            hidden = widths.map { $0! }
        }
        var activation = Activation.relu
        if let text = values["activation"] {
            guard let a = Activation(rawValue: text) else {
                throw TrainingError(.invalidConfiguration, "activation '\(text)' is not one of \(Activation.allCases.map(\.rawValue))")
            }
            activation = a
        }
        var optimizer = OptimizerKind.adam
        if let text = values["optimizer"] {
            guard let o = OptimizerKind(rawValue: text) else {
                throw TrainingError(.invalidConfiguration, "optimizer '\(text)' is not one of \(OptimizerKind.allCases.map(\.rawValue))")
            }
            optimizer = o
        }
        var seed: UInt64 = 42
        if let text = values["seed"] {
            guard let s = UInt64(text.trimmingSpaces) else { throw TrainingError(.invalidConfiguration, "seed '\(text)' is not a non-negative integer") }
            seed = s
        }
        configuration = TrainingConfiguration(
            model: kind, hiddenLayers: hidden, activation: activation, optimizer: optimizer,
            learningRate: try double("lr") ?? double("learning_rate") ?? (kind == .gbdt ? 0.1 : nil), momentum: try double("momentum") ?? 0.9,
            l2: try double("l2") ?? (kind == .gbdt ? 0 : 1e-4), epochs: try int("epochs") ?? 50, batchSize: try int("batch_size") ?? 32,
            patience: try int("patience") ?? 5, threads: try int("threads") ?? 1, seed: seed,
            gbdt: kind == .gbdt
                ? GBDTParameters(trees: try int("trees") ?? 100, depth: try int("depth") ?? 6, minLeaf: try int("min_leaf") ?? 20)
                : nil)
        try configuration.validate()
        holdout = try double("holdout") ?? 0.2
        validation = try double("validation") ?? 0.1
    }
}

/// Cooperative cancellation for a job: checked before each stage, and by the trainer before every
/// epoch and every `Trainer.stopCheckInterval` mini-batches.
public final class CancellationToken: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    private var reason = ""
    private var handlers: [@Sendable () -> Void] = []

    public init() {}

    public var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelled }
    public var cancelReason: String { lock.lock(); defer { lock.unlock() }; return reason }

    public func cancel(reason: String = "cancelled") {
        lock.lock()
        guard !cancelled else { lock.unlock(); return }
        cancelled = true
        self.reason = reason
        let run = handlers
        handlers = []
        lock.unlock()
        run.forEach { $0() }
    }

    /// Runs `body` on cancellation (now, if already cancelled).
    public func onCancel(_ body: @escaping @Sendable () -> Void) {
        lock.lock()
        if cancelled { lock.unlock(); body(); return }
        handlers.append(body)
        lock.unlock()
    }
}

/// Thrown when a job stops because its token was cancelled.
public struct PipelineCancelled: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { "cancelled: \(reason)" }
    public init(reason: String) { self.reason = reason }
}

// MARK: - Adapters between the trainer's types and the validator's

extension DataSchema: ValidationSchemaConvertible {
    /// The validator's view: numeric ranges, categorical vocabularies, the label's classes
    /// (a classification label without declared classes is checked as categorical text).
    public func validationSchema() -> ValidationSchema {
        var out: [ValidationColumn] = []
        for column in columns where column.type != .ignore {
            switch column.type {
            case .numeric: out.append(.numeric(column.name, min: column.min, max: column.max))
            case .categorical: out.append(.categorical(column.name, categories: column.categories))
            case .label:
                if (column.task ?? .classification) == .regression {
                    out.append(.label(column.name, min: column.min, max: column.max))
                } else if let classes = column.classes {
                    out.append(.label(column.name, classes: classes))
                } else {
                    out.append(ValidationColumn(name: column.name, kind: .categorical))
                }
            case .ignore: break
            }
        }
        return ValidationSchema(columns: out)
    }
}

extension ValidationBatch {
    /// A parsed CSV table as a batch of text columns.
    public init(table: CSVTable) throws {
        try self.init(columns: table.header.enumerated().map { i, name in (name, Values.text(table.records.map { $0[i] })) })
    }

    /// Labelled examples (as pushed through AppendExamples) in the schema's column order.
    public init(examples: [LabelledExample], schema: DataSchema) throws {
        let label = schema.labelColumn.name
        let names = schema.columns.filter { $0.type != .ignore }.map(\.name)
        try self.init(columns: names.map { name in
            (name, Values.text(examples.map { name == label ? $0.label : $0.features[name] }))
        })
    }

    /// The batch as a typed data set (after it passed validation).
    public func dataset(schema: DataSchema, source: String) throws -> Dataset {
        try Dataset(csv: CSVTable(parsing: Array(csv().utf8), source: source), schema: schema, source: source)
    }
}

extension ReferenceStatistics {
    /// The trainer's `FeatureStatistics` (quantile bins, category counts, label distribution) in
    /// the validator's reference format. Both use the same bin convention, so edges carry over.
    public init(_ stats: FeatureStatistics) {
        func numeric(_ s: NumericFeatureStatistics) -> NumericReference {
            let total = Double(max(1, s.binCounts.reduce(0, +)))
            return NumericReference(count: s.count, missing: 0, mean: s.mean, std: s.std, min: s.min, max: s.max,
                                    binEdges: s.binEdges, proportions: s.binCounts.map { Double($0) / total })
        }
        func categorical(_ s: CategoricalFeatureStatistics) -> CategoricalReference {
            let total = Double(max(1, s.count))
            var frequencies: [String: Double] = [:]
            for (c, n) in zip(s.categories, s.counts) where n > 0 { frequencies[c] = Double(n) / total }
            return CategoricalReference(count: s.count, missing: 0, frequencies: frequencies)
        }
        var numericRefs: [String: NumericReference] = [:]
        var categoricalRefs: [String: CategoricalReference] = [:]
        for s in stats.numeric { numericRefs[s.name] = numeric(s) }
        for s in stats.categorical { categoricalRefs[s.name] = categorical(s) }
        if let l = stats.labelNumeric { numericRefs[l.name] = numeric(l) }
        if let l = stats.labelClasses { categoricalRefs[l.name] = categorical(l) }
        // The exported graph's inputs (`TrainedModel.onnxModel`): `numeric` and `categorical`,
        // columns in the order of the features here.
        let features = stats.numeric.enumerated().map { FeatureColumn(name: $1.name, input: "numeric", column: $0) }
            + stats.categorical.enumerated().map { FeatureColumn(name: $1.name, input: "categorical", column: $0) }
        self.init(rowCount: stats.rows, numeric: numericRefs, categorical: categoricalRefs, features: features)
    }
}

extension Metrics {
    /// The metrics under the names gates and lineage use.
    public var named: [String: Double] {
        var out: [String: Double] = [:]
        if let accuracy { out["accuracy"] = accuracy }
        if let logLoss { out["log_loss"] = logLoss }
        if let rocAUC { out["auc"] = rocAUC }
        if let rmse { out["rmse"] = rmse }
        if let mae { out["mae"] = mae }
        return out
    }
}

extension EvaluationReport {
    /// Per-slice metrics keyed "column=value".
    public var namedSlices: [String: [String: Double]] {
        guard let column = sliceColumn else { return [:] }
        var out: [String: [String: Double]] = [:]
        for slice in slices { out["\(column)=\(slice.value)"] = slice.metrics.named }
        return out
    }
}

extension PipelineCancelled: RPCErrorConvertible {
    public var rpcErrorCode: GRPCStatusCode { .cancelled }
    public var rpcErrorMessage: String { description }
}
