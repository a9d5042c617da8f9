#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Quality metrics of predictions against labels. Classification fills `accuracy`, `logLoss` and
/// (two classes) `rocAUC`; regression fills `rmse` and `mae`.
public struct Metrics: Sendable, Codable, Equatable {
    public var count: Int
    public var accuracy: Double?
    /// Mean negative log probability of the true class, probabilities clipped to [1e-15, 1 − 1e-15].
    public var logLoss: Double?
    /// Area under the ROC curve for class 1 (ties count half); nil unless both classes occur.
    public var rocAUC: Double?
    public var rmse: Double?
    public var mae: Double?

    public init(count: Int, accuracy: Double? = nil, logLoss: Double? = nil, rocAUC: Double? = nil, rmse: Double? = nil, mae: Double? = nil) {
        self.count = count
        self.accuracy = accuracy
        self.logLoss = logLoss
        self.rocAUC = rocAUC
        self.rmse = rmse
        self.mae = mae
    }

    /// Metrics of `predictions` against `labels` (same rows, same task).
    public init(_ predictions: Predictions, labels: Dataset.Labels) {
        switch labels {
        case .regression(let y):
            self = Metrics.regression(predicted: predictions.values, actual: y)
        case .classes(let y, let names):
            self = Metrics.classification(probabilities: predictions.values, classes: names.count, labels: y)
        }
    }

    /// Classification metrics from `rows × classes` probabilities.
    public static func classification(probabilities p: [Double], classes k: Int, labels y: [Int]) -> Metrics {
        let n = y.count
        guard n > 0, k > 0 else { return Metrics(count: n) }
        var correct = 0, logLoss = 0.0
        for r in 0..<n {
            var best = 0
            for c in 1..<k where p[r * k + c] > p[r * k + best] { best = c }
            if best == y[r] { correct += 1 }
            logLoss -= log(min(max(p[r * k + y[r]], 1e-15), 1 - 1e-15))
        }
        var metrics = Metrics(count: n, accuracy: Double(correct) / Double(n), logLoss: logLoss / Double(n))
        if k == 2 { metrics.rocAUC = rocAUC(scores: (0..<n).map { p[$0 * 2 + 1] }, positives: y.map { $0 == 1 }) }
        return metrics
    }

    /// Regression metrics.
    public static func regression(predicted: [Double], actual: [Double]) -> Metrics {
        let n = actual.count
        guard n > 0 else { return Metrics(count: 0) }
        var squares = 0.0, absolute = 0.0
        for i in 0..<n {
            let e = predicted[i] - actual[i]
            squares += e * e
            absolute += abs(e)
        }
        return Metrics(count: n, rmse: (squares / Double(n)).squareRoot(), mae: absolute / Double(n))
    }

    /// ROC AUC as the Mann–Whitney statistic with average ranks for ties; nil without both classes.
    public static func rocAUC(scores: [Double], positives: [Bool]) -> Double? {
        let positiveCount = positives.filter { $0 }.count, negativeCount = positives.count - positiveCount
        guard positiveCount > 0, negativeCount > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let rank = Double(i + j) / 2 + 1
            for t in i...j where positives[order[t]] { rankSum += rank }
            i = j + 1
        }
        let u = rankSum - Double(positiveCount) * Double(positiveCount + 1) / 2
        return u / (Double(positiveCount) * Double(negativeCount))
    }
}

/// Metrics overall and per value of one categorical column (a "slice").
public struct EvaluationReport: Sendable, Codable, Equatable {
    public struct Slice: Sendable, Codable, Equatable {
        public var value: String
        public var metrics: Metrics
    }

    public var overall: Metrics
    /// The column sliced by, if any.
    public var sliceColumn: String?
    /// One entry per distinct value of `sliceColumn`, most rows first.
    public var slices: [Slice]

    /// Evaluates `model` on `data`, and per value of the categorical column `sliceColumn` if given.
    public init(model: TrainedModel, data: Dataset, sliceColumn: String? = nil, threads: Int = 1) throws {
        let predictions = try model.predict(data, threads: threads)
        try self.init(predictions: predictions, data: data, sliceColumn: sliceColumn)
    }

    /// Evaluates `predictions` made for `data`'s rows.
    public init(predictions: Predictions, data: Dataset, sliceColumn: String? = nil) throws {
        overall = Metrics(predictions, labels: data.labels)
        self.sliceColumn = sliceColumn
        slices = []
        guard let sliceColumn else { return }
        guard let f = data.categoricalNames.firstIndex(of: sliceColumn) else {
            throw TrainingError(.invalidConfiguration, "the slice column '\(sliceColumn)' is not a categorical feature", column: sliceColumn)
        }
        var groups: [String: [Int]] = [:]
        var firstSeen: [String] = []
        for (r, value) in data.categorical[f].enumerated() {
            if groups[value] == nil { firstSeen.append(value) }
            groups[value, default: []].append(r)
        }
        let ordered = firstSeen.sorted { groups[$0]!.count != groups[$1]!.count ? groups[$0]!.count > groups[$1]!.count : $0 < $1 }
        for value in ordered {
            let rows = groups[value]!
            slices.append(Slice(value: value, metrics: Metrics(predictions.rows(rows), labels: data.rows(rows).labels)))
        }
    }
}

/// Progressive validation: each new batch is scored by the model *before* it trains on the
/// batch, so every score is on data the model has not seen — an honest online estimate with no
/// holdout set aside (Blum, Kalai and Langford 1999).
public struct ProgressiveValidator: Sendable {
    /// Metrics of each batch, scored before training on it.
    public private(set) var batches: [Metrics] = []
    private var predictions: [Double] = []
    private var regressionLabels: [Double] = []
    private var classLabels: [Int] = []
    private var classNames: [String] = []

    public init() {}

    /// Scores `batch` with `model` (recording its metrics), then returns the result of `update`
    /// (normally a warm-started training run on the batch).
    public mutating func scoreThenTrain(
        _ model: TrainedModel, on batch: Dataset, update: (TrainedModel, Dataset) throws -> TrainedModel
    ) throws -> TrainedModel {
        let p = try model.predict(batch)
        batches.append(Metrics(p, labels: batch.labels))
        predictions += p.values
        switch batch.labels {
        case .regression(let v): regressionLabels += v
        case .classes(let i, let names):
            classLabels += i
            classNames = names
        }
        return try update(model, batch)
    }

    /// Metrics over every row scored so far.
    public var cumulative: Metrics {
        if classNames.isEmpty { return Metrics.regression(predicted: predictions, actual: regressionLabels) }
        return Metrics.classification(probabilities: predictions, classes: classNames.count, labels: classLabels)
    }
}
