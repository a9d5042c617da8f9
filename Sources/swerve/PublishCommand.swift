import ArgumentParser
import Dispatch
import Foundation
import SwerveInference
import SwerveRepository
import SwerveTraining

/// `swerve publish model.onnx --repository DIR --name M`: puts a model trained elsewhere
/// (skl2onnx, torch.onnx) into the repository as the next version, with a lineage record.
struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish an ONNX model as the next version of a model in the repository (write to a temporary folder, fsync, rename).")

    @Argument(help: "The model file: ONNX, or a native XGBoost JSON (*.xgb.json) or LightGBM text (*.lgb.txt) model.")
    var model: String

    @Option(name: .long, help: "The model repository directory.")
    var repository: String

    @Option(name: .long, help: "The model's name in the repository.")
    var name: String

    @Option(name: .long, parsing: .upToNextOption, help: "Lineage key=value pairs (repeatable), e.g. --metadata trained_by=alice framework=sklearn.")
    var metadata: [String] = []

    @Option(name: .long, help: "The version this one replaces or was trained from.")
    var parentVersion: Int?

    @Option(name: .long, help: "Fingerprint of the training data, if known.")
    var dataFingerprint: String?

    @Option(name: .long, help: "A reference_stats.json (distribution of the training data) to store beside the model for skew checks.")
    var referenceStats: String?

    @Option(name: .long, help: "Training data (or a sample of it) as CSV with a header: its distribution is computed and stored as reference_stats.json, each column placed in the model's inputs (a column named as an input, or one column per element of the model's one input, in order), so the server watches the model's inputs for drift.")
    var referenceData: String?

    @Option(name: .long, help: "With --reference-data: the label column (kept in the statistics, not an input).")
    var label: String?

    @Flag(name: .long, help: "Also make it the serving version (config.json version_policy specific: [new version]).")
    var promote = false

    @Option(name: .long, help: .hidden)
    var pauseBeforeRename: Double?

    func validate() throws {
        try validateModelNameArgument(name)
        if referenceStats != nil && referenceData != nil {
            throw ValidationError("give --reference-stats or --reference-data, not both")
        }
        if label != nil && referenceData == nil {
            throw ValidationError("--label goes with --reference-data")
        }
        for pair in metadata where !pair.contains("=") || pair.hasPrefix("=") {
            throw ValidationError("--metadata takes key=value pairs, got '\(pair)'")
        }
    }

    func run() throws {
        guard let data = try DurableFiles.readIfPresent(model, limit: CompiledModel.defaultMaxFileBytes, what: "model file") else {
            throw ValidationError("\(model) does not exist")
        }
        var extra: [String: String] = ["file": URL(fileURLWithPath: model).lastPathComponent]
        for pair in metadata {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            extra[String(parts[0])] = String(parts[1])
        }
        var lineage = Lineage(
            source: "external", dataFingerprint: dataFingerprint, parentVersion: parentVersion,
            origin: .current(jobID: extra["job_id"]), extra: extra)
        lineage.timestamps.finished = (try? FileManager.default.attributesOfItem(atPath: model))?[.modificationDate] as? Date
        var reference: Data?
        if let referenceStats {
            guard let bytes = try DurableFiles.readIfPresent(
                referenceStats, limit: ModelRepository.maxReferenceStatisticsBytes, what: "reference statistics")
            else {
                throw ValidationError("\(referenceStats) does not exist")
            }
            _ = try ReferenceStatistics.decode(bytes)
            reference = bytes
        }
        if let referenceData {
            let compiled = try CompiledModel(contentsOfFile: model)
            let statistics = try ReferenceStatistics(csv: try CSVTable(contentsOfFile: referenceData), inputs: compiled.inputs,
                                                     batched: compiled.inputs.allSatisfy { $0.shape.first == -1 }, label: label)
            reference = try statistics.jsonData()
            print("reference statistics from \(statistics.rowCount) rows of \(referenceData): "
                  + (statistics.features ?? []).map { "\($0.name) → \($0.input)[\($0.column)]" }.joined(separator: ", "))
        }
        var options = ModelPublisher.Options()
        if let pause = pauseBeforeRename {
            options.beforeRename = { staged in
                printUnbuffered("staged \(staged.path)")
                Thread.sleep(forTimeInterval: pause)
            }
        }
        let repositoryURL = URL(fileURLWithPath: repository, isDirectory: true)
        let version = try ModelPublisher.publish(
            onnx: [UInt8](data), repository: repositoryURL, name: name, lineage: lineage,
            referenceStatistics: reference,
            modelFileName: NativeTreeModel.format(ofFileNamed: model).map { $0 == .xgboost ? "model.xgb.json" : "model.lgb.txt" }
                ?? ModelRepository.modelFileName,
            options: options)
        if promote {
            try ModelRegistry(repository: repositoryURL).promote(model: name, version: version, reason: "swerve publish --promote")
        }
        print("published \(name) version \(version) (\(ContentFingerprint.sha256(data)))\(promote ? ", serving" : "")")
    }
}
