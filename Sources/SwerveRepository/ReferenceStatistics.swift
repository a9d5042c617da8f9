import Foundation

/// The distribution of each column in the data a version was trained on, stored beside the
/// version as `reference_stats.json` (`ModelRepository.referenceStatisticsFileName`); later
/// batches are compared with it for skew.
public struct ReferenceStatistics: Codable, Sendable, Equatable {
    public var rowCount: Int
    public var numeric: [String: NumericReference]
    public var categorical: [String: CategoricalReference]
    /// Where each feature sits in the model's inputs, so the server can watch the values it
    /// serves (absent in files written before it existed: features are then found by input name).
    public var features: [FeatureColumn]?

    public init(rowCount: Int, numeric: [String: NumericReference] = [:], categorical: [String: CategoricalReference] = [:],
                features: [FeatureColumn]? = nil) {
        self.rowCount = rowCount
        self.numeric = numeric
        self.categorical = categorical
        self.features = features
    }

    enum CodingKeys: String, CodingKey {
        case numeric, categorical, features
        case rowCount = "row_count"
    }

    /// reference_stats.json bytes.
    public func jsonData() throws -> Data { try RecordJSON.encoder().encode(self) }

    public static func decode(_ data: Data) throws -> ReferenceStatistics {
        try RecordJSON.decoder().decode(ReferenceStatistics.self, from: data)
    }
}

/// One feature's place in a model's inputs: element `column` of each row of input `input`
/// (a `[N, k]` tensor, or `[N]` / `[N, 1]` with column 0).
public struct FeatureColumn: Codable, Sendable, Equatable {
    public var name: String
    public var input: String
    public var column: Int

    public init(name: String, input: String, column: Int) {
        self.name = name
        self.input = input
        self.column = column
    }
}

/// Population Stability Index between a reference and an actual distribution over the same
/// buckets: Σ (a − r)·ln(a / r), each share floored at `epsilon` so an empty bucket counts as
/// a large shift rather than infinity. Rule of thumb: < 0.1 stable, 0.1–0.25 moderate, > 0.25
/// a shift.
public func populationStabilityIndex(reference: [Double], actual: [Double], epsilon: Double = 1e-4) -> Double {
    precondition(reference.count == actual.count, "PSI needs the same buckets on both sides")
    var psi = 0.0
    for (r, a) in zip(reference, actual) {
        let rr = Swift.max(r, epsilon), aa = Swift.max(a, epsilon)
        psi += (aa - rr) * log(aa / rr)
    }
    return psi
}

/// A numeric column's reference distribution.
///
/// Bins follow one convention everywhere: `binEdges` ascend from min to max, and a value falls
/// in the bin numbered by how many interior edges are ≤ it, so values below min or above max land
/// in the first or last bin. (The same convention as the trainer's `NumericFeatureStatistics`, so
/// its `binEdges`/`binCounts` convert exactly.)
public struct NumericReference: Codable, Sendable, Equatable {
    public var count: Int
    public var missing: Int
    public var mean: Double
    public var std: Double
    public var min: Double
    public var max: Double
    public var binEdges: [Double]
    /// Share of values per bin (`binEdges.count - 1` bins, or 1 when the column is constant).
    public var proportions: [Double]

    public init(count: Int, missing: Int = 0, mean: Double, std: Double, min: Double, max: Double, binEdges: [Double], proportions: [Double]) {
        self.count = count
        self.missing = missing
        self.mean = mean
        self.std = std
        self.min = min
        self.max = max
        self.binEdges = binEdges
        self.proportions = proportions
    }

    /// Quantile bins over `values`.
    public init(values: [Double], missing: Int = 0, bins: Int = 10) {
        count = values.count
        self.missing = missing
        guard !values.isEmpty else {
            (mean, std, min, max, binEdges, proportions) = (0, 0, 0, 0, [], [])
            return
        }
        let n = Double(values.count)
        let m = values.reduce(0, +) / n
        mean = m
        std = (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / n).squareRoot()
        let sorted = values.sorted()
        min = sorted.first!
        max = sorted.last!
        var edges = [min]
        let k = Swift.max(1, bins)
        if k > 1 {
            for b in 1..<k {
                let q = sorted[Swift.min(sorted.count - 1, b * sorted.count / k)]
                if q > edges.last! && q < max { edges.append(q) }
            }
        }
        if max > edges.last! { edges.append(max) }
        binEdges = edges
        proportions = []
        let counts = histogram(values)
        proportions = counts.map { Double($0) / n }
    }

    /// Counts of `values` per bin.
    public func histogram(_ values: [Double]) -> [Int] { Self.histogram(values, binEdges: binEdges) }

    /// Counts of `values` per bin of `binEdges` (this type's convention: the bin is the number of
    /// interior edges ≤ the value, so values outside the edges land in the first or last bin).
    public static func histogram(_ values: [Double], binEdges: [Double]) -> [Int] {
        let bins = Swift.max(1, binEdges.count - 1)
        var counts = [Int](repeating: 0, count: bins)
        guard binEdges.count > 2 else {
            counts[0] = values.count
            return counts
        }
        for v in values {
            var lo = 1, hi = binEdges.count - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if binEdges[mid] <= v { lo = mid + 1 } else { hi = mid }
            }
            counts[lo - 1] += 1
        }
        return counts
    }

    enum CodingKeys: String, CodingKey {
        case count, missing, mean, std, min, max, proportions
        case binEdges = "bin_edges"
    }
}

/// A categorical column's reference distribution.
public struct CategoricalReference: Codable, Sendable, Equatable {
    public var count: Int
    public var missing: Int
    /// Share of values per category (summing to 1 over the non-missing values).
    public var frequencies: [String: Double]

    public init(count: Int, missing: Int = 0, frequencies: [String: Double]) {
        self.count = count
        self.missing = missing
        self.frequencies = frequencies
    }

    public init(values: [String], missing: Int = 0) {
        count = values.count
        self.missing = missing
        var tally: [String: Int] = [:]
        for v in values { tally[v, default: 0] += 1 }
        frequencies = tally.mapValues { Double($0) / Double(Swift.max(1, values.count)) }
    }
}
