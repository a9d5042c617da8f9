import Foundation
import SwerveRepository

/// The columns of a training data set and what each one means, read from a `schema.json`:
///
/// ```json
/// {
///   "columns": [
///     {"name": "x1", "type": "numeric", "min": 0, "max": 120},
///     {"name": "device", "type": "categorical", "categories": ["mobile", "desktop", "tablet"]},
///     {"name": "request_id", "type": "ignore"},
///     {"name": "y", "type": "label", "task": "classification", "classes": ["no", "yes"]}
///   ],
///   "label": "y"
/// }
/// ```
///
/// - `type` is `numeric` (a finite number), `categorical` (any string, compared byte for byte),
///   `label` (the target) or `ignore` (read and dropped).
/// - `min`/`max` (numeric, optional) are the valid range, for the validation stage's range checks;
///   reading does not enforce them.
/// - `categories` (categorical, optional) fixes the one-hot vocabulary and its order; without it
///   the vocabulary is the training split's distinct values in first-seen order. Values outside
///   the vocabulary encode as all zeros, in training and in the exported graph alike.
/// - The label column's `task` is `classification` (the default) or `regression`. A
///   classification label's `classes` (optional) fixes the class order; without it the classes are
///   the distinct values in the file, sorted numerically when all are numbers, else as strings.
///   A numeric regression label may also carry `min`/`max`.
/// - `label` names the label column; it may be omitted when exactly one column has type `label`.
///
/// Feature order (numeric and categorical separately) is the order of `columns`; it is the column
/// order of the exported model's `numeric` and `categorical` inputs.
public struct DataSchema: Sendable, Codable, Equatable {
    /// What a column holds.
    public enum ColumnType: String, Sendable, Codable {
        case numeric, categorical, label, ignore
    }

    /// What is predicted.
    public enum Task: String, Sendable, Codable {
        case classification, regression
    }

    /// One column of the data file.
    public struct Column: Sendable, Codable, Equatable {
        public var name: String
        public var type: ColumnType
        /// The one-hot vocabulary of a categorical feature, in order.
        public var categories: [String]?
        /// The valid range of a numeric column (checked by validation, not by reading).
        public var min: Double?
        public var max: Double?
        /// The label's task (label column only); classification when absent.
        public var task: Task?
        /// The class names of a classification label, in order (label column only).
        public var classes: [String]?

        public init(
            name: String, type: ColumnType, categories: [String]? = nil, min: Double? = nil, max: Double? = nil,
            task: Task? = nil, classes: [String]? = nil
        ) {
            self.name = name
            self.type = type
            self.categories = categories
            self.min = min
            self.max = max
            self.task = task
            self.classes = classes
        }
    }

    public var columns: [Column]
    /// The label column's name; nil means "the one column of type label".
    public var label: String?

    /// A schema; call `validated()` (or load through `load`/`decode`) to check it.
    public init(columns: [Column], label: String? = nil) {
        self.columns = columns
        self.label = label
    }

    /// The largest schema file read (16 MiB): a schema lists columns, never data.
    public static let maxFileBytes = 16 << 20

    /// Reads and checks the schema at `path` (a regular file of at most `maxFileBytes`).
    public static func load(path: String) throws -> DataSchema {
        let data: Data?
        do {
            data = try DurableFiles.readIfPresent(path, limit: maxFileBytes, what: "schema")
        } catch {
            throw TrainingError(.io, error.message)
        }
        guard let data else { throw TrainingError(.io, "cannot read the schema '\(path)': it does not exist") }
        return try decode(Array(data), source: path)
    }

    /// Parses and checks a schema from JSON bytes; `source` names it in errors.
    public static func decode(_ json: [UInt8], source: String = "schema") throws -> DataSchema {
        let schema: DataSchema
        do {
            schema = try JSONDecoder().decode(DataSchema.self, from: Data(json))
        } catch let error as DecodingError {
            throw TrainingError(.invalidSchema, "\(source): \(describe(error))")
        }
        return try schema.validated()
    }

