// The one description of a tree ensemble that every source compiles into: the ai.onnx.ml
// TreeEnsembleClassifier / TreeEnsembleRegressor / TreeEnsemble operators, XGBoost's JSON model
// and LightGBM's text model. The evaluator compiles it once more, into whatever layout is fastest
// (see Trees/ in the design note); this type stays the readable, checkable form.

/// A forest of binary decision trees whose leaves add weights to one or more targets.
///
/// Evaluation of one row: for every tree, walk from its root, at each branch comparing
/// `row[feature]` with `threshold` (or testing membership in a category set) and following
/// `trueChild` when the test holds, `falseChild` otherwise, until a leaf; the leaf's
/// contributions `(target, weight)` are aggregated per target over all trees (`aggregate`), then
/// `baseValues` are added. Post transforms (logistic, softmax, …) are not part of the ensemble:
/// the operator or native model that owns it applies them.
public struct TreeEnsemble: Sendable, Equatable {
    /// How a branch compares the feature value `x` with its threshold `t`.
    public enum Comparison: UInt8, Sendable {
        case lessOrEqual  // x <= t   (ONNX BRANCH_LEQ, LightGBM numerical splits)
        case less  // x < t    (ONNX BRANCH_LT, XGBoost)
        case greaterOrEqual  // x >= t   (BRANCH_GTE)
        case greater  // x > t    (BRANCH_GT)
        case equal  // x == t   (BRANCH_EQ)
        case notEqual  // x != t   (BRANCH_NEQ)
        /// x is one of the node's `members`, compared as floats (ONNX BRANCH_MEMBER).
        case member
        /// x truncated toward zero to an integer is one of the node's `members` (LightGBM's and
        /// XGBoost's categorical splits, which cast the value to int); NaN, infinities and values
        /// outside ±2^31 are in no set.
        case memberInteger
    }

    /// What a branch does with a missing value, and which values are missing.
    public enum Missing: UInt8, Sendable {
        /// NaN is compared like any value, with IEEE semantics: every comparison is false except
        /// `notEqual`, which is true; `member` is false. (ONNX with
        /// `missing_value_tracks_true` = 0.)
        case compare
        /// NaN takes the true branch. (ONNX `missing_value_tracks_true` = 1; XGBoost and
        /// LightGBM's `missing_type` NaN with default-left, once the parser has made "left" the
        /// true branch.)
        case nanGoesTrue
        /// NaN takes the false branch.
        case nanGoesFalse
        /// NaN is replaced by 0 before the comparison (LightGBM `missing_type` None).
        case nanIsZero
        /// NaN and every x with |x| <= 1e-35 take the true branch (LightGBM `missing_type` Zero
        /// with default-left).
        case zeroOrNaNGoesTrue
        /// NaN and every x with |x| <= 1e-35 take the false branch.
        case zeroOrNaNGoesFalse
    }

    /// How the leaves' weights for one target combine over the trees.
    public enum Aggregate: UInt8, Sendable {
        case sum, average, min, max
    }

    /// One branch. A child index >= 0 is a node of `nodes`; a child < 0 is the leaf `~child`.
    public struct Node: Sendable, Equatable {
        public var feature: Int32
        /// Compared with FP32 row values. Sources whose thresholds are FP64 (LightGBM, ONNX
        /// `nodes_splits` as doubles) round them so the FP32 comparison decides exactly as the
        /// FP64 one does for every FP32 input (see `float32Threshold`); ONNX sources, whose
        /// inputs may be FP64, keep the FP64 value in `exactThresholds` too.
        public var threshold: Float
        public var comparison: Comparison
        public var missing: Missing
        public var trueChild: Int32
        public var falseChild: Int32
        /// For `member`: the range of `memberValues` holding this node's set.
        public var membersStart: Int32
        public var membersCount: Int32

        public init(
            feature: Int32, threshold: Float, comparison: Comparison, missing: Missing,
            trueChild: Int32, falseChild: Int32, membersStart: Int32 = 0, membersCount: Int32 = 0
        ) {
            self.feature = feature
            self.threshold = threshold
            self.comparison = comparison
            self.missing = missing
            self.trueChild = trueChild
            self.falseChild = falseChild
            self.membersStart = membersStart
            self.membersCount = membersCount
        }
    }

    /// One leaf: `leafTargets[start..<start+count]` with `leafWeights` at the same indices.
    public struct Leaf: Sendable, Equatable {
        public var start: Int32
        public var count: Int32
        public init(start: Int32, count: Int32) {
            self.start = start
            self.count = count
        }
    }

    /// Features a row has; every `Node.feature` is below it.
    public var featureCount: Int
    /// Outputs per row; every leaf target is below it.
    public var targetCount: Int
    public var nodes: [Node]
    public var leaves: [Leaf]
    public var leafTargets: [Int32]
    /// Leaf weights in FP64: LightGBM's are doubles, and summing 500 trees in FP32 loses digits
    /// the oracles keep.
    public var leafWeights: [Double]
    /// Category sets of `member` branches (values as the row holds them, e.g. 3.0 for category 3).
    public var memberValues: [Float]
    /// Per tree, its root: a node index, or `~leaf` for a tree that is a single leaf.
    public var roots: [Int32]
    public var aggregate: Aggregate
    /// Added per target after aggregation (ONNX `base_values`, XGBoost `base_score` as a margin,
    /// LightGBM's none); empty means zeros.
    public var baseValues: [Double]
    /// Per node, its threshold as the source gave it in FP64, when the source's thresholds are
    /// doubles (ONNX `nodes_values_as_tensor`); empty when they are FP32 values. FP64 rows are
    /// compared with these in FP64, as onnxruntime compares them; FP32 rows use `Node.threshold`.
    public var exactThresholds: [Double] = []

