import Foundation
import SwerveTraining
import Testing

@Suite("Training: metrics, slices, progressive validation")
struct TrainingEvaluateTests {
    @Test func classificationMetrics() {
        // Rows: p(class 1) = 0.9, 0.4, 0.4, 0.2; labels 1, 1, 0, 0.
        let p: [Double] = [0.1, 0.9, 0.6, 0.4, 0.6, 0.4, 0.8, 0.2]
        let m = Metrics.classification(probabilities: p, classes: 2, labels: [1, 1, 0, 0])
        #expect(m.accuracy == 0.75)
        let expected = -(log(0.9) + log(0.4) + log(0.6) + log(0.8)) / 4
        #expect(close(m.logLoss!, expected, rel: 1e-12))
        // Positive scores {0.9, 0.4} vs negative {0.4, 0.2}: pairs won 1 + 1 + 1 + 0.5 (tie) of 4.
        #expect(m.rocAUC == 0.875)
        #expect(Metrics.rocAUC(scores: [0.1, 0.2], positives: [true, true]) == nil)
    }

    @Test func regressionMetrics() {
        let m = Metrics.regression(predicted: [1, 2, 3], actual: [1, 4, 0])
        #expect(close(m.rmse!, (13.0 / 3).squareRoot(), rel: 1e-12))
        #expect(close(m.mae!, 5.0 / 3, rel: 1e-12))
    }

    @Test func slicesByCategoricalColumn() throws {
        let data = try TrainingFixtures.synthetic(rows: 400, numeric: 2, categorical: 2)
        let split = try data.split(validation: 0.1, holdout: 0.25, seed: 3)
        let model = try Trainer(TrainingConfiguration(model: .logistic, learningRate: 0.01, epochs: 30, patience: 0)).train(on: split.train)
        let report = try EvaluationReport(model: model, data: split.holdout, sliceColumn: "c1")
        #expect(report.slices.count == 4)
        #expect(report.slices.map(\.metrics.count).reduce(0, +) == split.holdout.rowCount)
        // The slice-weighted accuracy is the overall accuracy.
        let weighted = report.slices.map { $0.metrics.accuracy! * Double($0.metrics.count) }.reduce(0, +) / Double(split.holdout.rowCount)
        #expect(close(weighted, report.overall.accuracy!, rel: 1e-12))
        #expect(throws: TrainingError.self) { try EvaluationReport(model: model, data: split.holdout, sliceColumn: "x0") }
    }

    @Test func progressiveValidationScoresBeforeTraining() throws {
        let data = try TrainingFixtures.synthetic(rows: 800, numeric: 3, categorical: 1, seed: 9)
        let batches = (0..<4).map { b in data.rows(Array(b * 200..<(b + 1) * 200)) }
        let config = TrainingConfiguration(model: .logistic, learningRate: 0.01, epochs: 3, patience: 0)
        // A weak start: one epoch on 20 rows.
        var model = try Trainer(TrainingConfiguration(model: .logistic, learningRate: 0.001, epochs: 1, patience: 0)).train(on: data.rows(Array(0..<20)))
        var validator = ProgressiveValidator()
        var scored: [Double] = []
        for batch in batches {
            scored.append(try EvaluationReport(model: model, data: batch).overall.accuracy!)
            model = try validator.scoreThenTrain(model, on: batch) { previous, batch in
                try Trainer(config).train(on: batch, warmStart: previous)
            }
        }
        #expect(validator.batches.map(\.accuracy!) == scored, "each batch is scored by the model before it trains on it")
        #expect(validator.cumulative.count == 800)
        #expect(scored.dropFirst().allSatisfy { $0 > scored[0] }, "the model improves as it trains: \(scored)")
        #expect(model.trainedRows == 820)
    }
}
