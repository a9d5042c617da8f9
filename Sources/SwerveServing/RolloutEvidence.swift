import Foundation
import SwerveInference
import Synchronization

/// What a rollout compares between a canary and the stable version it would replace, counted per
/// served version since it loaded: answered requests and failures, a latency histogram, and the
/// distribution of its predictions. Counters only grow, so a reader takes two snapshots and
/// subtracts them to get any window (ServingInsights.RolloutStatistics; `swerve rollout`).
///
/// Predictions are read from the first output, per row: a **class** for integer, boolean and
/// string outputs (the row's first value) and for a vector of scores per row (its argmax, as
/// skl2onnx probabilities and softmax heads give), a **score** for one number per row. At most
/// `maxClasses` distinct classes are kept; the rest count as `otherClass`, so a model with
/// unbounded labels cannot grow this.
///
/// Both histograms have fixed bounds shared by every version and replica, so they add up across
/// replicas and subtract across time: latency 20 buckets per decade from 1 µs to 100 s (a p99
/// read from it is within 12% of the exact one), scores 16 buckets per decade in each sign from
/// 1e-4 to 1e6 in magnitude, plus a bucket around zero.
public final class RolloutEvidence: Sendable {
    public static let maxClasses = 64
    public static let otherClass = "<other>"

    /// Upper bounds of the latency buckets in microseconds, ascending (values above the last go
    /// to one more overflow bucket).
    public static let latencyBoundsMicros: [Double] = (0...160).map { pow(10, Double($0) / 20) }
    /// Upper bounds of the score buckets, ascending (values above the last go to the overflow bucket).
    public static let scoreBounds: [Double] = {
        let magnitudes = (0...160).map { pow(10, -4 + Double($0) / 16) }
        return magnitudes.reversed().map { -$0 } + magnitudes
    }()

    public struct Snapshot: Sendable, Equatable {
        public var requests: UInt64 = 0
        public var failures: UInt64 = 0
        /// One count per `latencyBoundsMicros` bucket plus the overflow bucket.
        public var latencyCounts: [UInt64] = Array(repeating: 0, count: RolloutEvidence.latencyBoundsMicros.count + 1)
        public var kind: Kind = .none
        public var classes: [String] = []
        public var classCounts: [UInt64] = []
        /// One count per `scoreBounds` bucket plus the overflow bucket.
        public var scoreCounts: [UInt64] = Array(repeating: 0, count: RolloutEvidence.scoreBounds.count + 1)
        public var scoreCount: UInt64 = 0
        public var scoreSum: Double = 0
        public var scoreSumSquares: Double = 0
    }

    public enum Kind: String, Sendable { case none = "", classes = "class", scores = "score" }

    private struct State {
        var s = Snapshot()
        var classIndex: [String: Int] = [:]
        /// Integer classes by value, so the request path makes no strings for them.
        var intClassIndex: [Int64: Int] = [:]

        /// The position of class `name` in the snapshot, adding it (or `otherClass` once
        /// `maxClasses` are kept).
        mutating func slot(_ name: String) -> Int {
            if let i = classIndex[name] { return i }
            let kept = s.classes.count < RolloutEvidence.maxClasses - 1 || name == RolloutEvidence.otherClass ? name : RolloutEvidence.otherClass
            if let i = classIndex[kept] { return i }
            classIndex[kept] = s.classes.count
            s.classes.append(kept)
            s.classCounts.append(0)
            return s.classes.count - 1
        }
    }
    private let state = Mutex(State())

    public init() {}

    public var snapshot: Snapshot { state.withLock { $0.s } }

    /// Whether a failed call with gRPC status `code` is the version's doing: UNKNOWN (2),
    /// DEADLINE_EXCEEDED (4), RESOURCE_EXHAUSTED (8), INTERNAL (13), UNAVAILABLE (14), DATA_LOSS
    /// (15). Client errors (INVALID_ARGUMENT, NOT_FOUND, CANCELLED, ...) are not recorded at all.
    public static func countsAgainstVersion(code: Int) -> Bool {
        switch code {
        case 2, 4, 8, 13, 14, 15: true
        default: false
        }
    }

