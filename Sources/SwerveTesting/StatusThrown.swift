import SwerveStatus

/// The `GRPCStatus` that `body` throws; nil when it succeeds. Any other error comes back as
/// UNKNOWN with the error's description, so a test's expectation on the code fails readably.
public func statusThrown(_ body: () async throws -> Void) async -> GRPCStatus? {
    do {
        try await body()
        return nil
    } catch let status as GRPCStatus {
        return status
    } catch {
        return GRPCStatus(.unknown, "not a GRPCStatus: \(error)")
    }
}
