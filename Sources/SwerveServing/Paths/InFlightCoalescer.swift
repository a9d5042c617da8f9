import Synchronization

/// Makes identical concurrent requests share one computation, for a callback-based request path.
///
/// The first caller to `join` a key becomes its *leader*: it must compute the value and hand the
/// result to `complete(_:with:)` exactly once. Callers that join the same key before then are
/// *waiters*: their completions are attached to the leader's. `complete` removes the key and calls
/// every attached completion (the leader's first, then the waiters' in join order) with the same
/// result, outside any lock, on the completing thread. The next `join` of that key starts afresh.
///
/// ```swift
/// switch coalescer.join(key, completion: respond) {
/// case .leader(let token):
///     model.infer(inputs, …) { result in coalescer.complete(token, with: result) }
/// case .waiter:
///     break  // `respond` runs when the leader completes
/// }
/// ```
///
/// A leader that never completes leaves its waiters hanging; a leader's own cancellation becomes
/// every waiter's result, so the caller should not let one client's cancellation cancel a shared
/// computation. Thread-safe; keys are spread over mutex-guarded shards.
public final class InFlightCoalescer<Key: Hashable & Sendable, Value: Sendable, Failure: Error>: Sendable {
    /// Called with the shared result.
    public typealias Completion = @Sendable (Result<Value, Failure>) -> Void

    /// Proof of leadership for one computation of one key; pass it to `complete`.
    public struct Token: Sendable {
        public let key: Key
        fileprivate let id: UInt64
    }

    /// What `join` made the caller.
    public enum Role: Sendable {
        /// Compute, then call `complete(token, with:)`.
        case leader(Token)
        /// Attached to a computation already running; the completion runs when it finishes.
        case waiter
    }

    /// Counters, summed over shards.
    public struct Stats: Sendable, Equatable {
        /// Computations started (one per leader).
        public var leaders: UInt64 = 0
        /// Requests that joined a running computation instead of starting one.
        public var coalesced: UInt64 = 0
        /// Computations running now.
        public var inFlight: Int = 0
    }

    private struct Entry {
        var id: UInt64
        var completions: [Completion]
    }

    private struct ShardState {
        var entries: [Key: Entry] = [:]
        var nextID: UInt64 = 0
        var leaders: UInt64 = 0
        var coalesced: UInt64 = 0
    }

    private final class Shard: Sendable {
        let state = Mutex(ShardState())
    }

    private let shards: [Shard]

    /// A coalescer with `shards` (rounded up to a power of two) independently locked shards.
    public init(shards: Int = 16) {
        var n = 1
        while n < max(1, shards) { n *= 2 }
        self.shards = (0..<n).map { _ in Shard() }
    }

    @inline(__always) private func shard(for key: Key) -> Shard {
        shards[Int(truncatingIfNeeded: Hash64.mix(UInt64(bitPattern: Int64(key.hashValue)))) & (shards.count - 1)]
    }

    /// Joins the computation of `key`: returns `.leader` when none is running (the caller must
    /// compute and `complete`), `.waiter` otherwise. Either way `completion` runs exactly once, when
    /// the computation completes.
    public func join(_ key: Key, completion: @escaping Completion) -> Role {
        shard(for: key).state.withLock { s in
            if s.entries[key] != nil {
                s.entries[key]!.completions.append(completion)
                s.coalesced += 1
                return .waiter
            }
            s.nextID += 1
            s.leaders += 1
            s.entries[key] = Entry(id: s.nextID, completions: [completion])
            return .leader(Token(key: key, id: s.nextID))
        }
    }

    /// Finishes the computation `token` leads: removes it and calls every attached completion with
    /// `result`. Returns how many completions ran (0 if this token was already completed).
    @discardableResult
    public func complete(_ token: Token, with result: Result<Value, Failure>) -> Int {
        let completions: [Completion] = shard(for: token.key).state.withLock { s in
            guard let e = s.entries[token.key], e.id == token.id else { return [] }
            s.entries.removeValue(forKey: token.key)
            return e.completions
        }
        for c in completions { c(result) }
        return completions.count
    }

    /// Convenience: joins `key` and, when the caller is the leader, calls `compute` (outside any
    /// lock) with a `finish` function to call once with the result. Returns the role taken.
    @discardableResult
    public func run(_ key: Key, completion: @escaping Completion,
                    compute: (_ finish: @escaping Completion) -> Void) -> Role {
        let role = join(key, completion: completion)
        if case .leader(let token) = role {
            compute { result in self.complete(token, with: result) }
        }
        return role
    }

    /// Counters, summed over shards.
    public var stats: Stats {
        shards.reduce(into: Stats()) { sum, sh in
            sh.state.withLock { s in
                sum.leaders += s.leaders
                sum.coalesced += s.coalesced
                sum.inFlight += s.entries.count
            }
        }
    }
}
