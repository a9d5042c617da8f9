import Foundation
import Testing
@testable import SwerveInference

/// The tree ensemble description, its evaluator and the native model parsers, on hand-built
/// ensembles whose answers are worked out here.
@Suite struct TreeEnsembleTests {
    typealias N = TreeEnsemble.Node

    /// One stump on feature 0: `comparison` with threshold 1, true → leaf 0 (weight 10), false →
    /// leaf 1 (weight 20).
    func stump(_ comparison: TreeEnsemble.Comparison, _ missing: TreeEnsemble.Missing, members: [Float] = []) -> TreeEnsemble {
        TreeEnsemble(
            featureCount: 1, targetCount: 1,
            nodes: [N(feature: 0, threshold: 1, comparison: comparison, missing: missing, trueChild: ~0, falseChild: ~1,
                      membersStart: 0, membersCount: Int32(members.count))],
            leaves: [.init(start: 0, count: 1), .init(start: 1, count: 1)], leafTargets: [0, 0], leafWeights: [10, 20],
            memberValues: members, roots: [0])
    }

    func run(_ e: TreeEnsemble, _ rows: [Float]) throws -> [Float] {
        let ev = try TreeEnsembleEvaluator(e)
        let count = rows.count / e.featureCount
        var out = [Float](repeating: -1, count: count * e.targetCount)
        rows.withUnsafeBufferPointer { r in out.withUnsafeMutableBufferPointer { ev.evaluate(rows: r.baseAddress!, count: count, into: $0.baseAddress!) } }
        return out
    }

    @Test func everyComparisonDecidesAsItSays() throws {
        let xs: [Float] = [0, 1, 2, -.infinity, .infinity]
        let expected: [TreeEnsemble.Comparison: [Bool]] = [
            .lessOrEqual: [true, true, false, true, false],
            .less: [true, false, false, true, false],
            .greaterOrEqual: [false, true, true, false, true],
            .greater: [false, false, true, false, true],
            .equal: [false, true, false, false, false],
            .notEqual: [true, false, true, true, true],
        ]
        for (cmp, truth) in expected {
            let got = try run(stump(cmp, .compare), xs)
            #expect(got == truth.map { $0 ? 10 : 20 }, "\(cmp)")
        }
    }

    @Test func missingRulesSendNaNAndZerosWhereTheySay() throws {
        // x: NaN, 0, 1e-36 (LightGBM's zero), 2
        let xs: [Float] = [.nan, 0, 1e-36, 2]
        // `<= 1`: NaN compares false, 0 and tiny are <= 1, 2 is not.
        #expect(try run(stump(.lessOrEqual, .compare), xs) == [20, 10, 10, 20])
        #expect(try run(stump(.lessOrEqual, .nanGoesTrue), xs) == [10, 10, 10, 20])
        #expect(try run(stump(.lessOrEqual, .nanGoesFalse), xs) == [20, 10, 10, 20])
        #expect(try run(stump(.lessOrEqual, .nanIsZero), xs) == [10, 10, 10, 20])
        // `> 1` with zeros missing: NaN, 0 and tiny take the default branch, 2 compares.
        #expect(try run(stump(.greater, .zeroOrNaNGoesTrue), xs) == [10, 10, 10, 10])
        #expect(try run(stump(.greater, .zeroOrNaNGoesFalse), xs) == [20, 20, 20, 10])
        // NaN != 1 is true under IEEE.
        #expect(try run(stump(.notEqual, .compare), [.nan]) == [10])
    }

    @Test func memberSetsCompareAsFloatsOrTruncatedIntegers() throws {
        let members: [Float] = [3, 7]
        #expect(try run(stump(.member, .compare, members: members), [3, 3.5, 7, 8, .nan]) == [10, 20, 10, 20, 20])
        // Integer sets: 3.9 is category 3, -0.5 is 0 (not in the set), NaN and 1e10 are no category.
        #expect(try run(stump(.memberInteger, .compare, members: members), [3.9, 7.2, -0.5, .nan, 1e10, -3]) == [10, 10, 20, 20, 20, 20])
    }

