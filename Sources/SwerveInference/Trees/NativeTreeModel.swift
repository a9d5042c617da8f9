// Native gradient-boosting model files served as they are saved, with no conversion step:
// XGBoost's JSON model (`Booster.save_model("model.xgb.json")`) and LightGBM's text model
// (`Booster.save_model("model.lgb.txt")`). Both are parsed here (no Python at serving time) into a
// `TreeEnsemble` plus the transform the library's own `predict` applies to the summed margins, so
// the answers are what `predict` gives. Every count and index read from a file is checked before
// it is used; a malformed file is `invalidModel` naming the field (and tree) at fault.
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A tree model read from an XGBoost or LightGBM file.
public struct NativeTreeModel: Sendable {
    public enum Format: String, Sendable {
        case xgboost = "XGBoost"
        case lightgbm = "LightGBM"
    }

    /// What `predict` does with a row's margins (one per target).
    public enum Transform: Sendable, Equatable {
        case identity
        /// 1 / (1 + exp(-scale·x)) per target.
        case sigmoid(scale: Double)
        /// Softmax over the targets.
        case softmax
        /// The index of the largest margin, as a float (XGBoost multi:softmax).
        case argmax
        case exp
        /// log(1 + exp(x)) (LightGBM cross_entropy_lambda).
        case log1pExp
        /// 1 when the margin is positive, else 0 (XGBoost binary:hinge).
        case hinge
    }

    public let format: Format
    public let ensemble: TreeEnsemble
    public let transform: Transform
    /// The objective as the file names it.
    public let objective: String
    /// Feature names from the file (empty when it has none).
    public let featureNames: [String]
    /// LightGBM reads a row's values with |x| <= 1e-35 (its kZeroThreshold) as 0 before any
    /// split sees them (they are left out of its sparse row): the evaluation does the same.
    public var readsTinyValuesAsZero: Bool { format == .lightgbm }
    /// Columns `predict` returns per row: 1 means a vector [N], more a matrix [N, columns].
    public var outputColumns: Int { transform == .argmax ? 1 : ensemble.targetCount }

    /// The most trees, nodes and category values a file may describe (checked before anything of
    /// that size is allocated).
    public static let maxTrees = 1 << 20
    public static let maxNodes = 1 << 26
    public static let maxCategoryValues = 1 << 24
    public static let maxFeatures = 1 << 24
    public static let maxTargets = 1 << 16

    /// The format of a model file by its name, or nil when it is not a native tree model.
    public static func format(ofFileNamed name: String) -> Format? {
        if name.hasSuffix(".xgb.json") { return .xgboost }
        if name.hasSuffix(".lgb.txt") { return .lightgbm }
        return nil
    }

    /// Parses `bytes` as `format`.
    public init(_ format: Format, bytes: [UInt8]) throws {
        switch format {
        case .xgboost: self = try Self.xgboost(bytes)
        case .lightgbm: self = try Self.lightGBM(bytes)
        }
    }

    init(format: Format, ensemble: TreeEnsemble, transform: Transform, objective: String, featureNames: [String]) throws {
        if let problem = ensemble.validationError() {
            throw InferenceError(.invalidModel, "\(format.rawValue) model: \(problem)")
        }
        self.format = format
        self.ensemble = ensemble
        self.transform = transform
        self.objective = objective
        self.featureNames = featureNames
    }

    /// Applies `transform` to `rows` rows of `targets` margins in place; for `argmax` (which
    /// needs the margins until the row is done) the first column of each row receives the index
    /// and the rest is left as it was.
    static func apply(_ transform: Transform, _ s: UnsafeMutablePointer<Float>, rows: Int, targets: Int) {
        let n = rows * targets
        switch transform {
        case .identity:
            break
        case .sigmoid(let scale):
            for i in 0..<n { s[i] = Float(1 / (1 + Glibc.exp(-scale * Double(s[i])))) }
        case .softmax:
            // Each row's exponentials in FP64, computed once (one buffer for all rows).
            withUnsafeTemporaryAllocation(of: Double.self, capacity: max(targets, 1)) { e in
                for r in 0..<rows {
                    let row = s + r * targets
                    var m = -Double.infinity
                    for j in 0..<targets { m = max(m, Double(row[j])) }
                    var sum = 0.0
                    for j in 0..<targets {
                        e[j] = Glibc.exp(Double(row[j]) - m)
                        sum += e[j]
                    }
                    for j in 0..<targets { row[j] = Float(e[j] / sum) }
                }
            }
        case .argmax:
            for r in 0..<rows {
                let row = s + r * targets
                var best = 0
                for j in 1..<max(targets, 1) where row[j] > row[best] { best = j }
                s[r] = Float(best)  // row r's first column is at or after r: rows before it are done
            }
        case .exp:
            for i in 0..<n { s[i] = Float(Glibc.exp(Double(s[i]))) }
        case .log1pExp:
            for i in 0..<n { s[i] = Float(log1p(Glibc.exp(Double(s[i])))) }
        case .hinge:
            for i in 0..<n { s[i] = s[i] > 0 ? 1 : 0 }
        }
    }
}


