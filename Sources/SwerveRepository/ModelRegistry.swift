import Foundation

/// Reads and curates a model repository: which versions exist, their lineage, which one serves.
///
/// What serves is decided by `<repo>/<model>/config.json`'s `version_policy`; `promote` and
/// `rollback` rewrite it to `{"specific": {"versions": [v]}}` (atomically, keeping every other
/// key) and the server picks it up on its next poll or RepositoryModelLoad. The statuses in each
/// version's metadata.json follow, each file replaced atomically. config.json is written first and
/// is the authority: a crash between the two leaves a stale status, never a wrong served version.
///
/// Rejected candidates never enter the served tree: their lineage goes to
/// `<repo>/.rejected/<model>/<timestamp>-<id>.json` (a hidden folder at the repository root,
/// which the server skips, and which does not create a model folder for a model that never
/// published a version).
public struct ModelRegistry: Sendable {
    /// The repository whose layout this registry curates.
    public let repository: ModelRepository
    /// The repository root.
    public var root: URL { repository.root }

    public init(repository: URL) {
        self.repository = ModelRepository(root: repository)
    }

    /// One version and its lineage record (nil when metadata.json is missing or unreadable).
    public struct VersionEntry: Sendable, Equatable {
        public var version: Int
        public var lineage: Lineage?
        /// Whether the model's version policy (config.json, or the default when there is none)
        /// serves this version.
        public var isServed: Bool
    }

    /// A rejected candidate's record, kept outside the served tree.
    public struct RejectedRecord: Sendable {
        public var file: URL
        public var lineage: Lineage
    }

    /// Model folder names, sorted; empty when the repository folder does not exist yet.
    public func modelNames() -> [String] { (try? repository.modelNames()) ?? [] }

    /// Complete versions of `model`, ascending: exactly the versions the server can see.
    public func versions(of model: String) -> [Int] { repository.versions(of: model) }

    /// The lineage record of a version.
    public func lineage(of model: String, version: Int) throws -> Lineage {
        try repository.lineage(of: model, version: version)
    }

    /// Every complete version with its lineage and whether the version policy serves it.
    public func entries(of model: String) -> [VersionEntry] {
        let served = Set((try? repository.servedVersions(of: model)) ?? [])
        return versions(of: model).map { v in
            VersionEntry(version: v, lineage: try? lineage(of: model, version: v), isServed: served.contains(v))
        }
    }

    /// The reference statistics stored beside a version, if any.
    public func referenceStatistics(of model: String, version: Int) -> ReferenceStatistics? {
        repository.referenceStatistics(of: model, version: version)
    }

    /// The version serving now: the stable label when the model has one, else the highest version
    /// the model's version policy serves (the same rule, and the same default policy, as the server's).
    public func servingVersion(of model: String) throws -> Int? {
        if let stable = try repository.labels(of: model)?.stable { return stable }
        return try repository.servedVersions(of: model).first
    }

    /// The lineage metrics of the version serving now, for the no-regression gate.
    public func servingMetrics(of model: String) throws -> (version: Int, metrics: [String: Double], sliceMetrics: [String: [String: Double]])? {
        guard let v = try servingVersion(of: model), let l = try? lineage(of: model, version: v) else { return nil }
        return (v, l.metrics, l.sliceMetrics)
    }

    /// Marks a version `validated` (it passed its gates) or any other status, atomically.
    public func setStatus(_ status: Lineage.Status, model: String, version: Int, reason: String? = nil) throws {
        try withModelLock(model) { try updateStatus(model, version, to: status, reason: reason) }
    }

    /// Makes `version` the only serving version: config.json's policy becomes
    /// `{"specific": {"versions": [version]}}`, `version` becomes `serving` and the versions that
    /// were serving become `validated`.
    ///
    /// A label-managed model (one with a stable label) has its stable label moved instead, and the
    /// version policy is left alone: replicas route by the labels.
    public func promote(model: String, version: Int, reason: String? = nil) throws {
        if isLabelManaged(model) {
            return try moveStable(model: model, to: version, previousBecome: .validated, reason: reason ?? "promoted")
        }
        try switchServing(model: model, to: version, previousBecome: .validated, reason: reason ?? "promoted")
    }

