import Foundation

/// The on-disk model repository, in the layout Triton and TF Serving users know. This type is the
/// one definition of that layout; the server reads it, the trainer and `swerve publish` write it
/// (through `ModelPublisher` and `ModelRegistry`, which use the names and paths defined here).
///
/// ```
/// <repo>/<model>/config.json                    ModelSettings (optional; defaults when absent)
/// <repo>/<model>/<version>/model.onnx           the model
/// <repo>/<model>/<version>/metadata.json        its lineage record (Lineage)
/// <repo>/<model>/<version>/reference_stats.json its training data's distribution (optional)
/// <repo>/<model>/.publish.lock                  the model's lock (publishes, status changes)
/// <repo>/<model>/.tmp-<uuid>/                   a version being published
/// <repo>/.rejected/<model>/<time>-<id>.json     rejected candidates' lineage
/// <repo>/.quarantine/<model>/                   data batches that failed validation
/// <repo>/.trainer/                              the training service's state, by default
/// ```
///
/// Version folders are positive integers written without leading zeros; anything else, such as a
/// half-written `.tmp-*` folder, is ignored, so a publisher that writes to a temporary folder and
/// renames it is never seen half done. A version is complete once its folder holds `model.onnx`.
/// Names starting with "." are never models.
public struct ModelRepository: Sendable {
    /// The repository's root folder.
    public let root: URL

    /// A repository rooted at `path` (which need not exist yet).
    public init(path: String) {
        self.init(root: URL(fileURLWithPath: path, isDirectory: true))
    }

    /// A repository rooted at `root` (which need not exist yet).
    public init(root: URL) {
        self.root = root.standardizedFileURL
    }

    // MARK: Names

    /// A model's settings file, in the model's folder.
    public static let configFileName = "config.json"
    /// The model file inside a version folder.
    public static let modelFileName = "model.onnx"
    /// Every name a version's model file may have: an ONNX model, or a native XGBoost JSON or
    /// LightGBM text model (served as the library's `predict` answers). One per version folder.
    public static let modelFileNames = [modelFileName, "model.xgb.json", "model.lgb.txt"]
    /// The lineage record inside a version folder.
    public static let metadataFileName = "metadata.json"
    /// The reference statistics inside a version folder.
    public static let referenceStatisticsFileName = "reference_stats.json"
    /// The lock file in a model's folder that publishers and registry changes take.
    static let lockFileName = ".publish.lock"
    /// The prefix of a version folder being staged by a publisher.
    static let temporaryPrefix = ".tmp-"
    /// The hidden folder at the root where rejected candidates' records go.
    static let rejectedFolderName = ".rejected"
    /// The hidden folder at the root where batches that failed validation go.
    static let quarantineFolderName = ".quarantine"
    /// The hidden folder at the root where the training service keeps its state by default.
    static let trainerStateFolderName = ".trainer"

    // MARK: Size bounds

    /// The most bytes of a config.json read: 16 MiB (declared static-table domains make the
    /// largest ones; a few KiB is usual). A larger one fails the model's load, naming the limit.
    public static let maxConfigBytes = 16 << 20
    /// The most bytes of a metadata.json (lineage record) read: 16 MiB.
    public static let maxMetadataBytes = 16 << 20
    /// The most bytes of a reference_stats.json read: 64 MiB.
    public static let maxReferenceStatisticsBytes = 64 << 20

    /// The longest model name, in UTF-8 bytes: a folder name's limit on Linux (NAME_MAX).
    public static let maxModelNameBytes = 255

    /// Why `name` is not a model name, or nil when it is one.
    ///
    /// A model name is a plain folder name inside the repository: not empty, not "." or "..",
    /// not starting with "." (the repository keeps its own state in hidden entries: `.trainer`,
    /// `.rejected`, `.tmp-*`), no "/" or "\\" (a path, not a name), no NUL or other control
    /// character, at most `maxModelNameBytes` bytes. Every reader and writer of the repository,
    /// and every RPC that takes a model name, checks names with this one function, so a name
    /// that could lead outside a model's own folder never reaches the file system.
    public static func modelNameProblem(_ name: String) -> String? {
        let bytes = name.utf8
        if bytes.isEmpty { return "it is empty" }
        if bytes.count > maxModelNameBytes { return "it is \(bytes.count) bytes long, more than \(maxModelNameBytes)" }
        if name == "." || name == ".." { return "'\(name)' is not a folder name" }
        for b in bytes {
            if b == UInt8(ascii: "/") || b == UInt8(ascii: "\\") { return "it contains '\(Character(UnicodeScalar(b)))' (a path, not a folder name)" }
            if b < 0x20 || b == 0x7F { return "it contains a control character (byte \(b))" }
        }
        if bytes.first == UInt8(ascii: ".") { return "names starting with '.' are reserved for the repository's own hidden entries" }
        return nil
    }

