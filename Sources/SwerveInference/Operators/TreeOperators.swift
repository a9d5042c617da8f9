// ai.onnx.ml tree ensembles: TreeEnsembleClassifier and TreeEnsembleRegressor (opsets 1–3, with
// the `*_as_tensor` attributes of opset 3) and TreeEnsemble (opset 5). Each is compiled into a
// `TreeEnsemble` and evaluated by `TreeEnsembleEvaluator`; what surrounds the evaluation (base
// values, the binary classifier's special cases, post transforms, labels) follows onnxruntime,
// the numeric oracle, where the ONNX spec is vague.
import SwerveProto
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One node of an ONNX tree as the attributes list it, before ids are resolved.
private struct ONNXTreeNode {
    var tree: Int64
    var id: Int64
    var feature: Int64
    var mode: String
    var value: Double
    var trueID: Int64
    var falseID: Int64
    var tracksTrue: Bool
}

/// The float or double list of attribute `name`, or of `name_as_tensor` (opset 3).
private func numbers(_ ctx: NodeContext, _ name: String) throws -> [Double]? {
    if let floats = try ctx.floats(name) { return floats.map(Double.init) }
    guard let a = ctx.attribute(name + "_as_tensor") else { return nil }
    guard let t = a.tensorValue else { throw ctx.invalid("attribute '\(name)_as_tensor' must be a tensor") }
    return try tensorNumbers(ctx, t, name + "_as_tensor")
}

private func tensorNumbers(_ ctx: NodeContext, _ t: ONNXTensor, _ name: String) throws -> [Double] {
    let tensor: Tensor
    do { tensor = try Tensor(onnx: t) } catch { throw ctx.invalid("attribute '\(name)': \(error)") }
    switch tensor.data {
    case .fp32(let v): return v.map(Double.init)
    case .fp64(let v): return v
    default: throw ctx.invalid("attribute '\(name)' must hold floats or doubles, holds \(tensor.dataType.rawValue)")
    }
}

private func comparison(_ ctx: NodeContext, mode: String, node: Int64, tree: Int64) throws -> TreeEnsemble.Comparison {
    switch mode {
    case "BRANCH_LEQ": return .lessOrEqual
    case "BRANCH_LT": return .less
    case "BRANCH_GTE": return .greaterOrEqual
    case "BRANCH_GT": return .greater
    case "BRANCH_EQ": return .equal
    case "BRANCH_NEQ": return .notEqual
    default: throw ctx.unsupported("tree \(tree) node \(node): unknown mode '\(mode)'")
    }
}

