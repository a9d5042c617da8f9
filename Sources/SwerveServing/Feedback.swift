import Foundation
import Metrics
import Synchronization
import SwerveInference
import SwerveProto
import SwerveRepository

/// What the label join knows of one served version: where its features sit in its inputs (its
/// reference statistics) and how it names its classes (`swerve.classes` in the model's
/// metadata; a model without it answers with the class values themselves), and the version's
/// online metrics, which joined labels feed.
public final class FeedbackLayout: Sendable {
    public let model: String
    public let version: Int
    /// Empty when the version has no reference statistics: labels are counted, not forwarded.
    public let features: [FeatureColumn]
    public let classNames: [String]?
    public let metrics: OnlineMetrics

    public init(model: String, version: Int, features: [FeatureColumn], classNames: [String]?) {
        self.model = model
        self.version = version
        self.features = features
        self.classNames = classNames
        self.metrics = OnlineMetrics(model: model, version: version)
    }

    /// The features of a one-row request as text (CSV semantics, as the trainer's examples
    /// carry them); nil when an input is missing or the request has more than one row.
    public func features(ofRequest bytes: [UInt8]) -> [String: String]? {
        guard !features.isEmpty, let inputs = WireTensors.inputs(ofRequest: bytes) else { return nil }
        var out: [String: String] = [:]
        for f in features {
            guard let t = inputs[f.input], (t.shape.first ?? 1) == 1, f.column < t.values.count,
                  let text = Self.text(t.values, f.column)
            else { return nil }
            out[f.name] = text
        }
        return out
    }

    static func text(_ values: TensorValues, _ i: Int) -> String? {
        switch values {
        case .fp32(let v): v[i].isFinite ? "\(v[i])" : ""
        case .fp64(let v): v[i].isFinite ? "\(v[i])" : ""
        case .int64(let v): "\(v[i])"
        case .int32(let v): "\(v[i])"
        case .int16(let v): "\(v[i])"
        case .int8(let v): "\(v[i])"
        case .uint8(let v): "\(v[i])"
        case .uint16(let v): "\(v[i])"
        case .uint32(let v): "\(v[i])"
        case .uint64(let v): "\(v[i])"
        case .bool(let v): v[i] ? "true" : "false"
        case .bytes(let v): String(validating: v[i], as: UTF8.self)
        }
    }

    /// What a one-row response predicted: a class (from an integer or text output of one value
    /// per row, named through `classNames`, else the argmax of the scores), the class scores, or
    /// a score (regression: one number per row and no class).
    public func prediction(ofResponse bytes: [UInt8]) -> OnlineMetrics.Prediction? {
        guard let outputs = WireTensors.outputs(ofResponse: bytes) else { return nil }
        var predicted: String?
        var scores: [Double]?
        var value: Double?
        for o in outputs {
            guard (o.shape.first ?? 1) == 1 else { return nil }
            let width = o.values.count
            switch o.values {
            case .fp32(let v) where width >= 2 && scores == nil: scores = v.map(Double.init)
            case .fp64(let v) where width >= 2 && scores == nil: scores = v
            case .fp32(let v) where width == 1 && value == nil: value = Double(v[0])
            case .fp64(let v) where width == 1 && value == nil: value = v[0]
            case .fp32, .fp64: break
            default:
                guard width == 1, predicted == nil, let text = Self.text(o.values, 0) else { break }
                if let classNames, let k = Int(text), classNames.indices.contains(k), !o.values.isBytes {
                    predicted = classNames[k]
                } else {
                    predicted = text
                }
            }
        }
        if let scores {
            let best = scores.indices.max { scores[$0] < scores[$1] }!
            return .classes(predicted: predicted ?? className(best), scores: scores)
        }
        if let predicted { return .classes(predicted: predicted, scores: nil) }
        if let value { return .value(value) }
        return nil
    }

    func className(_ index: Int) -> String {
        if let classNames, classNames.indices.contains(index) { return classNames[index] }
        return String(index)
    }

    /// The position of `label` among the scores: its place in `classNames`, else the label read
    /// as a class index.
    func classIndex(_ label: String, width: Int) -> Int? {
        if let classNames { return classNames.firstIndex(of: label) }
        return Int(label).flatMap { (0..<width).contains($0) ? $0 : nil }
    }
}

extension TensorValues {
    var isBytes: Bool { if case .bytes = self { true } else { false } }
}

/// A version's live quality, from labels joined with what it answered: accuracy, log loss and
/// expected calibration error (10 bins of the top score) for classifiers; MAE and RMSE for
/// regressors. Exported as `swerve_online_metric{model,version,metric}`, beside
/// `swerve_holdout_metric` (the lineage's holdout figures).
public final class OnlineMetrics: Sendable {
    public enum Prediction: Sendable, Equatable {
        case classes(predicted: String, scores: [Double]?)
        case value(Double)
    }

