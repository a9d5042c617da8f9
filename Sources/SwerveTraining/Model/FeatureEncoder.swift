/// Turns a data set's features into the rows a network reads: numeric features standardized with
/// the training split's mean and (population) standard deviation, then each categorical feature
/// one-hot encoded over its vocabulary. The exported ONNX graph repeats exactly this, so the
/// encoder is part of the model.
///
/// Row layout: `[numeric₀ … numericₖ, onehot(categorical₀) …]`. A category outside the vocabulary
/// encodes as all zeros (ONNX OneHotEncoder with `zeros=1`).
public struct FeatureEncoder: Sendable, Codable, Equatable {
    public var numericNames: [String]
    public var means: [Double]
    /// Standard deviations, with 1 where a feature is constant (as scikit-learn's StandardScaler).
    public var scales: [Double]
    public var categoricalNames: [String]
    /// Each categorical feature's vocabulary, in one-hot order.
    public var categories: [[String]]

    /// The encoded row width.
    public var width: Int { numericNames.count + categories.reduce(0) { $0 + $1.count } }

    /// Fits on `train`: statistics from its rows, vocabularies from the schema when it lists them,
    /// else the sorted distinct values of the training rows.
    public init(fitting train: Dataset) {
        numericNames = train.numericNames
        means = []
        scales = []
        for column in train.numeric {
            let n = Double(max(1, column.count))
            var sum = 0.0
            for v in column { sum += v }
            let mean = sum / n
            var squares = 0.0
            for v in column { squares += (v - mean) * (v - mean) }
            let std = (squares / n).squareRoot()
            means.append(mean)
            scales.append(std > 1e-12 * max(1, abs(mean)) ? std : 1)
        }
        categoricalNames = train.categoricalNames
        categories = zip(train.schema.categoricalFeatures, train.categorical).map { column, values in
            column.categories ?? Array(Set(values)).sorted()
        }
    }

    /// Encodes `data` row-major (`rowCount × width`). The data must have this encoder's features.
    public func encode(_ data: Dataset) throws -> [Double] {
        var numericColumns: [[Double]] = []
        for name in numericNames {
            guard let i = data.numericNames.firstIndex(of: name) else {
                throw TrainingError(.invalidData, "the data has no numeric feature '\(name)'", column: name)
            }
            numericColumns.append(data.numeric[i])
        }
        var categoricalColumns: [[String]] = []
        for name in categoricalNames {
            guard let i = data.categoricalNames.firstIndex(of: name) else {
                throw TrainingError(.invalidData, "the data has no categorical feature '\(name)'", column: name)
            }
            categoricalColumns.append(data.categorical[i])
        }
        let n = data.rowCount, w = width
        var out = [Double](repeating: 0, count: n * w)
        for (f, column) in numericColumns.enumerated() {
            let mean = means[f], scale = scales[f]
            for r in 0..<n { out[r * w + f] = (column[r] - mean) / scale }
        }
        var offset = numericNames.count
        for (f, column) in categoricalColumns.enumerated() {
            var position: [String: Int] = [:]
            for (i, c) in categories[f].enumerated() { position[c] = i }
            for r in 0..<n { if let i = position[column[r]] { out[r * w + offset + i] = 1 } }
            offset += categories[f].count
        }
        return out
    }
}