    @Test func leavesAddToSeveralTargetsAndAggregatesCombineThem() throws {
        // Two stumps on feature 0 (<= 0); leaves add to targets 0 and 1.
        func ensemble(_ aggregate: TreeEnsemble.Aggregate, base: [Double] = []) -> TreeEnsemble {
            TreeEnsemble(
                featureCount: 1, targetCount: 2,
                nodes: [N(feature: 0, threshold: 0, comparison: .lessOrEqual, missing: .compare, trueChild: ~0, falseChild: ~1),
                        N(feature: 0, threshold: 0, comparison: .lessOrEqual, missing: .compare, trueChild: ~2, falseChild: ~3)],
                leaves: [.init(start: 0, count: 2), .init(start: 2, count: 1), .init(start: 3, count: 1), .init(start: 4, count: 0)],
                leafTargets: [0, 1, 0, 0], leafWeights: [1, 2, 3, 5],
                roots: [0, 1], aggregate: aggregate, baseValues: base)
        }
        // x = -1: tree A leaf 0 (t0 += 1, t1 += 2), tree B leaf 2 (t0 += 5). x = 1: leaf 1 (t0 += 3), leaf 3 (nothing).
        #expect(try run(ensemble(.sum), [-1, 1]) == [6, 2, 3, 0])
        #expect(try run(ensemble(.average), [-1, 1]) == [3, 1, 1.5, 0])
        #expect(try run(ensemble(.min), [-1, 1]) == [1, 2, 3, 0])
        #expect(try run(ensemble(.max), [-1, 1]) == [5, 2, 3, 0])
        #expect(try run(ensemble(.sum, base: [100, 200]), [-1, 1]) == [106, 202, 103, 200])
    }

    @Test func aRowsAnswerDoesNotDependOnItsBatch() throws {
        // A random ensemble of 40 trees over 6 features, rows evaluated alone and in batches.
        var g = SplitMix64(seed: 9)
        func uniform() -> Float { Float(g.next() % 10_000) / 1000 - 5 }
        var nodes: [N] = []
        var leaves: [TreeEnsemble.Leaf] = []
        var weights: [Double] = []
        var roots: [Int32] = []
        for _ in 0..<40 {
            // A complete depth-3 tree: 7 branches, 8 leaves.
            let base = Int32(nodes.count), leafBase = Int32(leaves.count)
            roots.append(base)
            for i in 0..<7 {
                let l = 2 * i + 1, r = 2 * i + 2
                func child(_ c: Int) -> Int32 { c < 7 ? base + Int32(c) : ~(leafBase + Int32(c - 7)) }
                nodes.append(N(feature: Int32(g.next() % 6), threshold: uniform(), comparison: .less,
                               missing: g.next() % 2 == 0 ? .nanGoesTrue : .nanGoesFalse, trueChild: child(l), falseChild: child(r)))
            }
            for _ in 0..<8 {
                leaves.append(.init(start: Int32(weights.count), count: 1))
                weights.append(Double(uniform()))
            }
        }
        let e = TreeEnsemble(featureCount: 6, targetCount: 1, nodes: nodes, leaves: leaves,
                             leafTargets: [Int32](repeating: 0, count: weights.count), leafWeights: weights, roots: roots)
        #expect(e.validationError() == nil)
        var rows: [Float] = (0..<(100 * 6)).map { _ in uniform() }
        rows[7] = .nan
        rows[13] = .infinity
        let all = try run(e, rows)
        for r in 0..<100 {
            let alone = try run(e, Array(rows[(r * 6)..<(r * 6 + 6)]))
            #expect(alone[0].bitPattern == all[r].bitPattern, "row \(r)")
        }
    }

