import SwerveStatus

/// An error from a durable store: the model repository (its layout, config.json, lineage,
/// publishing, the registry) and the training service's stores built on `DurableFiles` (the
/// example log, directory ingest, the quarantine).
public struct StorageError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure, for code that reacts to it.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// A file operation failed (the message carries the path and errno text).
        public static let io = Code(name: "io")
        /// A caller passed a value that cannot be used (a bad model name, an unknown version).
        public static let invalidArgument = Code(name: "invalid_argument")
        /// The ONNX bytes do not compile, so they are never published.
        public static let invalidModel = Code(name: "invalid_model")
        /// Something the call needs is not there.
        public static let notFound = Code(name: "not_found")
        /// Stored bytes fail their checks in a place recovery must not silently drop.
        public static let corrupt = Code(name: "corrupt")
        /// The store refused the call because of its state (a log whose fsync failed, a closed
        /// log, a repository folder that is missing).
        public static let failedPrecondition = Code(name: "failed_precondition")
        /// A model's config.json does not parse or breaks one of its rules.
        public static let invalidConfiguration = Code(name: "invalid_configuration")
        /// A compare-and-set lost: what the caller read has changed since (labels.json's generation).
        public static let aborted = Code(name: "aborted")
        public var description: String { name }
    }

    public var code: Code
    /// What went wrong, for a person.
    public var message: String
    /// The underlying error, if any.
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(code): \(message) (\(cause))" }
        return "\(code): \(message)"
    }
}

extension StorageError: RPCErrorConvertible {
    public var rpcErrorCode: GRPCStatusCode {
        switch code {
        case .notFound: .notFound
        case .invalidArgument, .invalidModel: .invalidArgument
        case .failedPrecondition, .invalidConfiguration: .failedPrecondition
        case .corrupt: .dataLoss
        case .aborted: .aborted
        default: .internal
        }
    }

    public var rpcErrorMessage: String { description }
}
