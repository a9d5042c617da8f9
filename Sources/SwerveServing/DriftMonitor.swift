import Foundation
import Metrics
import Synchronization
import SwerveInference
import SwerveProto
import SwerveRepository

/// The statistics a drift monitor compares windows with the reference by.
public enum DriftStatistics {
    /// Kolmogorov's limiting distribution's survival function, Q(x) = P(K > x): the asymptotic
    /// p-value of a Kolmogorov–Smirnov statistic D at x = D·√n. Two series, each where it converges
    /// fast: 1 − (√(2π)/x)·Σₖ exp(−(2k−1)²π²/(8x²)) below 0.82, 2·Σₖ (−1)ᵏ⁻¹ exp(−2k²x²) above
    /// (the split scipy.special.kolmogorov uses).
    public static func kolmogorovSurvival(_ x: Double) -> Double {
        if x.isNaN { return .nan }
        if x <= 0 { return 1 }
        if x == .infinity { return 0 }
        if x < 0.82 {
            let w = (2 * Double.pi).squareRoot() / x
            let f = -(Double.pi * Double.pi) / (8 * x * x)
            var p = 0.0
            var k = 1.0
            while k < 200 {
                let t = exp(f * k * k)
                p += t
                if t <= 1e-18 * p || t == 0 { break }
                k += 2
            }
            return Swift.min(1, Swift.max(0, 1 - w * p))
        }
        var q = 0.0, sign = 1.0
        for k in 1...100 {
            let t = exp(-2 * Double(k * k) * x * x)
            q += sign * t
            sign = -sign
            if t <= 1e-18 { break }
        }
        return Swift.min(1, Swift.max(0, 2 * q))
    }

    /// The two-sample Kolmogorov–Smirnov statistic of a window's binned values against the
    /// reference's shares of the same bins (D = the largest gap between the two cumulative
    /// distributions at the bin edges), and its asymptotic p-value with n = n₁n₂/(n₁+n₂).
    /// Binning can only make D smaller than over the raw values: the test is conservative.
    public static func binnedKolmogorovSmirnov(referenceShares: [Double], referenceCount: Int, counts: [UInt64]) -> (d: Double, p: Double) {
        precondition(referenceShares.count == counts.count, "KS needs the same bins on both sides")
        let m = counts.reduce(0, +)
        let total = referenceShares.reduce(0, +)
        guard m > 0, referenceCount > 0, total > 0 else { return (.nan, .nan) }
        var fr = 0.0, fw = 0.0, d = 0.0
        for (r, c) in zip(referenceShares, counts) {
            fr += r / total
            fw += Double(c) / Double(m)
            d = Swift.max(d, abs(fr - fw))
        }
        let n1 = Double(referenceCount), n2 = Double(m)
        return (d, kolmogorovSurvival(d * (n1 * n2 / (n1 + n2)).squareRoot()))
    }

    /// Linear-interpolation quantiles (numpy's default) of `sorted` at `levels`.
    public static func quantiles(sorted: [Double], levels: [Double]) -> [Double] {
        guard !sorted.isEmpty else { return levels.map { _ in .nan } }
        return levels.map { q in
            let h = Double(sorted.count - 1) * q
            let lo = Int(h.rounded(.down)), hi = Swift.min(lo + 1, sorted.count - 1)
            return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])
        }
    }
}

/// Watches what one served version is given and what it answers, against the distribution of
/// the data it was trained on (`reference_stats.json`): per feature, sliding windows of sampled
/// rows (count, missing, mean, quantiles, the reference's bins or categories and an
/// out-of-vocabulary count), and per window the population stability index and, for numeric
/// features, a two-sample Kolmogorov–Smirnov test; per output, class frequencies and score
/// quantiles. Exported to /metrics as each window closes and in `ServingInsights/Drift`.
///
/// Nothing here runs on the request path: sampled requests reach `observe` on the server's
/// monitor thread. Memory is bounded per version: at most `maxFeatures` features and
/// `maxOutputs` outputs, `windows` + 1 windows, a 256-value sample per feature and window for
/// quantiles, 16 out-of-vocabulary values and 64 classes per window.
public final class DriftMonitor: Sendable {
    public static let maxFeatures = 256
    public static let maxOutputs = 8
    static let sampleCapacity = 256
    static let maxUnseenValues = 16
    static let maxClasses = 64
    public static let quantileLevels = [0.05, 0.25, 0.5, 0.75, 0.95]

