import SwerveRepository

/// SwerveTraining: ingest, validate, train, evaluate, gate and publish versioned models.
public enum SwerveTraining {
    /// The code version recorded in lineage.
    public static let codeVersion = Lineage.currentCodeVersion
}
