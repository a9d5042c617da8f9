/// The gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
public enum GRPCStatusCode: Int, Sendable, CaseIterable {
    case ok = 0, cancelled, unknown, invalidArgument, deadlineExceeded, notFound, alreadyExists,
        permissionDenied, resourceExhausted, failedPrecondition, aborted, outOfRange, unimplemented,
        `internal`, unavailable, dataLoss, unauthenticated
}

extension GRPCStatusCode {
    /// The name the gRPC spec gives the code, e.g. "NOT_FOUND".
    public var canonicalName: String {
        switch self {
        case .ok: "OK"
        case .cancelled: "CANCELLED"
        case .unknown: "UNKNOWN"
        case .invalidArgument: "INVALID_ARGUMENT"
        case .deadlineExceeded: "DEADLINE_EXCEEDED"
        case .notFound: "NOT_FOUND"
        case .alreadyExists: "ALREADY_EXISTS"
        case .permissionDenied: "PERMISSION_DENIED"
        case .resourceExhausted: "RESOURCE_EXHAUSTED"
        case .failedPrecondition: "FAILED_PRECONDITION"
        case .aborted: "ABORTED"
        case .outOfRange: "OUT_OF_RANGE"
        case .unimplemented: "UNIMPLEMENTED"
        case .internal: "INTERNAL"
        case .unavailable: "UNAVAILABLE"
        case .dataLoss: "DATA_LOSS"
        case .unauthenticated: "UNAUTHENTICATED"
        }
    }
}

/// The outcome of a call: a code and a human-readable message. Thrown by the client on a
/// non-OK status and passed by server handlers to `GRPCServerCall.finish(_:)`.
public struct GRPCStatus: Error, Sendable, Equatable, CustomStringConvertible {
    /// The status code.
    public var code: GRPCStatusCode
    /// A message for a person; sent percent-encoded in `grpc-message`.
    public var message: String

    /// Creates a status.
    public init(_ code: GRPCStatusCode, _ message: String = "") {
        self.code = code
        self.message = message
    }

    /// The OK status.
    public static let ok = GRPCStatus(.ok)

    public var description: String {
        message.isEmpty ? "\(code)" : "\(code): \(message)"
    }
}

extension GRPCStatus {
    /// How a call whose deadline (`grpc-timeout`) passed ends, wherever that is noticed: the
    /// transport's timer and its end-of-request check, the serving paths' entry, the batcher's
    /// queue. One code and one message, so a client sees the same answer whichever got there
    /// first.
    public static let deadlineExceeded = GRPCStatus(.deadlineExceeded, "deadline exceeded")
}
