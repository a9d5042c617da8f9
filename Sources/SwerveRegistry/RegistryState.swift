import Foundation
import SwerveProto
import SwerveRepository

/// What the registry tells followers about one model: its config.json, its labels and the
/// versions a replica must hold (the version policy's plus the labelled ones, through
/// `ModelLabels.wantedVersions`), each with its lineage status and files.
public struct RegistryScanner: Sendable {
    public let repository: ModelRepository
    public let files: VersionFiles

    public init(repository: ModelRepository, files: VersionFiles) {
        self.repository = repository
        self.files = files
    }

    /// The state of `model` now. Throws when its config.json or labels.json cannot be read or
    /// parsed, or a wanted version's folder breaks a limit: the caller keeps the last good state.
    public func state(of model: String) throws -> RegistryModel {
        try ModelRepository.validateModelName(model)
        let snapshot = repository.snapshot(of: model)
        if let p = snapshot.configProblem { throw RegistryError("\(model): \(p)") }
        if let p = snapshot.labelsProblem { throw RegistryError("\(model): \(p)") }
        let settings = try repository.settings(of: model)
        let labels = try repository.labels(of: model)
        let wanted = ModelLabels.wantedVersions(policy: settings.versionPolicy, labels: labels, available: snapshot.versions).sorted()
        if wanted.count > files.limits.maxVersionsPerModel {
            throw RegistryError("\(model) wants \(wanted.count) versions, more than \(files.limits.maxVersionsPerModel)")
        }
        var state = RegistryModel(modelName: model)
        state.config = snapshot.config.map { Array($0) } ?? []
        state.labels = Self.wire(labels ?? ModelLabels(), model: model)
        for v in wanted {
            let status = (try? repository.lineage(of: model, version: v))?.status.rawValue ?? ""
            let listed = try files.list(repository.versionDirectory(model, version: v))
            state.versions.append(RegistryVersion(version: Int64(v), status: status, files: listed))
        }
        return state
    }

    /// Labels as they travel: versions as numbers (0 = none), the time as ISO 8601.
    public static func wire(_ l: ModelLabels, model: String) -> RegistryLabels {
        RegistryLabels(
            modelName: model, stable: Int64(l.stable ?? 0), canary: Int64(l.canary ?? 0), canaryPercent: l.canaryPercent,
            previousStable: Int64(l.previousStable ?? 0), generation: l.generation, reason: l.reason ?? "",
            updated: l.updated.map { Self.iso8601.string(from: $0) } ?? "")
    }

    /// Labels as labels.json holds them. Versions ≤ 0 become "no label" only when 0; a negative
    /// one is kept, so `ModelLabels.problem` refuses it.
    public static func stored(_ w: RegistryLabels) -> ModelLabels {
        ModelLabels(
            stable: w.stable == 0 ? nil : Int(w.stable), canary: w.canary == 0 ? nil : Int(w.canary), canaryPercent: w.canaryPercent,
            previousStable: w.previousStable == 0 ? nil : Int(w.previousStable), generation: w.generation,
            reason: w.reason.isEmpty ? nil : w.reason, updated: w.updated.isEmpty ? nil : Self.iso8601.date(from: w.updated))
    }

    /// A new formatter per use: cheap next to a scan, and never shared between threads.
    static var iso8601: ISO8601DateFormatter { ISO8601DateFormatter() }
}
