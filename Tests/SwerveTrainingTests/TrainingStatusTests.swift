import SwerveStatus
import SwerveTraining
import Testing

/// The training layer's errors state their gRPC status (the trainer service has no mapping of its own).
@Suite struct TrainingStatusTests {
    @Test func trainingErrors() {
        #expect(GRPCStatus(converting: TrainingError(.invalidData, "bad", line: 3)) == GRPCStatus(.invalidArgument, "line 3: bad"))
        #expect(GRPCStatus(converting: TrainingError(.invalidSchema, "s")).code == .invalidArgument)
        #expect(GRPCStatus(converting: TrainingError(.invalidConfiguration, "c")).code == .invalidArgument)
        #expect(GRPCStatus(converting: TrainingError(.io, "disk")).code == .internal)
        #expect(GRPCStatus(converting: TrainingError(.cancelled, "stop")).code == .cancelled)
        #expect(GRPCStatus(converting: PipelineCancelled(reason: "user")) == GRPCStatus(.cancelled, "cancelled: user"))
    }
}
