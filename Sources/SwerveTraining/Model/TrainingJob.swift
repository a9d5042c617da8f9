import Foundation

/// One static training run: split, train (early-stopping on validation), evaluate on the holdout,
/// summarize the training data, export ONNX. The CLI's `swerve train` and the continuous trainer
/// both run this; publishing the outcome is the registry's job.
public struct TrainingJob: Sendable {
    public var configuration: TrainingConfiguration
    /// Share of rows for early stopping.
    public var validationFraction: Double
    /// Share of rows held out for the final evaluation.
    public var holdoutFraction: Double
    /// A categorical feature to report holdout metrics per value of.
    public var sliceColumn: String?
    /// A previous model to continue from.
    public var warmStart: TrainedModel?
    /// Quantile bins per numeric feature in the statistics.
    public var statisticsBins: Int

    public init(
        configuration: TrainingConfiguration, validationFraction: Double = 0.1, holdoutFraction: Double = 0.2,
        sliceColumn: String? = nil, warmStart: TrainedModel? = nil, statisticsBins: Int = 10
    ) {
        self.configuration = configuration
        self.validationFraction = validationFraction
        self.holdoutFraction = holdoutFraction
        self.sliceColumn = sliceColumn
        self.warmStart = warmStart
        self.statisticsBins = statisticsBins
    }

    /// Runs the job on `data`; `progress` sees every epoch. `shouldStop` is the trainer's stop
    /// hook (polled at each epoch and every few mini-batches; a stop throws `TrainingError` `.cancelled`).
    public func run(on data: Dataset, progress: (EpochProgress) -> Void = { _ in },
                    shouldStop: @Sendable () -> Bool = { false }) throws -> TrainingOutcome {
        if let sliceColumn, !data.categoricalNames.contains(sliceColumn) {
            throw TrainingError(.invalidConfiguration, "the slice column '\(sliceColumn)' is not a categorical feature", column: sliceColumn)
        }
        let clock = ContinuousClock()
        let started = clock.now
        let split = try data.split(validation: validationFraction, holdout: holdoutFraction, seed: configuration.seed)
        let model = try Trainer(configuration).train(on: split.train, validation: split.validation, warmStart: warmStart, progress: progress, shouldStop: shouldStop)
        let holdout = split.holdout.rowCount > 0
            ? try EvaluationReport(model: model, data: split.holdout, sliceColumn: sliceColumn, threads: configuration.threads) : nil
        let elapsed = clock.now - started
        let summary = TrainingSummary(
            model: model.kind, task: model.task, label: model.labelName, classes: model.classNames,
            configuration: configuration,
            rows: .init(train: split.train.rowCount, validation: split.validation.rowCount, holdout: split.holdout.rowCount),
            dataFingerprint: data.fingerprint(), trainFingerprint: split.train.fingerprint(),
            holdout: holdout, bestEpoch: model.bestEpoch, history: model.history,
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18,
            codeVersion: SwerveTraining.codeVersion)
        return TrainingOutcome(
            model: model, summary: summary, trainStatistics: FeatureStatistics(split.train, bins: statisticsBins),
            onnx: model.onnxBytes())
    }
}

/// What a training run produced.
public struct TrainingOutcome: Sendable {
    public var model: TrainedModel
    public var summary: TrainingSummary
    /// The training split's statistics: the skew reference to store beside the model.
    public var trainStatistics: FeatureStatistics
    /// The serialized ONNX model.
    public var onnx: [UInt8]
}

/// The facts of a training run, as `metrics.json`: what was trained on what, and how it scored.
public struct TrainingSummary: Sendable, Codable, Equatable {
    public struct Rows: Sendable, Codable, Equatable {
        public var train: Int
        public var validation: Int
        public var holdout: Int
    }

    public var model: ModelKind
    public var task: DataSchema.Task
    public var label: String
    public var classes: [String]
    public var configuration: TrainingConfiguration
    public var rows: Rows
    /// The whole input data set's fingerprint.
    public var dataFingerprint: DatasetFingerprint
    /// The training split's fingerprint.
    public var trainFingerprint: DatasetFingerprint
    /// Holdout metrics (nil with no holdout rows).
    public var holdout: EvaluationReport?
    public var bestEpoch: Int
    public var history: [EpochProgress]
    /// Wall time of split + train + evaluate.
    public var seconds: Double
    public var codeVersion: String

    /// Pretty, key-sorted JSON.
    public func encodeJSON() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }
}
