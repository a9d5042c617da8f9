import SwerveRepository

/// A change to a model's labels asked for by hand (`swerve label`): `stable=V`, `canary=W`,
/// `--canary-percent P`, `--clear-canary`.
public struct LabelEdit: Sendable, Equatable {
    public var stable: Int?
    public var canary: Int?
    public var canaryPercent: Double?
    public var clearCanary = false

    public init(stable: Int? = nil, canary: Int? = nil, canaryPercent: Double? = nil, clearCanary: Bool = false) {
        self.stable = stable
        self.canary = canary
        self.canaryPercent = canaryPercent
        self.clearCanary = clearCanary
    }

    /// Parses `stable=V` / `canary=W` words (V, W positive integers).
    public init(assignments: [String], canaryPercent: Double?, clearCanary: Bool) throws(LabelStoreError) {
        self.canaryPercent = canaryPercent
        self.clearCanary = clearCanary
        for a in assignments {
            let parts = a.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let v = Int(parts[1]), v > 0 else {
                throw LabelStoreError(.invalid, "expected stable=V or canary=V with V a positive version number, not '\(a)'")
            }
            switch parts[0] {
            case "stable":
                if stable != nil { throw LabelStoreError(.invalid, "stable= given twice") }
                stable = v
            case "canary":
                if canary != nil { throw LabelStoreError(.invalid, "canary= given twice") }
                canary = v
            default:
                throw LabelStoreError(.invalid, "unknown label '\(parts[0])' (labels: stable, canary)")
            }
        }
        if clearCanary && (canary != nil || canaryPercent != nil) {
            throw LabelStoreError(.invalid, "--clear-canary cannot be combined with canary= or --canary-percent")
        }
        if let p = canaryPercent, !(p >= 0 && p <= 100) {
            throw LabelStoreError(.invalid, "--canary-percent must be within 0...100, not \(p)")
        }
    }

    /// Whether this changes anything at all (otherwise the labels are only printed).
    public var isEmpty: Bool { stable == nil && canary == nil && canaryPercent == nil && !clearCanary }

    /// `labels` with the edit applied (the generation kept, for the compare-and-set). A new canary
    /// starts at 0% unless a share is given.
    public func applied(to labels: ModelLabels) -> ModelLabels {
        var next = labels
        if let stable { next.stable = stable }
        if let canary {
            if canary != labels.canary && canaryPercent == nil { next.canaryPercent = 0 }
            next.canary = canary
        }
        if let canaryPercent { next.canaryPercent = canaryPercent }
        if clearCanary || next.canary == next.stable && stable != nil && canary == nil {
            // Clearing, or stable moved onto the canary (a promotion by hand).
            next.canary = nil
            next.canaryPercent = 0
        }
        return next
    }

    /// The versions the new labels point at that the replicas must have ready.
    public func versionsNamed(in labels: ModelLabels) -> [Int] {
        Array(Set([labels.stable, labels.canary].compactMap { $0 })).sorted()
    }
}