    /// A random forest of `trees` trees over `features` features, with every comparison and
    /// missing rule the C layout takes, unbalanced depths, and leaves adding to 1–3 targets.
    func randomForest(_ g: inout SplitMix64, trees: Int, features: Int, targets: Int) -> TreeEnsemble {
        var nodes: [N] = [], leaves: [TreeEnsemble.Leaf] = [], leafTargets: [Int32] = [], weights: [Double] = []
        var roots: [Int32] = []
        let comparisons: [TreeEnsemble.Comparison] = [.lessOrEqual, .less, .greaterOrEqual, .greater]
        let missings: [TreeEnsemble.Missing] = [.compare, .nanGoesTrue, .nanGoesFalse, .nanIsZero, .zeroOrNaNGoesTrue, .zeroOrNaNGoesFalse]
        func grow(_ depth: Int) -> Int32 {
            if depth == 0 || g.next() % 5 == 0 {
                leaves.append(.init(start: Int32(weights.count), count: Int32(1 + g.next() % UInt64(targets))))
                for k in 0..<Int(leaves.last!.count) {
                    leafTargets.append(Int32(k))
                    weights.append(Double(Int64(g.next() % 2001) - 1000) / 997)
                }
                return ~Int32(leaves.count - 1)
            }
            let at = nodes.count
            nodes.append(N(feature: Int32(g.next() % UInt64(features)), threshold: Float(Int64(g.next() % 200) - 100) / 50,
                           comparison: comparisons[Int(g.next() % 4)], missing: missings[Int(g.next() % 6)], trueChild: 0, falseChild: 0))
            let t = grow(depth - 1), f = grow(depth - 1)
            nodes[at].trueChild = t
            nodes[at].falseChild = f
            return Int32(at)
        }
        for _ in 0..<trees { roots.append(grow(Int(2 + g.next() % 7))) }
        return TreeEnsemble(featureCount: features, targetCount: targets, nodes: nodes, leaves: leaves, leafTargets: leafTargets,
                            leafWeights: weights, roots: roots, baseValues: (0..<targets).map { Double($0) / 3 })
    }

    @Test func theCompiledLayoutGivesTheSwiftWalksAnswersBitForBit() throws {
        var g = SplitMix64(seed: 21)
        for (trees, targets) in [(1, 1), (7, 1), (60, 3), (200, 2)] {
            let e = randomForest(&g, trees: trees, features: 9, targets: targets)
            let fast = try TreeEnsembleEvaluator(e), reference = try TreeEnsembleEvaluator(e, compiledLayout: false)
            #expect(fast.usesCompiledLayout && !reference.usesCompiledLayout)
            // 37 rows: two full groups of 16 lanes and a tail; values on thresholds, zeros, NaN, ±inf.
            let specials: [Float] = [.nan, 0, -0.0, .infinity, -.infinity, 1, -1, 0.5, 1e-36]
            let rows: [Float] = (0..<(37 * 9)).map { i in
                g.next() % 3 == 0 ? specials[Int(g.next() % UInt64(specials.count))] : Float(Int64(g.next() % 200) - 100) / 50
            }
            var a = [Float](repeating: 0, count: 37 * targets), b = a
            var hasA = [Bool](repeating: false, count: 37 * targets), hasB = hasA
            rows.withUnsafeBufferPointer { r in
                a.withUnsafeMutableBufferPointer { out in
                    hasA.withUnsafeMutableBufferPointer { fast.evaluate(rows: r.baseAddress!, count: 37, into: out.baseAddress!, hasScore: $0.baseAddress!) }
                }
                b.withUnsafeMutableBufferPointer { out in
                    hasB.withUnsafeMutableBufferPointer { reference.evaluate(rows: r.baseAddress!, count: 37, into: out.baseAddress!, hasScore: $0.baseAddress!) }
                }
            }
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(trees) trees, \(targets) targets")
            // Leaves add to 1–3 of the targets, so which targets a row scored varies by row.
            #expect(hasA == hasB, "\(trees) trees, \(targets) targets")
        }
    }

    @Test func malformedEnsemblesAreNamedNotEvaluated() {
        let leaf2: [TreeEnsemble.Leaf] = [.init(start: 0, count: 1), .init(start: 1, count: 1)]
        func ens(_ nodes: [N], leaves: [TreeEnsemble.Leaf] = leaf2, roots: [Int32] = [0], features: Int = 2) -> TreeEnsemble {
            TreeEnsemble(featureCount: features, targetCount: 1, nodes: nodes, leaves: leaves, leafTargets: [0, 0],
                         leafWeights: [1, 2], roots: roots)
        }
        let ok = N(feature: 0, threshold: 0, comparison: .less, missing: .compare, trueChild: ~0, falseChild: ~1)
        #expect(ens([ok]).validationError() == nil)
        var badFeature = ok
        badFeature.feature = 5
        #expect(ens([badFeature]).validationError()?.contains("feature 5") == true)
        var missingChild = ok
        missingChild.falseChild = 3
        #expect(ens([missingChild]).validationError()?.contains("does not exist") == true)
        var sharedLeaf = ok
        sharedLeaf.falseChild = ~0
        #expect(ens([sharedLeaf]).validationError()?.contains("reached twice") == true)
        // A cycle: node 0 → node 1 → node 0.
        let a = N(feature: 0, threshold: 0, comparison: .less, missing: .compare, trueChild: 1, falseChild: ~0)
        let b = N(feature: 0, threshold: 0, comparison: .less, missing: .compare, trueChild: 0, falseChild: ~1)
        #expect(ens([a, b]).validationError() != nil)
        // An orphan node no tree reaches.
        #expect(ens([ok, ok]).validationError() != nil)
        #expect(throws: InferenceError.self) { try TreeEnsembleEvaluator(ens([missingChild])) }
    }

