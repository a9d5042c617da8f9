// Evaluates a `TreeEnsemble` over FP32 rows. The ensemble is compiled at load into flat node
// arrays (one 16-byte record per branch, children as indices, leaves as negative indices), and
// rows go through the trees in blocks: for a block of rows, each tree in turn, so a tree's nodes
// stay in cache while the block's rows walk it. Results do not depend on the block a row is in:
// each row's scores are accumulated in the same tree order, in FP64, whatever the batch.

/// A compiled tree ensemble; immutable and shareable between threads.
public struct TreeEnsembleEvaluator: Sendable {
    /// One branch: 16 bytes. `kind` packs the comparison (low 4 bits) and the missing rule.
    struct Branch: Sendable {
        var feature: Int32
        var threshold: Float
        var trueChild: Int32
        var falseChild: Int32
    }

    public let ensemble: TreeEnsemble
    public var featureCount: Int { ensemble.featureCount }
    public var targetCount: Int { ensemble.targetCount }
    private let branches: [Branch]
    private let kinds: [UInt8]
    /// True when every branch is `x <= t` or `x < t` with one of the plain missing rules, the
    /// forms XGBoost, LightGBM (numerical) and scikit-learn produce: walked by the fast loop.
    private let simple: Bool
    /// Per leaf, its one weight when there is one target and every leaf adds exactly one weight
    /// to it (regressors, boosted binary classifiers): the common shape.
    private let singleLeafValues: [Double]?
    private let treeCount: Int

    /// Rows per block (see the file's comment).
    static let blockRows = 32

    /// Checks and compiles `ensemble`; throws `invalidModel` with what is wrong.
    public init(_ ensemble: TreeEnsemble) throws {
        if let problem = ensemble.validationError() {
            throw InferenceError(.invalidModel, "tree ensemble: \(problem)")
        }
        guard ensemble.featureCount <= Int(Int32.max), ensemble.targetCount <= 1 << 20 else {
            throw InferenceError(.invalidModel, "tree ensemble: \(ensemble.featureCount) features or \(ensemble.targetCount) targets are more than supported")
        }
        self.ensemble = ensemble
        branches = ensemble.nodes.map { Branch(feature: $0.feature, threshold: $0.threshold, trueChild: $0.trueChild, falseChild: $0.falseChild) }
        kinds = ensemble.nodes.map { $0.comparison.rawValue | ($0.missing.rawValue << 4) }
        simple = ensemble.nodes.allSatisfy {
            ($0.comparison == .lessOrEqual || $0.comparison == .less)
                && ($0.missing == .compare || $0.missing == .nanGoesTrue || $0.missing == .nanGoesFalse)
        }
        if ensemble.targetCount == 1, ensemble.leaves.allSatisfy({ $0.count == 1 }) {
            singleLeafValues = ensemble.leaves.map { ensemble.leafWeights[Int($0.start)] }
        } else {
            singleLeafValues = nil
        }
        treeCount = ensemble.roots.count
    }

    /// Whether `x` takes the true branch of a node of kind `kind` with threshold `t`.
    @inline(__always)
    private func takesTrue(_ x: Float, _ t: Float, _ kind: UInt8, _ node: Int) -> Bool {
        var v = x
        switch TreeEnsemble.Missing(rawValue: kind >> 4)! {
        case .compare: break
        case .nanGoesTrue: if x.isNaN { return true }
        case .nanGoesFalse: if x.isNaN { return false }
        case .nanIsZero: if x.isNaN { v = 0 }
        case .zeroOrNaNGoesTrue: if x.isNaN || abs(x) <= 1e-35 { return true }
        case .zeroOrNaNGoesFalse: if x.isNaN || abs(x) <= 1e-35 { return false }
        }
        switch TreeEnsemble.Comparison(rawValue: kind & 0xF)! {
        case .lessOrEqual: return v <= t
        case .less: return v < t
        case .greaterOrEqual: return v >= t
        case .greater: return v > t
        case .equal: return v == t
        case .notEqual: return v != t
        case .member:
            let n = ensemble.nodes[node]
            let start = Int(n.membersStart)
            for i in start..<start + Int(n.membersCount) where ensemble.memberValues[i] == v { return true }
            return false
        case .memberInteger:
            guard v.isFinite, v > -2_147_483_649, v < 2_147_483_648 else { return false }
            let category = Float(Int64(v))  // truncated toward zero, as a C cast does
            let n = ensemble.nodes[node]
            let start = Int(n.membersStart)
            for i in start..<start + Int(n.membersCount) where ensemble.memberValues[i] == category { return true }
            return false
        }
    }

