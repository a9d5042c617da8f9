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
    /// The repository root.
    public let root: URL

    public init(repository: URL) {
        root = repository.standardizedFileURL
    }

    /// One version and its lineage record (nil when metadata.json is missing or unreadable).
    public struct VersionEntry: Sendable, Equatable {
        public var version: Int
        public var lineage: Lineage?
        /// Whether config.json's version policy names this version (nil: no specific policy, so
        /// the server's default of the latest version applies).
        public var isInPolicy: Bool?
    }

    /// A rejected candidate's record, kept outside the served tree.
    public struct RejectedRecord: Sendable {
        public var file: URL
        public var lineage: Lineage
    }

    /// The same rule as the serving side: one path component, not hidden.
    public static func isValidModelName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("/") && name != "." && name != ".." && !name.hasPrefix(".")
    }

    func modelDir(_ model: String) -> String { root.appendingPathComponent(model).path }
    func versionDir(_ model: String, _ version: Int) -> String { modelDir(model) + "/" + String(version) }
    func configPath(_ model: String) -> String { modelDir(model) + "/config.json" }

    /// Model folder names, sorted (hidden folders skipped, as the server does).
    public func modelNames() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return entries.filter { Self.isValidModelName($0) && DurableFiles.isDirectory(root.path + "/" + $0) }.sorted()
    }

    /// Complete versions of `model` (positive-integer folders holding model.onnx), ascending:
    /// exactly the versions the server can see.
    public func versions(of model: String) -> [Int] {
        ModelPublisher.allVersionFolders(in: modelDir(model)).filter {
            FileManager.default.fileExists(atPath: versionDir(model, $0) + "/" + ModelPublisher.modelFileName)
        }.sorted()
    }

    /// The lineage record of a version.
    public func lineage(of model: String, version: Int) throws -> Lineage {
        let path = versionDir(model, version) + "/" + ModelPublisher.metadataFileName
        guard let data = DurableFiles.read(path) else { throw StorageError(.notFound, "\(path) does not exist") }
        do {
            return try Lineage.decode(data)
        } catch {
            throw StorageError(.corrupt, "\(path) is not a lineage record", cause: error)
        }
    }

    /// Every complete version with its lineage and whether the policy names it.
    public func entries(of model: String) -> [VersionEntry] {
        let policy = try? specificVersions(of: model)
        return versions(of: model).map { v in
            VersionEntry(version: v, lineage: try? lineage(of: model, version: v), isInPolicy: policy.map { $0.contains(v) })
        }
    }

    /// The reference statistics stored beside a version, if any.
    public func referenceStatistics(of model: String, version: Int) -> ReferenceStatistics? {
        DurableFiles.read(versionDir(model, version) + "/" + ModelPublisher.referenceStatisticsFileName)
            .flatMap { try? ReferenceStatistics.decode($0) }
    }

    /// The versions config.json's `{"specific": {"versions": [...]}}` policy names, or nil when
    /// config.json is absent or has another policy.
    public func specificVersions(of model: String) throws -> [Int]? {
        guard let config = try readConfig(model),
              let policy = config["version_policy"] as? [String: Any],
              let specific = policy["specific"] as? [String: Any],
              let versions = specific["versions"] as? [Any] else { return nil }
        return versions.compactMap { ($0 as? NSNumber)?.intValue }
    }

    /// The version serving now: the one the specific policy names, else (no such policy) the
    /// latest version, which is the server's default policy.
    public func servingVersion(of model: String) throws -> Int? {
        if let specific = try specificVersions(of: model) { return specific.max() }
        return versions(of: model).last
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
    public func promote(model: String, version: Int, reason: String? = nil) throws {
        try switchServing(model: model, to: version, previousBecome: .validated, reason: reason ?? "promoted")
    }

    /// Puts `version` (an earlier one) back in service; the versions serving now become
    /// `rolled_back`.
    public func rollback(model: String, to version: Int, reason: String? = nil) throws {
        try switchServing(model: model, to: version, previousBecome: .rolledBack, reason: reason ?? "rollback to \(version)")
    }

    private func switchServing(model: String, to version: Int, previousBecome: Lineage.Status, reason: String) throws {
        guard Self.isValidModelName(model) else { throw StorageError(.invalidArgument, "invalid model name '\(model)'") }
        try withModelLock(model) {
            guard versions(of: model).contains(version) else {
                throw StorageError(.notFound, "\(model) has no complete version \(version)")
            }
            let previous = Set((try specificVersions(of: model)) ?? versions(of: model).suffix(1))
                .union(entries(of: model).filter { $0.lineage?.status == .serving }.map(\.version))
                .subtracting([version])
            var config = try readConfig(model) ?? [:]
            config["version_policy"] = ["specific": ["versions": [version]]]
            let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            try DurableFiles.replace(data, at: configPath(model))
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
        guard Self.isValidModelName(model) else { throw StorageError(.invalidArgument, "invalid model name '\(model)'") }
        var record = lineage
        record.model = model
        record.rejectionReasons += reasons
        record.transition(to: .rejected, reason: reasons.joined(separator: "; "))
        let dir = root.appendingPathComponent(".rejected").appendingPathComponent(model).path
        try DurableFiles.makeDirectory(dir)
        let file = dir + "/" + RecordJSON.fileTimestamp() + "-" + RecordJSON.shortID() + ".json"
        try DurableFiles.replace(record.jsonData(), at: file)
        return URL(fileURLWithPath: file)
    }

    /// Rejected candidates of `model`, oldest first.
    public func rejected(model: String) -> [RejectedRecord] {
        let dir = root.appendingPathComponent(".rejected").appendingPathComponent(model)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [])
            .filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.sorted()
        return names.compactMap { name in
            let url = dir.appendingPathComponent(name)
            guard let data = DurableFiles.read(url.path), let l = try? Lineage.decode(data) else { return nil }
            return RejectedRecord(file: url, lineage: l)
        }
    }

    // MARK: Internals

    private func withModelLock<T>(_ model: String, _ body: () throws -> T) throws -> T {
        guard DurableFiles.isDirectory(modelDir(model)) else { throw StorageError(.notFound, "no model folder \(modelDir(model))") }
        return try FileLock.withLock(modelDir(model) + "/" + ModelPublisher.lockFileName, body)
    }

    private func updateStatus(_ model: String, _ version: Int, to status: Lineage.Status, reason: String?) throws {
        let path = versionDir(model, version) + "/" + ModelPublisher.metadataFileName
        var record = (try? lineage(of: model, version: version))
            ?? Lineage(source: "unknown", origin: Lineage.Origin(user: "unknown", host: "unknown"))
        record.model = model
        record.version = version
        guard record.status != status else { return }
        record.transition(to: status, reason: reason)
        try DurableFiles.replace(record.jsonData(), at: path)
    }

    private func readConfig(_ model: String) throws -> [String: Any]? {
        guard let data = DurableFiles.read(configPath(model)) else { return nil }
        guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw StorageError(.corrupt, "\(configPath(model)) is not a JSON object")
        }
        return obj
    }
}