    public let model: String
    public let version: Int
    public let settings: ModelSettings.MonitoringSettings
    /// Which answered requests are offered to the monitor.
    public let sampler: PredictionSampler

    /// A watched feature: where it is in the inputs and the reference it is compared with.
    struct Feature: Sendable {
        var name: String
        var input: Int
        var inputName: String
        var column: Int
        var numeric: NumericReference?
        var categorical: CategoricalReference?
        /// Categorical: the reference's categories, sorted (bin i), and their positions.
        var categories: [String]
        var categoryIndex: [String: Int]
        var binCount: Int { numeric.map { Swift.max(1, $0.binEdges.count - 1) } ?? categories.count + 1 }
        var referenceShares: [Double] {
            if let numeric { return numeric.proportions.count == binCount ? numeric.proportions : [Double](repeating: 1 / Double(binCount), count: binCount) }
            return categories.map { categorical!.frequencies[$0] ?? 0 } + [0]
        }
    }

    let features: [Feature]
    /// Reference features no input column was found for.
    public let unmapped: [String]
    let outputNames: [String]

    struct FeatureAccumulator: Sendable {
        var count: UInt64 = 0, missing: UInt64 = 0
        var sum = 0.0
        var bins: [UInt64]
        var sample: [Double] = []
        var seen: UInt64 = 0
        var unseen: [String: UInt64] = [:]
        init(bins: Int) { self.bins = [UInt64](repeating: 0, count: bins) }
    }

    enum OutputKind: String, Sendable { case none = "", classes = "class", score, classScore = "class_score" }

    struct OutputAccumulator: Sendable {
        var kind: OutputKind = .none
        var count: UInt64 = 0
        var classes: [String: UInt64] = [:]
        var other: UInt64 = 0
        var scoreCount: UInt64 = 0
        var scoreSum = 0.0
        var sample: [Double] = []
        var seen: UInt64 = 0
    }

    struct Window: Sendable {
        var startMs: UInt64
        var endMs: UInt64 = 0
        var rows: UInt64 = 0
        var features: [FeatureAccumulator]
        var outputs: [OutputAccumulator]
        /// Per feature, filled when the window closes: PSI, KS D, KS p.
        var drift: [(psi: Double, d: Double, p: Double)] = []
    }

    struct State: Sendable {
        var closed: [Window] = []
        var open: Window
        var observed: UInt64 = 0
        var dropped: UInt64 = 0
        var random = SplitMix64(seed: 0x4452_4946_5421)
    }

    private let state: Mutex<State>
    private let gauges: [(psi: Gauge, ks: Gauge?, p: Gauge?, missing: Gauge, unseen: Gauge?)]
    private let driftedGauge: Gauge
    private let samplesGauge: Gauge
    private let observedCounter: Counter
    private let droppedCounter: Counter
    private let undecodableCounter: Counter

