import Foundation
import SwerveInference
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

extension ReferenceStatistics {
    /// The reference of a model trained elsewhere, from (a sample of) its training data as CSV
    /// with a header: a column whose every non-empty value is a finite number is numeric (quantile
    /// bins), any other categorical (frequencies); empty values count as missing.
    ///
    /// Each feature column (every column but `label`) is placed in the model's `inputs`: a
    /// column named as an input with one element per row is that input; otherwise, when one input
    /// is left and its row has as many elements as there are columns left, they are its elements
    /// in CSV order (scikit-learn's `float_input`). The label's distribution is kept, unplaced.
    public init(csv: CSVTable, inputs: [TensorInfo], batched: Bool, label: String? = nil, bins: Int = 10) throws {
        if let label, !csv.header.contains(label) {
            throw TrainingError(.invalidData, "the reference data has no label column '\(label)'; its columns are \(csv.header.joined(separator: ", "))")
        }
        func width(_ info: TensorInfo) -> Int? {
            let row = batched ? info.shape.dropFirst() : info.shape[...]
            return row.allSatisfy { $0 >= 0 } ? row.reduce(1, *) : nil
        }
        var numeric: [String: NumericReference] = [:]
        var categorical: [String: CategoricalReference] = [:]
        for (j, name) in csv.header.enumerated() {
            let texts = csv.records.map { $0[j] }
            let present = texts.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
            let numbers = present.compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }.filter(\.isFinite)
            if !present.isEmpty && numbers.count == present.count {
                numeric[name] = NumericReference(values: numbers, missing: texts.count - present.count, bins: bins)
            } else {
                categorical[name] = CategoricalReference(values: present, missing: texts.count - present.count)
            }
        }
        var features: [FeatureColumn] = []
        var rest: [String] = []
        var used = Set<String>()
        for name in csv.header where name != label {
            if let input = inputs.first(where: { $0.name == name }), width(input) == 1 {
                features.append(FeatureColumn(name: name, input: name, column: 0))
                used.insert(name)
            } else {
                rest.append(name)
            }
        }
        if !rest.isEmpty {
            let left = inputs.filter { !used.contains($0.name) }
            guard left.count == 1, width(left[0]) == rest.count else {
                let described: String = inputs.map { "\($0.name)\($0.shape)" }.joined(separator: ", ")
                let hint: String = label == nil ? " (and name the label column with --label)" : ""
                throw TrainingError(.invalidData, "cannot place the reference data's columns \(rest.joined(separator: ", ")) in the model's inputs (\(described)): name each column as an input with one element per row, or give one column per element of the one remaining input, in order\(hint)")
            }
            features += rest.enumerated().map { FeatureColumn(name: $1, input: left[0].name, column: $0) }
        }
        self.init(rowCount: csv.records.count, numeric: numeric, categorical: categorical, features: features)
    }
}
