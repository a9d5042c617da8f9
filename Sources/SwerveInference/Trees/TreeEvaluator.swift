import CSwerveKernels

// Evaluates a `TreeEnsemble` over FP32 rows (FP64 rows: `evaluate(wideRows:)`). Ensembles whose
// branches fit the C layout (`CSwerveTrees.h`: <=, <, >=, > with any missing rule; SUM or AVERAGE)
// are compiled into it at load; the others (set membership, equality tests, MIN/MAX) take the plain walk below, which is
// also the reference the C layout is tested against. Either way each row's scores are accumulated
// in FP64 in tree order, so a row's answer does not depend on its batch.

/// A compiled tree ensemble; immutable and shareable between threads.
public struct TreeEnsembleEvaluator: Sendable {
    public let ensemble: TreeEnsemble
    public var featureCount: Int { ensemble.featureCount }
    public var targetCount: Int { ensemble.targetCount }
    /// The C layout when every branch fits it; nil: the plain walk.
    private let forest: CompiledForest?

    /// Checks and compiles `ensemble`; throws `invalidModel` with what is wrong. `compiledLayout`
    /// false keeps to the plain walk (the reference the C layout is tested against).
    public init(_ ensemble: TreeEnsemble, compiledLayout: Bool = true) throws {
        if let problem = ensemble.validationError() {
            throw InferenceError(.invalidModel, "tree ensemble: \(problem)")
        }
        guard ensemble.featureCount <= Int(Int32.max), ensemble.targetCount <= 1 << 20 else {
            throw InferenceError(.invalidModel, "tree ensemble: \(ensemble.featureCount) features or \(ensemble.targetCount) targets are more than supported")
        }
        self.ensemble = ensemble
        forest = compiledLayout ? CompiledForest(ensemble) : nil
    }

    /// Whether the C layout evaluates this ensemble (for tests and the design note).
    public var usesCompiledLayout: Bool { forest != nil }

    /// Whether `x` takes the true branch of `node`, comparing with `t` (the node's threshold in
    /// `x`'s type).
    private func takesTrue<T: BinaryFloatingPoint>(_ x: T, _ node: TreeEnsemble.Node, _ t: T) -> Bool {
        var v = x
        let tiny = T(Float(1e-35))  // LightGBM's kZeroThreshold, a float literal
        switch node.missing {
        case .compare: break
        case .nanGoesTrue: if x.isNaN { return true }
        case .nanGoesFalse: if x.isNaN { return false }
        case .nanIsZero: if x.isNaN { v = 0 }
        case .zeroOrNaNGoesTrue: if x.isNaN || abs(x) <= tiny { return true }
        case .zeroOrNaNGoesFalse: if x.isNaN || abs(x) <= tiny { return false }
        }
        switch node.comparison {
        case .lessOrEqual: return v <= t
        case .less: return v < t
        case .greaterOrEqual: return v >= t
        case .greater: return v > t
        case .equal: return v == t
        case .notEqual: return v != t
        case .member: return isMember(node) { T($0) == v }
        case .memberInteger:
            guard v.isFinite, v > -2_147_483_649, v < 2_147_483_648 else { return false }
            let category = Float(Int64(v))  // truncated toward zero, as a C cast does
            return isMember(node) { $0 == category }
        }
    }

    /// Whether one of `node`'s category values satisfies `matches`.
    @inline(__always)
    private func isMember(_ node: TreeEnsemble.Node, _ matches: (Float) -> Bool) -> Bool {
        let start = Int(node.membersStart)
        for i in start..<start + Int(node.membersCount) where matches(ensemble.memberValues[i]) { return true }
        return false
    }

    /// The leaf `row` reaches in the tree rooted at `root`; `threshold(i)` is node i's threshold
    /// in the row's type.
    @inline(__always)
    private func leaf<T: BinaryFloatingPoint>(_ row: UnsafePointer<T>, root: Int32, _ threshold: (Int) -> T) -> TreeEnsemble.Leaf {
        var n = root
        while n >= 0 {
            let node = ensemble.nodes[Int(n)]
            n = takesTrue(row[Int(node.feature)], node, threshold(Int(n))) ? node.trueChild : node.falseChild
        }
        return ensemble.leaves[Int(~n)]
    }

    /// Aggregated scores (`count × targetCount`, row-major) of `count` rows of `featureCount`
    /// FP32 features, base values added, no post transform. `hasScore`, when given
    /// (`count × targetCount`), tells which targets any reached leaf added to (onnxruntime's
    /// classifiers decide their binary cases by it).
    public func evaluate(
        rows: UnsafePointer<Float>, count: Int, into scores: UnsafeMutablePointer<Float>,
        hasScore: UnsafeMutablePointer<Bool>? = nil
    ) {
        let features = featureCount
        aggregate(count: count, into: scores, hasScore: hasScore) { first, n, acc, has in
            if let forest {
                forest.accumulate(rows + first * features, rows: n, features: features, into: acc, has: has)
            } else {
                walk(rows + first * features, count: n, into: acc, has: has) { ensemble.nodes[$0].threshold }
            }
        }
    }

