import Foundation
import SwerveRepository
import SwerveInference
@testable import SwerveTraining
import SwerveTesting
import Testing

/// A small synthetic binary task: y = 1 when 2·x1 − x2 + (color == red ? 1 : −0.5) + noise > 0.
enum PipelineData {
    static let schemaJSON = """
        {"columns": [
          {"name": "x1", "type": "numeric", "min": -100, "max": 100},
          {"name": "x2", "type": "numeric", "min": -100, "max": 100},
          {"name": "color", "type": "categorical", "categories": ["red", "blue", "green"]},
          {"name": "y", "type": "label", "task": "classification", "classes": ["0", "1"]}
        ], "label": "y"}
        """

    static var schema: DataSchema { try! DataSchema.decode(Array(schemaJSON.utf8)) }

    struct Row {
        var x1: Double, x2: Double, color: String, y: String
    }

    static func rows(_ n: Int, seed: UInt64, shift: Double = 0) -> [Row] {
        var rng = SplitMix64(seed: seed)
        func normal() -> Double {
            let u = max(rng.nextUnit(), 1e-12), v = rng.nextUnit()
            return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
        let colors = ["red", "blue", "green"]
        return (0..<n).map { _ in
            let x1 = normal(), x2 = normal()
            let color = colors[Int(rng.next() % 3)]
            let z = 2 * x1 - x2 + (color == "red" ? 1 : -0.5) + 0.3 * normal()
            return Row(x1: x1 + shift, x2: x2, color: color, y: z > 0 ? "1" : "0")
        }
    }

    static func csv(_ rows: [Row]) -> String {
        "x1,x2,color,y\n" + rows.map { "\($0.x1),\($0.x2),\($0.color),\($0.y)" }.joined(separator: "\n") + "\n"
    }

    static func write(_ rows: [Row], to url: URL) throws {
        try Data(csv(rows).utf8).write(to: url)
    }

    static func shuffledLabels(_ rows: [Row], seed: UInt64) -> [Row] {
        var labels = rows.map(\.y)
        var rng = SplitMix64(seed: seed)
        labels.shuffle(using: &rng)
        return zip(rows, labels).map { var r = $0; r.y = $1; return r }
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pipeline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func spec(_ data: URL?, model: String = "clicks", epochs: Int = 15) -> PipelineSpec {
        PipelineSpec(modelName: model, schema: schema,
                     configuration: TrainingConfiguration(model: .logistic, learningRate: 0.05, epochs: epochs, patience: 0),
                     dataPath: data?.path, sliceColumn: "color", jobID: "test")
    }
}

@Suite struct PipelineStaticTests {
    @Test func publishesVersionOneWithLineageThenRejectsShuffledLabels() throws {
        let dir = try PipelineData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let repo = dir.appendingPathComponent("repo")
        let good = dir.appendingPathComponent("good.csv")
        let rows = PipelineData.rows(1500, seed: 1)
        try PipelineData.write(rows, to: good)
        let pipeline = TrainingPipeline(repository: repo)

        let first = pipeline.run(PipelineData.spec(good))
        #expect(first.state == .succeeded, "\(first.summary)")
        #expect(first.version == 1)
        let registry = ModelRegistry(repository: repo)
        #expect(try registry.servingVersion(of: "clicks") == 1)
        let lineage = try registry.lineage(of: "clicks", version: 1)
        #expect(lineage.status == .serving)
        #expect(lineage.dataFingerprint?.hasPrefix("sha256:") == true)
        #expect(lineage.rowCounts?.holdout == 300)
        #expect(lineage.seed == 42)
        #expect((lineage.metrics["accuracy"] ?? 0) > 0.85)
        #expect(lineage.sliceMetrics.keys.contains("color=red"))
        #expect(lineage.parentVersion == nil)
        #expect(lineage.schema != nil)
        #expect(lineage.hyperparameters["epochs"] == .number(15))
        #expect(lineage.origin.jobID == "test")
        #expect(lineage.timestamps.started != nil && lineage.timestamps.finished != nil)
        #expect(registry.referenceStatistics(of: "clicks", version: 1)?.numeric["x1"] != nil)

        // Same features, shuffled labels: it trains, but regresses against the serving version.
        let shuffled = dir.appendingPathComponent("shuffled.csv")
        try PipelineData.write(PipelineData.shuffledLabels(rows, seed: 9), to: shuffled)
        let second = pipeline.run(PipelineData.spec(shuffled))
        #expect(second.state == .rejected, "\(second.summary)")
        #expect(second.version == nil)
        #expect(second.reasons.contains { $0.contains("regresses") })
        #expect(registry.versions(of: "clicks") == [1])
        #expect(try registry.servingVersion(of: "clicks") == 1)
        let rejected = registry.rejected(model: "clicks")
        #expect(rejected.count == 1)
        #expect(rejected.first?.lineage.parentVersion == 1)
        #expect(rejected.first?.lineage.status == .rejected)
    }

    @Test func skewedBatchIsQuarantinedWithAReport() throws {
        let dir = try PipelineData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let repo = dir.appendingPathComponent("repo")
        let good = dir.appendingPathComponent("good.csv")
        try PipelineData.write(PipelineData.rows(1000, seed: 2), to: good)
        let pipeline = TrainingPipeline(repository: repo)
        #expect(pipeline.run(PipelineData.spec(good)).state == .succeeded)

        let skewed = dir.appendingPathComponent("skewed.csv")
        try PipelineData.write(PipelineData.rows(1000, seed: 3, shift: 3), to: skewed)
        let result = pipeline.run(PipelineData.spec(skewed))
        #expect(result.state == .rejected)
        #expect(result.reasons.contains { $0.contains("skew") && $0.contains("x1") }, "\(result.reasons)")
        let report = try #require(result.reportPath)
        #expect(report.hasPrefix(repo.appendingPathComponent(".quarantine/clicks").standardizedFileURL.path) || report.contains("/.quarantine/clicks/"))
        #expect(FileManager.default.fileExists(atPath: report))
        let entries = pipeline.quarantine(for: "clicks").entries()
        #expect(entries.count == 1)
        #expect(entries.first?.report.passed == false)
        #expect(ModelRegistry(repository: repo).versions(of: "clicks") == [1])
    }

    @Test func badHyperparametersAreRejectedUpFront() {
        #expect(throws: TrainingError.self) { try Hyperparameters(kind: .logistic, ["epochs": "zero"]) }
        #expect(throws: TrainingError.self) { try Hyperparameters(kind: .logistic, ["warp": "9"]) }
        #expect(throws: TrainingError.self) { try Hyperparameters(kind: .logistic, ["epochs": "0"]) }
        let ok = try? Hyperparameters(kind: .mlp, ["hidden": "8,4", "lr": "0.01", "seed": "7"])
        #expect(ok?.configuration.hiddenLayers == [8, 4])
    }

    @Test func cancellationStopsAtAnEpochBoundary() async throws {
        let dir = try PipelineData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.csv")
        try PipelineData.write(PipelineData.rows(2000, seed: 4), to: good)
        let token = CancellationToken()
        let epochs = LockedCounter()
        let reporters = EpochReporters()
        let result = TrainingPipeline(repository: dir.appendingPathComponent("repo")).run(PipelineData.spec(good, epochs: 500), cancel: token) { event in
            guard event.epoch != nil else { return }
            reporters.record()
            if epochs.increment() == 2 { token.cancel(reason: "test") }
        }
        #expect(result.state == .cancelled)
        #expect(epochs.value <= 3)
        // run returned only after the training thread stopped: no epoch reports after it. Epochs
        // are reported on the training thread alone, so once that thread has ended nothing more can
        // come, and any report between run's return and that end would show in the count.
        let atReturn = epochs.value
        let threads = reporters.all
        try #require(threads.count == 1, "epochs were reported from \(threads.count) threads")
        let training = try #require(threads.first)
        try await waitUntil("the training thread has ended") { training.isFinished }
        #expect(epochs.value == atReturn)
        #expect(ModelRegistry(repository: dir.appendingPathComponent("repo")).versions(of: "clicks").isEmpty)
    }
}

/// The threads that reported epochs (kept alive here, so their identities stay theirs).
final class EpochReporters: @unchecked Sendable {
    private let lock = NSLock()
    private var threads: [Thread] = []
    func record() {
        let current = Thread.current
        lock.lock(); defer { lock.unlock() }
        if !threads.contains(where: { $0 === current }) { threads.append(current) }
    }
    var all: [Thread] { lock.lock(); defer { lock.unlock() }; return threads }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() -> Int { lock.lock(); defer { lock.unlock() }; n += 1; return n }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}

@Suite struct PipelineContinuousTests {
    static func append(_ rows: [PipelineData.Row], to log: ExampleLog) throws {
        for r in rows {
            try log.append(example: LabelledExample(features: ["x1": "\(r.x1)", "x2": "\(r.x2)", "color": r.color], label: r.y))
        }
    }

    @Test func resumesFromItsCheckpointAfterARestart() throws {
        let dir = try PipelineData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let repo = dir.appendingPathComponent("repo")
        let state = dir.appendingPathComponent("state")
        let logDir = dir.appendingPathComponent("log")
        let options = ContinuousJob.Options(minBatchRows: 200)

        var log: ExampleLog? = try ExampleLog(directory: logDir)
        try Self.append(PipelineData.rows(600, seed: 10), to: log!)
        var job: ContinuousJob? = try ContinuousJob(spec: PipelineData.spec(nil), repository: repo, stateDirectory: state, log: log, options: options)
        let first = try job!.runOnce()
        #expect(first.result?.state == .succeeded, "\(first.result?.summary ?? "")")
        #expect(first.logRange == 1...600)
        #expect(first.progressive == nil)  // no model yet to score with
        // Nothing new: no round.
        #expect(try job!.runOnce().result == nil)

        // "Restart": drop the job and the log, reopen both over the same directories.
        job = nil
        log?.close()
        log = try ExampleLog(directory: logDir)
        try Self.append(PipelineData.rows(400, seed: 11), to: log!)
        job = try ContinuousJob(spec: PipelineData.spec(nil), repository: repo, stateDirectory: state, log: log, options: options)
        #expect(try job!.resumeSequence() == 601)
        let second = try job!.runOnce()
        #expect(second.logRange == 601...1000)
        #expect(second.progressive?["accuracy"] != nil)  // scored before training
        #expect(second.result?.state == .succeeded, "\(second.result?.summary ?? "")")
        let registry = ModelRegistry(repository: repo)
        #expect(registry.versions(of: "clicks") == [1, 2])
        let lineage = try registry.lineage(of: "clicks", version: 2)
        #expect(lineage.parentVersion == 1)
        #expect(lineage.extra["warm_start"] == "true")
        #expect(lineage.extra[ContinuousJob.nextSequenceKey] == "1001")
        #expect(lineage.extra["progressive.accuracy"] != nil)
    }

    @Test func aVersionPublishedBeforeTheCheckpointIsNotRepeated() throws {
        // Crash window: the version is durable, the checkpoint is not. The lineage carries the
        // log position, so the recreated job does not train on (or publish) the batch again.
        let dir = try PipelineData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let repo = dir.appendingPathComponent("repo"), state = dir.appendingPathComponent("state")
        let log = try ExampleLog(directory: dir.appendingPathComponent("log"))
        try Self.append(PipelineData.rows(300, seed: 12), to: log)
        let job = try ContinuousJob(spec: PipelineData.spec(nil), repository: repo, stateDirectory: state, log: log,
                                    options: .init(minBatchRows: 100))
        #expect(try job.runOnce().result?.state == .succeeded)
        try FileManager.default.removeItem(at: state.appendingPathComponent("checkpoint.json"))
        let again = try ContinuousJob(spec: PipelineData.spec(nil), repository: repo, stateDirectory: state, log: log,
                                      options: .init(minBatchRows: 100))
        #expect(try again.resumeSequence() == 301)
        #expect(try again.runOnce().result == nil)
        #expect(ModelRegistry(repository: repo).versions(of: "clicks") == [1])
    }
}
