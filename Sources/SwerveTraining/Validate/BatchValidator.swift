import Foundation
import SwerveRepository

/// How strict validation is.
public struct ValidationOptions: Codable, Sendable, Equatable {
    /// PSI above this is a warning.
    public var psiWarning: Double
    /// PSI above this fails the batch.
    public var psiFailure: Double
    /// Share of a column's values that may be out of range before the batch fails (0: any).
    public var maxOutOfRangeFraction: Double
    /// Share of unseen categories in a column above which the warning becomes an error (nil: never).
    public var maxUnseenCategoryFraction: Double?
    /// Batches smaller than this skip the skew check (PSI on a handful of rows is noise).
    public var minRowsForSkew: Int
    /// Columns the schema does not name: a warning (false) or an error (true).
    public var rejectUnknownColumns: Bool

    public init(psiWarning: Double = 0.1, psiFailure: Double = 0.25, maxOutOfRangeFraction: Double = 0,
                maxUnseenCategoryFraction: Double? = nil, minRowsForSkew: Int = 50, rejectUnknownColumns: Bool = false) {
        self.psiWarning = psiWarning
        self.psiFailure = psiFailure
        self.maxOutOfRangeFraction = maxOutOfRangeFraction
        self.maxUnseenCategoryFraction = maxUnseenCategoryFraction
        self.minRowsForSkew = minRowsForSkew
        self.rejectUnknownColumns = rejectUnknownColumns
    }

    enum CodingKeys: String, CodingKey {
        case psiWarning = "psi_warning"
        case psiFailure = "psi_failure"
        case maxOutOfRangeFraction = "max_out_of_range_fraction"
        case maxUnseenCategoryFraction = "max_unseen_category_fraction"
        case minRowsForSkew = "min_rows_for_skew"
        case rejectUnknownColumns = "reject_unknown_columns"
    }
}

/// One finding about a batch.
public struct ValidationIssue: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Codable, Sendable {
        case emptyBatch = "empty_batch"
        case missingColumn = "missing_column"
        case unknownColumn = "unknown_column"
        case typeError = "type_error"
        case missingValue = "missing_value"
        case outOfRange = "out_of_range"
        case unseenCategory = "unseen_category"
        case unknownLabel = "unknown_label"
        case skew
    }

    public enum Severity: String, Codable, Sendable {
        case warning, error
    }

    public var kind: Kind
    public var severity: Severity
    public var column: String?
    /// Rows affected.
    public var count: Int
    /// Up to five affected row numbers (0-based) and their values, to find them in the data.
    public var examples: [Example]
    public var message: String

    public struct Example: Codable, Sendable, Equatable {
        public var row: Int
        public var value: String?
    }

    public var description: String { "\(severity) \(kind)\(column.map { " [\($0)]" } ?? ""): \(message)" }
}

/// Distribution skew of one column against the reference.
public struct FeatureSkew: Codable, Sendable, Equatable {
    public var column: String
    public var psi: Double
    /// Batch mean and reference mean (numeric columns).
    public var mean: Double?
    public var referenceMean: Double?
}

/// The outcome of validating one batch. It passes when no issue is an error.
public struct ValidationReport: Codable, Sendable, Equatable {
    public var rowCount: Int
    public var issues: [ValidationIssue]
    public var skew: [FeatureSkew]
    public var passed: Bool { !issues.contains { $0.severity == .error } }
    public var errors: [ValidationIssue] { issues.filter { $0.severity == .error } }
    public var warnings: [ValidationIssue] { issues.filter { $0.severity == .warning } }

    public func issues(_ kind: ValidationIssue.Kind) -> [ValidationIssue] { issues.filter { $0.kind == kind } }

    enum CodingKeys: String, CodingKey {
        case issues, skew, passed
        case rowCount = "row_count"
    }

    public init(rowCount: Int, issues: [ValidationIssue], skew: [FeatureSkew]) {
        self.rowCount = rowCount
        self.issues = issues
        self.skew = skew
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rowCount = try c.decode(Int.self, forKey: .rowCount)
        issues = try c.decode([ValidationIssue].self, forKey: .issues)
        skew = try c.decode([FeatureSkew].self, forKey: .skew)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(rowCount, forKey: .rowCount)
        try c.encode(issues, forKey: .issues)
        try c.encode(skew, forKey: .skew)
        try c.encode(passed, forKey: .passed)
    }
}

/// Checks a batch against a schema and, when given, the reference statistics of the version
/// serving now: schema and types, missing values, ranges, unseen categories, and skew (PSI).
public struct BatchValidator: Sendable {
    public var schema: ValidationSchema
    public var reference: ReferenceStatistics?
    public var options: ValidationOptions

    public init(schema: ValidationSchema, reference: ReferenceStatistics? = nil, options: ValidationOptions = ValidationOptions()) {
        self.schema = schema
        self.reference = reference
        self.options = options
    }

