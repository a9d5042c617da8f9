import Foundation
import SwerveProto

/// Gradient-boosting hyperparameters (`--model gbdt`); the learning rate and L2 penalty are the
/// configuration's own `learningRate` and `l2`.
public struct GBDTParameters: Sendable, Codable, Equatable {
    /// Boosting iterations (a multiclass model grows one tree per class per iteration).
    public var trees: Int
    /// Maximum tree depth (the root is depth 0): at most 2^depth leaves per tree.
    public var depth: Int
    /// The fewest training rows a leaf may hold.
    public var minLeaf: Int

    public init(trees: Int = 100, depth: Int = 6, minLeaf: Int = 20) {
        self.trees = trees
        self.depth = depth
        self.minLeaf = minLeaf
    }

    /// The most tree nodes a model may allocate: trees × outputs × 2^(depth+1) must stay under it.
    public static let maxNodes = 1 << 23
    /// The deepest tree allowed.
    public static let maxDepth = 20
    /// Value bins per feature (the missing-value bin comes on top).
    public static let maxBins = 255
    /// The bin index of missing (NaN) values.
    static let missingBin = 255

    func validate(outputs: Int) throws {
        func check(_ ok: Bool, _ message: String) throws {
            if !ok { throw TrainingError(.invalidConfiguration, message) }
        }
        try check(trees >= 1, "trees must be at least 1")
        try check(depth >= 1 && depth <= Self.maxDepth, "depth must be between 1 and \(Self.maxDepth)")
        try check(minLeaf >= 1, "min-leaf must be at least 1")
        let (a, o1) = trees.multipliedReportingOverflow(by: max(1, outputs))
        let (nodes, o2) = a.multipliedReportingOverflow(by: 1 << (depth + 1))
        try check(!o1 && !o2 && nodes <= Self.maxNodes,
                  "trees × outputs × 2^(depth+1) = \(o1 || o2 ? "overflow" : String(nodes)) tree nodes exceeds the limit of \(Self.maxNodes); use fewer trees or a smaller depth")
    }
}

/// One regression tree over the encoded features. Node `i` is a leaf when `feature[i] < 0`; else
/// rows with `x[feature] <= threshold` (FP32 comparison, as ONNX BRANCH_LEQ) go to `left[i]`, the
/// rest to `right[i]`, and NaN goes left when `missingLeft[i]`.
public struct BoostedTree: Sendable, Codable, Equatable {
    public var feature: [Int] = []
    public var threshold: [Float] = []
    public var missingLeft: [Bool] = []
    public var left: [Int] = []
    public var right: [Int] = []
    /// Leaf values (learning rate included); 0 on split nodes.
    public var value: [Double] = []

    mutating func add(feature f: Int, threshold t: Float, missingLeft m: Bool, value v: Double) -> Int {
        feature.append(f); threshold.append(t); missingLeft.append(m); left.append(-1); right.append(-1); value.append(v)
        return feature.count - 1
    }

    /// The leaf value `row` (encoded FP32 features) reaches.
    @inline(__always) func evaluate(_ row: UnsafePointer<Float>) -> Double {
        var i = 0
        while feature[i] >= 0 {
            let v = row[feature[i]]
            i = (v.isNaN ? missingLeft[i] : v <= threshold[i]) ? left[i] : right[i]
        }
        return value[i]
    }
}

/// A boosted ensemble: raw score of output `k` = `base[k]` + Σ leaf values of the trees of `k`.
/// One output (the log-odds of the second class) for two classes, one per class for more.
public struct BoostedEnsemble: Sendable, Codable, Equatable {
    public var outputs: Int
    public var base: [Double]
    /// Iteration-major: tree `i · outputs + k` belongs to output `k`.
    public var trees: [BoostedTree]

    /// Raw scores, `rows × outputs` row-major.
    func rawScores(_ x: [Float], rows: Int, width: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows * outputs)
        x.withUnsafeBufferPointer { xp in
            for r in 0..<rows {
                let row = xp.baseAddress! + r * width
                for k in 0..<outputs { out[r * outputs + k] = base[k] }
                for (t, tree) in trees.enumerated() { out[r * outputs + t % outputs] += tree.evaluate(row) }
            }
        }
        return out
    }

    /// Class probabilities, `rows × classes`.
    func probabilities(_ x: [Float], rows: Int, width: Int, classes: Int) -> [Double] {
        let raw = rawScores(x, rows: rows, width: width)
        return scoresToProbabilities(raw, rows: rows, outputs: outputs, classes: classes)
    }
}