/// Builds the ensemble of an opset 1–3 TreeEnsembleClassifier/Regressor from its node attributes
/// and its leaf weights (`prefix` "class" or "target").
private func buildONNXEnsemble(_ ctx: NodeContext, features: Int, targets: Int, prefix: String) throws -> TreeEnsemble {
    guard let treeIDs = try ctx.ints("nodes_treeids"), let nodeIDs = try ctx.ints("nodes_nodeids"),
        let featureIDs = try ctx.ints("nodes_featureids"), let modes = try ctx.strings("nodes_modes"),
        let trueIDs = try ctx.ints("nodes_truenodeids"), let falseIDs = try ctx.ints("nodes_falsenodeids")
    else { throw ctx.invalid("missing one of nodes_treeids, nodes_nodeids, nodes_featureids, nodes_modes, nodes_truenodeids, nodes_falsenodeids") }
    let values = try numbers(ctx, "nodes_values") ?? []
    let n = treeIDs.count
    guard n > 0 else { throw ctx.invalid("the ensemble has no nodes") }
    for (name, count) in [("nodes_nodeids", nodeIDs.count), ("nodes_featureids", featureIDs.count), ("nodes_modes", modes.count),
                          ("nodes_values", values.count), ("nodes_truenodeids", trueIDs.count), ("nodes_falsenodeids", falseIDs.count)]
    where count != n {
        throw ctx.invalid("\(name) has \(count) entries, nodes_treeids \(n)")
    }
    let tracks = try ctx.ints("nodes_missing_value_tracks_true") ?? []
    guard tracks.isEmpty || tracks.count == n else {
        throw ctx.invalid("nodes_missing_value_tracks_true has \(tracks.count) entries, nodes_treeids \(n)")
    }
    var raw: [ONNXTreeNode] = []
    raw.reserveCapacity(n)
    for i in 0..<n {
        raw.append(ONNXTreeNode(
            tree: treeIDs[i], id: nodeIDs[i], feature: featureIDs[i], mode: String(decoding: modes[i], as: UTF8.self),
            value: values[i], trueID: trueIDs[i], falseID: falseIDs[i], tracksTrue: !tracks.isEmpty && tracks[i] != 0))
    }
    // Leaf weights.
    guard let wTrees = try ctx.ints("\(prefix)_treeids"), let wNodes = try ctx.ints("\(prefix)_nodeids"),
        let wIDs = try ctx.ints("\(prefix)_ids")
    else { throw ctx.invalid("missing one of \(prefix)_treeids, \(prefix)_nodeids, \(prefix)_ids") }
    let weights = try numbers(ctx, "\(prefix)_weights") ?? []
    guard wNodes.count == wTrees.count, wIDs.count == wTrees.count, weights.count == wTrees.count else {
        throw ctx.invalid("\(prefix)_treeids, \(prefix)_nodeids, \(prefix)_ids and \(prefix)_weights differ in length")
    }
    var leafWeights: [TreeKey: [(Int32, Double)]] = [:]
    for i in 0..<wTrees.count {
        guard wIDs[i] >= 0, wIDs[i] < Int64(targets) else {
            throw ctx.invalid("\(prefix)_ids[\(i)] = \(wIDs[i]) is outside 0..<\(targets)")
        }
        leafWeights[TreeKey(tree: wTrees[i], node: wNodes[i]), default: []].append((Int32(wIDs[i]), weights[i]))
    }
    // FP64 thresholds (`nodes_values_as_tensor`, which onnxruntime takes with FP64 inputs only).
    let doubleThresholds = try ctx.floats("nodes_values") == nil && ctx.attribute("nodes_values_as_tensor") != nil
    return try assembleEnsemble(
        ctx, raw, leafWeights: leafWeights, features: features, targets: targets, doubleThresholds: doubleThresholds)
}

private struct TreeKey: Hashable {
    var tree: Int64
    var node: Int64
}