    /// Whether `name` is a model name (see `modelNameProblem`).
    public static func isValidModelName(_ name: String) -> Bool { modelNameProblem(name) == nil }

    /// Throws `invalidArgument` (INVALID_ARGUMENT over gRPC) naming the problem when `name` is not
    /// a model name (see `modelNameProblem`). The name is quoted printable and shortened, so a
    /// hostile name cannot fill a log line or a status message.
    public static func validateModelName(_ name: String) throws(StorageError) {
        if let problem = modelNameProblem(name) {
            throw StorageError(.invalidArgument, "invalid model name \(quotedName(name)): \(problem); a model name is one plain folder name inside the repository")
        }
    }

    /// `name` for messages: quoted, control characters escaped, at most 64 characters of it.
    public static func quotedName(_ name: String) -> String {
        var out = "'"
        for (i, scalar) in name.unicodeScalars.enumerated() {
            if i == 64 { out += "…' (\(name.utf8.count) bytes)"; return out }
            if scalar.value < 0x20 || scalar.value == 0x7F { out += "\\u{\(String(scalar.value, radix: 16))}" } else { out.unicodeScalars.append(scalar) }
        }
        return out + "'"
    }

    /// The version number a folder name stands for: a positive integer written without leading
    /// zeros or sign ("7", not "07" or "+7"); nil for anything else.
    public static func versionNumber(folderName name: String) -> Int? {
        guard let v = Int(name), v > 0, String(v) == name else { return nil }
        return v
    }

    // MARK: Paths