func scoresToProbabilities(_ raw: [Double], rows: Int, outputs: Int, classes: Int) -> [Double] {
    var p = [Double](repeating: 0, count: rows * classes)
    for r in 0..<rows {
        if outputs == 1 {
            let s = raw[r]
            let q = 1 / (1 + exp(-s))
            p[r * 2] = 1 - q
            p[r * 2 + 1] = q
        } else {
            var m = -Double.infinity
            for k in 0..<outputs { m = max(m, raw[r * outputs + k]) }
            var sum = 0.0
            for k in 0..<outputs { let e = exp(raw[r * outputs + k] - m); p[r * classes + k] = e; sum += e }
            for k in 0..<outputs { p[r * classes + k] /= sum }
        }
    }
    return p
}

extension FeatureEncoder {
    /// The encoded rows exactly as the exported graph computes them in FP32: numeric
    /// `(Float(x) − Float(mean)) / Float(scale)` (ONNX Sub then Div), one-hot columns 0 or 1.
    public func encodeFloat32(_ data: Dataset) throws -> [Float] {
        let encoded = try encode(data)
        var out = encoded.map { Float($0) }
        let w = width
        for (f, name) in numericNames.enumerated() {
            guard let i = data.numericNames.firstIndex(of: name) else {
                throw TrainingError(.invalidData, "the data has no numeric feature '\(name)'", column: name)
            }
            let column = data.numeric[i]
            let mean = Float(means[f]), scale = Float(scales[f])
            for r in 0..<data.rowCount { out[r * w + f] = (Float(column[r]) - mean) / scale }
        }
        return out
    }
}

/// Per-feature bin edges learned on the training rows: a value `v` falls in the first bin `b` with
/// `v <= edges[b]` (else the last bin, `edges.count`); NaN falls in `GBDTParameters.missingBin`.
/// Edges are FP32 values, so the exported `BRANCH_LEQ` threshold `edges[b]` sends every training
/// value to the same side as its bin.
struct FeatureBinner {
    var edges: [[Float]]

    /// Up to `maxBins` bins per feature: midpoints between distinct values when there are at most
    /// `maxBins` of them, else quantiles (as scikit-learn's histogram gradient boosting).
    init(_ x: [Float], rows n: Int, width: Int, maxBins: Int = GBDTParameters.maxBins) {
        edges = (0..<width).map { f in
            var column = [Float]()
            column.reserveCapacity(n)
            for r in 0..<n where !x[r * width + f].isNaN { column.append(x[r * width + f]) }
            column.sort()
            var distinct = [Float]()
            for v in column where distinct.last != v { distinct.append(v) }
            var candidates = [Float]()
            func midpoint(_ a: Float, _ b: Float) -> Float {
                let m = Float((Double(a) + Double(b)) / 2)
                return m >= a && m < b ? m : a
            }
            if distinct.count <= maxBins {
                for i in 0..<max(0, distinct.count - 1) { candidates.append(midpoint(distinct[i], distinct[i + 1])) }
            } else {
                // numpy's "averaged_inverted_cdf" percentiles, as scikit-learn ≥ 1.6: with g = n·q/maxBins,
                // the value of rank ⌈g⌉ (1-based), or the mean of ranks g and g+1 when g is whole.
                let count = column.count
                for q in 1..<maxBins {
                    let (j, remainder) = (count * q).quotientAndRemainder(dividingBy: maxBins)
                    candidates.append(remainder == 0
                        ? Float((Double(column[max(0, j - 1)]) + Double(column[min(count - 1, j)])) / 2)
                        : column[min(count - 1, j)])
                }
            }
            var out = [Float]()
            for c in candidates where out.last.map({ c > $0 }) ?? true { out.append(c) }
            return out
        }
    }

