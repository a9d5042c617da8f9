import SwerveInference

/// A table of training examples, stored by column, typed by its `DataSchema`.
///
/// Numeric features are `[Double]` columns, categorical features `[String]` columns, both in
/// schema order; the label is either numbers (regression) or class indices into `classNames`.
public struct Dataset: Sendable, Equatable {
    /// The target values.
    public enum Labels: Sendable, Equatable {
        case regression([Double])
        /// Class indices into `names`, one per row.
        case classes(indices: [Int], names: [String])

        public var count: Int {
            switch self {
            case .regression(let v): v.count
            case .classes(let i, _): i.count
            }
        }
    }

    /// The schema the data was read with (validated).
    public let schema: DataSchema
    /// Numeric feature names, in schema order.
    public let numericNames: [String]
    /// `numeric[f][row]`.
    public var numeric: [[Double]]
    /// Categorical feature names, in schema order.
    public let categoricalNames: [String]
    /// `categorical[f][row]`.
    public var categorical: [[String]]
    public var labels: Labels

    /// The number of examples.
    public var rowCount: Int { labels.count }

    /// The label column's name.
    public var labelName: String { schema.labelColumn.name }

    /// The class names of a classification label (empty for regression).
    public var classNames: [String] {
        if case .classes(_, let names) = labels { names } else { [] }
    }

    /// A data set from columns; the column names and counts must agree with `schema`.
    public init(schema: DataSchema, numeric: [[Double]], categorical: [[String]], labels: Labels) throws {
        let schema = try schema.validated()
        self.schema = schema
        numericNames = schema.numericFeatures.map(\.name)
        categoricalNames = schema.categoricalFeatures.map(\.name)
        self.numeric = numeric
        self.categorical = categorical
        self.labels = labels
        guard numeric.count == numericNames.count, categorical.count == categoricalNames.count else {
            throw TrainingError(.invalidData, "expected \(numericNames.count) numeric and \(categoricalNames.count) categorical columns, got \(numeric.count) and \(categorical.count)")
        }
        let n = labels.count
        guard numeric.allSatisfy({ $0.count == n }), categorical.allSatisfy({ $0.count == n }) else {
            throw TrainingError(.invalidData, "columns have different lengths (the label has \(n) rows)")
        }
        switch (labels, schema.task) {
        case (.regression, .regression), (.classes, .classification): break
        default: throw TrainingError(.invalidData, "the labels do not match the schema's \(schema.task.rawValue) task")
        }
    }

    /// Reads the CSV file at `path` with `schema`. See `init(csv:schema:source:)`.
    public init(csvFile path: String, schema: DataSchema) throws {
        try self.init(csv: CSVTable(contentsOfFile: path), schema: schema, source: path)
    }

    /// Types a parsed CSV table by `schema`.
    ///
    /// Every schema column must be in the header (in any order) and every header column in the
    /// schema (mark unwanted ones `ignore`). Numeric fields must be finite numbers, a regression
    /// label too; a classification label must be one of the schema's `classes` when it lists them.
    /// Errors name the line and the column.
    public init(csv table: CSVTable, schema: DataSchema, source: String = "data") throws {
        let schema = try schema.validated()
        var position: [String: Int] = [:]
        for (i, name) in table.header.enumerated() {
            guard schema.column(named: name) != nil else {
                throw TrainingError(.invalidData, "\(source): header column '\(name)' is not in the schema (add it with type \"ignore\" to skip it)", line: 1, column: name)
            }
            guard position.updateValue(i, forKey: name) == nil else {
                throw TrainingError(.invalidData, "\(source): header column '\(name)' appears twice", line: 1, column: name)
            }
        }
        for column in schema.columns where position[column.name] == nil && column.type != .ignore {
            throw TrainingError(.invalidData, "\(source): the header has no column '\(column.name)'", line: 1, column: column.name)
        }
        func number(_ text: String, row: Int, column: String) throws -> Double {
            let trimmed = text.trimmingSpaces
            guard let value = Double(trimmed), value.isFinite else {
                let what = trimmed.isEmpty ? "an empty value" : "'\(text)'"
                throw TrainingError(.invalidData, "\(source): \(what) is not a finite number", line: table.lines[row], column: column)
            }
            return value
        }
        var numeric: [[Double]] = []
        for column in schema.numericFeatures {
            let c = position[column.name]!
            var values = [Double]()
            values.reserveCapacity(table.records.count)
            for (r, record) in table.records.enumerated() { values.append(try number(record[c], row: r, column: column.name)) }
            numeric.append(values)
        }
        let categorical = schema.categoricalFeatures.map { column in table.records.map { $0[position[column.name]!] } }
        let labelColumn = schema.labelColumn
        let l = position[labelColumn.name]!
        let labels: Labels
        if schema.task == .regression {
            labels = .regression(try table.records.enumerated().map { try number($1[l], row: $0, column: labelColumn.name) })
        } else {
            let raw = table.records.map { $0[l] }
            let names = labelColumn.classes ?? inferClasses(raw)
            var index: [String: Int] = [:]
            for (i, name) in names.enumerated() { index[name] = i }
            var indices: [Int] = []
            indices.reserveCapacity(raw.count)
            for (r, value) in raw.enumerated() {
                guard let i = index[value] else {
                    throw TrainingError(.invalidData, "\(source): label '\(value)' is not one of the schema's classes \(names)", line: table.lines[r], column: labelColumn.name)
                }
                indices.append(i)
            }
            labels = .classes(indices: indices, names: names)
        }
        try self.init(schema: schema, numeric: numeric, categorical: categorical, labels: labels)
    }