    /// `<repo>/<model>`.
    public func modelDirectory(_ model: String) -> URL { root.appendingPathComponent(model, isDirectory: true) }
    /// `<repo>/<model>/<version>`.
    public func versionDirectory(_ model: String, version: Int) -> URL {
        modelDirectory(model).appendingPathComponent(String(version), isDirectory: true)
    }
    /// `<repo>/<model>/config.json`.
    public func configFile(_ model: String) -> URL { modelDirectory(model).appendingPathComponent(Self.configFileName) }
    /// `<repo>/<model>/<version>/model.onnx`, or the version's native model file
    /// (`modelFileNames`) when it has one instead.
    public func modelFile(_ model: String, version: Int) -> URL {
        let dir = versionDirectory(model, version: version)
        for name in Self.modelFileNames where FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path) {
            return dir.appendingPathComponent(name)
        }
        return dir.appendingPathComponent(Self.modelFileName)
    }

    /// The model files (`modelFileNames`) present in a version folder.
    public static func modelFilesPresent(in versionDirectory: URL) -> [String] {
        modelFileNames.filter { FileManager.default.fileExists(atPath: versionDirectory.appendingPathComponent($0).path) }
    }
    /// `<repo>/<model>/<version>/metadata.json`.
    public func metadataFile(_ model: String, version: Int) -> URL {
        versionDirectory(model, version: version).appendingPathComponent(Self.metadataFileName)
    }
    /// `<repo>/<model>/<version>/reference_stats.json`.
    public func referenceStatisticsFile(_ model: String, version: Int) -> URL {
        versionDirectory(model, version: version).appendingPathComponent(Self.referenceStatisticsFileName)
    }
    /// `<repo>/<model>/.publish.lock`.
    func lockFile(_ model: String) -> URL { modelDirectory(model).appendingPathComponent(Self.lockFileName) }
    /// `<repo>/.rejected/<model>`.
    func rejectedDirectory(_ model: String) -> URL {
        root.appendingPathComponent(Self.rejectedFolderName, isDirectory: true).appendingPathComponent(model, isDirectory: true)
    }
    /// `<repo>/.quarantine/<model>`.
    public func quarantineDirectory(_ model: String) -> URL {
        root.appendingPathComponent(Self.quarantineFolderName, isDirectory: true).appendingPathComponent(model, isDirectory: true)
    }
    /// `<repo>/.trainer`: where `swerve trainer` keeps its state unless told otherwise.
    public var trainerStateDirectory: URL { root.appendingPathComponent(Self.trainerStateFolderName, isDirectory: true) }

    // MARK: Reading

    /// Model folder names, sorted. Hidden entries and files are skipped. Throws when the root is
    /// missing or not a folder.
    public func modelNames() throws -> [String] {
        guard DurableFiles.isDirectory(root.path) else {
            throw StorageError(.failedPrecondition, "model repository \(root.path) does not exist or is not a directory")
        }
        return try FileManager.default.contentsOfDirectory(atPath: root.path)
            .filter { Self.isValidModelName($0) && DurableFiles.isDirectory(root.path + "/" + $0) }
            .sorted()
    }

    /// Whether `name` is a valid model name with a folder in the repository.
    public func modelExists(_ name: String) -> Bool {
        Self.isValidModelName(name) && DurableFiles.isDirectory(modelDirectory(name).path)
    }

    /// Complete versions of a model, ascending: version folders holding a model file
    /// (`modelFileNames`).
    public func versions(of model: String) -> [Int] {
        versionFolders(of: model).filter {
            FileManager.default.fileExists(atPath: modelFile(model, version: $0).path)
        }.sorted()
    }

    /// Every version folder, complete or not, so that a publisher never reuses a number.
    func versionFolders(of model: String) -> [Int] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: modelDirectory(model).path)) ?? []
        return entries.compactMap(Self.versionNumber(folderName:))
    }

    /// What of a model's folder decides what is served: its complete versions and its
    /// config.json's bytes (nil without one). Two equal snapshots serve the same versions the same
    /// way, so a watcher reloads a model exactly when its snapshot changes; a publisher that adds
    /// a version and then rewrites the version policy changes it twice.
    public struct Snapshot: Sendable, Equatable {
        public var versions: [Int]
        public var config: Data?
        /// Why config.json could not be read (not a regular file, too large), or nil.
        public var configProblem: String?
        /// labels.json's bytes (nil without one), or why it could not be read.
        public var labels: Data?
        public var labelsProblem: String?

        public init(versions: [Int], config: Data?, configProblem: String? = nil, labels: Data? = nil, labelsProblem: String? = nil) {
            self.versions = versions
            self.config = config
            self.configProblem = configProblem
            self.labels = labels
            self.labelsProblem = labelsProblem
        }
    }

    /// The model's snapshot now. Never blocks: a config.json that is a FIFO is a problem, not a wait.
    public func snapshot(of model: String) -> Snapshot {
        var s = Snapshot(versions: versions(of: model), config: nil)
        do { s.config = try readConfig(model) } catch { s.configProblem = error.message }
        do { s.labels = try readLabels(model) } catch { s.labelsProblem = error.message }
        return s
    }

    /// config.json's bytes, nil when there is none; throws when it is not a regular file or holds
    /// more than `maxConfigBytes`.
    private func readConfig(_ model: String) throws(StorageError) -> Data? {
        try DurableFiles.readIfPresent(configFile(model).path, limit: Self.maxConfigBytes, what: Self.configFileName)
    }

    /// The model's settings from config.json, or the defaults when there is none. Throws
    /// `invalidConfiguration` for a config.json that does not parse or breaks a rule, or that is
    /// not a regular file or above `maxConfigBytes`.
    public func settings(of model: String) throws -> ModelSettings {
        let data: Data?
        do {
            data = try readConfig(model)
        } catch {
            // The messages of config.json's rules start with "config.json"; so does this one.
            let why = error.message.replacingOccurrences(of: "\(Self.configFileName) \(configFile(model).path)", with: Self.configFileName)
            throw StorageError(.invalidConfiguration, why)
        }
        guard let data else { return ModelSettings() }
        return try ModelSettings(json: data)
    }

    /// The versions of `model` its version policy serves, highest first.
    public func servedVersions(of model: String) throws -> [Int] {
        try settings(of: model).versionPolicy.select(from: versions(of: model))
    }

    /// A version's lineage record. Throws `notFound` without a metadata.json and `corrupt` when it
    /// does not decode.
    public func lineage(of model: String, version: Int) throws -> Lineage {
        let path = metadataFile(model, version: version).path
        guard let data = try DurableFiles.readIfPresent(path, limit: Self.maxMetadataBytes, what: Self.metadataFileName) else {
            throw StorageError(.notFound, "\(path) does not exist")
        }
        do {
            return try Lineage.decode(data)
        } catch {
            throw StorageError(.corrupt, "\(path) is not a lineage record", cause: error)
        }
    }

    /// The reference statistics stored beside a version, if any (nil when absent or unreadable).
    public func referenceStatistics(of model: String, version: Int) -> ReferenceStatistics? {
        DurableFiles.read(referenceStatisticsFile(model, version: version).path, limit: Self.maxReferenceStatisticsBytes)
            .flatMap { try? ReferenceStatistics.decode($0) }
    }

    // MARK: Writing

    /// Replaces config.json's `version_policy` with `policy` (creating config.json if needed),
    /// atomically and keeping every other key as written. Refuses to rewrite a config.json that
    /// does not parse, so a broken file is never half-repaired behind its author's back.
    func setVersionPolicy(_ policy: VersionPolicy, of model: String) throws {
        let file = configFile(model).path
        var object: [String: Any] = [:]
        if let data = try DurableFiles.readIfPresent(file, limit: Self.maxConfigBytes, what: Self.configFileName) {
            _ = try ModelSettings(json: data)
            object = (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
        }
        object[ModelSettings.Key.versionPolicy.rawValue] = policy.jsonObject
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try DurableFiles.replace(data, at: file)
    }
}
