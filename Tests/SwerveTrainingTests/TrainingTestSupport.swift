import Foundation
import SwerveInference
import SwerveTraining
import Testing

/// Helpers shared by the Training* suites.
enum TrainingFixtures {
    static let directory = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("Fixtures").path

    static func path(_ name: String) -> String { directory + "/" + name }

    /// A fixture data set read with its schema.
    static func dataset(_ name: String) throws -> Dataset {
        let schema = try DataSchema.load(path: path(name + ".schema.json"))
        return try Dataset(csvFile: path(name + ".csv"), schema: schema)
    }

    /// One experiment of `sklearn_reference.json`.
    struct Experiment: Decodable {
        var name: String
        var data: String
        var model: String
        var l2: Double
        var optimizer: String
        var learning_rate: Double
        var epochs: Int
        var batch_size: Int
        var patience: Int
        var hidden: [Int]?
        var activation: String?
        var seed: UInt64
        var validation: Double
        var holdout: Double
        var train_rows: Int
        var holdout_rows: Int
        var holdout_indices_head: [Int]
        var sklearn_accuracy: Double
        var sklearn_log_loss: Double

        var configuration: TrainingConfiguration {
            TrainingConfiguration(
                model: ModelKind(rawValue: model)!, hiddenLayers: hidden ?? [], activation: Activation(rawValue: activation ?? "relu")!,
                optimizer: OptimizerKind(rawValue: optimizer)!, learningRate: learning_rate, l2: l2, epochs: epochs,
                batchSize: batch_size, patience: patience, threads: 1, seed: seed)
        }
    }

    static func experiment(_ name: String) throws -> Experiment {
        struct File: Decodable { var experiments: [Experiment] }
        let data = try Data(contentsOf: URL(fileURLWithPath: path("sklearn_reference.json")))
        return try JSONDecoder().decode(File.self, from: data).experiments.first { $0.name == name }!
    }

    /// A synthetic data set with numeric features x0…, categorical features c0… (from small
    /// vocabularies) and a label depending on both: binary classification, or regression.
    static func synthetic(rows: Int, numeric: Int, categorical: Int, task: DataSchema.Task = .classification, seed: UInt64 = 1) throws -> Dataset {
        var rng = SplitMix64(seed: seed)
        let vocabularies = (0..<categorical).map { c in (0..<(3 + c)).map { "v\(c)_\($0)" } }
        var columns: [DataSchema.Column] = (0..<numeric).map { .init(name: "x\($0)", type: .numeric) }
        columns += (0..<categorical).map { .init(name: "c\($0)", type: .categorical) }
        columns.append(.init(name: "y", type: .label, task: task, classes: task == .classification ? ["no", "yes"] : nil))
        let schema = DataSchema(columns: columns, label: "y")
        var x = [[Double]](repeating: [], count: numeric), c = [[String]](repeating: [], count: categorical)
        var labels: [Double] = []
        for _ in 0..<rows {
            var score = 0.0
            for f in 0..<numeric {
                let v = (rng.nextUnit() * 2 - 1) * Double(f + 1) * 3 + Double(f)
                x[f].append(v)
                score += (f % 2 == 0 ? 1 : -1) * (v - Double(f)) / Double(f + 1)
            }
            for f in 0..<categorical {
                let k = Int(rng.next() % UInt64(vocabularies[f].count))
                c[f].append(vocabularies[f][k])
                score += Double(k) - Double(vocabularies[f].count - 1) / 2
            }
            labels.append(score + (rng.nextUnit() - 0.5))
        }
        let y: Dataset.Labels = task == .classification ? .classes(indices: labels.map { $0 > 0 ? 1 : 0 }, names: ["no", "yes"]) : .regression(labels)
        return try Dataset(schema: schema, numeric: x, categorical: c, labels: y)
    }

    /// The venv's python, if present.
    static var python: String? {
        if let p = ProcessInfo.processInfo.environment["SWERVE_PYTHON"] { return p }
        let p = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: p) ? p : nil
    }

    /// Runs `python -c script args…` and returns stdout; throws with stderr on failure.
    static func runPython(_ python: String, script: String, arguments: [String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", script] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TrainingError(.io, "python failed: \(String(decoding: errors, as: UTF8.self))")
        }
        return data
    }

    static func temporaryDirectory() throws -> String {
        let dir = NSTemporaryDirectory() + "swerve-training-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}

/// |a − b| ≤ rel · max(|a|, |b|) + abs.
func close(_ a: Double, _ b: Double, rel: Double = 1e-5, abs absolute: Double = 1e-6) -> Bool {
    abs(a - b) <= rel * max(abs(a), abs(b)) + absolute
}