    /// One answered (or failed) ModelInfer call that took `nanoseconds` from arrival to answer.
    public func recordRequest(success: Bool, nanoseconds: UInt64) {
        let i = Self.latencyBucket(micros: Double(nanoseconds) / 1000)
        state.withLock { st in
            st.s.requests += 1
            if !success { st.s.failures += 1 }
            st.s.latencyCounts[i] += 1
        }
    }

    /// The bucket of a latency: the first bound at or above it, or the overflow bucket. A binary
    /// search over the bounds (eight comparisons): `log10` on every request cost more.
    static func latencyBucket(micros: Double) -> Int {
        let bounds = latencyBoundsMicros
        guard micros > bounds[0] else { return 0 }
        var lo = 1, hi = bounds.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if bounds[mid] >= micros { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// The bucket of a score: the first bound at or above it (NaN counts in the overflow bucket).
    static func scoreBucket(_ x: Double) -> Int {
        guard !x.isNaN else { return scoreBounds.count }
        var lo = 0, hi = scoreBounds.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if scoreBounds[mid] >= x { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// The predictions of one answered request: `outputs` as the model returned them.
    public func recordPredictions(_ outputs: [Tensor]) {
        guard let first = outputs.first else { return }
        let count = first.data.count
        let rows = first.shape.isEmpty ? 1 : first.shape[0]
        guard rows > 0, count >= rows, count % rows == 0 else { return }
        let width = count / rows
        switch first.data {
        case .fp32(let v):
            if width == 1 { recordScores(rows) { Double(v[$0]) } } else { recordIntegerClasses(rows) { Self.argmax(v, $0 * width, width) } }
        case .fp64(let v):
            if width == 1 { recordScores(rows) { v[$0] } } else { recordIntegerClasses(rows) { Self.argmax(v, $0 * width, width) } }
        case .int64(let v): recordIntegerClasses(rows) { v[$0 * width] }
        case .int32(let v): recordIntegerClasses(rows) { Int64(v[$0 * width]) }
        case .int16(let v): recordIntegerClasses(rows) { Int64(v[$0 * width]) }
        case .int8(let v): recordIntegerClasses(rows) { Int64(v[$0 * width]) }
        case .uint8(let v): recordIntegerClasses(rows) { Int64(v[$0 * width]) }
        case .uint16(let v): recordIntegerClasses(rows) { Int64(v[$0 * width]) }
        case .uint32(let v): recordIntegerClasses(rows) { Int64(v[$0 * width]) }
        case .uint64(let v): recordClasses(rows) { String(v[$0 * width]) }
        case .bool(let v): recordClasses(rows) { v[$0 * width] ? "true" : "false" }
        case .bytes(let v): recordClasses(rows) { String(decoding: v[$0 * width].prefix(128), as: UTF8.self) }
        }
    }

    /// The position of the row's largest score: its class, counted by value like integer labels
    /// (no string per row).
    private static func argmax<T: Comparable>(_ v: [T], _ start: Int, _ width: Int) -> Int64 {
        var best = start
        for i in start + 1..<start + width where v[i] > v[best] { best = i }
        return Int64(best - start)
    }

    private func recordScores(_ rows: Int, _ value: (Int) -> Double) {
        state.withLock { st in
            st.s.kind = .scores
            for r in 0..<rows {
                let x = value(r)
                st.s.scoreCounts[Self.scoreBucket(x)] += 1
                guard x.isFinite else { continue }
                st.s.scoreCount += 1
                st.s.scoreSum += x
                st.s.scoreSumSquares += x * x
            }
        }
    }

    private func recordClasses(_ rows: Int, _ label: (Int) -> String) {
        // Labels are made outside the lock; one request's rows are few.
        let labels = (0..<rows).map(label)
        state.withLock { st in
            st.s.kind = .classes
            for l in labels { st.s.classCounts[st.slot(l)] += 1 }
        }
    }

    private func recordIntegerClasses(_ rows: Int, _ value: (Int) -> Int64) {
        state.withLock { st in
            st.s.kind = .classes
            for r in 0..<rows {
                let x = value(r)
                let i: Int
                if let known = st.intClassIndex[x] {
                    i = known
                } else {
                    i = st.slot(String(x))
                    // Values past the cap all count as `otherClass`; remember only the kept ones.
                    if st.intClassIndex.count < Self.maxClasses { st.intClassIndex[x] = i }
                }
                st.s.classCounts[i] += 1
            }
        }
    }
}