private func invalid(_ format: NativeTreeModel.Format, _ message: String) -> InferenceError {
    InferenceError(.invalidModel, "\(format.rawValue) model: \(message)")
}

// MARK: - LightGBM text model

extension NativeTreeModel {
    static func lightGBM(_ bytes: [UInt8]) throws -> NativeTreeModel {
        let fail = { (m: String) in invalid(.lightgbm, m) }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw fail("the file is not UTF-8 text") }
        var header: [Substring: Substring] = [:]
        var averageOutput = false
        var trees: [[Substring: Substring]] = []
        var current: [Substring: Substring]?
        var sawEnd = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let l = line.hasSuffix("\r") ? line.dropLast() : line
            if l == "end of trees" { sawEnd = true; break }
            if l.hasPrefix("Tree=") {
                if let c = current { trees.append(c) }
                guard trees.count < maxTrees else { throw fail("more than \(maxTrees) trees") }
                current = [:]
                continue
            }
            if l.isEmpty { continue }
            guard let eq = l.firstIndex(of: "=") else {
                if current == nil && l == "average_output" { averageOutput = true }
                continue
            }
            let key = l[..<eq], value = l[l.index(after: eq)...]
            if current != nil { current![key] = value } else { header[key] = value }
        }
        if let c = current { trees.append(c) }
        guard sawEnd else { throw fail("no 'end of trees' line: the file is truncated or not a LightGBM model") }
        guard !trees.isEmpty else { throw fail("the model has no trees") }
        guard let maxFeature = header["max_feature_idx"].flatMap({ Int($0) }), maxFeature >= 0, maxFeature < maxFeatures else {
            throw fail("missing or invalid max_feature_idx")
        }
        let features = maxFeature + 1
        let classes = header["num_class"].flatMap { Int($0) } ?? 1
        let perIteration = header["num_tree_per_iteration"].flatMap { Int($0) } ?? classes
        guard classes >= 1, classes <= maxTargets, perIteration >= 1, perIteration <= maxTargets else {
            throw fail("invalid num_class \(classes) or num_tree_per_iteration \(perIteration)")
        }
        guard trees.count % perIteration == 0 else {
            throw fail("\(trees.count) trees is not a whole number of iterations of \(perIteration)")
        }
        let objectiveLine = String(header["objective"] ?? "regression")
        let objectiveParts = objectiveLine.split(separator: " ")
        let objective = objectiveParts.first.map(String.init) ?? "regression"
        func parameter(_ name: String) -> Double? {
            objectiveParts.dropFirst().first { $0.hasPrefix(name + ":") }.flatMap { Double($0.dropFirst(name.count + 1)) }
        }
        let transform: Transform
        switch objective {
        case "binary": transform = .sigmoid(scale: parameter("sigmoid") ?? 1)
        case "multiclass", "softmax": transform = .softmax
        case "multiclassova", "multiclass_ova", "ova", "ovr": transform = .sigmoid(scale: parameter("sigmoid") ?? 1)
        case "cross_entropy", "xentropy": transform = .sigmoid(scale: 1)
        case "cross_entropy_lambda", "xentlambda": transform = .log1pExp
        case "poisson", "gamma", "tweedie": transform = .exp
        case "regression", "regression_l2", "l2", "mean_squared_error", "mse", "l2_root", "root_mean_squared_error", "rmse",
            "regression_l1", "l1", "mean_absolute_error", "mae", "huber", "fair", "quantile", "mape",
            "mean_absolute_percentage_error", "lambdarank", "rank_xendcg", "xendcg", "xe_ndcg", "xe_ndcg_mart", "xendcg_mart",
            "custom", "none", "null", "na":
            transform = .identity
        default: throw fail("unsupported objective '\(objective)'")
        }
        var nodes: [TreeEnsemble.Node] = []
        var leaves: [TreeEnsemble.Leaf] = []
        var leafTargets: [Int32] = []
        var leafWeights: [Double] = []
        var memberValues: [Float] = []
        var roots: [Int32] = []
        let iterations = trees.count / perIteration
        for (t, tree) in trees.enumerated() {
            func field(_ name: Substring) -> Substring? { tree[name] }
            func numbers<T: LosslessStringConvertible>(_ name: Substring, _ count: Int, _: T.Type) throws -> [T] {
                guard let raw = field(name) else {
                    if count == 0 { return [] }
                    throw fail("tree \(t): missing \(name)")
                }
                var out: [T] = []
                out.reserveCapacity(count)
                for part in raw.split(separator: " ") {
                    guard out.count < count, let v = T(String(part)) else {
                        throw fail("tree \(t): \(name) has a bad value or more than \(count) values")
                    }
                    out.append(v)
                }
                guard out.count == count else { throw fail("tree \(t): \(name) has \(out.count) values, expected \(count)") }
                return out
            }
            if let linear = field("is_linear"), linear != "0" {
                throw fail("tree \(t) is a linear tree (linear_tree=true), which Swerve does not evaluate")
            }
            guard let leafCount = field("num_leaves").flatMap({ Int($0) }), leafCount >= 1,
                nodes.count + leafCount <= maxNodes
            else { throw fail("tree \(t): missing or invalid num_leaves (at most \(maxNodes) nodes in all)") }
            let internalCount = leafCount - 1
            let shrinkage = 1.0  // leaf values in the file already include the shrinkage
            let leafValues = try numbers("leaf_value", leafCount, Double.self)
            let target = Int32(t % perIteration)
            let scale = averageOutput ? 1 / Double(iterations) : shrinkage
            let leafBase = Int32(leaves.count)
            for v in leafValues {
                leaves.append(TreeEnsemble.Leaf(start: Int32(leafTargets.count), count: 1))
                leafTargets.append(target)
                leafWeights.append(v * scale)
            }
            if internalCount == 0 {
                roots.append(~leafBase)
                continue
            }
            let splitFeature = try numbers("split_feature", internalCount, Int.self)
            let threshold = try numbers("threshold", internalCount, Double.self)
            let decisionType = try numbers("decision_type", internalCount, Int.self)
            let left = try numbers("left_child", internalCount, Int.self)
            let right = try numbers("right_child", internalCount, Int.self)
            let catCount = field("num_cat").flatMap { Int($0) } ?? 0
            guard catCount >= 0, catCount <= internalCount else { throw fail("tree \(t): invalid num_cat \(catCount)") }
            let catBoundaries = catCount > 0 ? try numbers("cat_boundaries", catCount + 1, Int.self) : []
            let catWords = catBoundaries.last ?? 0
            guard catWords >= 0, catWords <= maxCategoryValues / 32 else { throw fail("tree \(t): invalid cat_boundaries") }
            let catThreshold = catCount > 0 ? try numbers("cat_threshold", catWords, UInt32.self) : []
            let nodeBase = Int32(nodes.count)
            func child(_ c: Int, _ side: String, _ i: Int) throws -> Int32 {
                if c >= 0 {
                    guard c < internalCount else { throw fail("tree \(t) node \(i): \(side) child \(c) does not exist") }
                    return nodeBase + Int32(c)
                }
                let leaf = ~c
                guard leaf >= 0, leaf < leafCount else { throw fail("tree \(t) node \(i): \(side) leaf \(leaf) does not exist") }
                return ~(leafBase + Int32(leaf))
            }
            for i in 0..<internalCount {
                guard splitFeature[i] >= 0, splitFeature[i] < features else {
                    throw fail("tree \(t) node \(i): split_feature \(splitFeature[i]) is outside 0..<\(features)")
                }
                let d = decisionType[i]
                let defaultLeft = d & 2 != 0
                var node = TreeEnsemble.Node(
                    feature: Int32(splitFeature[i]), threshold: 0, comparison: .lessOrEqual, missing: .compare,
                    trueChild: try child(left[i], "left", i), falseChild: try child(right[i], "right", i))
                if d & 1 != 0 {
                    // Categorical: the categories whose bits are set go left; NaN and negative
                    // values go right (LightGBM 4).
                    let idx = Int(threshold[i])
                    guard idx >= 0, idx < catCount, catBoundaries[idx] >= 0, catBoundaries[idx] <= catBoundaries[idx + 1],
                        catBoundaries[idx + 1] <= catWords
                    else { throw fail("tree \(t) node \(i): category set \(threshold[i]) does not exist") }
                    node.comparison = .memberInteger
                    node.threshold = .nan
                    node.membersStart = Int32(memberValues.count)
                    for w in catBoundaries[idx]..<catBoundaries[idx + 1] {
                        let word = catThreshold[w]
                        for bit in 0..<32 where word & (1 << UInt32(bit)) != 0 {
                            memberValues.append(Float((w - catBoundaries[idx]) * 32 + bit))
                        }
                    }
                    node.membersCount = Int32(memberValues.count) - node.membersStart
                } else {
                    switch (d >> 2) & 3 {
                    case 0: node.missing = .nanIsZero
                    case 1: node.missing = defaultLeft ? .zeroOrNaNGoesTrue : .zeroOrNaNGoesFalse
                    case 2: node.missing = defaultLeft ? .nanGoesTrue : .nanGoesFalse
                    default: throw fail("tree \(t) node \(i): unknown missing type in decision_type \(d)")
                    }
                    node.threshold = TreeEnsemble.float32Threshold(threshold[i], for: .lessOrEqual)
                }
                nodes.append(node)
            }
            roots.append(nodeBase)
        }
        let names = header["feature_names"].map { $0.split(separator: " ").map(String.init) } ?? []
        let ensemble = TreeEnsemble(
            featureCount: features, targetCount: perIteration, nodes: nodes, leaves: leaves, leafTargets: leafTargets,
            leafWeights: leafWeights, memberValues: memberValues, roots: roots)
        return try NativeTreeModel(
            format: .lightgbm, ensemble: ensemble, transform: perIteration == 1 && transform == .softmax ? .identity : transform,
            objective: objectiveLine, featureNames: names.count == features ? names : [])
    }
}

