import Foundation
import SwerveInference
import Testing
@testable import SwerveTraining

@Suite("Training: GradientBoosting (histogram GBDT)")
struct GradientBoostingTests {
    // MARK: binning

    @Test func fewDistinctValuesBinAtMidpointsAndNaNGetsItsOwnBin() {
        let x: [Float] = [3, 1, 2, 2, .nan, 1]
        let binner = FeatureBinner(x, rows: 6, width: 1)
        #expect(binner.edges == [[1.5, 2.5]])
        #expect(x.map { binner.bin($0, feature: 0) } == [2, 0, 1, 1, 255, 0])
        #expect(binner.bin(1.5, feature: 0) == 0)  // v <= edge goes to the lower bin, as BRANCH_LEQ
        #expect(binner.bin(100, feature: 0) == 2)
    }

    @Test func manyDistinctValuesGetAtMost255QuantileBinsConsistentWithFP32Thresholds() {
        var rng = SplitMix64(seed: 9)
        let x = (0..<5000).map { _ in Float(rng.nextUnit() * 10 - 5) }
        let binner = FeatureBinner(x, rows: x.count, width: 1)
        let edges = binner.edges[0]
        #expect(edges.count <= 254 && edges.count > 200)
        #expect(zip(edges, edges.dropFirst()).allSatisfy { $0 < $1 })
        var perBin = [Int](repeating: 0, count: 256)
        for v in x {
            let b = Int(binner.bin(v, feature: 0))
            perBin[b] += 1
            // The exported threshold of every split sends the value exactly as its bin.
            for (e, edge) in edges.enumerated() { #expect((v <= edge) == (b <= e)) }
        }
        // Quantile bins hold roughly equal counts.
        #expect(perBin[0..<edges.count + 1].allSatisfy { $0 > 5 && $0 < 40 })
    }

    @Test func adjacentFloatsKeepTheLowerValueAsTheEdge() {
        let a: Float = 1, b = a.nextUp
        let binner = FeatureBinner([a, b], rows: 2, width: 1)
        #expect(binner.edges == [[a]])
        #expect(binner.bin(a, feature: 0) == 0 && binner.bin(b, feature: 0) == 1)
    }

    // MARK: split finding

    func grower(_ x: [Float], minLeaf: Int = 1, l2: Double = 0, depth: Int = 3) -> TreeGrower {
        let binner = FeatureBinner(x, rows: x.count, width: 1)
        return TreeGrower(
            bins: binner.binColumns(x, rows: x.count, width: 1), n: x.count, features: 1,
            binCounts: binner.edges.map { $0.count + 1 }, edges: binner.edges, depth: depth,
            minLeaf: minLeaf, l2: l2, learningRate: 1)
    }

    @Test func bestSplitMatchesTheHandComputedGain() throws {
        let x: [Float] = [1, 2, 3, 4]
        let g: [Double] = [-1, -1, 1, 1], h: [Double] = [1, 1, 1, 1]
        let t = grower(x)
        let hist = t.histogram(Array(0..<4)[...], g, h)
        // Left {1, 2}: G = −2, H = 2; right {3, 4}: G = 2, H = 2; parent G = 0: gain 4/2 + 4/2 − 0 = 4.
        let split = try #require(t.bestSplit(hist, g: 0, h: 4, count: 4))
        #expect(split.feature == 0 && split.bin == 1 && split.gain == 4)
        // λ = 1: 4/3 + 4/3.
        let regularized = try #require(grower(x, l2: 1).bestSplit(hist, g: 0, h: 4, count: 4))
        #expect(abs(regularized.gain - 8.0 / 3) < 1e-12)
        // Three rows per leaf cannot be had from four.
        #expect(grower(x, minLeaf: 3).bestSplit(hist, g: 0, h: 4, count: 4) == nil)
    }

    @Test func treeLeavesAreNewtonStepsAndThresholdsAreBinEdges() {
        let x: [Float] = [1, 2, 3, 4]
        var rows = Array(0..<4)
        let tree = grower(x, depth: 1).grow(rows: &rows, g: [-1, -1, 1, 1], h: [1, 1, 1, 1])
        #expect(tree.feature == [0, -1, -1])
        #expect(tree.threshold[0] == 2.5)
        #expect(tree.value[1] == 1 && tree.value[2] == -1)  // −G/H with learning rate 1
    }

    @Test func missingValuesLearnTheirDirection() throws {
        // The NaN row's gradient is like the low rows': it should go left.
        let x: [Float] = [1, 2, 3, 4, .nan]
        let g: [Double] = [-1, -1, 1, 1, -1], h = [Double](repeating: 1, count: 5)
        let t = grower(x)
        let hist = t.histogram(Array(0..<5)[...], g, h)
        let split = try #require(t.bestSplit(hist, g: -1, h: 5, count: 5))
        #expect(split.bin == 1 && split.missingLeft)
        var rows = Array(0..<5)
        let tree = grower(x, depth: 1).grow(rows: &rows, g: g, h: h)
        #expect(tree.missingLeft[0])
        let nan: [Float] = [.nan]
        #expect(nan.withUnsafeBufferPointer { tree.evaluate($0.baseAddress!) } == tree.value[tree.left[0]])
    }

    // MARK: training

    static func threeClasses(rows: Int, seed: UInt64) throws -> Dataset {
        var rng = SplitMix64(seed: seed)
        var x: [[Double]] = [[], []], c: [[String]] = [[]]
        var labels: [Int] = []
        for _ in 0..<rows {
            let a = rng.nextUnit() * 4 - 2, b = rng.nextUnit() * 4 - 2
            let k = Int(rng.next() % 3)
            x[0].append(a); x[1].append(b); c[0].append(["red", "green", "blue"][k])
            let score = a + (k == 0 ? 1 : 0) + 0.3 * (rng.nextUnit() - 0.5)
            labels.append(score < -0.5 ? 0 : score < 0.8 ? 1 : 2)
        }
        let schema = DataSchema(columns: [
            .init(name: "a", type: .numeric), .init(name: "b", type: .numeric), .init(name: "colour", type: .categorical),
            .init(name: "y", type: .label, task: .classification, classes: ["low", "mid", "high"]),
        ], label: "y")
        return try Dataset(schema: schema, numeric: x, categorical: c, labels: .classes(indices: labels, names: ["low", "mid", "high"]))
    }

    func config(trees: Int = 20, depth: Int = 3, minLeaf: Int = 5) -> TrainingConfiguration {
        TrainingConfiguration(model: .gbdt, learningRate: 0.3, l2: 0.5, threads: 1, gbdt: GBDTParameters(trees: trees, depth: depth, minLeaf: minLeaf))
    }

    @Test func trainingIsDeterministicAndLearns() throws {
        let data = try TrainingFixtures.synthetic(rows: 400, numeric: 3, categorical: 1, seed: 3)
        let split = try data.split(validation: 0.2, holdout: 0.2, seed: 1)
        var lines: [String] = []
        let a = try Trainer(config()).train(on: split.train, validation: split.validation, progress: { lines.append($0.description) })
        let b = try Trainer(config()).train(on: split.train, validation: split.validation)
        // Everything but the wall-clock times in the progress history.
        #expect(a.ensemble == b.ensemble && a.encoder == b.encoder)
        #expect(a.history.map(\.trainLoss) == b.history.map(\.trainLoss))
        #expect(a.onnxBytes() == b.onnxBytes())
        #expect(lines.count == 2 && lines[0].hasPrefix("trees 10: train loss") && lines[0].contains("elapsed"))
        #expect(a.history.last!.trainLoss < a.history.first!.trainLoss)
        let metrics = Metrics(try a.predict(split.holdout), labels: split.holdout.labels)
        #expect(metrics.accuracy! > 0.8)
        // The checkpoint round-trips with its trees.
        #expect(try TrainedModel.decode(a.encodeJSON()) == a)
    }

    @Test func exportMatchesTheTrainerInSwervesCore() throws {
        for data in [try TrainingFixtures.synthetic(rows: 300, numeric: 2, categorical: 2, seed: 4), try Self.threeClasses(rows: 300, seed: 2)] {
            let model = try Trainer(config()).train(on: data)
            let rows = data.rows(Array(0..<80))
            let expected = try model.predict(rows)
            let compiled = try CompiledModel(onnxBytes: model.onnxBytes())
            let (numeric, categorical) = try model.onnxInputs(for: rows)
            let inputs = [
                Tensor(shape: [80, model.encoder.numericNames.count], data: .fp32(numeric)),
                Tensor(shape: [80, model.encoder.categoricalNames.count], data: .bytes(categorical.map { Array($0.utf8) })),
            ]
            let outputs = try compiled.makeExecutor().run(inputs)
            #expect(compiled.outputs.map(\.name) == ["label", "probabilities"])
            guard case .int64(let labels) = outputs[0].data, case .fp32(let p) = outputs[1].data else {
                Issue.record("unexpected output types")
                continue
            }
            #expect(outputs[1].shape == [80, data.classNames.count])
            #expect(labels.map(Int.init) == expected.labels)
            for (x, y) in zip(p, expected.values) { #expect(abs(Double(x) - y) < 1e-5, "Swerve \(x) vs trainer \(y)") }
        }
    }

    // MARK: limits and refusals

    @Test func tooManyNodesIsRefusedBeforeAllocating() throws {
        let data = try TrainingFixtures.synthetic(rows: 50, numeric: 2, categorical: 0)
        #expect {
            try Trainer(config(trees: 100_000, depth: 12)).train(on: data)
        } throws: { error in
            (error as? TrainingError)?.description.contains("exceeds the limit") ?? false
        }
        #expect(throws: TrainingError.self) { try Trainer(config(trees: 10, depth: 0)).train(on: data) }
        #expect(throws: TrainingError.self) { try Trainer(config(trees: Int.max, depth: 20)).train(on: data) }
    }

    @Test func warmStartAndRegressionAreRefused() throws {
        let data = try TrainingFixtures.synthetic(rows: 100, numeric: 2, categorical: 0)
        let model = try Trainer(config(trees: 2)).train(on: data)
        #expect {
            try Trainer(config(trees: 2)).train(on: data, warmStart: model)
        } throws: { error in
            (error as? TrainingError)?.description.contains("cannot warm-start") ?? false
        }
        let regression = try TrainingFixtures.synthetic(rows: 100, numeric: 2, categorical: 0, task: .regression)
        #expect(throws: TrainingError.self) { try Trainer(config(trees: 2)).train(on: regression) }
    }

    @Test func jobHyperparametersCarryTheTreeSettingsAndGBDTDefaults() throws {
        let hp = try Hyperparameters(kind: .gbdt, ["trees": "7", "depth": "3", "min_leaf": "4"])
        #expect(hp.configuration.gbdt == GBDTParameters(trees: 7, depth: 3, minLeaf: 4))
        #expect(hp.configuration.learningRate == 0.1 && hp.configuration.l2 == 0)
        #expect(throws: TrainingError.self) { try Hyperparameters(kind: .gbdt, ["trees": "10000000", "depth": "20"]) }
        #expect(try Hyperparameters(kind: .mlp, [:]).configuration.gbdt == nil)
    }
}