    /// A monitor for a version whose inputs are `inputs` (client-facing, batched when
    /// `batched`), or nil when no reference feature maps to an input column.
    public init?(model: String, version: Int, reference: ReferenceStatistics, inputs: [TensorInfo], outputs: [TensorInfo],
                 batched: Bool, settings: ModelSettings.MonitoringSettings, nowMs: UInt64) {
        guard settings.sampleRate > 0 else { return nil }
        let (features, unmapped) = Self.resolve(reference: reference, inputs: inputs, batched: batched)
        guard !features.isEmpty else { return nil }
        self.model = model
        self.version = version
        self.settings = settings
        self.sampler = PredictionSampler(rate: settings.sampleRate)
        self.features = features
        self.unmapped = unmapped
        self.outputNames = outputs.prefix(Self.maxOutputs).map(\.name)
        let open = Self.emptyWindow(features: features, outputs: outputNames.count,
                                    startMs: Self.windowStart(nowMs, settings.windowSeconds))
        state = Mutex(State(open: open))
        let v = String(version)
        gauges = features.map { f in
            let d = [("model", model), ("version", v), ("feature", f.name)]
            return (Gauge(label: "swerve_feature_drift", dimensions: d),
                    f.numeric != nil ? Gauge(label: "swerve_feature_ks_statistic", dimensions: d) : nil,
                    f.numeric != nil ? Gauge(label: "swerve_feature_ks_p_value", dimensions: d) : nil,
                    Gauge(label: "swerve_feature_missing_ratio", dimensions: d),
                    f.categorical != nil ? Gauge(label: "swerve_feature_out_of_vocabulary_ratio", dimensions: d) : nil)
        }
        let d = [("model", model), ("version", v)]
        driftedGauge = Gauge(label: "swerve_drift_features_drifted", dimensions: d)
        samplesGauge = Gauge(label: "swerve_drift_window_samples", dimensions: d)
        observedCounter = Counter(label: "swerve_drift_samples_total", dimensions: d + [("outcome", "observed")])
        droppedCounter = Counter(label: "swerve_drift_samples_total", dimensions: d + [("outcome", "dropped")])
        undecodableCounter = Counter(label: "swerve_drift_samples_total", dimensions: d + [("outcome", "undecodable")])
        Self.live.withLock { $0["\(model)\u{0}\(version)", default: 0] += 1 }
        // No window has closed yet: no figure, rather than a zero that reads as "no drift".
        for g in gauges {
            g.psi.record(Double.nan); g.ks?.record(Double.nan); g.p?.record(Double.nan)
            g.missing.record(Double.nan); g.unseen?.record(Double.nan)
        }
        driftedGauge.record(0)
        samplesGauge.record(0)
    }

    static func windowStart(_ nowMs: UInt64, _ seconds: Int) -> UInt64 {
        let w = UInt64(seconds) * 1000
        return nowMs / w * w
    }

    private static func emptyWindow(features: [Feature], outputs: Int, startMs: UInt64) -> Window {
        Window(startMs: startMs, features: features.map { FeatureAccumulator(bins: $0.binCount) },
               outputs: [OutputAccumulator](repeating: OutputAccumulator(), count: outputs))
    }

    /// Finds each reference feature in the inputs: by the reference's `features` list, else an
    /// input of the feature's name with one element per row. Features of neither are unmapped.
    static func resolve(reference: ReferenceStatistics, inputs: [TensorInfo], batched: Bool) -> ([Feature], [String]) {
        var placed: [(name: String, input: Int, column: Int)] = []
        var unmapped: [String] = []
        func width(_ i: Int) -> Int? {
            let row = batched ? inputs[i].shape.dropFirst() : inputs[i].shape[...]
            return row.allSatisfy { $0 >= 0 } ? row.reduce(1, *) : nil
        }
        let names = Set(reference.numeric.keys).union(reference.categorical.keys)
        if let listed = reference.features {
            for f in listed {
                guard names.contains(f.name), let i = inputs.firstIndex(where: { $0.name == f.input }),
                      f.column >= 0, width(i).map({ f.column < $0 }) ?? true
                else { unmapped.append(f.name); continue }
                placed.append((f.name, i, f.column))
            }
        } else {
            for name in names.sorted() {
                guard let i = inputs.firstIndex(where: { $0.name == name }), width(i) == 1 else { unmapped.append(name); continue }
                placed.append((name, i, 0))
            }
        }
        var features: [Feature] = []
        for p in placed {
            guard features.count < maxFeatures else { unmapped.append(p.name); continue }
            let categorical = reference.numeric[p.name] == nil ? reference.categorical[p.name] : nil
            let categories = categorical.map { $0.frequencies.keys.sorted() } ?? []
            features.append(Feature(name: p.name, input: p.input, inputName: inputs[p.input].name, column: p.column,
                                    numeric: reference.numeric[p.name], categorical: categorical, categories: categories,
                                    categoryIndex: Dictionary(uniqueKeysWithValues: categories.enumerated().map { ($1, $0) })))
        }
        return (features, unmapped.sorted())
    }

    // MARK: Observing

    /// Counts a sampled request the monitor's queue had no room for.
    public func recordDropped() {
        state.withLock { $0.dropped += 1 }
        droppedCounter.increment()
    }

