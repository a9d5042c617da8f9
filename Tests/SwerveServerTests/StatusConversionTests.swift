import SwerveInference
import SwerveProto
import SwerveRepository
import SwerveServing
import SwerveStatus
import Testing

/// Every layer's error states its own status; `GRPCStatus(converting:)` is the one conversion.
@Suite struct StatusConversionTests {
    struct Unrelated: Error {}

    @Test func servingErrorsKeepTheirCodeAndMessage() {
        let cases: [(ServingError.Code, GRPCStatusCode)] = [
            (.notFound, .notFound), (.unavailable, .unavailable), (.invalidArgument, .invalidArgument),
            (.deadlineExceeded, .deadlineExceeded), (.cancelled, .cancelled), (.internal, .internal),
            (.failedPrecondition, .failedPrecondition),
        ]
        for (code, want) in cases {
            #expect(GRPCStatus(converting: ServingError(code, "why")) == GRPCStatus(want, "why"))
        }
    }

    @Test func inferenceErrorsAreTheCallersOnlyForBadInput() {
        #expect(GRPCStatus(converting: InferenceError(.invalidInput, "bad shape")) == GRPCStatus(.invalidArgument, "bad shape"))
        #expect(GRPCStatus(converting: InferenceError(.internalError, "bug")).code == .internal)
        #expect(GRPCStatus(converting: InferenceError(.unsupportedOperator, "Foo")).code == .internal)
    }

    @Test func decodingAndStorageErrors() {
        #expect(GRPCStatus(converting: ProtoDecodingError("truncated")) == GRPCStatus(.invalidArgument, "truncated"))
        #expect(GRPCStatus(converting: ONNXDecodingError("no graph")).code == .invalidArgument)
        let storage: [(StorageError.Code, GRPCStatusCode)] = [
            (.notFound, .notFound), (.invalidArgument, .invalidArgument), (.invalidModel, .invalidArgument),
            (.failedPrecondition, .failedPrecondition), (.invalidConfiguration, .failedPrecondition),
            (.corrupt, .dataLoss), (.io, .internal),
        ]
        for (code, want) in storage {
            let status = GRPCStatus(converting: StorageError(code, "m/config.json"))
            #expect(status.code == want, "\(code)")
            #expect(status.message.contains("m/config.json"))
        }
    }

    @Test func statusesPassThroughAndTheRestIsInternal() {
        #expect(GRPCStatus(converting: GRPCStatus(.aborted, "x")) == GRPCStatus(.aborted, "x"))
        #expect(GRPCStatus(converting: Unrelated()).code == .internal)
        #expect(GRPCStatus(converting: ServingError.deadlineExceeded) == .deadlineExceeded)
    }
}
