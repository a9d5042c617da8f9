import ArgumentParser
import Foundation
import SwerveTraining

/// `swerve train`: one static training run from a CSV file — split, train, evaluate on the
/// holdout, export ONNX — printing a line per epoch and the final metrics. With `--repository`
/// it runs the trainer's static job instead (validation with quarantine, gates, publish).
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model on a CSV file and export it as ONNX.",
        discussion: """
            The schema (JSON) names each column's type: numeric, categorical (optionally with its \
            categories), label (classification by default; "task": "regression" for numbers) or \
            ignore. Rows are split deterministically by --seed into train, validation (early \
            stopping) and holdout (final metrics). Writes model.onnx, metrics.json, statistics.json \
            (the skew reference) and model.json (a checkpoint for --warm-start) to --output.
            """)

    @Option(help: "The training data, CSV with a header row.")
    var data: String

    @Option(help: "The schema JSON.")
    var schema: String

    @Option(help: "linear | logistic | softmax | mlp | gbdt")
    var model: ModelKind

    @Option(help: "The label column (default: the schema's).")
    var label: String?

    @Option(help: "The model repository to publish to: the file is validated (quarantined on failure), then trained, gated and published as a trainer job.")
    var repository: String?

    @Option(help: "The model's name in the repository.")
    var name: String = "model"

    @Option(help: "Where to write the model and its reports (default: train-output/NAME).")
    var output: String?

    @Option(help: "MLP hidden layer widths, comma-separated.")
    var hidden: String = "64"

    @Option(help: "relu | tanh")
    var activation: Activation = .relu

    @Option(help: "adam | sgd")
    var optimizer: OptimizerKind = .adam

    @Option(name: [.customLong("lr"), .customLong("learning-rate")],
            help: "Learning rate (default: 0.001 for adam, 0.01 for sgd, 0.1 for gbdt's shrinkage).")
    var lr: Double?

    @Option(help: "L2 penalty: the objective is mean loss + l2/2·‖W‖² (default 1e-4); for gbdt the leaf-value penalty λ (default 0).")
    var l2: Double?

    @Option(help: "gbdt: boosting iterations (one tree per class per iteration for more than two classes).")
    var trees: Int = 100

    @Option(help: "gbdt: maximum tree depth.")
    var depth: Int = 6

    @Option(help: "gbdt: the fewest training rows in a leaf.")
    var minLeaf: Int = 20

    @Option(help: "The most epochs.")
    var epochs: Int = 50

    @Option(help: "Mini-batch size.")
    var batchSize: Int = 32

    @Option(help: "Early-stopping patience in epochs (0: run all epochs, keep the last weights).")
    var patience: Int = 5

    @Option(help: "Threads computing each mini-batch's gradient.")
    var threads: Int = 1

    @Option(help: "Seeds the split, the initial weights and the shuffles.")
    var seed: UInt64 = 42

    @Option(help: "Share of rows held out for the final metrics.")
    var holdout: Double = 0.2

    @Option(help: "Share of rows for early stopping.")
    var validation: Double = 0.1

    @Option(help: "A categorical column to report holdout metrics per value of.")
    var sliceColumn: String?

    @Option(help: "A model.json checkpoint to continue training from.")
    var warmStart: String?

    func validate() throws {
        guard holdout >= 0, validation >= 0, holdout + validation < 1 else {
            throw ValidationError("--holdout and --validation must be ≥ 0 and sum below 1")
        }
        if model == .gbdt, warmStart != nil {
            throw ValidationError("--warm-start is not supported for gbdt models: train from scratch")
        }
        guard hiddenLayers != nil else { throw ValidationError("--hidden must be comma-separated positive integers, e.g. 64,64") }
    }

    var hiddenLayers: [Int]? {
        let widths = hidden.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !widths.isEmpty, widths.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return widths.map { $0! }
    }

    func run() throws {
        // TrainingError describes itself (line, column, what to fix); ArgumentParser prints it as
        // "Error: …" and exits with status 1, without the usage text a ValidationError would add.
        var dataSchema = try DataSchema.load(path: schema)
        if let label, label != dataSchema.label {
            // The named column becomes the label; a column typed "label" before becomes ignored.
            for i in dataSchema.columns.indices where dataSchema.columns[i].type == .label && dataSchema.columns[i].name != label {
                dataSchema.columns[i].type = .ignore
            }
            dataSchema.label = label
            dataSchema = try dataSchema.validated()
        }
        let config = TrainingConfiguration(
            model: model, hiddenLayers: hiddenLayers ?? [64], activation: activation, optimizer: optimizer,
            learningRate: lr ?? (model == .gbdt ? 0.1 : nil),
            l2: l2 ?? (model == .gbdt ? 0 : 1e-4), epochs: epochs, batchSize: batchSize, patience: patience, threads: threads, seed: seed,
            gbdt: model == .gbdt ? GBDTParameters(trees: trees, depth: depth, minLeaf: minLeaf) : nil)
        let previous = try warmStart.map { try TrainedModel.load(path: $0) }
        let directory = output ?? "train-output/\(name)"
        if let repository {
            return try trainAndPublish(config, schema: dataSchema, warmStart: previous, repository: repository, directory: directory)
        }
        let dataset = try Dataset(csvFile: data, schema: dataSchema)
        let job = TrainingJob(
            configuration: config, validationFraction: validation, holdoutFraction: holdout, sliceColumn: sliceColumn,
            warmStart: previous)
        print("training \(model.rawValue) on \(dataset.rowCount) rows of \(data) (\(dataset.fingerprint())), \(threads) thread(s)")
        let outcome = try job.run(on: dataset) { print($0) }
        printSummary(outcome.summary)
        try writeOutputs(outcome, schema: dataSchema, to: directory)
        print("wrote \(directory)/model.onnx, metrics.json, statistics.json, model.json")
    }

    /// With `--repository`: the trainer's static job (`TrainingPipeline.run`) — validate the file
    /// against the schema and the serving version's reference statistics (quarantined under
    /// `<repo>/.quarantine/<name>/` on failure), train, gate, publish with lineage and promote, or
    /// record the rejection. The outputs are written whenever training ran, published or not.
    /// Exit status: 0 published, 1 failed, 2 quarantined or rejected by the gates.
    func trainAndPublish(_ config: TrainingConfiguration, schema dataSchema: DataSchema, warmStart previous: TrainedModel?,
                         repository: String, directory: String) throws {
        let spec = PipelineSpec(
            modelName: name, schema: dataSchema, configuration: config, dataPath: data,
            sliceColumn: sliceColumn, validationFraction: validation, holdoutFraction: holdout)
        let result = TrainingPipeline(repository: URL(fileURLWithPath: repository)).run(spec, warmStart: previous) { print($0.line) }
        if let outcome = result.outcome {
            printSummary(outcome.summary)
            try writeOutputs(outcome, schema: dataSchema, to: directory)
            print("wrote \(directory)/model.onnx, metrics.json, statistics.json, model.json")
        }
        print("\(repository)/\(name): \(result.summary)")
        switch result.state {
        case .succeeded: return
        case .rejected: throw ExitCode(2)
        case .failed, .cancelled: throw ExitCode.failure
        }
    }

    func writeOutputs(_ outcome: TrainingOutcome, schema: DataSchema, to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func write(_ bytes: [UInt8], _ file: String) throws {
            try Data(bytes).write(to: URL(fileURLWithPath: directory).appendingPathComponent(file), options: .atomic)
        }
        try write(outcome.onnx, "model.onnx")
        try write(outcome.summary.encodeJSON(), "metrics.json")
        try write(outcome.trainStatistics.encodeJSON(), "statistics.json")
        try write(outcome.model.encodeJSON(), "model.json")
        try write(schema.encodeJSON(), "schema.json")
    }

    func printSummary(_ s: TrainingSummary) {
        let rows = "rows: train \(s.rows.train), validation \(s.rows.validation), holdout \(s.rows.holdout)"
        print(s.model == .gbdt ? "\(s.bestEpoch) boosting iterations; \(rows)" : "best epoch \(s.bestEpoch) of \(s.history.count); \(rows)")
        guard let report = s.holdout else { return print("no holdout rows") }
        print("holdout: \(describe(report.overall))")
        if let column = report.sliceColumn {
            for slice in report.slices { print("  \(column)=\(slice.value): \(describe(slice.metrics))") }
        }
    }

    func describe(_ m: Metrics) -> String {
        var parts = ["rows \(m.count)"]
        func add(_ name: String, _ v: Double?) { if let v { parts.append("\(name) \(String(format: "%.4f", v))") } }
        add("accuracy", m.accuracy)
        add("log loss", m.logLoss)
        add("roc auc", m.rocAUC)
        add("rmse", m.rmse)
        add("mae", m.mae)
        return parts.joined(separator: ", ")
    }
}

extension ModelKind: ExpressibleByArgument {}
extension Activation: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