    /// Counts a sampled request that could not be read back (it was answered, so this is rare).
    public func recordUndecodable() { undecodableCounter.increment() }

    /// Takes one answered request into the open window: `inputs` in the model's input order,
    /// each `[rows, ...]` (or one row without a batch dimension), and the outputs the response
    /// carried as (position among the model's outputs, shape, values).
    public func observe(inputs: [TensorValues], rows: Int, outputs: [(index: Int, shape: [Int], values: TensorValues)], nowMs: UInt64) {
        guard rows > 0 else { return }
        observedCounter.increment()
        state.withLock { s in
            rotate(&s, nowMs: nowMs)
            s.observed += 1
            s.open.rows += UInt64(rows)
            for (j, f) in features.enumerated() {
                guard f.input < inputs.count else { continue }
                let values = inputs[f.input]
                let width = values.count / rows
                guard width * rows == values.count, f.column < width else { continue }
                for r in 0..<rows {
                    observe(f, &s.open.features[j], values, r * width + f.column, &s.random)
                }
            }
            for o in outputs where o.index < s.open.outputs.count {
                observe(output: &s.open.outputs[o.index], shape: o.shape, values: o.values, random: &s.random)
            }
        }
    }

    private func observe(_ f: Feature, _ a: inout FeatureAccumulator, _ values: TensorValues, _ i: Int, _ random: inout SplitMix64) {
        if let numeric = f.numeric {
            guard let x = Self.number(values, i), x.isFinite else { a.missing += 1; return }
            a.count += 1
            a.sum += x
            a.bins[Self.bin(x, edges: numeric.binEdges)] += 1
            Self.reservoir(&a.sample, &a.seen, x, &random)
        } else {
            guard let text = Self.text(values, i), !text.isEmpty else { a.missing += 1; return }
            a.count += 1
            if let b = f.categoryIndex[text] {
                a.bins[b] += 1
            } else {
                a.bins[f.categories.count] += 1
                if a.unseen[text] != nil || a.unseen.count < Self.maxUnseenValues { a.unseen[text, default: 0] += 1 }
            }
        }
    }

    private func observe(output a: inout OutputAccumulator, shape: [Int], values: TensorValues, random: inout SplitMix64) {
        let rows = shape.first ?? 1
        guard rows > 0, values.count % rows == 0 else { return }
        let width = values.count / rows
        guard width > 0 else { return }
        let float: [Double]? = switch values {
        case .fp32(let v): v.map(Double.init)
        case .fp64(let v): v
        default: nil
        }
        a.count += UInt64(rows)
        for r in 0..<rows {
            if let float {
                if width == 1 {
                    a.kind = .score
                    score(&a, float[r], &random)
                } else {
                    a.kind = .classScore
                    var best = r * width
                    for i in r * width + 1..<(r + 1) * width where float[i] > float[best] { best = i }
                    count(&a, String(best - r * width))
                    score(&a, float[best], &random)
                }
            } else {
                a.kind = .classes
                count(&a, Self.text(values, r * width) ?? "")
            }
        }
    }

    private func score(_ a: inout OutputAccumulator, _ x: Double, _ random: inout SplitMix64) {
        guard x.isFinite else { return }
        a.scoreCount += 1
        a.scoreSum += x
        Self.reservoir(&a.sample, &a.seen, x, &random)
    }

    private func count(_ a: inout OutputAccumulator, _ label: String) {
        if a.classes[label] != nil || a.classes.count < Self.maxClasses { a.classes[label, default: 0] += 1 } else { a.other += 1 }
    }

    /// Keeps a uniform sample of at most `sampleCapacity` of the values seen (Algorithm R).
    private static func reservoir(_ sample: inout [Double], _ seen: inout UInt64, _ x: Double, _ random: inout SplitMix64) {
        seen += 1
        if sample.count < sampleCapacity { sample.append(x); return }
        let j = random.next() % seen
        if j < UInt64(sampleCapacity) { sample[Int(j)] = x }
    }