    /// The rows at `indices`, in that order (same schema, same class names).
    public func rows(_ indices: [Int]) -> Dataset {
        var copy = self
        copy.numeric = numeric.map { column in indices.map { column[$0] } }
        copy.categorical = categorical.map { column in indices.map { column[$0] } }
        switch labels {
        case .regression(let v): copy.labels = .regression(indices.map { v[$0] })
        case .classes(let i, let names): copy.labels = .classes(indices: indices.map { i[$0] }, names: names)
        }
        return copy
    }

    /// This data followed by `other`'s rows (same schema; class names must match).
    public func appending(_ other: Dataset) throws -> Dataset {
        guard other.schema == schema else { throw TrainingError(.invalidData, "cannot append data with a different schema") }
        var copy = self
        for f in numeric.indices { copy.numeric[f] += other.numeric[f] }
        for f in categorical.indices { copy.categorical[f] += other.categorical[f] }
        switch (labels, other.labels) {
        case (.regression(let a), .regression(let b)): copy.labels = .regression(a + b)
        case (.classes(let a, let names), .classes(let b, let otherNames)) where names == otherNames:
            copy.labels = .classes(indices: a + b, names: names)
        default: throw TrainingError(.invalidData, "cannot append data whose classes differ (\(classNames) vs \(other.classNames))")
        }
        return copy
    }

    /// A deterministic split into train, validation and holdout parts.
    ///
    /// Row `i` gets the key `splitMix64(seed &+ (i + 1) &* 0x9E3779B97F4A7C15)`; rows sorted by key
    /// go first to holdout (`round(n · holdout)` rows, half up), then to validation, the rest to
    /// train, each part keeping file order. Sizes are exact and the assignment depends only on the
    /// seed and the row's position; `scripts/sklearn_reference.py` reproduces it.
    public func split(validation: Double, holdout: Double, seed: UInt64) throws -> DatasetSplit {
        guard validation >= 0, holdout >= 0, validation + holdout < 1 else {
            throw TrainingError(.invalidConfiguration, "validation (\(validation)) and holdout (\(holdout)) fractions must be ≥ 0 and sum below 1")
        }
        let parts = splitIndices(rowCount: rowCount, fractions: [holdout, validation], seed: seed)
        return DatasetSplit(train: rows(parts[2]), validation: rows(parts[1]), holdout: rows(parts[0]))
    }
}

/// The three parts of a data set.
public struct DatasetSplit: Sendable {
    public var train: Dataset
    /// For early stopping (may be empty).
    public var validation: Dataset
    /// For the final, untouched evaluation (may be empty).
    public var holdout: Dataset
}

/// Row indices for consecutive fractions of the rows ordered by seeded key; the last part is the rest.
func splitIndices(rowCount n: Int, fractions: [Double], seed: UInt64) -> [[Int]] {
    let order = (0..<n).map { i in (key: SplitMix64.mix(seed &+ UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15), index: i) }
        .sorted { $0.key < $1.key }.map(\.index)
    var parts: [[Int]] = []
    var start = 0
    for f in fractions {
        let size = min(n - start, Int((Double(n) * f + 0.5).rounded(.down)))
        parts.append(order[start..<start + size].sorted())
        start += size
    }
    parts.append(order[start...].sorted())
    return parts
}

/// Classes named by the values: numeric order when all are numbers, else string order.
func inferClasses(_ values: [String]) -> [String] {
    let distinct = Array(Set(values))
    let numbers = distinct.map { Double($0.trimmingSpaces) }
    if numbers.allSatisfy({ $0 != nil }) {
        return zip(distinct, numbers).sorted { a, b in a.1! != b.1! ? a.1! < b.1! : a.0 < b.0 }.map(\.0)
    }
    return distinct.sorted()
}

extension String {
    /// Without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })!
        return String(scalars[first...last])
    }
}