    public func validate(_ batch: ValidationBatch) -> ValidationReport {
        var issues: [ValidationIssue] = []
        var skews: [FeatureSkew] = []

        func add(_ kind: ValidationIssue.Kind, _ severity: ValidationIssue.Severity, _ column: String?, _ rows: [(Int, String?)], _ message: String) {
            issues.append(ValidationIssue(kind: kind, severity: severity, column: column, count: rows.count,
                                          examples: rows.prefix(5).map { ValidationIssue.Example(row: $0.0, value: $0.1) }, message: message))
        }

        if batch.rowCount == 0 { add(.emptyBatch, .error, nil, [], "the batch has no rows") }
        let known = Set(schema.columns.map(\.name))
        for name in batch.columnNames where !known.contains(name) {
            add(.unknownColumn, options.rejectUnknownColumns ? .error : .warning, name, [], "column \(name) is not in the schema")
        }

        for column in schema.columns {
            guard let values = batch.columns[column.name] else {
                add(.missingColumn, .error, column.name, [], "required column \(column.name) is absent")
                continue
            }
            let n = values.count
            var missing: [(Int, String?)] = []
            var badType: [(Int, String?)] = []
            var outOfRange: [(Int, String?)] = []
            var unseen: [(Int, String?)] = []
            var numbers: [Double] = []
            var texts: [String] = []
            let categories = column.categories.map(Set.init)
            for row in 0..<n {
                guard let text = values.text(at: row) else {
                    missing.append((row, nil))
                    continue
                }
                if column.isNumeric {
                    let number: Double?
                    if case .numbers(let v) = values { number = v[row] } else { number = Double(text) }
                    guard let x = number, x.isFinite else {
                        badType.append((row, text))
                        continue
                    }
                    numbers.append(x)
                    if let lo = column.min, x < lo { outOfRange.append((row, text)) }
                    else if let hi = column.max, x > hi { outOfRange.append((row, text)) }
                } else {
                    texts.append(text)
                    if let categories, !categories.contains(text) { unseen.append((row, text)) }
                }
            }
            let label = column.kind == .label
            if !missing.isEmpty && (label || !column.allowMissing) {
                add(.missingValue, .error, column.name, missing, "\(missing.count) of \(n) values missing")
            }
            if !badType.isEmpty {
                add(.typeError, .error, column.name, badType, "\(badType.count) of \(n) values are not finite numbers")
            }
            if !outOfRange.isEmpty {
                let fraction = Double(outOfRange.count) / Double(max(1, n))
                let bounds = "[\(column.min.map { "\($0)" } ?? "-inf"), \(column.max.map { "\($0)" } ?? "inf")]"
                add(.outOfRange, fraction > options.maxOutOfRangeFraction ? .error : .warning, column.name, outOfRange,
                    "\(outOfRange.count) of \(n) values outside \(bounds)")
            }
            if !unseen.isEmpty {
                if label {
                    add(.unknownLabel, .error, column.name, unseen, "\(unseen.count) of \(n) labels are not among the classes")
                } else {
                    let fraction = Double(unseen.count) / Double(max(1, n))
                    let severity: ValidationIssue.Severity = options.maxUnseenCategoryFraction.map { fraction > $0 } == true ? .error : .warning
                    let distinct = Set(unseen.compactMap(\.1)).sorted().prefix(10)
                    add(.unseenCategory, severity, column.name, unseen,
                        "\(unseen.count) of \(n) values are categories never seen in training: \(distinct.joined(separator: ", "))")
                }
            }

            // Skew against the reference.
            guard let reference, batch.rowCount >= options.minRowsForSkew else { continue }
            var skew: FeatureSkew?
            if column.isNumeric, let ref = reference.numeric[column.name], !numbers.isEmpty, !ref.proportions.isEmpty {
                let counts = ref.histogram(numbers)
                let actual = counts.map { Double($0) / Double(numbers.count) }
                skew = FeatureSkew(column: column.name, psi: populationStabilityIndex(reference: ref.proportions, actual: actual),
                                   mean: numbers.reduce(0, +) / Double(numbers.count), referenceMean: ref.mean)
            } else if !column.isNumeric, let ref = reference.categorical[column.name], !texts.isEmpty {
                var tally: [String: Int] = [:]
                for t in texts { tally[t, default: 0] += 1 }
                let buckets = Set(ref.frequencies.keys).union(tally.keys).sorted()
                skew = FeatureSkew(column: column.name, psi: populationStabilityIndex(
                    reference: buckets.map { ref.frequencies[$0] ?? 0 },
                    actual: buckets.map { Double(tally[$0] ?? 0) / Double(texts.count) }), mean: nil, referenceMean: nil)
            }
            if let skew {
                skews.append(skew)
                let psi = (skew.psi * 1000).rounded() / 1000
                if skew.psi > options.psiFailure {
                    add(.skew, .error, column.name, [], "PSI \(psi) against the reference exceeds \(options.psiFailure)")
                } else if skew.psi > options.psiWarning {
                    add(.skew, .warning, column.name, [], "PSI \(psi) against the reference exceeds \(options.psiWarning)")
                }
            }
        }
        return ValidationReport(rowCount: batch.rowCount, issues: issues, skew: skews)
    }
}