    /// The reference's bin convention (`NumericReference.histogram`): the number of interior
    /// edges ≤ x, so values outside the edges fall in the first or last bin.
    static func bin(_ x: Double, edges: [Double]) -> Int {
        guard edges.count > 2 else { return 0 }
        var lo = 1, hi = edges.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if edges[mid] <= x { lo = mid + 1 } else { hi = mid }
        }
        return lo - 1
    }

    static func number(_ values: TensorValues, _ i: Int) -> Double? {
        switch values {
        case .fp32(let v): Double(v[i])
        case .fp64(let v): v[i]
        case .int64(let v): Double(v[i])
        case .int32(let v): Double(v[i])
        case .int16(let v): Double(v[i])
        case .int8(let v): Double(v[i])
        case .uint8(let v): Double(v[i])
        case .uint16(let v): Double(v[i])
        case .uint32(let v): Double(v[i])
        case .uint64(let v): Double(v[i])
        case .bool(let v): v[i] ? 1 : 0
        case .bytes(let v): Double(String(decoding: v[i].prefix(64), as: UTF8.self).trimmingCharacters(in: .whitespaces))
        }
    }

    /// A categorical value as the reference's categories spell it: text as it is (at most 128
    /// bytes), integers in decimal, integral floats without a fraction.
    static func text(_ values: TensorValues, _ i: Int) -> String? {
        switch values {
        case .bytes(let v): return String(decoding: v[i].prefix(128), as: UTF8.self)
        case .bool(let v): return v[i] ? "true" : "false"
        case .fp32, .fp64:
            guard let x = number(values, i), x.isFinite else { return nil }
            return x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(x)
        default:
            return number(values, i).map { String(Int64($0)) }
        }
    }

    // MARK: Windows

    /// Closes the open window once its time is up (from the monitor thread's tick as well as
    /// from `observe`, so idle versions' windows close too).
    public func tick(nowMs: UInt64) {
        state.withLock { rotate(&$0, nowMs: nowMs) }
    }

    private func rotate(_ s: inout State, nowMs: UInt64) {
        let length = UInt64(settings.windowSeconds) * 1000
        guard nowMs >= s.open.startMs + length else { return }
        var done = s.open
        done.endMs = done.startMs + length
        done.drift = features.enumerated().map { j, f in drift(f, done.features[j], rows: done.rows) }
        s.closed.append(done)
        if s.closed.count > settings.windows { s.closed.removeFirst(s.closed.count - settings.windows) }
        s.open = Self.emptyWindow(features: features, outputs: outputNames.count, startMs: Self.windowStart(nowMs, settings.windowSeconds))
        export(done)
    }

    /// PSI and KS of one feature's window, NaN while it holds fewer than `min_samples` rows.
    private func drift(_ f: Feature, _ a: FeatureAccumulator, rows: UInt64) -> (psi: Double, d: Double, p: Double) {
        guard rows >= UInt64(settings.minSamples), a.count > 0 else { return (.nan, .nan, .nan) }
        let actual = a.bins.map { Double($0) / Double(a.count) }
        let psi = populationStabilityIndex(reference: f.referenceShares, actual: actual)
        guard let numeric = f.numeric else { return (psi, .nan, .nan) }
        let ks = DriftStatistics.binnedKolmogorovSmirnov(referenceShares: f.referenceShares, referenceCount: numeric.count, counts: a.bins)
        return (psi, ks.d, ks.p)
    }

    private func export(_ w: Window) {
        var drifted = 0
        for (j, f) in features.enumerated() {
            let a = w.features[j], d = w.drift[j]
            let g = gauges[j]
            g.psi.record(d.psi)
            g.ks?.record(d.d)
            g.p?.record(d.p)
            let seen = a.count + a.missing
            g.missing.record(seen > 0 ? Double(a.missing) / Double(seen) : .nan)
            g.unseen?.record(a.count > 0 ? Double(a.bins[f.categories.count]) / Double(a.count) : .nan)
            if d.psi > settings.psiThreshold { drifted += 1 }
        }
        driftedGauge.record(drifted)
        samplesGauge.record(Double(w.rows))
    }

    /// Monitors alive per model version: a version reloaded with other settings has two for a
    /// moment, and they share their metric series (the registry hands out one per name and
    /// labels), so only the last one to retire may end them.
    private static let live = Mutex<[String: Int]>([:])
    private var liveKey: String { "\(model)\u{0}\(version)" }

    /// Ends the version's metric series (the version is unloaded), unless a newer monitor of the
    /// same version still records into them.
    public func retire() {
        let last = Self.live.withLock { all -> Bool in
            let n = (all[liveKey] ?? 1) - 1
            all[liveKey] = n > 0 ? n : nil
            return n <= 0
        }
        guard last else { return }
        for g in gauges {
            g.psi.destroy(); g.ks?.destroy(); g.p?.destroy(); g.missing.destroy(); g.unseen?.destroy()
        }
        driftedGauge.destroy()
        samplesGauge.destroy()
    }

    // MARK: Report

    /// The closed windows, oldest first, then the open one, beside the reference.
    public func report(nowMs: UInt64) -> VersionDrift {
        state.withLock { s in
            rotate(&s, nowMs: nowMs)
            var open = s.open
            open.drift = features.enumerated().map { j, f in drift(f, open.features[j], rows: open.rows) }
            let windows = s.closed + [open]
            var r = VersionDrift()
            r.name = model
            r.version = String(version)
            r.sampleRate = settings.sampleRate
            r.windowSeconds = UInt64(settings.windowSeconds)
            r.minSamples = UInt64(settings.minSamples)
            r.psiThreshold = settings.psiThreshold
            r.samplesObserved = s.observed
            r.samplesDropped = s.dropped
            r.unmapped = unmapped
            r.quantileLevels = Self.quantileLevels
            r.windows = windows.map { w in
                DriftWindow(startMs: w.startMs, endMs: w.endMs, rows: w.rows,
                            drifted: UInt32(w.drift.filter { $0.psi > settings.psiThreshold }.count))
            }
            r.features = features.enumerated().map { j, f in
                var d = FeatureDrift()
                d.name = f.name
                d.kind = f.numeric != nil ? "numeric" : "categorical"
                d.input = f.inputName
                d.column = UInt32(f.column)
                d.referenceCount = UInt64(f.numeric?.count ?? f.categorical?.count ?? 0)
                d.referenceMean = f.numeric?.mean ?? .nan
                d.referenceStd = f.numeric?.std ?? .nan
                d.binEdges = f.numeric?.binEdges ?? []
                d.categories = f.categories
                d.referenceProportions = f.referenceShares
                d.windows = windows.map { w in
                    let a = w.features[j]
                    var x = FeatureWindow()
                    x.count = a.count
                    x.missing = a.missing
                    x.binCounts = a.bins
                    if f.numeric != nil {
                        x.mean = a.count > 0 ? a.sum / Double(a.count) : .nan
                        x.quantiles = DriftStatistics.quantiles(sorted: a.sample.sorted(), levels: Self.quantileLevels)
                    }
                    (x.psi, x.ksStatistic, x.ksPValue) = w.drift[j]
                    let unseen = a.unseen.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
                    x.outOfVocabulary = unseen.map(\.key)
                    x.outOfVocabularyCounts = unseen.map(\.value)
                    return x
                }
                return d
            }
            r.outputs = outputNames.enumerated().map { k, name in
                var o = OutputDrift()
                o.name = name
                o.kind = windows.last(where: { $0.outputs[k].kind != .none })?.outputs[k].kind.rawValue ?? ""
                o.windows = windows.map { w in
                    let a = w.outputs[k]
                    var x = OutputWindow()
                    x.count = a.count
                    let classes = a.classes.sorted { $0.key < $1.key }
                    x.classes = classes.map(\.key) + (a.other > 0 ? ["other"] : [])
                    x.classCounts = classes.map(\.value) + (a.other > 0 ? [a.other] : [])
                    x.scoreCount = a.scoreCount
                    x.scoreMean = a.scoreCount > 0 ? a.scoreSum / Double(a.scoreCount) : .nan
                    x.scoreQuantiles = a.scoreCount > 0 ? DriftStatistics.quantiles(sorted: a.sample.sorted(), levels: Self.quantileLevels) : []
                    return x
                }
                return o
            }
            return r
        }
    }
}