    @Test func doubleThresholdsBecomeFloatsThatDecideTheSame() {
        // For every comparison and a spread of doubles, the FP32 threshold gives the FP64 answer
        // for floats around it.
        var g = SplitMix64(seed: 4)
        for _ in 0..<2_000 {
            let t = Double(Int64(bitPattern: g.next()) % 1_000_000) / 997.0 + Double(g.next() % 1000) * 1e-9
            for cmp in [TreeEnsemble.Comparison.lessOrEqual, .less, .greaterOrEqual, .greater, .equal, .notEqual] {
                let f = TreeEnsemble.float32Threshold(t, for: cmp)
                var x = Float(t).nextDown.nextDown
                for _ in 0..<5 {
                    let want: Bool, got: Bool
                    switch cmp {
                    case .lessOrEqual: (want, got) = (Double(x) <= t, x <= f)
                    case .less: (want, got) = (Double(x) < t, x < f)
                    case .greaterOrEqual: (want, got) = (Double(x) >= t, x >= f)
                    case .greater: (want, got) = (Double(x) > t, x > f)
                    case .equal: (want, got) = (Double(x) == t, x == f)
                    default: (want, got) = (Double(x) != t, x != f)
                    }
                    #expect(want == got, "\(cmp) t=\(t) x=\(x)")
                    x = x.nextUp
                }
            }
        }
    }