    @inline(__always) func bin(_ v: Float, feature f: Int) -> UInt8 {
        if v.isNaN { return UInt8(GBDTParameters.missingBin) }
        let e = edges[f]
        var lo = 0, hi = e.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if v <= e[mid] { hi = mid } else { lo = mid + 1 }
        }
        return UInt8(lo)
    }

    /// Column-major bins: `bins[f · n + r]`.
    func binColumns(_ x: [Float], rows n: Int, width: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n * width)
        for f in 0..<width { for r in 0..<n { out[f * n + r] = bin(x[r * width + f], feature: f) } }
        return out
    }
}

/// A best split: rows with bin ≤ `bin` go left; missing values go left when `missingLeft`.
struct SplitCandidate: Equatable {
    var feature: Int
    var bin: Int
    var missingLeft: Bool
    var gain: Double
}

/// Gradient/hessian/count histograms of one node, `features × 256` bins.
struct Histogram {
    var g: [Double]
    var h: [Double]
    var c: [Int]

    init(features: Int) {
        g = [Double](repeating: 0, count: features * 256)
        h = g
        c = [Int](repeating: 0, count: features * 256)
    }

    mutating func subtract(_ other: Histogram) {
        for i in g.indices { g[i] -= other.g[i]; h[i] -= other.h[i]; c[i] -= other.c[i] }
    }
}

/// Grows one depth-wise tree on binned columns.
struct TreeGrower {
    let bins: [UInt8]
    let n: Int
    let features: Int
    let binCounts: [Int]
    let edges: [[Float]]
    let depth: Int
    let minLeaf: Int
    let l2: Double
    let learningRate: Double
    static let minHessian = 1e-3

    func histogram(_ rows: ArraySlice<Int>, _ g: [Double], _ h: [Double]) -> Histogram {
        var hist = Histogram(features: features)
        for f in 0..<features {
            let base = f * n, hb = f * 256
            for r in rows {
                let b = hb + Int(bins[base + r])
                hist.g[b] += g[r]; hist.h[b] += h[r]; hist.c[b] += 1
            }
        }
        return hist
    }

    /// The best split of a node with histogram `hist` and totals, or nil when none has positive gain
    /// with `minLeaf` rows on each side.
    func bestSplit(_ hist: Histogram, g G: Double, h H: Double, count: Int) -> SplitCandidate? {
        var best: SplitCandidate? = nil
        let parent = G * G / (H + l2)
        for f in 0..<features {
            let hb = f * 256, missing = hb + GBDTParameters.missingBin
            let mg = hist.g[missing], mh = hist.h[missing], mc = hist.c[missing]
            var lg = 0.0, lh = 0.0, lc = 0
            for b in 0..<max(0, binCounts[f] - 1) {
                lg += hist.g[hb + b]; lh += hist.h[hb + b]; lc += hist.c[hb + b]
                for missingLeft in mc > 0 ? [false, true] : [false] {
                    let gl = missingLeft ? lg + mg : lg, hl = missingLeft ? lh + mh : lh, cl = missingLeft ? lc + mc : lc
                    let gr = G - gl, hr = H - hl, cr = count - cl
                    guard cl >= minLeaf, cr >= minLeaf, hl >= Self.minHessian, hr >= Self.minHessian else { continue }
                    let children = gl * gl / (hl + l2) + gr * gr / (hr + l2)
                    let gain = children - parent
                    // A gain within rounding of zero (e.g. a node whose rows all share one gradient)
                    // is no gain: such splits would only add leaves of equal value.
                    if gain > 1e-12 * children, best == nil || gain > best!.gain {
                        // No missing values in training: they follow the larger child (as scikit-learn).
                        let left = mc > 0 ? missingLeft : cl >= cr
                        best = SplitCandidate(feature: f, bin: b, missingLeft: left, gain: gain)
                    }
                }
            }
        }
        return best
    }

