import Foundation
import SwerveProto
import SwerveRepository
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
