import SwerveInference
import SwerveProto
import SwerveServing
import SwerveTransport

/// The one place where any error becomes a gRPC status.
enum StatusMapping {
    static func status(for error: any Error) -> GRPCStatus {
        switch error {
        case let e as GRPCStatus: return e
        case let e as ServingError: return GRPCStatus(code(e.code), e.message)
        case let e as ProtoDecodingError: return GRPCStatus(.invalidArgument, e.message)
        case let e as InferenceError:
            return GRPCStatus(e.code == .invalidInput ? .invalidArgument : .internal, e.message)
        default: return GRPCStatus(.internal, "\(error)")
        }
    }

    static func code(_ c: ServingError.Code) -> GRPCStatusCode {
        switch c {
        case .notFound: .notFound
        case .unavailable: .unavailable
        case .invalidArgument: .invalidArgument
        case .deadlineExceeded: .deadlineExceeded
        case .cancelled: .cancelled
        case .internal: .internal
        case .failedPrecondition: .failedPrecondition
        }
    }

    /// Lower-case status name for metric labels.
    static func label(_ c: GRPCStatusCode) -> String {
        switch c {
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