    /// Grows the tree over `rows` (reordered in place) with gradients `g`, hessians `h`.
    func grow(rows: inout [Int], g: [Double], h: [Double]) -> BoostedTree {
        var tree = BoostedTree()
        var scratch = [Int](repeating: 0, count: rows.count)
        let rootHist = histogram(rows[...], g, h)
        func leafValue(_ G: Double, _ H: Double) -> Double { -learningRate * G / (H + l2) }
        func node(_ lo: Int, _ hi: Int, _ hist: Histogram, _ G: Double, _ H: Double, _ level: Int) -> Int {
            let count = hi - lo
            guard level < depth, count >= 2 * minLeaf, let split = bestSplit(hist, g: G, h: H, count: count) else {
                return tree.add(feature: -1, threshold: 0, missingLeft: false, value: leafValue(G, H))
            }
            let f = split.feature
            let id = tree.add(feature: f, threshold: edges[f][split.bin], missingLeft: split.missingLeft, value: 0)
            // Stable partition: left rows first.
            var l = lo, r = 0
            var gl = 0.0, hl = 0.0
            for i in lo..<hi {
                let row = rows[i]
                let b = Int(bins[f * n + row])
                let goesLeft = b == GBDTParameters.missingBin ? split.missingLeft : b <= split.bin
                if goesLeft { rows[l] = row; l += 1; gl += g[row]; hl += h[row] } else { scratch[r] = row; r += 1 }
            }
            for i in 0..<r { rows[l + i] = scratch[i] }
            // Histogram the smaller child, the larger one is the parent minus it.
            let leftSmaller = l - lo <= hi - l
            let small = leftSmaller ? histogram(rows[lo..<l], g, h) : histogram(rows[l..<hi], g, h)
            var large = hist
            large.subtract(small)
            let (leftHist, rightHist) = leftSmaller ? (small, large) : (large, small)
            // Totals from the partitioned rows, summed in row order.
            var gr = 0.0, hr = 0.0
            for i in l..<hi { gr += g[rows[i]]; hr += h[rows[i]] }
            let leftID = node(lo, l, leftHist, gl, hl, level + 1)
            let rightID = node(l, hi, rightHist, gr, hr, level + 1)
            tree.left[id] = leftID
            tree.right[id] = rightID
            return id
        }
        var G = 0.0, H = 0.0
        for r in rows { G += g[r]; H += h[r] }
        _ = node(0, rows.count, rootHist, G, H, 0)
        return tree
    }
}

/// One report every this many trees (iterations).
public let gbdtProgressInterval = 10

