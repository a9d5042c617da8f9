import SwerveInference
import SwerveProto
import SwerveServing
import SwerveTransport
import SwerveStatus

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
}