    /// Moves the stable label to `version` (clearing a canary on it), marking it `serving` and the
    /// old stable `previousBecome`.
    private func moveStable(model: String, to version: Int, previousBecome: Lineage.Status, reason: String) throws {
        var labels = try self.labels(of: model)
        let old = labels.stable
        labels.stable = version
        if labels.canary == version { labels.canary = nil; labels.canaryPercent = 0 }
        labels.reason = reason
        try setLabels(model: model, labels)
        try setStatus(.serving, model: model, version: version, reason: reason)
        if let old, old != version { try setStatus(previousBecome, model: model, version: old, reason: reason) }
    }

    /// Puts `version` (an earlier one) back in service; the versions serving now become
    /// `rolled_back`.
    /// A label-managed model has its stable label moved back instead.
    public func rollback(model: String, to version: Int, reason: String? = nil) throws {
        if isLabelManaged(model) {
            return try moveStable(model: model, to: version, previousBecome: .rolledBack, reason: reason ?? "rollback to \(version)")
        }
        try switchServing(model: model, to: version, previousBecome: .rolledBack, reason: reason ?? "rollback to \(version)")
    }

    private func switchServing(model: String, to version: Int, previousBecome: Lineage.Status, reason: String) throws {
        try ModelRepository.validateModelName(model)
        try withModelLock(model) {
            guard versions(of: model).contains(version) else {
                throw StorageError(.notFound, "\(model) has no complete version \(version)")
            }
            let previous = Set(try repository.servedVersions(of: model))
                .union(entries(of: model).filter { $0.lineage?.status == .serving }.map(\.version))
                .subtracting([version])
            try repository.setVersionPolicy(.specific([version]), of: model)
            try updateStatus(model, version, to: .serving, reason: reason)
            for v in previous.sorted() where versions(of: model).contains(v) {
                try updateStatus(model, v, to: previousBecome, reason: reason)
            }
        }
    }

    /// Records a rejected candidate outside the served tree and returns the record's file.
    /// The lineage is stored with status `rejected` and `reasons` appended to its rejection reasons.
    @discardableResult
    public func recordRejected(model: String, lineage: Lineage, reasons: [String]) throws -> URL {
        try ModelRepository.validateModelName(model)
        var record = lineage
        record.model = model
        record.rejectionReasons += reasons
        record.transition(to: .rejected, reason: reasons.joined(separator: "; "))
        let dir = repository.rejectedDirectory(model).path
        try DurableFiles.makeDirectory(dir)
        let file = dir + "/" + RecordJSON.fileTimestamp() + "-" + RecordJSON.shortID() + ".json"
        try DurableFiles.replace(record.jsonData(), at: file)
        return URL(fileURLWithPath: file)
    }

    /// Rejected candidates of `model`, oldest first.
    public func rejected(model: String) -> [RejectedRecord] {
        let dir = repository.rejectedDirectory(model)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [])
            .filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.sorted()
        return names.compactMap { name in
            let url = dir.appendingPathComponent(name)
            guard let data = DurableFiles.read(url.path, limit: ModelRepository.maxMetadataBytes), let l = try? Lineage.decode(data) else { return nil }
            return RejectedRecord(file: url, lineage: l)
        }
    }

    // MARK: Internals

    func withModelLock<T>(_ model: String, _ body: () throws -> T) throws -> T {
        guard repository.modelExists(model) else {
            throw StorageError(.notFound, "no model folder \(repository.modelDirectory(model).path)")
        }
        return try FileLock.withLock(repository.lockFile(model).path, body)
    }

    private func updateStatus(_ model: String, _ version: Int, to status: Lineage.Status, reason: String?) throws {
        let path = repository.metadataFile(model, version: version).path
        var record = (try? lineage(of: model, version: version))
            ?? Lineage(source: "unknown", origin: Lineage.Origin(user: "unknown", host: "unknown"))
        record.model = model
        record.version = version
        guard record.status != status else { return }
        record.transition(to: status, reason: reason)
        try DurableFiles.replace(record.jsonData(), at: path)
    }
}
