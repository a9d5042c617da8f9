import SwerveRepository

/// A content hash of a data set, for lineage: the same rows in the same order under the same
/// schema always give the same fingerprint, on every platform.
public struct DatasetFingerprint: Sendable, Codable, Equatable, CustomStringConvertible {
    /// The hash function: "sha256".
    public var algorithm: String
    /// How the data is serialized before hashing (see `Dataset.fingerprint()`).
    public var canonicalization: String
    /// The digest, lowercase hex.
    public var digest: String
    public var rows: Int

    public var description: String { "\(algorithm):\(digest)" }
}

extension Dataset {
    /// SHA-256 of the canonical serialization "swerve-dataset-v1": the label column name and task,
    /// then each numeric column (name, then each value's IEEE-754 bits as 8 bytes little-endian),
    /// each categorical column (name, then each value's UTF-8 bytes with a 4-byte little-endian length
    /// prefix), and the labels (numbers as above; class labels by *name*, so the class order does
    /// not change the fingerprint). Names are length-prefixed strings too. `-0.0` is hashed as `0.0`.
    public func fingerprint() -> DatasetFingerprint {
        var hasher = SHA256()
        func string(_ s: String) {
            let bytes = Array(s.utf8)
            u32(UInt32(bytes.count))
            hasher.update(bytes)
        }
        func u32(_ v: UInt32) { hasher.update([UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)]) }
        func double(_ v: Double) {
            let bits = (v == 0 ? 0.0 : v).bitPattern
            hasher.update((0..<8).map { UInt8(truncatingIfNeeded: bits >> (8 * $0)) })
        }
        string("swerve-dataset-v1")
        u32(UInt32(rowCount))
        string(labelName)
        string(schema.task.rawValue)
        for (name, column) in zip(numericNames, numeric) {
            string("numeric")
            string(name)
            for v in column { double(v) }
        }
        for (name, column) in zip(categoricalNames, categorical) {
            string("categorical")
            string(name)
            for v in column { string(v) }
        }
        string("label")
        switch labels {
        case .regression(let v): for x in v { double(x) }
        case .classes(let indices, let names): for i in indices { string(names[i]) }
        }
        return DatasetFingerprint(algorithm: "sha256", canonicalization: "swerve-dataset-v1", digest: hasher.finalize().hex, rows: rowCount)
    }
}
