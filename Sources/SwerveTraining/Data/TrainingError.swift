import SwerveStatus

/// An error from the training layer (reading data, fitting, exporting, evaluating).
///
/// Data errors name the place a person must look: `line` is the 1-based physical line of the
/// CSV file where the offending record starts (the header is line 1) and `column` the column's
/// name from the header.
public struct TrainingError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What went wrong, coarsely, for code that reacts to it.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let name: String
        /// A schema file that is unreadable or inconsistent.
        public static let invalidSchema = Code(name: "invalidSchema")
        /// A data file that is malformed or disagrees with the schema.
        public static let invalidData = Code(name: "invalidData")
        /// A training configuration that cannot work with this data (a task mismatch, no rows…).
        public static let invalidConfiguration = Code(name: "invalidConfiguration")
        /// A file that cannot be read or written.
        public static let io = Code(name: "io")
        /// Training was stopped on request (`Trainer.train(shouldStop:)`).
        public static let cancelled = Code(name: "cancelled")
        public var description: String { name }
    }

    public var code: Code
    /// A message a person can act on.
    public var message: String
    /// The 1-based line of the data file, for data errors.
    public var line: Int?
    /// The column name, for data errors about one field.
    public var column: String?

    public init(_ code: Code, _ message: String, line: Int? = nil, column: String? = nil) {
        self.code = code
        self.message = message
        self.line = line
        self.column = column
    }

    public var description: String {
        var place: [String] = []
        if let line { place.append("line \(line)") }
        if let column { place.append("column '\(column)'") }
        return place.isEmpty ? message : "\(place.joined(separator: ", ")): \(message)"
    }
}

extension TrainingError: RPCErrorConvertible {
    /// Data, schemas and configurations come from the caller; a file that cannot be read or
    /// written is the service's own failure.
    public var rpcErrorCode: GRPCStatusCode {
        switch code {
        case .io: .internal
        case .cancelled: .cancelled
        default: .invalidArgument
        }
    }

    public var rpcErrorMessage: String { description }
}
