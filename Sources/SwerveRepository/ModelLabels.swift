import Foundation

/// A model's version labels: desired state kept beside its versions in
/// `<repo>/<model>/labels.json`, so every replica that reads the repository (or follows it over
/// gRPC) converges on the same routing, also after a restart.
///
/// - `stable` answers requests that name no version; `canary` takes `canaryPercent` of them,
///   chosen by a hash of the request's route key, so one input always meets the same version.
/// - `previousStable` is the stable version before the last promotion. It stays loaded until the
///   next promotion, so a rollback is a label move, not a load.
/// - `generation` grows by one with every change; writers compare-and-set on it.
///
/// A labelled version is loaded whatever the version policy says (`wantedVersions`). A replica
/// routes to a label only once the version is ready there (`ModelManager`).
public struct ModelLabels: Codable, Sendable, Equatable {
    public var stable: Int?
    public var canary: Int?
    /// 0...100: the share of unversioned requests the canary answers.
    public var canaryPercent: Double
    public var previousStable: Int?
    public var generation: UInt64
    /// Why the last change was made, and when.
    public var reason: String?
    public var updated: Date?

    public init(stable: Int? = nil, canary: Int? = nil, canaryPercent: Double = 0, previousStable: Int? = nil,
                generation: UInt64 = 0, reason: String? = nil, updated: Date? = nil) {
        self.stable = stable
        self.canary = canary
        self.canaryPercent = canaryPercent
        self.previousStable = previousStable
        self.generation = generation
        self.reason = reason
        self.updated = updated
    }

    enum CodingKeys: String, CodingKey {
        case stable, canary, canaryPercent = "canary_percent", previousStable = "previous_stable", generation, reason, updated
    }

    /// The label names a request's `model_version` may use.
    public static let stableName = "stable"
    public static let canaryName = "canary"

    /// The most bytes of a labels.json read.
    public static let maxFileBytes = 64 << 10

    /// The versions the labels name (stable, canary, previous stable), ascending, without repeats.
    public var labelledVersions: [Int] {
        Array(Set([stable, canary, previousStable].compactMap { $0 })).sorted()
    }

    /// The version a label name points at (nil for an unknown name or an unset label).
    public func version(named label: String) -> Int? {
        switch label {
        case Self.stableName: stable
        case Self.canaryName: canary
        default: nil
        }
    }

    /// Why these labels cannot be stored, or nil. `available` are the model's complete versions.
    public func problem(available: [Int]) -> String? {
        if !(canaryPercent >= 0 && canaryPercent <= 100) { return "canary_percent must be within 0...100, not \(canaryPercent)" }
        for (name, v) in [("stable", stable), ("canary", canary), ("previous_stable", previousStable)] {
            guard let v else { continue }
            if v <= 0 { return "\(name) must be a positive version, not \(v)" }
            if !available.contains(v) { return "\(name) names version \(v), which is not a complete version of the model (versions: \(available.map(String.init).joined(separator: ", ")))" }
        }
        if canary != nil, canary == stable { return "canary and stable both name version \(canary!)" }
        if canary == nil && canaryPercent > 0 { return "canary_percent \(canaryPercent) without a canary version" }
        if canary != nil && stable == nil { return "a canary needs a stable version to compare with" }
        return nil
    }

    public func jsonData() throws -> Data { try RecordJSON.encoder().encode(self) }

    public static func decode(_ data: Data) throws -> ModelLabels {
        let l = try RecordJSON.decoder().decode(ModelLabels.self, from: data)
        guard l.canaryPercent.isFinite else { throw StorageError(.corrupt, "labels.json: canary_percent is not a number") }
        return l
    }

    /// The versions a replica loads and keeps: those `policy` selects out of `available`, plus
    /// every labelled version present, highest first. The one rule shared by the server, the
    /// registry's Watch and a follower.
    public static func wantedVersions(policy: VersionPolicy, labels: ModelLabels?, available: [Int]) -> [Int] {
        var wanted = Set(policy.select(from: available))
        if let labels { wanted.formUnion(labels.labelledVersions.filter(available.contains)) }
        return wanted.sorted(by: >)
    }
}

