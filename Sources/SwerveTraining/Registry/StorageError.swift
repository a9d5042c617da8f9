/// An error from the training service's durable stores: the model registry, the example log,
/// directory ingest and the quarantine.
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
        /// The store refused the call because of its state (a log whose fsync failed, a closed log).
        public static let failedPrecondition = Code(name: "failed_precondition")
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
