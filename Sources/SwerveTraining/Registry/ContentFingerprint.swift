import Foundation

/// Content fingerprints for lineage: `sha256:<hex>` of a model file or of training data, so a
/// version can be traced to the exact bytes it came from.
public enum ContentFingerprint {
    /// `sha256:` followed by the lowercase hex SHA-256 of `bytes`.
    public static func sha256(_ bytes: some Sequence<UInt8>) -> String {
        "sha256:" + SHA256.hash(Array(bytes)).map { String(format: "%02x", $0) }.joined()
    }

    /// The fingerprint of a file's contents.
    public static func sha256(file: URL) throws -> String {
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw StorageError(.notFound, "cannot read \(file.path)")
        }
        return sha256(data)
    }
}