    public struct Snapshot: Sendable, Equatable {
        public var labels = 0
        public var correct = 0
        public var logLossSum = 0.0, logLossCount = 0
        public var binCount = [Int](repeating: 0, count: 10)
        public var binConfidence = [Double](repeating: 0, count: 10)
        public var binCorrect = [Int](repeating: 0, count: 10)
        public var absoluteErrorSum = 0.0, squaredErrorSum = 0.0, regressionCount = 0

        public var accuracy: Double? { labels > regressionCount ? Double(correct) / Double(labels - regressionCount) : nil }
        public var logLoss: Double? { logLossCount > 0 ? logLossSum / Double(logLossCount) : nil }
        public var calibrationError: Double? {
            let n = binCount.reduce(0, +)
            guard n > 0 else { return nil }
            var e = 0.0
            for b in 0..<10 where binCount[b] > 0 {
                e += Double(binCount[b]) / Double(n) * abs(Double(binCorrect[b]) / Double(binCount[b]) - binConfidence[b] / Double(binCount[b]))
            }
            return e
        }
        public var meanAbsoluteError: Double? { regressionCount > 0 ? absoluteErrorSum / Double(regressionCount) : nil }
        public var rootMeanSquaredError: Double? { regressionCount > 0 ? (squaredErrorSum / Double(regressionCount)).squareRoot() : nil }
    }

    private let state = Mutex(Snapshot())
    private let gauges: [String: Gauge]

    init(model: String, version: Int) {
        var g: [String: Gauge] = [:]
        for m in ["accuracy", "log_loss", "calibration_error", "mae", "rmse"] {
            g[m] = Gauge(label: "swerve_online_metric", dimensions: [("model", model), ("version", String(version)), ("metric", m)])
        }
        gauges = g
    }

    public var snapshot: Snapshot { state.withLock { $0 } }

    /// Counts one label against what the version predicted; false when the label does not fit
    /// the prediction (a regressor's label that is not a number).
    @discardableResult
    func record(_ prediction: Prediction, label: String, layout: FeedbackLayout) -> Bool {
        let s: Snapshot? = state.withLock { s in
            switch prediction {
            case .value(let v):
                guard let y = Double(label), y.isFinite, v.isFinite else { return nil }
                s.labels += 1
                s.regressionCount += 1
                s.absoluteErrorSum += abs(v - y)
                s.squaredErrorSum += (v - y) * (v - y)
            case .classes(let predicted, let scores):
                s.labels += 1
                let right = predicted == label
                if right { s.correct += 1 }
                if let scores {
                    if let k = layout.classIndex(label, width: scores.count) {
                        s.logLossSum += -log(Swift.min(1, Swift.max(scores[k], 1e-15)))
                        s.logLossCount += 1
                    }
                    let confidence = Swift.min(1, Swift.max(0, scores.max()!))
                    let b = Swift.min(9, Int(confidence * 10))
                    s.binCount[b] += 1
                    s.binConfidence[b] += confidence
                    if right { s.binCorrect[b] += 1 }
                }
            }
            return s
        }
        guard let s else { return false }
        if let v = s.accuracy { gauges["accuracy"]!.record(v) }
        if let v = s.logLoss { gauges["log_loss"]!.record(v) }
        if let v = s.calibrationError { gauges["calibration_error"]!.record(v) }
        if let v = s.meanAbsoluteError { gauges["mae"]!.record(v) }
        if let v = s.rootMeanSquaredError { gauges["rmse"]!.record(v) }
        return true
    }
}

/// Joins labels that arrive later with the logged predictions they judge: the model's sampled,
/// logged requests that carry an id wait here for their label for the model's join window
/// (`prediction_log.join_window_seconds`), at most `maxEntriesPerModel` of them and
/// `maxBytesPerModel` of messages per model (the oldest leave first). The ids of requests that
/// left are remembered (the latest `maxExpiredPerModel`), so a late label is told apart from an
/// unknown id.
public final class FeedbackJoin: Sendable {
    public static let maxEntriesPerModel = 100_000
    public static let maxBytesPerModel = 64 << 20
    public static let maxExpiredPerModel = 100_000
    public static let maxIDBytes = 256
    public static let maxLabelBytes = 1024

    struct Entry: Sendable {
        var layout: FeedbackLayout
        var timeMs: UInt64
        var expiresMs: UInt64
        var request: [UInt8]
        var response: [UInt8]
        var labeled = false
    }

    struct ModelIndex: Sendable {
        var entries: [String: Entry] = [:]
        var order: [String] = []
        var head = 0
        var bytes = 0
        var expired = Set<String>()
        var expiredOrder: [String] = []
        var expiredHead = 0
        var restored = false

        mutating func expire(nowMs: UInt64) {
            while head < order.count {
                let id = order[head]
                guard let e = entries[id] else { head += 1; continue }
                guard e.expiresMs <= nowMs || entries.count > FeedbackJoin.maxEntriesPerModel || bytes > FeedbackJoin.maxBytesPerModel else { break }
                entries[id] = nil
                bytes -= e.request.count + e.response.count
                head += 1
                remember(id)
            }
            if head > 1024 && head * 2 > order.count {
                order.removeFirst(head)
                head = 0
            }
        }