    /// The leaf row `row` reaches in the tree rooted at `root` (as `~leaf`).
    @inline(__always)
    private func leaf(_ row: UnsafePointer<Float>, root: Int32, _ b: UnsafePointer<Branch>, _ k: UnsafePointer<UInt8>) -> Int {
        var n = root
        if simple {
            while n >= 0 {
                let node = b[Int(n)]
                let x = row[Int(node.feature)]
                let kind = k[Int(n)]
                let goTrue: Bool
                if x.isNaN {
                    goTrue = (kind >> 4) == TreeEnsemble.Missing.nanGoesTrue.rawValue
                } else {
                    goTrue = (kind & 0xF) == TreeEnsemble.Comparison.lessOrEqual.rawValue ? x <= node.threshold : x < node.threshold
                }
                n = goTrue ? node.trueChild : node.falseChild
            }
        } else {
            while n >= 0 {
                let node = b[Int(n)]
                n = takesTrue(row[Int(node.feature)], node.threshold, k[Int(n)], Int(n)) ? node.trueChild : node.falseChild
            }
        }
        return Int(~n)
    }

    /// Aggregated scores (`count × targetCount`, row-major) of `count` rows of `featureCount`
    /// FP32 features, base values added, no post transform. `hasScore`, when given
    /// (`count × targetCount`), tells which targets any reached leaf added to (onnxruntime's
    /// classifiers decide their binary cases by it).
    public func evaluate(
        rows: UnsafePointer<Float>, count: Int, into scores: UnsafeMutablePointer<Float>,
        hasScore: UnsafeMutablePointer<Bool>? = nil
    ) {
        let targets = targetCount, features = featureCount
        let block = Self.blockRows
        let aggregate = ensemble.aggregate
        var acc = [Double](repeating: 0, count: block * targets)
        var has = [Bool](repeating: false, count: block * targets)
        branches.withUnsafeBufferPointer { bp in
            kinds.withUnsafeBufferPointer { kp in
                let b = bp.baseAddress!, k = kp.baseAddress!
                var first = 0
                while first < count {
                    let n = min(block, count - first)
                    for i in 0..<n * targets {
                        acc[i] = 0
                        has[i] = false
                    }
                    if let values = singleLeafValues, aggregate == .sum || aggregate == .average {
                        // One target, one weight per leaf: a sum per row.
                        for root in ensemble.roots {
                            for r in 0..<n {
                                acc[r] += values[leaf(rows + (first + r) * features, root: root, b, k)]
                            }
                        }
                        for r in 0..<n { has[r] = true }
                    } else {
                        for root in ensemble.roots {
                            for r in 0..<n {
                                let l = ensemble.leaves[leaf(rows + (first + r) * features, root: root, b, k)]
                                for j in Int(l.start)..<Int(l.start + l.count) {
                                    let t = r * targets + Int(ensemble.leafTargets[j])
                                    let w = ensemble.leafWeights[j]
                                    switch aggregate {
                                    case .sum, .average: acc[t] += w
                                    case .min: acc[t] = has[t] && acc[t] <= w ? acc[t] : w
                                    case .max: acc[t] = has[t] && acc[t] >= w ? acc[t] : w
                                    }
                                    has[t] = true
                                }
                            }
                        }
                    }
                    for r in 0..<n {
                        for t in 0..<targets {
                            let i = r * targets + t
                            var v = has[i] ? acc[i] : 0
                            if aggregate == .average { v /= Double(treeCount) }
                            if !ensemble.baseValues.isEmpty { v += ensemble.baseValues[t] }
                            scores[(first + r) * targets + t] = Float(v)
                            hasScore?[(first + r) * targets + t] = has[i]
                        }
                    }
                    first += n
                }
            }
        }
    }
}
