import Foundation
import SwerveRepository

extension ReferenceStatistics {
    /// Statistics of every schema column present in `batch`: numeric columns (and regression
    /// labels) over `bins` quantile bins, categorical columns (and class labels) as frequencies.
    /// Unparseable and missing values are left out of the distributions and counted as missing.
    public init(batch: ValidationBatch, schema: ValidationSchema, bins: Int = 10) {
        var numeric: [String: NumericReference] = [:]
        var categorical: [String: CategoricalReference] = [:]
        for column in schema.columns {
            guard let values = batch.columns[column.name] else { continue }
            if column.isNumeric {
                let parsed = numericValues(values)
                numeric[column.name] = NumericReference(values: parsed.compactMap { $0 }, missing: parsed.count - parsed.compactMap { $0 }.count, bins: bins)
            } else {
                let texts = (0..<values.count).map { values.text(at: $0) }
                categorical[column.name] = CategoricalReference(values: texts.compactMap { $0 }, missing: texts.count - texts.compactMap { $0 }.count)
            }
        }
        self.init(rowCount: batch.rowCount, numeric: numeric, categorical: categorical)
    }
}

/// Parses a column as numbers: nil for missing values and for text that is not a finite number.
func numericValues(_ values: ValidationBatch.Values) -> [Double?] {
    switch values {
    case .numbers(let v): return v.map { $0.flatMap { $0.isFinite ? $0 : nil } }
    case .text:
        return (0..<values.count).map { row in
            values.text(at: row).flatMap { Double($0) }.flatMap { $0.isFinite ? $0 : nil }
        }
    }
}