// MARK: - XGBoost JSON model

/// The parts of XGBoost's JSON model Swerve reads. Counts and numbers that XGBoost writes as
/// strings ("30") are read either way.
private struct XGBFile: Decodable {
    var learner: Learner
    struct Learner: Decodable {
        var feature_names: [String]?
        var gradient_booster: Booster
        var learner_model_param: ModelParam
        var objective: Objective
    }
    struct ModelParam: Decodable {
        var base_score: FlexibleString
        var num_class: FlexibleString?
        var num_feature: FlexibleString
        var num_target: FlexibleString?
    }
    struct Objective: Decodable {
        var name: String
    }
    struct Booster: Decodable {
        var name: String
        var model: Model?
        var gbtree: Inner?
        var weight_drop: [Double]?
    }
    struct Inner: Decodable {
        var model: Model
    }
    struct Model: Decodable {
        var trees: [Tree]
        var tree_info: [Int]
    }
    struct Tree: Decodable {
        var left_children: [Int]
        var right_children: [Int]
        var split_indices: [Int]
        var split_conditions: [Double]
        var default_left: [FlexibleInt]
        var split_type: [Int]?
        var categories: [Int]?
        var categories_nodes: [Int]?
        var categories_segments: [Int]?
        var categories_sizes: [Int]?
        var tree_param: TreeParam?
    }
    struct TreeParam: Decodable {
        var size_leaf_vector: FlexibleString?
    }
}

