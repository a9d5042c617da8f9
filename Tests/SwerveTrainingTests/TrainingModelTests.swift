import Foundation
import SwerveTraining
import Testing

@Suite("Training: models against scikit-learn")
struct TrainingModelTests {
    /// Trains the experiment's model on Swerve's split and scores the holdout.
    func run(_ name: String, threads: Int = 1) throws -> (Metrics, TrainingFixtures.Experiment, TrainedModel) {
        let e = try TrainingFixtures.experiment(name)
        let data = try TrainingFixtures.dataset(e.data)
        let split = try data.split(validation: e.validation, holdout: e.holdout, seed: e.seed)
        #expect(split.train.rowCount == e.train_rows)
        #expect(split.holdout.rowCount == e.holdout_rows)
        var config = e.configuration
        config.threads = threads
        let model = try Trainer(config).train(on: split.train, validation: split.validation)
        let metrics = try EvaluationReport(model: model, data: split.holdout).overall
        print("\(name): swerve accuracy \(metrics.accuracy!) log loss \(metrics.logLoss!) (best epoch \(model.bestEpoch)/\(model.history.count)); sklearn accuracy \(e.sklearn_accuracy) log loss \(e.sklearn_log_loss)")
        return (metrics, e, model)
    }

    @Test func logisticMatchesScikitLearnOnBreastCancer() throws {
        let (m, e, _) = try run("breast_cancer_logistic")
        #expect(abs(m.accuracy! - e.sklearn_accuracy) <= 0.01)
        #expect(abs(m.logLoss! - e.sklearn_log_loss) <= 0.01)
        #expect(m.rocAUC! > 0.98)
    }

    @Test func softmaxMatchesScikitLearnOnDigits() throws {
        let (m, e, _) = try run("digits_softmax")
        #expect(abs(m.accuracy! - e.sklearn_accuracy) <= 0.01)
        #expect(abs(m.logLoss! - e.sklearn_log_loss) <= 0.01)
    }

    @Test func mlpMatchesScikitLearnOnDigits() throws {
        let (m, e, _) = try run("digits_mlp")
        #expect(abs(m.accuracy! - e.sklearn_accuracy) <= 0.02)
        #expect(abs(m.logLoss! - e.sklearn_log_loss) <= 0.02)
    }
}