    /// `evaluate(rows:)` for FP64 rows, compared in FP64 with each node's FP64 threshold
    /// (`exactThresholds`, else the FP32 one), as onnxruntime compares FP64 inputs. Rows whose
    /// values are all FP32 values (or NaN) take the FP32 evaluation, which decides identically
    /// for them; the others take the plain walk in FP64.
    public func evaluate(
        wideRows rows: UnsafePointer<Double>, count: Int, into scores: UnsafeMutablePointer<Float>,
        hasScore: UnsafeMutablePointer<Bool>? = nil
    ) {
        let features = featureCount
        let exact = ensemble.exactThresholds
        // Where FP32-exact chunks are converted for the C layout (none without it).
        var narrow = [Float](repeating: 0, count: forest == nil ? 0 : min(count, 256) * features)
        aggregate(count: count, into: scores, hasScore: hasScore) { first, n, acc, has in
            let chunk = rows + first * features
            var fits = true
            for i in 0..<n * features {
                let v = chunk[i]
                if Double(Float(v)) != v && !v.isNaN { fits = false; break }
            }
            if fits, let forest {
                narrow.withUnsafeMutableBufferPointer { p in
                    for i in 0..<n * features { p[i] = Float(chunk[i]) }
                    forest.accumulate(p.baseAddress!, rows: n, features: features, into: acc, has: has)
                }
            } else if exact.isEmpty {
                walk(chunk, count: n, into: acc, has: has) { Double(ensemble.nodes[$0].threshold) }
            } else {
                walk(chunk, count: n, into: acc, has: has) { exact[$0] }
            }
        }
    }

    /// Runs `accumulate(first, n, acc, has)` over chunks of rows and turns each chunk's sums into
    /// scores: averaged, base values added, converted to FP32.
    private func aggregate(
        count: Int, into scores: UnsafeMutablePointer<Float>, hasScore: UnsafeMutablePointer<Bool>?,
        _ accumulate: (Int, Int, UnsafeMutablePointer<Double>, UnsafeMutablePointer<UInt8>) -> Void
    ) {
        let targets = targetCount
        // In chunks of rows, so the FP64 accumulators stay small (they are on the heap: a
        // many-class model's can be megabytes) and the C layout walks many rows at once.
        let chunk = min(256, max(count, 1))
        var acc = [Double](repeating: 0, count: chunk * targets)
        var has = [UInt8](repeating: 0, count: chunk * targets)
        acc.withUnsafeMutableBufferPointer { a in
            has.withUnsafeMutableBufferPointer { h in
                var first = 0
                while first < count {
                    let n = min(chunk, count - first)
                    a.baseAddress!.update(repeating: 0, count: n * targets)
                    h.baseAddress!.update(repeating: 0, count: n * targets)
                    accumulate(first, n, a.baseAddress!, h.baseAddress!)
                    for i in 0..<n * targets {
                        var v = h[i] != 0 ? a[i] : 0
                        if ensemble.aggregate == .average { v /= Double(ensemble.roots.count) }
                        if !ensemble.baseValues.isEmpty { v += ensemble.baseValues[i % targets] }
                        scores[first * targets + i] = Float(v)
                        hasScore?[first * targets + i] = h[i] != 0
                    }
                    first += n
                }
            }
        }
    }

    /// The plain walk: each tree in turn takes every row of the chunk (its nodes stay in cache),
    /// aggregating into `acc` (rows × targets); each row still sees the trees in order.
    private func walk<T: BinaryFloatingPoint>(
        _ rows: UnsafePointer<T>, count: Int, into acc: UnsafeMutablePointer<Double>, has: UnsafeMutablePointer<UInt8>,
        threshold: (Int) -> T
    ) {
        let features = featureCount, targets = targetCount
        for root in ensemble.roots {
            for r in 0..<count {
                let l = leaf(rows + r * features, root: root, threshold)
                let acc = acc + r * targets, has = has + r * targets
                for j in Int(l.start)..<Int(l.start + l.count) {
                    let t = Int(ensemble.leafTargets[j]), w = ensemble.leafWeights[j]
                    switch ensemble.aggregate {
                    case .sum, .average: acc[t] += w
                    case .min: acc[t] = has[t] != 0 && acc[t] <= w ? acc[t] : w
                    case .max: acc[t] = has[t] != 0 && acc[t] >= w ? acc[t] : w
                    }
                    has[t] = 1
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
    /// Set once at load and only read after: threads share it without an exclusive access.
    private let forest: UnsafeMutablePointer<swk_forest>

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
        forest = .allocate(capacity: 1)
        forest.initialize(to: swk_forest(
            nodes: nodes.baseAddress, roots: roots.baseAddress, depths: depths.baseAddress, tree_count: Int64(e.roots.count),
            leaf_start: leafStart.baseAddress, leaf_count: leafCount.baseAddress, targets: targets.baseAddress,
            weights: weights.baseAddress, target_count: Int64(e.targetCount)))
    }

    deinit {
        nodes.deallocate()
        roots.deallocate()
        depths.deallocate()
        leafStart.deallocate()
        leafCount.deallocate()
        targets.deallocate()
        weights.deallocate()
        forest.deallocate()
    }

    /// Adds the leaves `rows` rows reach to `acc` and marks them in `has` (rows × targets each).
    func accumulate(_ x: UnsafePointer<Float>, rows: Int, features: Int, into acc: UnsafeMutablePointer<Double>,
                    has: UnsafeMutablePointer<UInt8>) {
        swk_forest_accumulate(forest, x, rows, features, acc, has)
    }
}
