import CSwerveKernels

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
    /// The C layout (`CSwerveTrees.h`) when every branch fits it; nil: the Swift walk below.
    private let forest: CompiledForest?

    /// Rows per block (see the file's comment).
    static let blockRows = 32

    /// Checks and compiles `ensemble`; throws `invalidModel` with what is wrong. `compiledLayout`
    /// false keeps to the Swift walk (the reference the C layout is tested against).
    public init(_ ensemble: TreeEnsemble, compiledLayout: Bool = true) throws {
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
        forest = compiledLayout ? CompiledForest(ensemble) : nil
    }

    /// Whether the C layout evaluates this ensemble (for tests and the design note).
    public var usesCompiledLayout: Bool { forest != nil }

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
        if let forest, hasScore == nil || forest.scoredTargets != nil {
            forest.evaluate(rows: rows, count: count, features: features, into: scores, hasScore: hasScore, ensemble: ensemble)
            return
        }
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

/// An ensemble in the C layout of `CSwerveTrees.h`: each tree's nodes contiguous in depth-first
/// order, 16 bytes each, comparisons normalized to `x <= t` / `x < t` (a `>=` or `>` node swaps
/// its children), missing values sent by a flag, leaves as nodes that lead to themselves.
final class CompiledForest: @unchecked Sendable {
    private let nodes: UnsafeMutableBufferPointer<swk_tree_node>
    private let roots: UnsafeMutableBufferPointer<Int32>
    private let depths: UnsafeMutableBufferPointer<Int32>
    private let leafStart: UnsafeMutableBufferPointer<Int32>
    private let leafCount: UnsafeMutableBufferPointer<Int32>
    private let targets: UnsafeMutableBufferPointer<Int32>
    private let weights: UnsafeMutableBufferPointer<Double>
    private var forest: swk_forest
    /// Per target, whether every row gets a contribution to it (true), none ever does (false);
    /// nil when that depends on the row (the caller then needs the Swift walk for `hasScore`).
    let scoredTargets: [Bool]?