/// Resolves per-tree node ids into a `TreeEnsemble`: trees in order of first appearance, each
/// tree's root the node no other node of it points to.
private func assembleEnsemble(
    _ ctx: NodeContext, _ raw: [ONNXTreeNode], leafWeights: [TreeKey: [(Int32, Double)]], features: Int, targets: Int,
    doubleThresholds: Bool
) throws -> TreeEnsemble {
    var index: [TreeKey: Int] = [:]
    var treeOrder: [Int64] = []
    var seenTree: Set<Int64> = []
    for (i, node) in raw.enumerated() {
        let key = TreeKey(tree: node.tree, node: node.id)
        guard index[key] == nil else { throw ctx.invalid("tree \(node.tree) lists node \(node.id) twice") }
        index[key] = i
        if seenTree.insert(node.tree).inserted { treeOrder.append(node.tree) }
    }
    for key in leafWeights.keys {
        guard let i = index[key] else { throw ctx.invalid("weights for tree \(key.tree) node \(key.node), which does not exist") }
        guard raw[i].mode == "LEAF" else { throw ctx.invalid("weights for tree \(key.tree) node \(key.node), which is not a leaf") }
    }
    // Global numbering: branches and leaves each in the order the attributes list them.
    var branchIndex = [Int32](repeating: -1, count: raw.count)
    var leafIndex = [Int32](repeating: -1, count: raw.count)
    var branchCount: Int32 = 0, leafCount: Int32 = 0
    for (i, node) in raw.enumerated() {
        if node.mode == "LEAF" {
            leafIndex[i] = leafCount
            leafCount += 1
        } else {
            branchIndex[i] = branchCount
            branchCount += 1
        }
    }
    func reference(_ tree: Int64, _ id: Int64, from node: Int64) throws -> Int32 {
        guard let i = index[TreeKey(tree: tree, node: id)] else {
            throw ctx.invalid("tree \(tree) node \(node) points to node \(id), which does not exist")
        }
        return raw[i].mode == "LEAF" ? ~leafIndex[i] : branchIndex[i]
    }
    var nodes: [TreeEnsemble.Node] = []
    var leaves: [TreeEnsemble.Leaf] = []
    var leafTargets: [Int32] = []
    var weights: [Double] = []
    var exact: [Double] = []
    var pointedTo: Set<TreeKey> = []
    nodes.reserveCapacity(Int(branchCount))
    leaves.reserveCapacity(Int(leafCount))
    for node in raw {
        if node.mode == "LEAF" {
            let contributions = leafWeights[TreeKey(tree: node.tree, node: node.id)] ?? []
            leaves.append(TreeEnsemble.Leaf(start: Int32(leafTargets.count), count: Int32(contributions.count)))
            for (t, w) in contributions {
                leafTargets.append(t)
                weights.append(w)
            }
            continue
        }
        let cmp = try comparison(ctx, mode: node.mode, node: node.id, tree: node.tree)
        guard node.feature >= 0, node.feature < Int64(features) else {
            throw ctx.invalid("tree \(node.tree) node \(node.id) tests feature \(node.feature), the input has \(features)")
        }
        pointedTo.insert(TreeKey(tree: node.tree, node: node.trueID))
        pointedTo.insert(TreeKey(tree: node.tree, node: node.falseID))
        nodes.append(TreeEnsemble.Node(
            feature: Int32(node.feature), threshold: TreeEnsemble.float32Threshold(node.value, for: cmp), comparison: cmp,
            missing: node.tracksTrue ? .nanGoesTrue : .compare,
            trueChild: try reference(node.tree, node.trueID, from: node.id),
            falseChild: try reference(node.tree, node.falseID, from: node.id)))
        if doubleThresholds { exact.append(node.value) }
    }
    var roots: [Int32] = []
    for tree in treeOrder {
        let candidates = raw.indices.filter { raw[$0].tree == tree && !pointedTo.contains(TreeKey(tree: tree, node: raw[$0].id)) }
        guard candidates.count == 1 else {
            throw ctx.invalid("tree \(tree) has \(candidates.count) nodes no other node points to (a tree has one root)")
        }
        let r = candidates[0]
        roots.append(raw[r].mode == "LEAF" ? ~leafIndex[r] : branchIndex[r])
    }
    var ensemble = TreeEnsemble(
        featureCount: features, targetCount: targets, nodes: nodes, leaves: leaves, leafTargets: leafTargets,
        leafWeights: weights, roots: roots)
    ensemble.exactThresholds = exact
    return ensemble
}

/// Where a kernel converts an integer input to FP32 (onnxruntime compares integers in FP32, and
/// loads no integer input with FP64 thresholds); FP32 and FP64 inputs are read as they are.
private func inputScratch(_ ctx: NodeContext, _ x: Int, _ type: DataType) -> Int? {
    type == .fp32 || type == .fp64 ? nil : ctx.scratch(ValueType(dataType: .fp32, shape: ctx.type(x).shape))
}

/// The evaluator for `ensemble`, with the ensemble's problems named after the node.
private func evaluator(_ ctx: NodeContext, _ ensemble: TreeEnsemble) throws -> TreeEnsembleEvaluator {
    do { return try TreeEnsembleEvaluator(ensemble) } catch let e as InferenceError { throw ctx.invalid(e.message) }
}

// MARK: TreeEnsembleRegressor

func buildTreeEnsembleRegressor(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let type = try ctx.requireType(x, mlNumericInputs)
    let (rows, features) = try featureRows(ctx, x)
    let targets = try ctx.int("n_targets", default: 1)
    guard targets >= 1, targets <= 1 << 20 else { throw ctx.invalid("n_targets \(targets) is out of range") }
    var ensemble = try buildONNXEnsemble(ctx, features: features, targets: targets, prefix: "target")
    ensemble.aggregate = try aggregate(ctx, try ctx.string("aggregate_function", default: "SUM"))
    // onnxruntime adds base values when there is one per target; any other count is ignored.
    let base = try numbers(ctx, "base_values") ?? []
    ensemble.baseValues = base.count == targets ? base : []
    let kernel = TreeEnsembleKernel(
        evaluator: try evaluator(ctx, ensemble), input: x, inputType: type,
        scratch: inputScratch(ctx, x, type),
        output: .regression(scores: ctx.outputs[0], transform: try PostTransform(ctx)))
    return (kernel, [ValueType(dataType: .fp32, shape: [rows, .fixed(targets)])])
}