extension ModelRepository {
    /// The labels file of a model.
    public static let labelsFileName = "labels.json"

    public func labelsFile(_ model: String) -> URL { modelDirectory(model).appendingPathComponent(Self.labelsFileName) }

    /// The model's labels, nil when it has no labels.json. Throws when the file is unreadable,
    /// too large or does not decode (a broken labels file is a problem to show, not "no labels").
    public func labels(of model: String) throws -> ModelLabels? {
        guard let data = try readLabels(model) else { return nil }
        do {
            return try ModelLabels.decode(data)
        } catch let e as StorageError {
            throw e
        } catch {
            throw StorageError(.corrupt, "\(labelsFile(model).path) is not a labels record: \(error)")
        }
    }

    func readLabels(_ model: String) throws(StorageError) -> Data? {
        try DurableFiles.readIfPresent(labelsFile(model).path, limit: ModelLabels.maxFileBytes, what: Self.labelsFileName)
    }

    /// The versions of `model` a replica loads (version policy plus labels), highest first.
    public func wantedVersions(of model: String) throws -> [Int] {
        ModelLabels.wantedVersions(policy: try settings(of: model).versionPolicy, labels: try labels(of: model),
                                   available: versions(of: model))
    }
}

extension ModelRegistry {
    /// The model's labels (an empty record with generation 0 when it has none).
    public func labels(of model: String) throws -> ModelLabels {
        try ModelRepository.validateModelName(model)
        return try repository.labels(of: model) ?? ModelLabels()
    }

    /// Whether a model's traffic is steered by labels (it has a stable label): then the trainer
    /// leaves a version that passed its gates `validated` for a rollout to take it to stable.
    public func isLabelManaged(_ model: String) -> Bool {
        ((try? repository.labels(of: model)) ?? nil)?.stable != nil
    }

    /// Replaces the model's labels with `new` under the model's lock, atomically (temporary file,
    /// fsync, rename). Unless `force`, `new.generation` must equal the stored generation (a
    /// compare-and-set: a writer that read older labels gets `aborted` and reads again). The stored
    /// record gets the next generation, the time, and `previousStable` = the old stable when
    /// stable changes (otherwise the stored one, unless `new` names another that exists).
    /// Returns what was stored; an unchanged request stores nothing and returns the current labels.
    @discardableResult
    public func setLabels(model: String, _ new: ModelLabels, force: Bool = false) throws -> ModelLabels {
        try ModelRepository.validateModelName(model)
        return try withModelLock(model) {
            let current = try repository.labels(of: model) ?? ModelLabels()
            if !force && new.generation != current.generation {
                throw StorageError(.aborted, "the labels of \(model) changed (generation \(current.generation), the caller read \(new.generation)); read them again")
            }
            var next = new
            next.previousStable = current.stable != nil && current.stable != new.stable ? current.stable
                : (new.previousStable ?? current.previousStable)
            if next.previousStable == next.stable { next.previousStable = nil }
            let available = versions(of: model)
            if let p = next.previousStable, !available.contains(p) { next.previousStable = nil }
            if let why = next.problem(available: available) { throw StorageError(.invalidArgument, "labels of \(model): \(why)") }
            if let rejected = next.labelledVersions.first(where: { (try? lineage(of: model, version: $0))?.status == .rejected }) {
                throw StorageError(.failedPrecondition, "labels of \(model): version \(rejected) was rejected by its gates")
            }
            if next.stable == current.stable && next.canary == current.canary && next.canaryPercent == current.canaryPercent
                && next.previousStable == current.previousStable && current.generation > 0 {
                return current
            }
            next.generation = current.generation + 1
            next.updated = Date()
            try DurableFiles.replace(next.jsonData(), at: repository.labelsFile(model).path)
            return next
        }
    }
}
