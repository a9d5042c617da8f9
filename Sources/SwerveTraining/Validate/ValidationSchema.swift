/// What a batch of examples must look like, column by column.
///
/// This is the validator's own view of a schema; the trainer's data schema converts into it
/// (see `ValidationSchemaConvertible`).
public struct ValidationSchema: Codable, Sendable, Equatable {
    public var columns: [ValidationColumn]

    public init(columns: [ValidationColumn]) { self.columns = columns }

    public func column(_ name: String) -> ValidationColumn? { columns.first { $0.name == name } }
}

/// One column of a `ValidationSchema`.
public struct ValidationColumn: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// Values parse as finite numbers.
        case numeric
        /// Values are category names.
        case categorical
        /// The training target: numeric (regression) unless `categories` is given (classes).
        /// A label must never be missing, and a label outside `categories` is an error.
        case label
    }

    public var name: String
    public var kind: Kind
    /// Inclusive bounds for numeric values (and numeric labels).
    public var min: Double?
    public var max: Double?
    /// The known categories (categorical) or classes (label). A categorical value outside them
    /// is a warning (the model maps it to "unknown"); a label outside them is an error.
    public var categories: [String]?
    /// Whether a missing value (absent, empty) is acceptable. Never for a label.
    public var allowMissing: Bool

    public init(name: String, kind: Kind, min: Double? = nil, max: Double? = nil, categories: [String]? = nil, allowMissing: Bool = false) {
        self.name = name
        self.kind = kind
        self.min = min
        self.max = max
        self.categories = categories
        self.allowMissing = allowMissing
    }

    public static func numeric(_ name: String, min: Double? = nil, max: Double? = nil, allowMissing: Bool = false) -> ValidationColumn {
        ValidationColumn(name: name, kind: .numeric, min: min, max: max, allowMissing: allowMissing)
    }

    public static func categorical(_ name: String, categories: [String]? = nil, allowMissing: Bool = false) -> ValidationColumn {
        ValidationColumn(name: name, kind: .categorical, categories: categories, allowMissing: allowMissing)
    }

    public static func label(_ name: String, classes: [String]? = nil, min: Double? = nil, max: Double? = nil) -> ValidationColumn {
        ValidationColumn(name: name, kind: .label, min: min, max: max, categories: classes)
    }

    /// Whether values are compared as numbers (numeric features and regression labels).
    public var isNumeric: Bool { kind == .numeric || (kind == .label && categories == nil) }

    enum CodingKeys: String, CodingKey {
        case name, kind, min, max, categories
        case allowMissing = "allow_missing"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        kind = try c.decode(Kind.self, forKey: .kind)
        min = try c.decodeIfPresent(Double.self, forKey: .min)
        max = try c.decodeIfPresent(Double.self, forKey: .max)
        categories = try c.decodeIfPresent([String].self, forKey: .categories)
        allowMissing = try c.decodeIfPresent(Bool.self, forKey: .allowMissing) ?? false
    }
}

/// A batch of examples in columnar form: each column's values in row order, `nil` = missing.
/// Values stay as the text they arrived as (a CSV cell, a JSON string) or as numbers when the
/// producer already parsed them; the validator parses text itself, so a bad cell is reported
/// rather than lost.
public struct ValidationBatch: Sendable, Equatable {
    public enum Values: Sendable, Equatable {
        case text([String?])
        case numbers([Double?])

        public var count: Int {
            switch self {
            case .text(let v): v.count
            case .numbers(let v): v.count
            }
        }

        /// The value at `row` as text (numbers formatted), nil when missing or empty.
        public func text(at row: Int) -> String? {
            switch self {
            case .text(let v):
                guard let s = v[row] else { return nil }
                let t = s.trimmingCharacters(in: .whitespaces)
                return t.isEmpty ? nil : t
            case .numbers(let v):
                return v[row].map { $0 == $0.rounded() && abs($0) < 1e15 ? String(Int64($0)) : String($0) }
            }
        }
    }

    /// Column names in order (the order a quarantined CSV is written in).
    public private(set) var columnNames: [String]
    public private(set) var columns: [String: Values]
    public private(set) var rowCount: Int

    /// Columns must all have the same length.
    public init(columns ordered: [(String, Values)]) throws {
        columnNames = ordered.map(\.0)
        columns = [:]
        rowCount = ordered.first?.1.count ?? 0
        for (name, values) in ordered {
            guard columns[name] == nil else { throw StorageError(.invalidArgument, "column \(name) appears twice") }
            guard values.count == rowCount else {
                throw StorageError(.invalidArgument, "column \(name) has \(values.count) values, column \(columnNames[0]) has \(rowCount)")
            }
            columns[name] = .text([])
            columns[name] = values
        }
    }

    /// Rows as dictionaries (a JSON example, a parsed CSV line). A key absent from a row is a
    /// missing value; columns are ordered by first appearance.
    public init(rows: [[String: String]]) {
        var names: [String] = []
        var seen = Set<String>()
        for row in rows {
            for key in row.keys.sorted() where seen.insert(key).inserted { names.append(key) }
        }
        columnNames = names
        rowCount = rows.count
        columns = Dictionary(uniqueKeysWithValues: names.map { name in (name, Values.text(rows.map { $0[name] })) })
    }

    /// The batch as CSV (RFC 4180 quoting; missing values are empty cells).
    public func csv() -> String {
        func quote(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        var out = columnNames.map(quote).joined(separator: ",") + "\n"
        for row in 0..<rowCount {
            out += columnNames.map { quote(columns[$0]?.text(at: row) ?? "") }.joined(separator: ",") + "\n"
        }
        return out
    }
}

import SwerveRepository
import Foundation

/// Implemented by the trainer's schema type so data validation needs no knowledge of it.
public protocol ValidationSchemaConvertible {
    func validationSchema() -> ValidationSchema
}

/// Implemented by the trainer's columnar dataset so a batch can be validated before training.
public protocol ValidationBatchConvertible {
    func validationBatch() -> ValidationBatch
}
