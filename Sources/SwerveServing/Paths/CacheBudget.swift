import Synchronization

/// Hands out response-cache budgets from one server-wide total: each model version may take up to
/// `perModelFraction` of the total, and never more than is left. Thread-safe.
public final class CacheBudget: Sendable {
    /// The server-wide byte budget for all response caches together.
    public let totalBytes: Int
    /// The largest share of `totalBytes` one model version may take.
    public let perModelFraction: Double
    private let grants = Mutex<[String: Int]>([:])

    public init(totalBytes: Int, perModelFraction: Double = 0.25) {
        precondition(totalBytes >= 0, "cache budget must not be negative")
        precondition(perModelFraction > 0 && perModelFraction <= 1, "perModelFraction must be in (0, 1]")
        self.totalBytes = totalBytes
        self.perModelFraction = perModelFraction
    }

    /// The budget granted to `owner` (e.g. "model:version"): its share, or what is left if less.
    /// Asking again for the same owner returns its existing grant. 0 means: run without a cache.
    public func grant(to owner: String) -> Int {
        grants.withLock { g in
            if let existing = g[owner] { return existing }
            let used = g.values.reduce(0, +)
            let share = Int(Double(totalBytes) * perModelFraction)
            let granted = max(0, min(share, totalBytes - used))
            g[owner] = granted
            return granted
        }
    }

    /// Returns `owner`'s budget to the pool (when its version unloads).
    public func release(_ owner: String) {
        _ = grants.withLock { $0.removeValue(forKey: owner) }
    }

    /// Bytes granted and not yet released.
    public var grantedBytes: Int { grants.withLock { $0.values.reduce(0, +) } }
}