private func aggregate(_ ctx: NodeContext, _ name: String) throws -> TreeEnsemble.Aggregate {
    switch name {
    case "SUM": return .sum
    case "AVERAGE": return .average
    case "MIN": return .min
    case "MAX": return .max
    default: throw ctx.invalid("unknown aggregate_function '\(name)'")
    }
}

// MARK: TreeEnsembleClassifier

func buildTreeEnsembleClassifier(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let type = try ctx.requireType(x, mlNumericInputs)
    let (rows, features) = try featureRows(ctx, x)
    let stringLabels = try ctx.strings("classlabels_strings") ?? []
    let intLabels = try ctx.ints("classlabels_int64s") ?? []
    guard stringLabels.isEmpty != intLabels.isEmpty else {
        throw ctx.invalid("needs exactly one of classlabels_strings and classlabels_int64s")
    }
    let classes = stringLabels.isEmpty ? intLabels.count : stringLabels.count
    guard classes >= 2 else { throw ctx.unsupported("\(classes) class label(s): a classifier needs at least 2") }
    guard ctx.outputs.count == 2 else { throw ctx.invalid("needs 2 outputs (labels, scores), has \(ctx.outputs.count)") }
    let ensemble = try buildONNXEnsemble(ctx, features: features, targets: classes, prefix: "class")
    let base = try numbers(ctx, "base_values") ?? []
    let classIDs = Set(try ctx.ints("class_ids") ?? [])
    let weights = try numbers(ctx, "class_weights") ?? []
    let classifier = ClassifierOutput(
        labels: ctx.outputs[0], scores: ctx.outputs[1], classes: classes, intLabels: intLabels, stringLabels: stringLabels,
        base: base, transform: try PostTransform(ctx),
        binaryCase: classes == 2 && classIDs.count == 1, weightsAllPositive: weights.allSatisfy { $0 >= 0 })
    let kernel = TreeEnsembleKernel(
        evaluator: try evaluator(ctx, ensemble), input: x, inputType: type,
        scratch: inputScratch(ctx, x, type),
        output: .classification(classifier, has: ctx.scratch(ValueType(dataType: .bool, shape: [rows, .fixed(classes)]))))
    return (kernel, [ValueType(dataType: stringLabels.isEmpty ? .int64 : .bytes, shape: [rows]),
                     ValueType(dataType: .fp32, shape: [rows, .fixed(classes)])])
}

/// What a classifier does with its raw class scores, as onnxruntime does it.
struct ClassifierOutput: Sendable {
    let labels: Int, scores: Int, classes: Int
    let intLabels: [Int64], stringLabels: [[UInt8]]
    let base: [Double]
    let transform: PostTransform
    /// Two classes and the leaves add to one of them only.
    let binaryCase: Bool
    let weightsAllPositive: Bool