    @Test func fp64RowsAreComparedInFP64() throws {
        // A stump at the FP64 threshold 0.3 (off the FP32 grid) and one at the FP32 value 0.3f:
        // FP64 rows between the two grids decide in FP64, FP32-exact rows take the C layout and
        // decide the same, and a batch mixing both answers each row as alone.
        func wide(_ e: TreeEnsemble, _ rows: [Double]) throws -> [Float] {
            let ev = try TreeEnsembleEvaluator(e)
            var out = [Float](repeating: -1, count: rows.count)
            rows.withUnsafeBufferPointer { r in
                out.withUnsafeMutableBufferPointer { ev.evaluate(wideRows: r.baseAddress!, count: rows.count, into: $0.baseAddress!) }
            }
            return out
        }
        let f = Double(Float(0.3))  // 0.30000001192…, above 0.3
        for cmp in [TreeEnsemble.Comparison.lessOrEqual, .less, .greaterOrEqual, .greater, .equal, .notEqual] {
            for t in [0.3, f] {
                var e = stump(cmp, .nanGoesTrue)
                e.nodes[0].threshold = TreeEnsemble.float32Threshold(t, for: cmp)
                if t != f { e.exactThresholds = [t] }
                let xs = [t.nextDown, t, t.nextUp, f.nextDown, f, f.nextUp, 0.3, .nan, -.infinity, 1e300]
                let want: [Float] = xs.map { x in
                    let yes: Bool
                    switch cmp {
                    case .lessOrEqual: yes = x.isNaN || x <= t
                    case .less: yes = x.isNaN || x < t
                    case .greaterOrEqual: yes = x.isNaN || x >= t
                    case .greater: yes = x.isNaN || x > t
                    case .equal: yes = x.isNaN || x == t
                    default: yes = x.isNaN || x != t
                    }
                    return yes ? 10 : 20
                }
                #expect(try wide(e, xs) == want, "\(cmp) t=\(t)")
                for (i, x) in xs.enumerated() { #expect(try wide(e, [x]) == [want[i]], "\(cmp) t=\(t) x=\(x)") }
            }
        }
    }

    // MARK: Native files

    /// A LightGBM text model of one split on feature 1 at 0.5 with leaves -1 and 1 (Fixtures/).
    static let lightGBMStump = try! String(
        contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/stump.lgb.txt"),
        encoding: .utf8)

    @Test func aLightGBMTextModelParsesAndPredicts() throws {
        let m = try NativeTreeModel(.lightgbm, bytes: Array(Self.lightGBMStump.utf8))
        #expect(m.ensemble.featureCount == 2)
        #expect(m.featureNames == ["a", "b"])
        #expect(m.transform == .sigmoid(scale: 1))
        // decision_type 10 = default left (2) | missing type NaN (8).
        #expect(m.ensemble.nodes[0].missing == .nanGoesTrue)
        let compiled = try CompiledModel(native: m)
        let out = try compiled.makeExecutor().run([Tensor(shape: [3, 2], data: .fp32([0, 0.5, 0, 0.6, 0, .nan]))])
        guard case .fp32(let p) = out[0].data else { Issue.record("not fp32"); return }
        let s = { (x: Double) in Float(1 / (1 + exp(-x))) }
        #expect(out[0].shape == [3])
        #expect(p == [s(-1), s(1), s(-1)])
    }

    @Test func brokenNativeFilesAreRefusedWithTheFieldNamed() {
        func refuses(_ format: NativeTreeModel.Format, _ text: String, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                _ = try NativeTreeModel(format, bytes: Array(text.utf8))
                Issue.record("accepted: \(text.prefix(60))", sourceLocation: sourceLocation)
            } catch let e as InferenceError {
                #expect(e.code == .invalidModel, sourceLocation: sourceLocation)
                #expect(e.message.contains(fragment), "\(e.message)", sourceLocation: sourceLocation)
            } catch {
                Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
            }
        }
        let good = Self.lightGBMStump
        refuses(.lightgbm, String(good.prefix(200)), "end of trees")
        refuses(.lightgbm, good.replacingOccurrences(of: "split_feature=1", with: "split_feature=7"), "split_feature 7")
        refuses(.lightgbm, good.replacingOccurrences(of: "right_child=-2", with: "right_child=-9"), "leaf 8 does not exist")
        refuses(.lightgbm, good.replacingOccurrences(of: "leaf_value=-1 1", with: "leaf_value=-1"), "leaf_value")
        refuses(.lightgbm, good.replacingOccurrences(of: "num_leaves=2", with: "num_leaves=99999999999"), "num_leaves")
        refuses(.lightgbm, good.replacingOccurrences(of: "shrinkage=1", with: "shrinkage=1\nis_linear=1"), "linear tree")
        refuses(.lightgbm, good.replacingOccurrences(of: "binary sigmoid:1", with: "mystery"), "objective 'mystery'")
        #expect(throws: InferenceError.self) { try NativeTreeModel(.lightgbm, bytes: [0xFF, 0xFE, 0x00]) }
        let xgb = #"{"learner":{"gradient_booster":{"name":"gbtree","model":{"trees":[{"left_children":[1,-1,-1],"right_children":[2,-1,-1],"split_indices":[0,0,0],"split_conditions":[0.5,-1,1],"default_left":[1,0,0]}],"tree_info":[0]}},"learner_model_param":{"base_score":"5E-1","num_class":"0","num_feature":"1"},"objective":{"name":"binary:logistic"}}}"#
        #expect(throws: Never.self) { try NativeTreeModel(.xgboost, bytes: Array(xgb.utf8)) }
        refuses(.xgboost, String(xgb.prefix(80)), "not an XGBoost JSON model")
        refuses(.xgboost, xgb.replacingOccurrences(of: #""right_children":[2,-1,-1]"#, with: #""right_children":[5,-1,-1]"#), "child 5")
        refuses(.xgboost, xgb.replacingOccurrences(of: #""split_indices":[0,0,0]"#, with: #""split_indices":[3,0,0]"#), "split_indices 3")
        refuses(.xgboost, xgb.replacingOccurrences(of: #""tree_info":[0]"#, with: #""tree_info":[0,0]"#), "tree_info")
        refuses(.xgboost, xgb.replacingOccurrences(of: "gbtree", with: "gblinear"), "gblinear")
        refuses(.xgboost, xgb.replacingOccurrences(of: "binary:logistic", with: "mystery:objective"), "unsupported objective")
        refuses(.xgboost, xgb.replacingOccurrences(of: #""default_left":[1,0,0]"#, with: #""default_left":[1]"#), "default_left")
    }
}
