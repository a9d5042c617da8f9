import Foundation
import SwerveRepository

/// Per-feature summaries of a data set, stored beside a published model as the reference for
/// training/serving skew checks (PSI) and range checks on later data.
///
/// Numeric histograms use quantile bin edges of this data, so each bin holds about the same share
/// of the reference rows, which is what PSI wants. `binEdges` has `binCounts.count + 1` entries from
/// `min` to `max`; bin `i` holds `binEdges[i] ≤ x < binEdges[i+1]`, the last bin also holds `max`,
/// and when other data is binned with `histogram(of:)` values below `min` fall in the first bin and
/// values above `max` in the last.
public struct FeatureStatistics: Sendable, Codable, Equatable {
    /// The number of rows summarized.
    public var rows: Int
    public var numeric: [NumericFeatureStatistics]
    public var categorical: [CategoricalFeatureStatistics]
    /// The label's distribution: classes for classification…
    public var labelClasses: CategoricalFeatureStatistics?
    /// …or a numeric summary for regression.
    public var labelNumeric: NumericFeatureStatistics?
    /// The fingerprint of the data summarized.
    public var fingerprint: DatasetFingerprint?

    public init(
        rows: Int, numeric: [NumericFeatureStatistics], categorical: [CategoricalFeatureStatistics],
        labelClasses: CategoricalFeatureStatistics? = nil, labelNumeric: NumericFeatureStatistics? = nil,
        fingerprint: DatasetFingerprint? = nil
    ) {
        self.rows = rows
        self.numeric = numeric
        self.categorical = categorical
        self.labelClasses = labelClasses
        self.labelNumeric = labelNumeric
        self.fingerprint = fingerprint
    }

    /// Summarizes `dataset` with up to `bins` quantile bins per numeric feature.
    public init(_ dataset: Dataset, bins: Int = 10) {
        rows = dataset.rowCount
        numeric = zip(dataset.numericNames, dataset.numeric).map { NumericFeatureStatistics(name: $0, values: $1, bins: bins) }
        categorical = zip(dataset.categoricalNames, dataset.categorical).map { CategoricalFeatureStatistics(name: $0, values: $1) }
        switch dataset.labels {
        case .regression(let v):
            labelNumeric = NumericFeatureStatistics(name: dataset.labelName, values: v, bins: bins)
            labelClasses = nil
        case .classes(let indices, let names):
            var counts = [Int](repeating: 0, count: names.count)
            for i in indices { counts[i] += 1 }
            labelClasses = CategoricalFeatureStatistics(name: dataset.labelName, categories: names, counts: counts)
            labelNumeric = nil
        }
        fingerprint = dataset.fingerprint()
    }

    /// The numeric feature named `name`.
    public func numeric(named name: String) -> NumericFeatureStatistics? { numeric.first { $0.name == name } }
    /// The categorical feature named `name`.
    public func categorical(named name: String) -> CategoricalFeatureStatistics? { categorical.first { $0.name == name } }

    /// Pretty, key-sorted JSON (the `statistics.json` stored beside a model).
    public func encodeJSON() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    /// Parses `encodeJSON()`'s output.
    public static func decode(_ json: [UInt8]) throws -> FeatureStatistics {
        do {
            return try JSONDecoder().decode(FeatureStatistics.self, from: Data(json))
        } catch let error as DecodingError {
            throw TrainingError(.invalidData, "feature statistics: \(describe(error))")
        }
    }
}

/// A numeric column's summary. `std` is the population standard deviation (the one used to
/// standardize the feature).
public struct NumericFeatureStatistics: Sendable, Codable, Equatable {
    public var name: String
    public var count: Int
    public var mean: Double
    public var std: Double
    public var min: Double
    public var max: Double
    /// Quantile bin edges, ascending, distinct, from `min` to `max` (one edge when constant).
    public var binEdges: [Double]
    /// Rows per bin (`binEdges.count - 1` bins; one bin when the column is constant).
    public var binCounts: [Int]

    /// Summarizes `values` with up to `bins` quantile bins: the same statistics and bins as the
    /// `NumericReference` stored in reference_stats.json, computed by it.
    public init(name: String, values: [Double], bins: Int = 10) {
        let reference = NumericReference(values: values, bins: bins)
        self.name = name
        count = reference.count
        (mean, std, min, max, binEdges) = (reference.mean, reference.std, reference.min, reference.max, reference.binEdges)
        binCounts = values.isEmpty ? [] : reference.histogram(values)
    }

    /// How many of `values` fall in each of this summary's bins (out-of-range values go to the
    /// first or last bin), for comparing other data with this reference.
    public func histogram(of values: [Double]) -> [Int] { NumericReference.histogram(values, binEdges: binEdges) }
}

/// A categorical column's summary: each distinct value and how often it occurs, most frequent
/// first (ties in first-seen order).
public struct CategoricalFeatureStatistics: Sendable, Codable, Equatable {
    public var name: String
    public var count: Int
    public var categories: [String]
    public var counts: [Int]

    public init(name: String, categories: [String], counts: [Int]) {
        self.name = name
        self.categories = categories
        self.counts = counts
        count = counts.reduce(0, +)
    }

    public init(name: String, values: [String]) {
        var order: [String] = []
        var tally: [String: Int] = [:]
        for v in values {
            if tally[v] == nil { order.append(v) }
            tally[v, default: 0] += 1
        }
        let firstSeen = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        let ranked = order.sorted { tally[$0]! != tally[$1]! ? tally[$0]! > tally[$1]! : firstSeen[$0]! < firstSeen[$1]! }
        self.init(name: name, categories: ranked, counts: ranked.map { tally[$0]! })
    }

    /// The share of rows with `value` (0 when unseen).
    public func frequency(of value: String) -> Double {
        guard count > 0, let i = categories.firstIndex(of: value) else { return 0 }
        return Double(counts[i]) / Double(count)
    }
}