    /// Turns row `r`'s raw scores (in place, `classes` wide) into probabilities; returns the
    /// label's index into the labels, or for onnxruntime's two-class non-binary case the label
    /// value 0 or 1 itself (`literal`).
    func finish(_ s: UnsafeMutablePointer<Float>, _ has: UnsafeMutablePointer<Bool>) -> (index: Int, literal: Bool) {
        if classes > 2 {
            for k in 0..<min(base.count, classes) {
                s[k] = has[k] ? s[k] + Float(base[k]) : Float(base[k])
                has[k] = true
            }
            var best = -1
            for k in 0..<classes where has[k] && (best == -1 || s[k] > s[best]) { best = k }
            applyPostTransform(s, rows: 1, cols: classes, transform)
            return (max(best, 0), false)
        }
        // Two classes: onnxruntime's binary cases, one by one.
        var count = 2
        var write = -1
        if base.count == 2 {
            if has[1] {
                s[1] = Float(base[1]) + s[0]
                s[0] = -s[1]
            } else {
                s[1] += Float(base[1])
                s[0] += Float(base[0])
            }
        } else if base.count == 1 {
            s[0] += Float(base[0])
            if !has[1] { count = 1 }
        } else if base.isEmpty {
            write = 3
            if !has[1] { count = 1 }
        }
        let positive: Float = count == 2 && has[1] ? s[1] : (has[0] ? s[0] : 0)
        let label: (Int, Bool)
        if binaryCase {
            if weightsAllPositive {
                if positive > 0.5 { write = 0; label = (1, false) } else { write = 1; label = (0, false) }
            } else {
                if positive > 0 { write = 2; label = (1, false) } else { write = 3; label = (0, false) }
            }
        } else {
            label = (positive > 0 ? 1 : 0, true)
        }
        if count == 2 {
            applyPostTransform(s, rows: 1, cols: 2, transform)
        } else if transform == .probit {
            s[0] = probit(s[0])
            s[1] = 0
        } else {
            let v = s[0]
            switch write {
            case 0, 1: s[0] = 1 - v; s[1] = v
            case 2: if transform == .logistic { s[0] = logistic(-v); s[1] = logistic(v) } else { s[0] = -v; s[1] = v }
            case 3: if transform == .logistic { s[0] = logistic(-v); s[1] = logistic(v) } else { s[0] = v; s[1] = -v }
            default: s[1] = 0
            }
        }
        return label
    }
}

/// onnxruntime's logistic for the binary special cases.
@inline(__always) private func logistic(_ x: Float) -> Float {
    let v = 1 / (1 + expf(-abs(x)))
    return x < 0 ? 1 - v : v
}

struct TreeEnsembleKernel: Kernel {
    enum Output: Sendable {
        case regression(scores: Int, transform: PostTransform)
        case classification(ClassifierOutput, has: Int)
    }
    let evaluator: TreeEnsembleEvaluator
    let input: Int, inputType: DataType, scratch: Int?
    let output: Output

    /// Scores of the input's rows (see `TreeEnsembleEvaluator.evaluate`): FP64 rows compared in
    /// FP64 as onnxruntime compares them, the others in FP32 (integers converted).
    private func evaluate(_ frame: Frame, rows: Int, into s: UnsafeMutablePointer<Float>, hasScore: UnsafeMutablePointer<Bool>?) {
        if inputType == .fp64 {
            evaluator.evaluate(wideRows: frame.pointer(input, Double.self), count: rows, into: s, hasScore: hasScore)
        } else {
            evaluator.evaluate(rows: floatInput(frame, input, inputType, scratch), count: rows, into: s, hasScore: hasScore)
        }
    }

    func execute(_ frame: Frame) {
        let rows = frame.count(input) / max(evaluator.featureCount, 1)
        switch output {
        case .regression(let scores, let transform):
            let s = frame.pointer(scores, Float.self)
            evaluate(frame, rows: rows, into: s, hasScore: nil)
            applyPostTransform(s, rows: rows, cols: evaluator.targetCount, transform)
        case .classification(let c, let hasID):
            let s = frame.pointer(c.scores, Float.self)
            let has = frame.pointer(hasID, Bool.self)
            evaluate(frame, rows: rows, into: s, hasScore: has)
            let useStrings = !c.stringLabels.isEmpty
            var strings: [[UInt8]] = []
            if useStrings { strings.reserveCapacity(rows) }
            let ints = useStrings ? nil : frame.pointer(c.labels, Int64.self)
            for r in 0..<rows {
                let (index, literal) = c.finish(s + r * c.classes, has + r * c.classes)
                if useStrings {
                    strings.append(c.stringLabels[index])
                } else {
                    ints![r] = literal ? Int64(index) : c.intLabels[index]
                }
            }
            if useStrings { frame.setStrings(c.labels, strings) }
        }
    }
}

// MARK: TreeEnsemble (ai.onnx.ml opset 5)

