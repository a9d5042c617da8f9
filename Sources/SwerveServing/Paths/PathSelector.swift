/// The `auto` serving mode's decision, as a plain state machine: it takes request hashes (and,
/// for time windows, caller-supplied monotonic times), measures the traffic's cardinality and
/// peakedness over windows, and says whether the response cache should be on. No clocks, no
/// threads, no locks: the caller serializes access (and may feed it a sample of the traffic).
///
/// The rule, evaluated once per completed window:
/// - peakedness = the guaranteed share of the window's requests on its top-k inputs;
/// - when the window saw few enough distinct inputs that a cache would hold them all
///   (`distinct <= cacheableDistinct`), the window's repeat ratio (1 - distinct / requests) counts
///   as well: a small domain hit uniformly is still worth caching;
/// - the cache turns ON after `windowsToConfirm` windows in a row with that score at or above
///   `onThreshold`, and OFF after as many windows at or below `offThreshold`;
/// - cost (when `costs` is measured): the cache must also pay — the requests it would answer
///   (the window's repeat ratio or top-k share) times what computing and encoding one costs must exceed what
///   every request pays for its key and lookup (all of it to turn on, `costShareToStayOn` of it
///   to stay on).
/// Between the two thresholds nothing changes, so traffic hovering around either one cannot make
/// the decision flap: switching needs a move across the whole band.
public struct PathSelector: Sendable {
    /// Thresholds and window sizes.
    public struct Configuration: Sendable, Equatable {
        public var window = SlidingWindowSketch.Configuration()
        /// Turn the cache on at a score at or above this.
        public var onThreshold = 0.3
        /// Turn the cache off at a score at or below this; must be below `onThreshold`.
        public var offThreshold = 0.1
        /// Consecutive windows beyond a threshold needed to switch.
        public var windowsToConfirm = 1
        /// A window with at most this many distinct inputs counts its repeat ratio as peakedness.
        /// Set it to about the number of entries the cache budget holds; 0 disables the rule.
        public var cacheableDistinct = 4096
        /// Windows with fewer requests are ignored (time windows of an idle model).
        public var minimumRequests: UInt64 = 100
        /// The decision before the first window completes.
        public var initiallyOn = false

        public init() {}
    }

    /// What a request costs each way, measured by the caller; nil until measured (the rule then
    /// weighs traffic shape only).
    public struct Costs: Sendable, Equatable {
        /// Computing a request (the batcher's or the inline path's measured cost).
        public var computeNs: Double
        /// Building its key and looking it up (paid by every request while the cache is on).
        public var keyNs: Double
        /// Encoding a computed response, which a hit answered from the entry's stored encoding
        /// does not pay either (0 when unmeasured).
        public var encodeNs: Double
        public init(computeNs: Double, keyNs: Double, encodeNs: Double = 0) {
            self.computeNs = computeNs
            self.keyNs = keyNs
            self.encodeNs = encodeNs
        }
    }

    /// The latest measured costs (see `Costs`).
    public var costs: Costs?
    /// To turn on, the cache must save at least what it costs; to stay on, this share of it
    /// (hysteresis on the cost side too).
    public static let costShareToStayOn = 0.67

    public let configuration: Configuration
    private var sketch: SlidingWindowSketch
    /// Whether the response cache should be on.
    public private(set) var cacheOn: Bool
    /// Times the decision changed.
    public private(set) var switches = 0
    /// The score of the last evaluated window (see the type's rule).
    public private(set) var lastScore: Double = 0
    private var streak = 0

    public init(_ configuration: Configuration = Configuration()) {
        precondition(configuration.offThreshold < configuration.onThreshold, "offThreshold must be below onThreshold")
        precondition(configuration.windowsToConfirm >= 1, "windowsToConfirm must be at least 1")
        self.configuration = configuration
        self.sketch = SlidingWindowSketch(configuration.window)
        self.cacheOn = configuration.initiallyOn
    }

    /// Records one request. Returns the new decision when this observation changed it.
    @discardableResult
    public mutating func observe(_ hash: UInt64, nowNs: UInt64 = 0) -> Bool? {
        guard let window = sketch.observe(hash, nowNs: nowNs) else { return nil }
        return evaluate(window)
    }

    /// Time windows: closes the current window if its time is up (call it from a periodic tick so
    /// an idle model's window still ends). Returns the new decision when it changed.
    @discardableResult
    public mutating func advance(toNs nowNs: UInt64) -> Bool? {
        guard let window = sketch.advance(toNs: nowNs) else { return nil }
        return evaluate(window)
    }

    /// Applies the rule to one completed window. Returns the new decision when it changed.
    @discardableResult
    public mutating func evaluate(_ window: WindowSummary) -> Bool? {
        guard window.requests >= configuration.minimumRequests else { return nil }
        let score = Self.score(window, cacheableDistinct: configuration.cacheableDistinct)
        lastScore = score
        // Cost: the requests a cache would answer (about the window's repeat ratio, or its top-k
        // share when larger) each save a computation; every request pays for a key and a lookup.
        let pays: Bool = costs.map { c in
            let saved = max(window.repeatRatio, window.topShare) * (c.computeNs + c.encodeNs)
            return saved >= c.keyNs * (cacheOn ? Self.costShareToStayOn : 1)
        } ?? true
        let pushesToSwitch = cacheOn
            ? score <= configuration.offThreshold || !pays
            : score >= configuration.onThreshold && pays
        streak = pushesToSwitch ? streak + 1 : 0
        guard streak >= configuration.windowsToConfirm else { return nil }
        streak = 0
        cacheOn.toggle()
        switches += 1
        return cacheOn
    }

    /// The score of a window: its top-k share, or its repeat ratio when that is larger and the
    /// window's distinct inputs would all fit in the cache.
    public static func score(_ window: WindowSummary, cacheableDistinct: Int) -> Double {
        var s = window.topShare
        if cacheableDistinct > 0 && window.distinct <= Double(cacheableDistinct) {
            s = max(s, window.repeatRatio)
        }
        return s
    }

    /// Estimated distinct inputs in the last completed window (the current one before any completes).
    public var cardinality: Double { (sketch.lastWindow ?? sketch.currentWindow).distinct }

    /// Guaranteed top-k share of the last completed window (the current one before any completes).
    public var peakedness: Double { (sketch.lastWindow ?? sketch.currentWindow).topShare }

    /// The last completed window's figures.
    public var lastWindow: WindowSummary? { sketch.lastWindow }

    /// Windows completed so far.
    public var completedWindows: Int { sketch.completedWindows }
}
