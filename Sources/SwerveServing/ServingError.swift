import SwerveStatus

/// Errors of the serving layer. Each `code` states its gRPC status (`RPCErrorConvertible`, below).
public struct ServingError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: Sendable, Hashable {
        /// No such model or version (NOT_FOUND).
        case notFound
        /// The model is loading, unloading, or its queue is full (UNAVAILABLE).
        case unavailable
        /// The request does not fit the model: names, datatypes, shapes, batch size (INVALID_ARGUMENT).
        case invalidArgument
        /// The request's deadline passed before it was computed (DEADLINE_EXCEEDED).
        case deadlineExceeded
        /// The client went away (CANCELLED).
        case cancelled
        /// A bug or an inference failure that is not the caller's fault (INTERNAL).
        case `internal`
        /// A repository or configuration problem (FAILED_PRECONDITION).
        case failedPrecondition
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// A request whose deadline passed before it was answered: `GRPCStatus.deadlineExceeded`'s
    /// words, so the client reads the same whichever layer noticed.
    public static let deadlineExceeded = ServingError(.deadlineExceeded, GRPCStatus.deadlineExceeded.message)
}

extension ServingError: RPCErrorConvertible {
    public var rpcErrorCode: GRPCStatusCode {
        switch code {
        case .notFound: .notFound
        case .unavailable: .unavailable
        case .invalidArgument: .invalidArgument
        case .deadlineExceeded: .deadlineExceeded
        case .cancelled: .cancelled
        case .internal: .internal
        case .failedPrecondition: .failedPrecondition
        }
    }

    public var rpcErrorMessage: String { message }
}