extension Trainer {
    /// Histogram gradient boosting on the encoded features (see `GBDTParameters`).
    func trainGradientBoosting(
        on train: Dataset, validation: Dataset?, warmStart: TrainedModel?,
        progress: (EpochProgress) -> Void, shouldStop: @Sendable () -> Bool
    ) throws -> TrainedModel {
        let config = configuration
        let params = config.gbdt ?? GBDTParameters()
        guard warmStart == nil else {
            throw TrainingError(.invalidConfiguration, "gbdt models cannot warm-start: train from scratch (drop --warm-start)")
        }
        guard train.schema.task == .classification else {
            throw TrainingError(.invalidConfiguration, "a gbdt model learns classification labels only")
        }
        let classNames = train.classNames
        guard classNames.count >= 2 else { throw TrainingError(.invalidConfiguration, "gbdt needs at least two classes") }
        let outputs = classNames.count == 2 ? 1 : classNames.count
        try params.validate(outputs: outputs)
        let encoder = FeatureEncoder(fitting: train)
        let width = encoder.width
        guard width > 0 else { throw TrainingError(.invalidConfiguration, "there are no features to train on") }
        let n = train.rowCount
        let x = try encoder.encodeFloat32(train)
        guard case .classes(let labels, _) = train.labels else {
            throw TrainingError(.invalidConfiguration, "a gbdt model learns classification labels only")
        }
        let binner = FeatureBinner(x, rows: n, width: width)
        let grower = TreeGrower(
            bins: binner.binColumns(x, rows: n, width: width), n: n, features: width,
            binCounts: binner.edges.map { $0.count + 1 }, edges: binner.edges, depth: params.depth,
            minLeaf: params.minLeaf, l2: config.l2, learningRate: config.learningRate)

        // Initial raw scores: the prior's log-odds (binary) or log class priors (multiclass).
        var counts = [Double](repeating: 0, count: classNames.count)
        for y in labels { counts[y] += 1 }
        let eps = 1e-12
        // Multiclass: centered, as scikit-learn's symmetric multinomial link gives them.
        let logPriors = counts.map { log(max($0 / Double(n), eps)) }
        let meanLogPrior = logPriors.reduce(0, +) / Double(logPriors.count)
        let base: [Double] = outputs == 1
            ? [log(max(counts[1], eps) / max(counts[0], eps))]
            : logPriors.map { $0 - meanLogPrior }
        var raw = [Double](repeating: 0, count: n * outputs)
        for r in 0..<n { for k in 0..<outputs { raw[r * outputs + k] = base[k] } }

        let validationRows = (validation?.rowCount ?? 0) > 0 ? validation : nil
        let xv = try validationRows.map { try encoder.encodeFloat32($0) }
        var rawValidation = [Double](repeating: 0, count: (validationRows?.rowCount ?? 0) * outputs)
        for i in 0..<rawValidation.count { rawValidation[i] = base[i % outputs] }

        var ensemble = BoostedEnsemble(outputs: outputs, base: base, trees: [])
        ensemble.trees.reserveCapacity(params.trees * outputs)
        var history: [EpochProgress] = []
        var g = [Double](repeating: 0, count: n), h = g
        var rows = Array(0..<n)
        let clock = ContinuousClock()
        let started = clock.now
        let classes = classNames.count

        for iteration in 1...params.trees {
            if shouldStop() { throw TrainingError(.cancelled, "training stopped before tree \(iteration)") }
            let p = scoresToProbabilities(raw, rows: n, outputs: outputs, classes: classes)
            for k in 0..<outputs {
                let cls = outputs == 1 ? 1 : k
                for r in 0..<n {
                    let q = p[r * classes + cls]
                    // Kept in FP32, as scikit-learn keeps them: exact ties between splits then
                    // stay exact ties (sums of the same FP32 values), broken the same way.
                    g[r] = Double(Float(q - (labels[r] == cls ? 1 : 0)))
                    h[r] = Double(Float(max(q * (1 - q), 1e-16)))
                }
                for i in 0..<n { rows[i] = i }
                let tree = grower.grow(rows: &rows, g: g, h: h)
                x.withUnsafeBufferPointer { xp in
                    for r in 0..<n { raw[r * outputs + k] += tree.evaluate(xp.baseAddress! + r * width) }
                }
                if let xv, let vr = validationRows {
                    xv.withUnsafeBufferPointer { xp in
                        for r in 0..<vr.rowCount { rawValidation[r * outputs + k] += tree.evaluate(xp.baseAddress! + r * width) }
                    }
                }
                ensemble.trees.append(tree)
            }
            if iteration % gbdtProgressInterval == 0 || iteration == params.trees {
                let probabilities = scoresToProbabilities(raw, rows: n, outputs: outputs, classes: classes)
                var loss = 0.0
                for r in 0..<n { loss -= log(max(probabilities[r * classes + labels[r]], 1e-15)) }
                let elapsed = clock.now - started
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                var report = EpochProgress(
                    epoch: iteration, trainLoss: loss / Double(n), validationLoss: nil, validationAccuracy: nil,
                    examplesPerSecond: Double(n) * Double(iteration) / max(seconds, 1e-9), improved: false)
                report.trees = iteration
                report.elapsedSeconds = seconds
                guard report.trainLoss.isFinite else {
                    throw TrainingError(.invalidConfiguration, "training diverged at tree \(iteration) (loss \(report.trainLoss)); lower the learning rate")
                }
                if let vr = validationRows {
                    let pv = scoresToProbabilities(rawValidation, rows: vr.rowCount, outputs: outputs, classes: classes)
                    let metrics = Metrics(Predictions(task: .classification, classNames: classNames, values: pv), labels: vr.labels)
                    report.validationLoss = metrics.logLoss
                    report.validationAccuracy = metrics.accuracy
                }
                report.improved = iteration == params.trees
                history.append(report)
                progress(report)
            }
        }
        let head: OutputHead = outputs == 1 ? .sigmoid : .softmax
        // The network is a zero placeholder recording the head (task, warm-start checks); the
        // ensemble makes the predictions.
        let network = Network(layerSizes: [width, outputs], activation: config.activation, head: head)
        var model = TrainedModel(
            kind: .gbdt, labelName: train.labelName, classNames: classNames, encoder: encoder, network: network,
            configuration: config, history: history, bestEpoch: params.trees, trainedRows: n)
        model.ensemble = ensemble
        return model
    }
}