    /// The schema as pretty, key-sorted JSON.
    public func encodeJSON() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    /// This schema, checked: unique non-empty names, exactly one label column, attributes only
    /// where they mean something. The label column's type becomes `label`.
    public func validated() throws -> DataSchema {
        var seen = Set<String>()
        for column in columns {
            guard !column.name.isEmpty else { throw TrainingError(.invalidSchema, "a column has an empty name") }
            guard seen.insert(column.name).inserted else {
                throw TrainingError(.invalidSchema, "column '\(column.name)' appears twice")
            }
            if column.categories != nil && column.type != .categorical {
                throw TrainingError(.invalidSchema, "column '\(column.name)': only categorical columns have categories")
            }
            if let min = column.min, let max = column.max, !(min <= max) {
                throw TrainingError(.invalidSchema, "column '\(column.name)': min \(min) is above max \(max)")
            }
            if let categories = column.categories, Set(categories).count != categories.count {
                throw TrainingError(.invalidSchema, "column '\(column.name)': categories repeat a value")
            }
        }
        var result = self
        let labelName: String
        if let label {
            guard let index = columns.firstIndex(where: { $0.name == label }) else {
                throw TrainingError(.invalidSchema, "the label column '\(label)' is not among the columns")
            }
            guard columns[index].type == .label || columns[index].type == .numeric || columns[index].type == .categorical else {
                throw TrainingError(.invalidSchema, "the label column '\(label)' is marked ignore")
            }
            // A numeric/categorical column named as the label implies the task.
            if columns[index].type == .numeric { result.columns[index].task = result.columns[index].task ?? .regression }
            if columns[index].type == .categorical { result.columns[index].task = result.columns[index].task ?? .classification }
            result.columns[index].type = .label
            labelName = label
        } else {
            let labels = columns.filter { $0.type == .label }
            guard labels.count == 1 else {
                throw TrainingError(.invalidSchema, labels.isEmpty ? "no label column: set \"label\" or give one column type \"label\"" : "several columns have type label; set \"label\"")
            }
            labelName = labels[0].name
        }
        if let other = result.columns.first(where: { $0.type == .label && $0.name != labelName }) {
            throw TrainingError(.invalidSchema, "column '\(other.name)' has type label but the label is '\(labelName)'")
        }
        result.label = labelName
        let labelColumn = result.columns.first { $0.name == labelName }!
        if labelColumn.task == .regression && labelColumn.classes != nil {
            throw TrainingError(.invalidSchema, "the regression label '\(labelName)' cannot have classes")
        }
        if let classes = labelColumn.classes {
            guard classes.count >= 2, Set(classes).count == classes.count else {
                throw TrainingError(.invalidSchema, "the label '\(labelName)' needs at least two distinct classes")
            }
        }
        guard result.columns.contains(where: { $0.type == .numeric || $0.type == .categorical }) else {
            throw TrainingError(.invalidSchema, "the schema has no feature columns")
        }
        return result
    }

    /// The label column (after `validated()`).
    public var labelColumn: Column {
        columns.first { $0.type == .label && (label == nil || $0.name == label) }!
    }

    /// The label's task.
    public var task: Task { labelColumn.task ?? .classification }

    /// Numeric feature columns, in schema order.
    public var numericFeatures: [Column] { columns.filter { $0.type == .numeric } }

    /// Categorical feature columns, in schema order.
    public var categoricalFeatures: [Column] { columns.filter { $0.type == .categorical } }

    /// The column named `name`.
    public func column(named name: String) -> Column? { columns.first { $0.name == name } }
}

/// A decoding error as one line: the JSON path and what was wrong there.
func describe(_ error: DecodingError) -> String {
    func path(_ context: DecodingError.Context) -> String {
        let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return p.isEmpty ? "" : "at \(p): "
    }
    switch error {
    case .typeMismatch(_, let c), .valueNotFound(_, let c): return path(c) + c.debugDescription
    case .keyNotFound(let key, let c): return path(c) + "missing key \"\(key.stringValue)\""
    case .dataCorrupted(let c): return path(c) + c.debugDescription
    @unknown default: return "\(error)"
    }
}
