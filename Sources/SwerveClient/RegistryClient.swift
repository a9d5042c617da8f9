import SwerveProto
import SwerveStatus
import SwerveTransport

// The `swerve.v1.Registry` calls (protos/swerve_registry.proto). Every one of them carries the
// admin token when the client was given one: a registry with a token configured guards all of
// them (model files are as sensitive as the control plane).
extension SwerveClient {
    /// Watch: every model's state now (then one message with `endOfSnapshot`), then a model's
    /// state again whenever it changes. `model` "" watches every model. Stopping the iteration
    /// (or cancelling its task) ends the call; `timeout` (none by default) ends it with
    /// DEADLINE_EXCEEDED.
    public func registryWatch(model: String = "", timeout: Duration? = nil) -> some AsyncSequence<RegistryModel, any Error> {
        connection().serverStreaming(
            Method.registryWatch, RegistryWatchRequest(modelName: model).serializedBytes(), timeout: timeout, metadata: controlMetadata
        ).map { bytes throws -> RegistryModel in
            do {
                return try RegistryModel(serializedBytes: bytes)
            } catch {
                throw GRPCStatus(.internal, "cannot decode RegistryModel from \(Method.registryWatch): \(error)")
            }
        }
    }

    /// FetchVersion: the files of one version of `model`, in chunks; each file's last chunk
    /// carries its size and SHA-256. NOT_FOUND for an unknown model or version.
    public func fetchVersion(model: String, version: Int64, timeout: Duration? = nil) -> some AsyncSequence<VersionChunk, any Error> {
        connection().serverStreaming(
            Method.registryFetchVersion, FetchVersionRequest(modelName: model, version: version).serializedBytes(),
            timeout: timeout ?? defaultTimeout, metadata: controlMetadata
        ).map { bytes throws -> VersionChunk in
            do {
                return try VersionChunk(serializedBytes: bytes)
            } catch {
                throw GRPCStatus(.internal, "cannot decode VersionChunk from \(Method.registryFetchVersion): \(error)")
            }
        }
    }

    /// GetLabels: a model's labels (generation 0 when it has none). NOT_FOUND for an unknown model.
    public func getLabels(model: String, timeout: Duration? = nil) async throws -> RegistryLabels {
        try await call(Method.registryGetLabels, LabelsRequest(modelName: model), as: RegistryLabels.self, timeout: timeout,
                       metadata: controlMetadata)
    }

    /// SetLabels: replaces the labels of `labels.modelName` (stable, canary, canary share, reason).
    /// Unless `force`, `labels.generation` must equal the stored generation, else ABORTED (read
    /// them again). Returns what the registry stored.
    @discardableResult
    public func setLabels(_ labels: RegistryLabels, force: Bool = false, timeout: Duration? = nil) async throws -> RegistryLabels {
        try await call(Method.registrySetLabels, SetLabelsRequest(labels: labels, force: force), as: RegistryLabels.self,
                       timeout: timeout, metadata: controlMetadata)
    }

    /// SetVersionStatus: records a version's lifecycle status (candidate, validated, serving,
    /// rejected, rolled_back) in its lineage with `reason`. Returns the status now stored.
    @discardableResult
    public func setVersionStatus(model: String, version: Int64, status: String, reason: String = "", timeout: Duration? = nil) async throws -> String {
        try await call(
            Method.registrySetVersionStatus, SetVersionStatusRequest(modelName: model, version: version, status: status, reason: reason),
            as: SetVersionStatusResponse.self, timeout: timeout, metadata: controlMetadata
        ).status
    }

    /// GetVersionStatus: a version's lineage status and the reason of its last change (an empty
    /// status: no lineage record). NOT_FOUND for a version the registry does not have.
    public func getVersionStatus(model: String, version: Int64, timeout: Duration? = nil) async throws -> VersionStatus {
        try await call(Method.registryGetVersionStatus, FetchVersionRequest(modelName: model, version: version),
                       as: VersionStatus.self, timeout: timeout, metadata: controlMetadata)
    }
}