extension TrainedModel {
    /// The gradient-boosted classifier's probabilities for `data`.
    func ensemblePredictions(_ ensemble: BoostedEnsemble, _ data: Dataset) throws -> Predictions {
        let x = try encoder.encodeFloat32(data)
        return Predictions(
            task: .classification, classNames: classNames,
            values: ensemble.probabilities(x, rows: data.rowCount, width: encoder.width, classes: classNames.count))
    }

    /// `ai.onnx.ml.TreeEnsembleClassifier` over the encoded `features`, writing `label` (class
    /// index) and `probabilities` directly. Two classes follow skl2onnx's binary convention (every
    /// leaf on class id 0, one base value, LOGISTIC) so onnxruntime's binary special case yields
    /// `[1 − σ(s), σ(s)]`; more classes use SOFTMAX with one tree per class and iteration.
    static func treeEnsembleNode(_ ensemble: BoostedEnsemble, input: String, classes: Int) -> ONNXNode {
        var treeIDs: [Int64] = [], nodeIDs: [Int64] = [], featureIDs: [Int64] = [], modes: [[UInt8]] = []
        var values: [Float] = [], trueIDs: [Int64] = [], falseIDs: [Int64] = [], missingTrue: [Int64] = []
        var classTree: [Int64] = [], classNode: [Int64] = [], classIDs: [Int64] = [], weights: [Float] = []
        var trees = ensemble.trees
        var base = ensemble.base
        let binary = ensemble.outputs == 1
        // onnxruntime's binary case skips the logistic when every leaf weight is ≥ 0: add a constant
        // tree with a negative leaf (and move its value into the base) so that never happens.
        if binary, trees.allSatisfy({ t in t.feature.indices.allSatisfy { t.feature[$0] >= 0 || t.value[$0] >= 0 } }) {
            var t = BoostedTree()
            _ = t.add(feature: -1, threshold: 0, missingLeft: false, value: -1)
            trees.append(t)
            base[0] += 1
        }
        for (t, tree) in trees.enumerated() {
            for i in tree.feature.indices {
                treeIDs.append(Int64(t)); nodeIDs.append(Int64(i))
                if tree.feature[i] >= 0 {
                    featureIDs.append(Int64(tree.feature[i])); modes.append(Array("BRANCH_LEQ".utf8))
                    values.append(tree.threshold[i]); trueIDs.append(Int64(tree.left[i])); falseIDs.append(Int64(tree.right[i]))
                    missingTrue.append(tree.missingLeft[i] ? 1 : 0)
                } else {
                    featureIDs.append(0); modes.append(Array("LEAF".utf8)); values.append(0)
                    trueIDs.append(0); falseIDs.append(0); missingTrue.append(0)
                    classTree.append(Int64(t)); classNode.append(Int64(i))
                    classIDs.append(binary ? 0 : Int64(t % ensemble.outputs))
                    weights.append(Float(tree.value[i]))
                }
            }
        }
        let attributes: [String: ONNXAttribute] = [
            "nodes_treeids": .ints(treeIDs), "nodes_nodeids": .ints(nodeIDs), "nodes_featureids": .ints(featureIDs),
            "nodes_modes": .strings(modes), "nodes_values": .floats(values), "nodes_truenodeids": .ints(trueIDs),
            "nodes_falsenodeids": .ints(falseIDs), "nodes_missing_value_tracks_true": .ints(missingTrue),
            "class_treeids": .ints(classTree), "class_nodeids": .ints(classNode), "class_ids": .ints(classIDs),
            "class_weights": .floats(weights), "classlabels_int64s": .ints((0..<classes).map(Int64.init)),
            "base_values": .floats(base.map(Float.init)),
            "post_transform": .string(Array((binary ? "LOGISTIC" : "SOFTMAX").utf8)),
        ]
        return ONNXNode(name: "gbdt_TreeEnsembleClassifier", opType: "TreeEnsembleClassifier", domain: "ai.onnx.ml",
                        inputs: [input], outputs: ["label", "probabilities"], attributes: attributes)
    }
}
