import Foundation
import SwerveInference

/// A trained model: the feature encoder, the network and what its outputs mean. Codable, so it
/// is its own checkpoint (`model.json`) for warm starts; `onnxModel()` exports it for serving.
public struct TrainedModel: Sendable, Codable, Equatable {
    public var kind: ModelKind
    public var labelName: String
    /// Class names in output order (empty for regression).
    public var classNames: [String]
    public var encoder: FeatureEncoder
    public var network: Network
    public var configuration: TrainingConfiguration
    /// One entry per epoch run.
    public var history: [EpochProgress]
    /// The epoch whose weights were kept.
    public var bestEpoch: Int
    /// Rows trained on, including those of the models this one was warm-started from.
    public var trainedRows: Int
    /// The trees of a `gbdt` model (its `network` is then a zero placeholder recording the head).
    public var ensemble: BoostedEnsemble?

    /// Classification or regression.
    public var task: DataSchema.Task { network.head == .identity ? .regression : .classification }

    /// Predictions for every row of `data` (which must have the model's features).
    public func predict(_ data: Dataset, threads: Int = 1) throws -> Predictions {
        if let ensemble { return try ensemblePredictions(ensemble, data) }
        let x = try encoder.encode(data)
        return Predictions(task: task, classNames: classNames, values: network.predict(x, rows: data.rowCount, threads: threads))
    }

    /// The model as JSON (a checkpoint to warm-start from).
    public func encodeJSON() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    /// Reads `encodeJSON()`'s output.
    public static func decode(_ json: [UInt8]) throws -> TrainedModel {
        do {
            return try JSONDecoder().decode(TrainedModel.self, from: Data(json))
        } catch let error as DecodingError {
            throw TrainingError(.invalidData, "model checkpoint: \(describe(error))")
        }
    }

    /// Reads a checkpoint file.
    public static func load(path: String) throws -> TrainedModel {
        try decode(readAll(path, limit: CompiledModel.defaultMaxFileBytes, what: "trained model"))
    }
}

/// A model's outputs for a set of rows.
public struct Predictions: Sendable, Equatable {
    public var task: DataSchema.Task
    public var classNames: [String]
    /// Classification: `rows × classes` probabilities, row-major. Regression: one value per row.
    public var values: [Double]

    public init(task: DataSchema.Task, classNames: [String], values: [Double]) {
        self.task = task
        self.classNames = classNames
        self.values = values
    }

    /// Columns per row: the class count, or 1.
    public var width: Int { task == .classification ? classNames.count : 1 }
    public var rowCount: Int { values.count / max(1, width) }

    /// Predicted class indices (the first most probable class, as ONNX ArgMax picks).
    public var labels: [Int] {
        guard task == .classification else { return [] }
        let k = width
        return (0..<rowCount).map { r in
            var best = 0
            for c in 1..<k where values[r * k + c] > values[r * k + best] { best = c }
            return best
        }
    }

    /// The rows at `indices`.
    public func rows(_ indices: [Int]) -> Predictions {
        let k = width
        var copy = self
        copy.values = indices.flatMap { values[$0 * k..<($0 + 1) * k] }
        return copy
    }
}