        mutating func remember(_ id: String) {
            guard expired.insert(id).inserted else { return }
            expiredOrder.append(id)
            if expiredOrder.count - expiredHead > FeedbackJoin.maxExpiredPerModel {
                expired.remove(expiredOrder[expiredHead])
                expiredHead += 1
            }
            if expiredHead > 1024 && expiredHead * 2 > expiredOrder.count {
                expiredOrder.removeFirst(expiredHead)
                expiredHead = 0
            }
        }
    }

    public enum Outcome: String, Sendable {
        case joined, duplicate, unknown, expired, unmapped, ambiguous, invalid
    }

    /// One label's join: its outcome, the version that answered, and the example to forward
    /// (joined or duplicate, with the version's features known).
    public struct Result: Sendable {
        public var outcome: Outcome
        public var version: Int?
        public var example: Example?
    }

    private let state = Mutex<[String: ModelIndex]>([:])
    private let counters = Mutex<[String: Counter]>([:])

    public init() {}

    /// Keeps a logged request with an id for its label, until `expiresMs`. A later request with
    /// the same id replaces it, unless `keepNewer` (filling from the log on disk, which is older
    /// than what this process recorded).
    public func record(model: String, id: String, layout: FeedbackLayout, request: [UInt8], response: [UInt8], timeMs: UInt64, expiresMs: UInt64,
                       keepNewer: Bool = false) {
        guard !id.isEmpty, id.utf8.count <= Self.maxIDBytes, expiresMs > timeMs else { return }
        state.withLock { all in
            var index = all.removeValue(forKey: model) ?? ModelIndex()  // moved out: no copy of its tables
            defer { all[model] = index }
            if let old = index.entries[id] {
                if keepNewer { return }
                index.bytes -= old.request.count + old.response.count
            }
            else {
                index.order.append(id)
            }
            index.entries[id] = Entry(layout: layout, timeMs: timeMs, expiresMs: expiresMs, request: request, response: response)
            index.bytes += request.count + response.count
            index.expire(nowMs: timeMs)
        }
    }

    /// Whether the model's index was filled from its prediction log since the start (done once).
    public func needsRestore(model: String) -> Bool {
        state.withLock { all in
            var index = all.removeValue(forKey: model) ?? ModelIndex()  // moved out: no copy of its tables
            defer { index.restored = true; all[model] = index }
            return !index.restored
        }
    }

    /// Joins each label with its logged prediction: counts it into the answering version's online
    /// metrics (once per request: a repeated label is a duplicate and changes nothing) and returns
    /// the example to forward.
    public func join(model: String, labels: [LabelFeedback], nowMs: UInt64) -> [Result] {
        // Look up under the lock; decode and judge outside it.
        let found: [(LabelFeedback, Entry?, Outcome?)] = state.withLock { all in
            var index = all.removeValue(forKey: model) ?? ModelIndex()  // moved out: no copy of its tables
            index.expire(nowMs: nowMs)
            let out = labels.map { l -> (LabelFeedback, Entry?, Outcome?) in
                guard !l.requestID.isEmpty, l.requestID.utf8.count <= Self.maxIDBytes, !l.label.isEmpty, l.label.utf8.count <= Self.maxLabelBytes
                else { return (l, nil, .invalid) }
                guard var e = index.entries[l.requestID] else {
                    return (l, nil, index.expired.contains(l.requestID) ? .expired : .unknown)
                }
                // Past its window but still behind an older entry with a longer one.
                guard e.expiresMs > nowMs else { return (l, nil, .expired) }
                let first = !e.labeled
                e.labeled = true
                index.entries[l.requestID] = e
                return (l, e, first ? nil : .duplicate)
            }
            all[model] = index
            return out
        }
        return found.map { label, entry, outcome in
            guard let entry else {
                count(model, version: nil, outcome!)
                return Result(outcome: outcome!, version: nil, example: nil)
            }
            let layout = entry.layout
            let features = layout.features(ofRequest: entry.request)
            let prediction = layout.prediction(ofResponse: entry.response)
            var result = Result(outcome: outcome ?? .joined, version: layout.version,
                                example: features.map { Example(features: $0, label: label.label) })
            if outcome == nil {
                if prediction == nil && features == nil {
                    result.outcome = .ambiguous
                } else if let prediction {
                    layout.metrics.record(prediction, label: label.label, layout: layout)
                }
                if features == nil && result.outcome == .joined { result.outcome = layout.features.isEmpty ? .unmapped : .ambiguous }
            }
            count(model, version: layout.version, result.outcome)
            return result
        }
    }

    private func count(_ model: String, version: Int?, _ outcome: Outcome) {
        let key = "\(model)\u{0}\(version.map(String.init) ?? "")\u{0}\(outcome.rawValue)"
        let c = counters.withLock { all in
            if let c = all[key] { return c }
            let c = Counter(label: "swerve_online_labels_total",
                            dimensions: [("model", model), ("version", version.map(String.init) ?? ""), ("outcome", outcome.rawValue)])
            all[key] = c
            return c
        }
        c.increment()
    }
}