    /// Nil when a branch does not fit the layout (set membership, equality tests, features past
    /// 2^24) or the aggregate is MIN or MAX.
    init?(_ e: TreeEnsemble) {
        guard e.aggregate == .sum || e.aggregate == .average, e.featureCount < 1 << 24 else { return nil }
        for n in e.nodes {
            switch n.comparison {
            case .lessOrEqual, .less, .greaterOrEqual, .greater: break
            default: return nil
            }
        }
        var laid: [swk_tree_node] = []
        var starts: [Int32] = [], counts: [Int32] = []
        var rootList: [Int32] = [], depthList: [Int32] = []
        laid.reserveCapacity(e.nodes.count + e.leaves.count)
        for root in e.roots {
            // Depth-first; a node's index is known when it is placed, its children patched after.
            var maxDepth: Int32 = 0
            var stack: [(child: Int32, parent: Int, yes: Bool, depth: Int32)] = [(root, -1, true, 0)]
            rootList.append(Int32(laid.count))
            while let (child, parent, isYes, depth) = stack.popLast() {
                let at = Int32(laid.count)
                if parent >= 0 {
                    if isYes { laid[parent].yes = at } else { laid[parent].no = at }
                }
                if child < 0 {
                    let leaf = e.leaves[Int(~child)]
                    laid.append(swk_tree_node(threshold: 0, feature_flags: 0, yes: at, no: at))
                    starts.append(leaf.start)
                    counts.append(leaf.count)
                    maxDepth = max(maxDepth, depth)
                    continue
                }
                let n = e.nodes[Int(child)]
                var yesChild = n.trueChild, noChild = n.falseChild
                var flags: UInt32 = 0
                let swapped = n.comparison == .greaterOrEqual || n.comparison == .greater
                if n.comparison == .less || n.comparison == .greaterOrEqual { flags |= UInt32(SWK_TREE_LT) }
                if swapped { swap(&yesChild, &noChild) }
                // Where a missing value goes, in the original node's terms (true branch?).
                let missingTrue: Bool
                switch n.missing {
                case .compare: missingTrue = false  // NaN compares false under <=, <, >=, >
                case .nanGoesTrue, .zeroOrNaNGoesTrue: missingTrue = true
                case .nanGoesFalse, .zeroOrNaNGoesFalse: missingTrue = false
                case .nanIsZero:
                    switch n.comparison {
                    case .lessOrEqual: missingTrue = 0 <= n.threshold
                    case .less: missingTrue = 0 < n.threshold
                    case .greaterOrEqual: missingTrue = 0 >= n.threshold
                    default: missingTrue = 0 > n.threshold
                    }
                }
                if missingTrue != swapped { flags |= UInt32(SWK_TREE_MISSING_YES) }
                if n.missing == .zeroOrNaNGoesTrue || n.missing == .zeroOrNaNGoesFalse { flags |= UInt32(SWK_TREE_ZERO_MISSING) }
                laid.append(swk_tree_node(threshold: n.threshold, feature_flags: UInt32(n.feature) | flags << 24, yes: 0, no: 0))
                starts.append(0)
                counts.append(0)
                // The yes child right after its parent (popped first).
                stack.append((noChild, Int(at), false, depth + 1))
                stack.append((yesChild, Int(at), true, depth + 1))
            }
            depthList.append(maxDepth)
        }
        func buffer<T>(_ a: [T]) -> UnsafeMutableBufferPointer<T> {
            let b = UnsafeMutableBufferPointer<T>.allocate(capacity: max(a.count, 1))
            _ = b.initialize(from: a)
            return b
        }
        nodes = buffer(laid)
        roots = buffer(rootList)
        depths = buffer(depthList)
        leafStart = buffer(starts)
        leafCount = buffer(counts)
        targets = buffer(e.leafTargets)
        weights = buffer(e.leafWeights)
        forest = swk_forest(
            nodes: nodes.baseAddress, roots: roots.baseAddress, depths: depths.baseAddress, tree_count: Int64(e.roots.count),
            leaf_start: leafStart.baseAddress, leaf_count: leafCount.baseAddress, targets: targets.baseAddress,
            weights: weights.baseAddress, target_count: Int64(e.targetCount))
        // A target every row scores: some tree adds to it at every leaf. One no row scores: no
        // leaf adds to it.
        var always = [Bool](repeating: false, count: e.targetCount)
        var ever = [Bool](repeating: false, count: e.targetCount)
        for t in e.leafTargets { ever[Int(t)] = true }
        func leavesOf(_ root: Int32) -> [TreeEnsemble.Leaf] {
            var out: [TreeEnsemble.Leaf] = [], stack = [root]
            while let c = stack.popLast() {
                if c < 0 { out.append(e.leaves[Int(~c)]) } else { stack += [e.nodes[Int(c)].trueChild, e.nodes[Int(c)].falseChild] }
            }
            return out
        }
        for root in e.roots {
            let leaves = leavesOf(root)
            for t in 0..<e.targetCount where !always[t] {
                always[t] = leaves.allSatisfy { l in (Int(l.start)..<Int(l.start + l.count)).contains { e.leafTargets[$0] == Int32(t) } }
            }
        }
        scoredTargets = (0..<e.targetCount).allSatisfy { always[$0] || !ever[$0] } ? always : nil
    }

    deinit {
        nodes.deallocate()
        roots.deallocate()
        depths.deallocate()
        leafStart.deallocate()
        leafCount.deallocate()
        targets.deallocate()
        weights.deallocate()
    }

    func evaluate(
        rows: UnsafePointer<Float>, count: Int, features: Int, into scores: UnsafeMutablePointer<Float>,
        hasScore: UnsafeMutablePointer<Bool>?, ensemble e: TreeEnsemble
    ) {
        let T = e.targetCount
        // In chunks, so the FP64 accumulators stay small and in cache.
        let chunk = 256
        // On the heap: chunk × targets doubles can be megabytes for a many-class model.
        var accumulators = [Double](repeating: 0, count: min(chunk, max(count, 1)) * T)
        accumulators.withUnsafeMutableBufferPointer { acc in
            var first = 0
            while first < count {
                let n = min(chunk, count - first)
                acc.baseAddress!.update(repeating: 0, count: n * T)
                withUnsafePointer(to: &forest) { f in
                    swk_forest_accumulate(f, rows + first * features, n, features, acc.baseAddress!)
                }
                for r in 0..<n {
                    for t in 0..<T {
                        var v = acc[r * T + t]
                        if e.aggregate == .average { v /= Double(e.roots.count) }
                        if !e.baseValues.isEmpty { v += e.baseValues[t] }
                        scores[(first + r) * T + t] = Float(v)
                        hasScore?[(first + r) * T + t] = scoredTargets![t]
                    }
                }
                first += n
            }
        }
    }
}