func buildTreeEnsemble(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    // The output has the input's type; Swerve evaluates trees in FP32, so FP32 only.
    let type = try ctx.requireType(x, [.fp32])
    let (rows, features) = try featureRows(ctx, x)
    let targets = try ctx.int("n_targets", default: 1)
    guard targets >= 1, targets <= 1 << 20 else { throw ctx.invalid("n_targets \(targets) is out of range") }
    guard let roots = try ctx.ints("tree_roots"), !roots.isEmpty else { throw ctx.invalid("missing attribute 'tree_roots'") }
    guard let featureIDs = try ctx.ints("nodes_featureids"), let trueIDs = try ctx.ints("nodes_truenodeids"),
        let falseIDs = try ctx.ints("nodes_falsenodeids"), let leafTargets = try ctx.ints("leaf_targetids")
    else { throw ctx.invalid("missing one of nodes_featureids, nodes_truenodeids, nodes_falsenodeids, leaf_targetids") }
    func tensorAttribute(_ name: String) throws -> Tensor? {
        guard let a = ctx.attribute(name) else { return nil }
        guard let t = a.tensorValue else { throw ctx.invalid("attribute '\(name)' must be a tensor") }
        do { return try Tensor(onnx: t) } catch { throw ctx.invalid("attribute '\(name)': \(error)") }
    }
    guard let splitsAttribute = ctx.attribute("nodes_splits")?.tensorValue,
        let leafWeightsAttribute = ctx.attribute("leaf_weights")?.tensorValue
    else { throw ctx.invalid("missing tensor attribute 'nodes_splits' or 'leaf_weights'") }
    let splits = try tensorNumbers(ctx, splitsAttribute, "nodes_splits")
    let leafWeights = try tensorNumbers(ctx, leafWeightsAttribute, "leaf_weights")
    let modes: [UInt8]
    if let m = try tensorAttribute("nodes_modes") {
        switch m.data {
        case .uint8(let v): modes = v
        default: throw ctx.invalid("attribute 'nodes_modes' must be a uint8 tensor")
        }
    } else {
        modes = [UInt8](repeating: 0, count: featureIDs.count)
    }
    let trueLeafs = try ctx.ints("nodes_trueleafs") ?? []
    let falseLeafs = try ctx.ints("nodes_falseleafs") ?? []
    let tracks = try ctx.ints("nodes_missing_value_tracks_true") ?? []
    let n = featureIDs.count
    for (name, count) in [("nodes_truenodeids", trueIDs.count), ("nodes_falsenodeids", falseIDs.count), ("nodes_splits", splits.count),
                          ("nodes_modes", modes.count), ("nodes_trueleafs", trueLeafs.count), ("nodes_falseleafs", falseLeafs.count)]
    where count != n {
        throw ctx.invalid("\(name) has \(count) entries, nodes_featureids \(n)")
    }
    guard tracks.isEmpty || tracks.count == n else { throw ctx.invalid("nodes_missing_value_tracks_true has \(tracks.count) entries for \(n) nodes") }
    guard leafWeights.count == leafTargets.count else {
        throw ctx.invalid("leaf_weights has \(leafWeights.count) entries, leaf_targetids \(leafTargets.count)")
    }
    // Membership sets: the values of membership_values in order, one set per BRANCH_MEMBER node,
    // sets separated by NaN.
    var memberSets: [[Float]] = []
    if let m = try tensorAttribute("membership_values") {
        let values: [Double]
        switch m.data {
        case .fp32(let v): values = v.map(Double.init)
        case .fp64(let v): values = v
        default: throw ctx.invalid("attribute 'membership_values' must hold floats or doubles")
        }
        var current: [Float] = []
        for v in values {
            if v.isNaN { memberSets.append(current); current = [] } else { current.append(Float(v)) }
        }
        if !current.isEmpty || values.last.map({ !$0.isNaN }) ?? false { memberSets.append(current) }
    }
    var nodes: [TreeEnsemble.Node] = []
    var memberValues: [Float] = []
    var nextSet = 0
    nodes.reserveCapacity(n)
    for i in 0..<n {
        let cmp: TreeEnsemble.Comparison
        switch modes[i] {
        case 0: cmp = .lessOrEqual
        case 1: cmp = .less
        case 2: cmp = .greaterOrEqual
        case 3: cmp = .greater
        case 4: cmp = .equal
        case 5: cmp = .notEqual
        case 6: cmp = .member
        default: throw ctx.unsupported("node \(i): unknown mode \(modes[i])")
        }
        var node = TreeEnsemble.Node(
            feature: Int32(clamping: featureIDs[i]), threshold: TreeEnsemble.float32Threshold(splits[i], for: cmp), comparison: cmp,
            missing: !tracks.isEmpty && tracks[i] != 0 ? .nanGoesTrue : .compare,
            trueChild: 0, falseChild: 0)
        guard featureIDs[i] >= 0, featureIDs[i] < Int64(features) else {
            throw ctx.invalid("node \(i) tests feature \(featureIDs[i]), the input has \(features)")
        }
        if cmp == .member {
            guard nextSet < memberSets.count else { throw ctx.invalid("node \(i) is BRANCH_MEMBER but membership_values has no set left for it") }
            node.membersStart = Int32(memberValues.count)
            node.membersCount = Int32(memberSets[nextSet].count)
            memberValues += memberSets[nextSet]
            nextSet += 1
        }
        func child(_ id: Int64, leaf: Bool, _ side: String) throws -> Int32 {
            if leaf {
                guard id >= 0, id < Int64(leafWeights.count) else { throw ctx.invalid("node \(i): \(side) leaf \(id) does not exist") }
                return ~Int32(id)
            }
            guard id >= 0, id < Int64(n) else { throw ctx.invalid("node \(i): \(side) node \(id) does not exist") }
            return Int32(id)
        }
        node.trueChild = try child(trueIDs[i], leaf: trueLeafs[i] != 0, "true")
        node.falseChild = try child(falseIDs[i], leaf: falseLeafs[i] != 0, "false")
        nodes.append(node)
    }
    for (i, t) in leafTargets.enumerated() where t < 0 || t >= Int64(targets) {
        throw ctx.invalid("leaf \(i) adds to target \(t), outside 0..<\(targets)")
    }
    // Roots index nodes; a tree that is one leaf cannot be expressed (roots are node indices).
    for r in roots where r < 0 || r >= Int64(n) { throw ctx.invalid("tree root \(r) is not a node") }
    let aggregateCode = try ctx.int("aggregate_function", default: 1)
    let aggregate: TreeEnsemble.Aggregate
    switch aggregateCode {
    case 0: aggregate = .average
    case 1: aggregate = .sum
    case 2: aggregate = .min
    case 3: aggregate = .max
    default: throw ctx.invalid("unknown aggregate_function \(aggregateCode)")
    }
    let transform: PostTransform
    switch try ctx.int("post_transform", default: 0) {
    case 0: transform = .none
    case 1: transform = .softmax
    case 2: transform = .logistic
    case 3: transform = .softmaxZero
    case 4: transform = .probit
    case let other: throw ctx.invalid("unknown post_transform \(other)")
    }
    // Leaves are shared by index in this form; the ensemble needs one parent per leaf, so each
    // reference gets its own copy of the leaf.
    var leaves: [TreeEnsemble.Leaf] = []
    var targetsOut: [Int32] = []
    var weightsOut: [Double] = []
    func leafCopy(_ id: Int32) -> Int32 {
        let l = Int(~id)
        leaves.append(TreeEnsemble.Leaf(start: Int32(targetsOut.count), count: 1))
        targetsOut.append(Int32(leafTargets[l]))
        weightsOut.append(leafWeights[l])
        return ~Int32(leaves.count - 1)
    }
    for i in nodes.indices {
        if nodes[i].trueChild < 0 { nodes[i].trueChild = leafCopy(nodes[i].trueChild) }
        if nodes[i].falseChild < 0 { nodes[i].falseChild = leafCopy(nodes[i].falseChild) }
    }
    let ensemble = TreeEnsemble(
        featureCount: features, targetCount: targets, nodes: nodes, leaves: leaves, leafTargets: targetsOut,
        leafWeights: weightsOut, memberValues: memberValues, roots: roots.map { Int32($0) }, aggregate: aggregate)
    let kernel = TreeEnsembleKernel(
        evaluator: try evaluator(ctx, ensemble), input: x, inputType: type, scratch: nil,
        output: .regression(scores: ctx.outputs[0], transform: transform))
    return (kernel, [ValueType(dataType: .fp32, shape: [rows, .fixed(targets)])])
}
