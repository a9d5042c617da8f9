import Foundation
import SwerveProto
import SwerveRepository
import SwerveClient
import SwerveStatus

/// Where a model's labels (desired state) and its versions' lineage status are kept: the
/// repository folder itself (``RepositoryLabelStore``) or a `swerve.v1.Registry` service
/// (``RegistryLabelStore``). Writes are compare-and-set on the labels' generation.
public protocol LabelStore: Sendable {
    /// For messages: "repository /srv/models", "registry 10.0.0.5:8003".
    var description: String { get }
    /// The model's labels (generation 0 when it has none).
    func labels(of model: String) async throws -> ModelLabels
    /// Stores `labels` if `labels.generation` is still the stored one (or `force`); returns what
    /// was stored. Throws ``LabelStoreError`` `.conflict` when another writer came first.
    func setLabels(model: String, _ labels: ModelLabels, force: Bool) async throws -> ModelLabels
    /// Records a version's lifecycle status (with why) in its lineage.
    func setStatus(model: String, version: Int, _ status: Lineage.Status, reason: String) async throws
    /// The version's lineage status and the reason of its last change, nil when it has no record.
    func status(model: String, version: Int) async throws -> (status: Lineage.Status, reason: String?)?
}

/// A label store's refusal, normalized over the repository and the registry.
public struct LabelStoreError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The compare-and-set lost: the labels changed since they were read.
        case conflict
        /// The request is wrong (an unknown version, a rejected version, a bad share).
        case invalid
        /// The store could not be reached or failed.
        case unavailable
    }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
}

/// Labels and lineage in a repository folder the replicas read (`--repository DIR`), written
/// through ``ModelRegistry`` (the model's lock, temporary file, fsync, rename).
public struct RepositoryLabelStore: LabelStore {
    public let registry: ModelRegistry
    public init(root: URL) { registry = ModelRegistry(repository: root) }

    public var description: String { "repository \(registry.root.path)" }

    public func labels(of model: String) async throws -> ModelLabels {
        do {
            try ModelRepository.validateModelName(model)
            guard registry.repository.modelExists(model) else {
                throw LabelStoreError(.invalid, "no model \(model) in \(registry.root.path)")
            }
            return try registry.labels(of: model)
        } catch let e as StorageError { throw Self.map(e) }
    }

    public func setLabels(model: String, _ labels: ModelLabels, force: Bool) async throws -> ModelLabels {
        do {
            return try registry.setLabels(model: model, labels, force: force)
        } catch let e as StorageError { throw Self.map(e) }
    }

    public func setStatus(model: String, version: Int, _ status: Lineage.Status, reason: String) async throws {
        do {
            try registry.setStatus(status, model: model, version: version, reason: reason)
        } catch let e as StorageError { throw Self.map(e) }
    }

    public func status(model: String, version: Int) async throws -> (status: Lineage.Status, reason: String?)? {
        guard let l = try? registry.lineage(of: model, version: version) else { return nil }
        return (l.status, l.statusHistory.last?.reason)
    }

    static func map(_ e: StorageError) -> LabelStoreError {
        switch e.code {
        case .aborted: LabelStoreError(.conflict, e.message)
        case .invalidArgument, .notFound, .failedPrecondition, .invalidConfiguration: LabelStoreError(.invalid, e.message)
        default: LabelStoreError(.unavailable, e.message)
        }
    }
}

/// Maps a gRPC status from a registry call to a ``LabelStoreError``.
func labelStoreError(_ status: GRPCStatus, _ what: String) -> LabelStoreError {
    switch status.code {
    case .aborted: LabelStoreError(.conflict, "\(what): \(status.message)")
    case .invalidArgument, .notFound, .failedPrecondition, .outOfRange:
        LabelStoreError(.invalid, "\(what): \(status.code.canonicalName): \(status.message)")
    default: LabelStoreError(.unavailable, "\(what): \(status.code.canonicalName): \(status.message)")
    }
}

/// Labels and lineage kept by a `swerve.v1.Registry` service (`swerve registry`, `swerve
/// trainer`) that replicas follow (`--registry HOST:PORT`), through its GetLabels, SetLabels and
/// SetVersionStatus and GetVersionStatus calls.
public struct RegistryLabelStore: LabelStore {
    public let client: SwerveClient
    public let address: String
    public let timeout: Duration

    public init(client: SwerveClient, address: String, timeout: Duration = .seconds(10)) {
        self.client = client
        self.address = address
        self.timeout = timeout
    }

    public var description: String { "registry \(address)" }

    public func labels(of model: String) async throws -> ModelLabels {
        do {
            return Self.labels(try await client.getLabels(model: model, timeout: timeout))
        } catch let s as GRPCStatus { throw labelStoreError(s, "GetLabels \(model) from \(address)") }
    }

    public func setLabels(model: String, _ labels: ModelLabels, force: Bool) async throws -> ModelLabels {
        var r = RegistryLabels(modelName: model, stable: Int64(labels.stable ?? 0), canary: Int64(labels.canary ?? 0),
                               canaryPercent: labels.canaryPercent, previousStable: Int64(labels.previousStable ?? 0))
        r.generation = labels.generation
        r.reason = labels.reason ?? ""
        do {
            return Self.labels(try await client.setLabels(r, force: force, timeout: timeout))
        } catch let s as GRPCStatus { throw labelStoreError(s, "SetLabels \(model) at \(address)") }
    }

    public func setStatus(model: String, version: Int, _ status: Lineage.Status, reason: String) async throws {
        do {
            _ = try await client.setVersionStatus(model: model, version: Int64(version), status: status.rawValue, reason: reason, timeout: timeout)
        } catch let s as GRPCStatus { throw labelStoreError(s, "SetVersionStatus \(model) v\(version) at \(address)") }
    }

    /// The version's lineage status through GetVersionStatus; nil when the version does not
    /// exist (NOT_FOUND) or has no lineage record.
    public func status(model: String, version: Int) async throws -> (status: Lineage.Status, reason: String?)? {
        let r: VersionStatus
        do {
            r = try await client.getVersionStatus(model: model, version: Int64(version), timeout: timeout)
        } catch let s as GRPCStatus {
            if s.code == .notFound { return nil }
            throw labelStoreError(s, "GetVersionStatus \(model) v\(version) from \(address)")
        }
        guard let status = Lineage.Status(rawValue: r.status) else { return nil }
        return (status, r.reason.isEmpty ? nil : r.reason)
    }

    static func labels(_ r: RegistryLabels) -> ModelLabels {
        ModelLabels(stable: r.stable > 0 ? Int(r.stable) : nil, canary: r.canary > 0 ? Int(r.canary) : nil, canaryPercent: r.canaryPercent,
                    previousStable: r.previousStable > 0 ? Int(r.previousStable) : nil, generation: r.generation,
                    reason: r.reason.isEmpty ? nil : r.reason)
    }
}
