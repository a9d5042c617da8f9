import Foundation
import SwerveInference

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Publishes model versions into a serving repository so that a reader (the server's poll, a
/// RepositoryModelLoad) never sees half a version, a crash at any point leaves the repository as
/// it was or with one complete new version, and concurrent publishers of one model get distinct
/// numbers.
///
/// The protocol: write `model.onnx`, `reference_stats.json` and `metadata.json` into
/// `<repo>/<name>/.tmp-<uuid>/`, fsync each file and the folder, then under the model's lock
/// (`<repo>/<name>/.publish.lock`, flock) `rename` it to `<repo>/<name>/<N+1>` and fsync the model
/// folder. The serving side ignores folders that are not positive integers, so the temporary
/// folder is invisible, and `rename` is atomic. A rename onto an existing version fails
/// (ENOTEMPTY/EEXIST), and the publisher moves on to the next number, so a writer that ignores
/// the lock still cannot overwrite a version.
public enum ModelPublisher {
    public struct Options: Sendable {
        /// Compile the ONNX bytes with `CompiledModel` first and refuse them if that fails.
        public var validateModel = true
        /// `.tmp-*` folders older than this are removed by the next publish of the same model
        /// (left by a publisher that crashed).
        public var staleTemporaryAge: TimeInterval = 3600
        /// Called with the staged folder once every file in it is durable, just before the
        /// rename, holding the model's lock. For fault injection in tests.
        public var beforeRename: (@Sendable (URL) throws -> Void)?

        public init(validateModel: Bool = true, staleTemporaryAge: TimeInterval = 3600,
                    beforeRename: (@Sendable (URL) throws -> Void)? = nil) {
            self.validateModel = validateModel
            self.staleTemporaryAge = staleTemporaryAge
            self.beforeRename = beforeRename
        }
    }

    /// Publishes `onnx` as the next version of `name` and returns its number (the highest
    /// existing version folder + 1). The lineage is stored with `model`, `version`,
    /// `model_fingerprint` and `timestamps.published` filled in; its status is kept as given (normally `candidate`).
    /// `referenceStatistics` (see `ReferenceStatistics.jsonData()`) is stored beside the model for
    /// skew checks against the next batches.
    ///
    /// `modelFileName` may name a native tree model instead (`model.xgb.json`, `model.lgb.txt`,
    /// see `ModelRepository.modelFileNames`); the bytes are then that file's.
    public static func publish(
        onnx: [UInt8], repository: URL, name: String, lineage: Lineage, referenceStatistics: Data? = nil,
        modelFileName: String = ModelRepository.modelFileName, options: Options = Options()
    ) throws -> Int {
        let layout = ModelRepository(root: repository)
        try ModelRepository.validateModelName(name)
        guard ModelRepository.modelFileNames.contains(modelFileName) else {
            throw StorageError(.invalidModel, "refusing to publish \(name): a model file is named one of \(ModelRepository.modelFileNames.joined(separator: ", ")), not \(modelFileName)")
        }
        if options.validateModel {
            do {
                if let format = NativeTreeModel.format(ofFileNamed: modelFileName) {
                    _ = try CompiledModel(native: try NativeTreeModel(format, bytes: onnx))
                } else {
                    _ = try CompiledModel(onnxBytes: onnx)
                }
            } catch {
                throw StorageError(.invalidModel, "refusing to publish \(name): the model does not load", cause: error)
            }
        }
        let modelDir = layout.modelDirectory(name).path
        try DurableFiles.makeDirectory(modelDir)

        let fingerprint = ContentFingerprint.sha256(onnx)
        // Stage the large files outside the lock.
        let staged = modelDir + "/" + ModelRepository.temporaryPrefix + UUID().uuidString
        guard mkdir(staged, 0o755) == 0 else { throw DurableFiles.ioError("cannot create", staged) }
        var renamed = false
        defer { if !renamed { try? FileManager.default.removeItem(atPath: staged) } }
        try DurableFiles.write(onnx, to: staged + "/" + modelFileName)
        if let referenceStatistics {
            try DurableFiles.write(referenceStatistics, to: staged + "/" + ModelRepository.referenceStatisticsFileName)
        }

        return try FileLock.withLock(layout.lockFile(name).path) {
            removeStaleTemporaries(in: modelDir, olderThan: options.staleTemporaryAge, keeping: staged)
            var version = (layout.versionFolders(of: name).max() ?? 0) + 1
            var record = lineage
            record.model = name
            record.modelFingerprint = fingerprint
            record.timestamps.published = Date()
            while true {
                record.version = version
                try DurableFiles.write(record.jsonData(), to: staged + "/" + ModelRepository.metadataFileName)
                try DurableFiles.fsyncDirectory(staged)
                try options.beforeRename?(URL(fileURLWithPath: staged, isDirectory: true))
                let target = modelDir + "/" + String(version)
                if rename(staged, target) == 0 {
                    renamed = true
                    try DurableFiles.fsyncDirectory(modelDir)
                    return version
                }
                let e = errno
                guard e == ENOTEMPTY || e == EEXIST || e == ENOTDIR else {
                    throw DurableFiles.ioError("cannot rename \(staged) to", target, e)
                }
                // Someone who does not take the lock got there first; take the next number.
                version = max(version, layout.versionFolders(of: name).max() ?? 0) + 1
            }
        }
    }

    /// Removes `.tmp-*` folders whose modification time is older than `age`: a publisher that
    /// crashed left them. Failures are ignored; the next publish tries again.
    static func removeStaleTemporaries(in modelDir: String, olderThan age: TimeInterval, keeping: String) {
        let fm = FileManager.default
        let now = Date()
        for entry in (try? fm.contentsOfDirectory(atPath: modelDir)) ?? [] where entry.hasPrefix(ModelRepository.temporaryPrefix) {
            let path = modelDir + "/" + entry
            guard path != keeping,
                  let modified = (try? fm.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
                  now.timeIntervalSince(modified) > age else { continue }
            try? fm.removeItem(atPath: path)
        }
    }
}