/// A JSON value XGBoost writes as a string or a number.
private struct FlexibleString: Decodable {
    var text: String
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { text = s; return }
        if let i = try? c.decode(Int.self) { text = String(i); return }
        text = String(try c.decode(Double.self))
    }
}

/// 0/1 or false/true.
private struct FlexibleInt: Decodable {
    var value: Int
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { value = b ? 1 : 0; return }
        value = try c.decode(Int.self)
    }
}

extension NativeTreeModel {
    static func xgboost(_ bytes: [UInt8]) throws -> NativeTreeModel {
        let fail = { (m: String) in invalid(.xgboost, m) }
        let file: XGBFile
        do {
            file = try JSONDecoder().decode(XGBFile.self, from: Data(bytes))
        } catch let DecodingError.keyNotFound(key, context) {
            throw fail("missing '\(key.stringValue)' at \(context.codingPath.map(\.stringValue).joined(separator: "."))")
        } catch let DecodingError.typeMismatch(_, context) {
            throw fail("unexpected value at \(context.codingPath.map(\.stringValue).joined(separator: "."))")
        } catch {
            throw fail("not an XGBoost JSON model: \(error)")
        }
        let learner = file.learner
        let objective = learner.objective.name
        guard let features = Int(learner.learner_model_param.num_feature.text), features > 0, features < maxFeatures else {
            throw fail("invalid num_feature '\(learner.learner_model_param.num_feature.text)'")
        }
        let classes = Int(learner.learner_model_param.num_class?.text ?? "0") ?? -1
        guard classes >= 0, classes <= maxTargets else { throw fail("invalid num_class") }
        if let targets = learner.learner_model_param.num_target?.text, targets != "1" {
            throw fail("num_target \(targets): multi-target models are not supported")
        }
        let groups = max(classes, 1)
        // base_score: "5E-1" or "[5E-1]" or one per class "[a,b,c]".
        let baseText = learner.learner_model_param.base_score.text.filter { $0 != "[" && $0 != "]" && $0 != " " }
        let baseParts = baseText.split(separator: ",").map { Double($0) }
        guard !baseParts.isEmpty, baseParts.allSatisfy({ $0 != nil }), baseParts.count == 1 || baseParts.count == groups else {
            throw fail("invalid base_score '\(learner.learner_model_param.base_score.text)'")
        }
        let baseScores = baseParts.map { $0! }
        let booster = learner.gradient_booster
        let model: XGBFile.Model
        var dropWeights: [Double]?
        switch booster.name {
        case "gbtree":
            guard let m = booster.model else { throw fail("gbtree without a model") }
            model = m
        case "dart":
            guard let m = booster.gbtree?.model else { throw fail("dart without its gbtree model") }
            model = m
            dropWeights = booster.weight_drop
        case "gblinear":
            throw fail("gblinear (a linear booster) is not a tree model; Swerve serves gbtree and dart")
        default:
            throw fail("unknown booster '\(booster.name)'")
        }
        guard model.trees.count == model.tree_info.count, model.trees.count <= maxTrees, !model.trees.isEmpty else {
            throw fail("\(model.trees.count) trees for \(model.tree_info.count) tree_info entries")
        }
        if let w = dropWeights, w.count != model.trees.count { throw fail("\(w.count) dart weights for \(model.trees.count) trees") }
        // The margin transform and base margin `predict` uses.
        let transform: Transform
        let margin: (Double) -> Double
        switch objective {
        case "binary:logistic", "reg:logistic":
            transform = .sigmoid(scale: 1)
            margin = { p in log(p / (1 - p)) }
        case "binary:logitraw":
            transform = .identity
            margin = { $0 }
        case "binary:hinge":
            transform = .hinge
            margin = { $0 }
        case "multi:softprob":
            transform = .softmax
            margin = { $0 }
        case "multi:softmax":
            transform = .argmax
            margin = { $0 }
        case "count:poisson", "reg:gamma", "reg:tweedie", "survival:cox", "survival:aft":
            transform = .exp
            margin = { log($0) }
        case "reg:squarederror", "reg:squaredlogerror", "reg:pseudohubererror", "reg:absoluteerror", "reg:quantileerror",
            "reg:linear", "rank:pairwise", "rank:ndcg", "rank:map":
            transform = .identity
            margin = { $0 }
        default:
            throw fail("unsupported objective '\(objective)'")
        }
        var nodes: [TreeEnsemble.Node] = []
        var leaves: [TreeEnsemble.Leaf] = []
        var leafTargets: [Int32] = []
        var leafWeights: [Double] = []
        var memberValues: [Float] = []
        var roots: [Int32] = []
        for (t, tree) in model.trees.enumerated() {
            let n = tree.left_children.count
            guard n >= 1, nodes.count + n <= maxNodes else { throw fail("tree \(t): \(n) nodes (at most \(maxNodes) in all)") }
            for (name, count) in [("right_children", tree.right_children.count), ("split_indices", tree.split_indices.count),
                                  ("split_conditions", tree.split_conditions.count), ("default_left", tree.default_left.count)]
            where count != n {
                throw fail("tree \(t): \(name) has \(count) entries, left_children \(n)")
            }
            if let size = tree.tree_param?.size_leaf_vector?.text, size != "1", size != "0" {
                throw fail("tree \(t): vector leaves (size_leaf_vector \(size)) are not supported")
            }
            let group = model.tree_info[t]
            guard group >= 0, group < groups else { throw fail("tree \(t): tree_info \(group) is outside 0..<\(groups)") }
            let weight = dropWeights?[t] ?? 1
            // Node i → a branch index or a leaf index in the ensemble.
            var branchOf = [Int32](repeating: -1, count: n)
            var leafOf = [Int32](repeating: -1, count: n)
            var nextBranch = Int32(nodes.count)
            for i in 0..<n {
                if tree.left_children[i] == -1 {
                    leafOf[i] = Int32(leaves.count)
                    leaves.append(TreeEnsemble.Leaf(start: Int32(leafTargets.count), count: 1))
                    leafTargets.append(Int32(group))
                    leafWeights.append(tree.split_conditions[i] * weight)
                } else {
                    branchOf[i] = nextBranch
                    nextBranch += 1
                }
            }
            var categorySets: [Int: ArraySlice<Int>] = [:]
            if let catNodes = tree.categories_nodes, !catNodes.isEmpty {
                guard let cats = tree.categories, let segs = tree.categories_segments, let sizes = tree.categories_sizes,
                    segs.count == catNodes.count, sizes.count == catNodes.count
                else { throw fail("tree \(t): inconsistent categories arrays") }
                for (k, node) in catNodes.enumerated() {
                    guard node >= 0, node < n, segs[k] >= 0, sizes[k] >= 0, segs[k] + sizes[k] <= cats.count else {
                        throw fail("tree \(t): category set \(k) is out of range")
                    }
                    categorySets[node] = cats[segs[k]..<(segs[k] + sizes[k])]
                }
                guard cats.count <= maxCategoryValues else { throw fail("tree \(t): too many categories") }
            }
            func ref(_ c: Int, from i: Int) throws -> Int32 {
                guard c >= 0, c < n else { throw fail("tree \(t) node \(i): child \(c) does not exist") }
                return tree.left_children[c] == -1 ? ~leafOf[c] : branchOf[c]
            }
            for i in 0..<n where tree.left_children[i] != -1 {
                let feature = tree.split_indices[i]
                guard feature >= 0, feature < features else {
                    throw fail("tree \(t) node \(i): split_indices \(feature) is outside 0..<\(features)")
                }
                let left = try ref(tree.left_children[i], from: i), right = try ref(tree.right_children[i], from: i)
                let defaultLeft = tree.default_left[i].value != 0
                if (tree.split_type?[i] ?? 0) == 1 {
                    // Categorical: the categories listed go right; others (and invalid ones) left;
                    // missing values the default way. True branch = "in the set" = right.
                    guard let set = categorySets[i] else { throw fail("tree \(t) node \(i): categorical split without categories") }
                    var node = TreeEnsemble.Node(
                        feature: Int32(feature), threshold: .nan, comparison: .memberInteger,
                        missing: defaultLeft ? .nanGoesFalse : .nanGoesTrue, trueChild: right, falseChild: left)
                    node.membersStart = Int32(memberValues.count)
                    memberValues += set.map { Float($0) }
                    node.membersCount = Int32(set.count)
                    nodes.append(node)
                } else {
                    nodes.append(TreeEnsemble.Node(
                        // XGBoost's thresholds are FP32 values, written in their shortest decimal
                        // form: the nearest float is the threshold itself.
                        feature: Int32(feature), threshold: Float(tree.split_conditions[i]),
                        comparison: .less, missing: defaultLeft ? .nanGoesTrue : .nanGoesFalse, trueChild: left, falseChild: right))
                }
            }
            roots.append(tree.left_children[0] == -1 ? ~leafOf[0] : branchOf[0])
        }
        let base = (0..<groups).map { g in margin(baseScores.count == 1 ? baseScores[0] : baseScores[g]) }
        let ensemble = TreeEnsemble(
            featureCount: features, targetCount: groups, nodes: nodes, leaves: leaves, leafTargets: leafTargets,
            leafWeights: leafWeights, memberValues: memberValues, roots: roots, baseValues: base)
        let names = learner.feature_names ?? []
        return try NativeTreeModel(
            format: .xgboost, ensemble: ensemble, transform: transform, objective: objective,
            featureNames: names.count == features ? names : [])
    }
}