    public init(
        featureCount: Int, targetCount: Int, nodes: [Node], leaves: [Leaf], leafTargets: [Int32],
        leafWeights: [Double], memberValues: [Float] = [], roots: [Int32], aggregate: Aggregate = .sum,
        baseValues: [Double] = []
    ) {
        self.featureCount = featureCount
        self.targetCount = targetCount
        self.nodes = nodes
        self.leaves = leaves
        self.leafTargets = leafTargets
        self.leafWeights = leafWeights
        self.memberValues = memberValues
        self.roots = roots
        self.aggregate = aggregate
        self.baseValues = baseValues
    }

    /// Why an ensemble is not well formed, or nil when it is: every index in range, every tree
    /// a tree (each node reached from exactly one parent, no cycles), every leaf reached.
    /// Sources call it after building one and turn a message into `invalidModel`.
    public func validationError() -> String? {
        guard featureCount > 0 else { return "no features" }
        guard targetCount > 0 else { return "no targets" }
        guard !roots.isEmpty else { return "no trees" }
        guard leafTargets.count == leafWeights.count else { return "leaf targets and weights differ in count" }
        guard baseValues.isEmpty || baseValues.count == targetCount else {
            return "\(baseValues.count) base values for \(targetCount) targets"
        }
        guard exactThresholds.isEmpty || exactThresholds.count == nodes.count else {
            return "\(exactThresholds.count) FP64 thresholds for \(nodes.count) nodes"
        }
        for (i, leaf) in leaves.enumerated() {
            guard leaf.start >= 0, leaf.count >= 0, Int(leaf.start) + Int(leaf.count) <= leafTargets.count else {
                return "leaf \(i) refers to weights outside the table"
            }
            for t in leafTargets[Int(leaf.start)..<Int(leaf.start + leaf.count)] where t < 0 || Int(t) >= targetCount {
                return "leaf \(i) adds to target \(t), outside 0..<\(targetCount)"
            }
        }
        var nodeParents = [UInt8](repeating: 0, count: nodes.count)
        var leafParents = [UInt8](repeating: 0, count: leaves.count)
        func claim(_ child: Int32) -> String? {
            if child >= 0 {
                guard Int(child) < nodes.count else { return "child node \(child) does not exist" }
                guard nodeParents[Int(child)] == 0 else { return "node \(child) is reached twice" }
                nodeParents[Int(child)] = 1
            } else {
                let leaf = Int(~child)
                guard leaf < leaves.count else { return "leaf \(leaf) does not exist" }
                guard leafParents[leaf] == 0 else { return "leaf \(leaf) is reached twice" }
                leafParents[leaf] = 1
            }
            return nil
        }
        for root in roots { if let e = claim(root) { return e } }
        for (i, node) in nodes.enumerated() {
            guard node.feature >= 0, Int(node.feature) < featureCount else {
                return "node \(i) tests feature \(node.feature), outside 0..<\(featureCount)"
            }
            if node.comparison == .member || node.comparison == .memberInteger {
                guard node.membersStart >= 0, node.membersCount >= 0,
                    Int(node.membersStart) + Int(node.membersCount) <= memberValues.count
                else { return "node \(i) refers to category values outside the table" }
            }
            if let e = claim(node.trueChild) ?? claim(node.falseChild) { return e }
        }
        // Every node claimed once and reached from a root means no cycles: a cycle's nodes
        // would all need a parent inside the cycle, so none could hang below a root.
        if let orphan = nodeParents.firstIndex(of: 0) { return "node \(orphan) is not in any tree" }
        if let orphan = leafParents.firstIndex(of: 0) { return "leaf \(orphan) is not in any tree" }
        var reached = [Bool](repeating: false, count: nodes.count)
        var stack = roots.filter { $0 >= 0 }
        while let n = stack.popLast() {
            reached[Int(n)] = true
            for c in [nodes[Int(n)].trueChild, nodes[Int(n)].falseChild] where c >= 0 { stack.append(c) }
        }
        if let unreached = reached.firstIndex(of: false) { return "node \(unreached) is in a cycle" }
        return nil
    }

    /// The FP32 threshold that decides like the FP64 `t` for every FP32 value `x` under
    /// `comparison`: for `<=` and `>` the largest float not above `t`, for `<` and `>=` the
    /// smallest float not below it; equality tests keep `t` only when it is a float (otherwise
    /// no FP32 x can equal it, and NaN, which equals nothing, stands in).
    public static func float32Threshold(_ t: Double, for comparison: Comparison) -> Float {
        let nearest = Float(t)
        if t.isNaN || Double(nearest) == t { return nearest }
        switch comparison {
        case .lessOrEqual, .greater:
            return Double(nearest) > t ? nearest.nextDown : nearest
        case .less, .greaterOrEqual:
            return Double(nearest) < t ? nearest.nextUp : nearest
        case .equal, .notEqual, .member, .memberInteger:
            return .nan
        }
    }
}
