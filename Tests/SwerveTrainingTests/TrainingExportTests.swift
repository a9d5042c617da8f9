import Foundation
import SwerveInference
import SwerveTraining
import Testing

@Suite("Training: ONNX export against Swerve's core and onnxruntime")
struct TrainingExportTests {
    /// onnxruntime on the exported file: reads inputs from JSON, prints outputs as JSON.
    static let ortScript = """
        import json, sys
        import numpy as np, onnxruntime as ort
        s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
        inputs = json.load(open(sys.argv[2]))
        feed = {}
        for i in s.get_inputs():
            feed[i.name] = np.array(inputs[i.name], dtype=np.float32 if i.name == "numeric" else object)
        names = [o.name for o in s.get_outputs()]
        print(json.dumps({n: v.tolist() for n, v in zip(names, s.run(names, feed))}))
        """

    struct Case {
        var numeric: Int, categorical: Int, task: DataSchema.Task, kind: ModelKind
    }

    /// Trains, exports and checks one schema: Swerve's CompiledModel and onnxruntime against the
    /// trainer's own predictions, including a category never seen in training.
    func check(_ c: Case) throws {
        var data = try TrainingFixtures.synthetic(rows: 300, numeric: c.numeric, categorical: c.categorical, task: c.task, seed: 5)
        let split = try data.split(validation: 0.2, holdout: 0.2, seed: 1)
        let config = TrainingConfiguration(model: c.kind, hiddenLayers: [8, 4], activation: .tanh, learningRate: 0.01, epochs: 15, batchSize: 16, patience: 0, threads: 2)
        let model = try Trainer(config).train(on: split.train, validation: split.validation)
        if c.categorical > 0 { data.categorical[0][0] = "never-seen" }
        let rows = data.rows(Array(0..<60))
        let expected = try model.predict(rows)
        let k = expected.width

        let bytes = model.onnxBytes()
        let compiled = try CompiledModel(onnxBytes: bytes)
        let (numeric, categorical) = try model.onnxInputs(for: rows)
        var inputs: [Tensor] = []
        for info in compiled.inputs {
            if info.name == "numeric" { inputs.append(Tensor(shape: [60, c.numeric], data: .fp32(numeric))) }
            if info.name == "categorical" { inputs.append(Tensor(shape: [60, c.categorical], data: .bytes(categorical.map { Array($0.utf8) }))) }
        }
        #expect(inputs.count == (c.numeric > 0 ? 1 : 0) + (c.categorical > 0 ? 1 : 0))
        let outputs = try compiled.makeExecutor().run(inputs)
        let names = compiled.outputs.map(\.name)
        var swerveValues: [Double] = []
        if c.task == .classification {
            #expect(names == ["label", "probabilities"])
            guard case .fp32(let p) = outputs[1].data, case .int64(let labels) = outputs[0].data else {
                Issue.record("unexpected output types")
                return
            }
            #expect(outputs[1].shape == [60, k])
            swerveValues = p.map(Double.init)
            #expect(labels.map(Int.init) == expected.labels)
        } else {
            #expect(names == ["variable"])
            guard case .fp32(let v) = outputs[0].data else { Issue.record("unexpected output type"); return }
            #expect(outputs[0].shape == [60, 1])
            swerveValues = v.map(Double.init)
        }
        for (a, b) in zip(swerveValues, expected.values) { #expect(close(a, b, rel: 1e-5, abs: 1e-6), "Swerve \(a) vs trainer \(b)") }

        if c.numeric == 0 {
            // Only categorical inputs: Swerve derives every column's finite domain from the encoders.
            #expect(compiled.derivedInputDomains.count == c.categorical)
            #expect(compiled.derivedInputDomains.map(\.values) == model.encoder.categories.map { .bytes($0.map { Array($0.utf8) }) })
        }

        guard let python = TrainingFixtures.python else {
            print("skipping the onnxruntime comparison: no .venv/bin/python (set SWERVE_PYTHON)")
            return
        }
        let dir = try TrainingFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/model.onnx"))
        var feed: [String: Any] = [:]
        if c.numeric > 0 { feed["numeric"] = (0..<60).map { r in Array(numeric[r * c.numeric..<(r + 1) * c.numeric]) } }
        if c.categorical > 0 { feed["categorical"] = (0..<60).map { r in Array(categorical[r * c.categorical..<(r + 1) * c.categorical]) } }
        try JSONSerialization.data(withJSONObject: feed).write(to: URL(fileURLWithPath: dir + "/inputs.json"))
        let out = try TrainingFixtures.runPython(python, script: Self.ortScript, arguments: [dir + "/model.onnx", dir + "/inputs.json"])
        let ort = try JSONSerialization.jsonObject(with: out) as! [String: Any]
        let ortValues: [Double]
        if c.task == .classification {
            ortValues = (ort["probabilities"] as! [[Double]]).flatMap { $0 }
            #expect((ort["label"] as! [Int]) == expected.labels)
        } else {
            ortValues = (ort["variable"] as! [[Double]]).flatMap { $0 }
        }
        #expect(ortValues.count == swerveValues.count && !ortValues.isEmpty)
        for (a, b) in zip(ortValues, swerveValues) { #expect(close(a, b, rel: 1e-5, abs: 1e-6), "onnxruntime \(a) vs Swerve \(b)") }
    }

    @Test func numericOnlyLogistic() throws { try check(Case(numeric: 4, categorical: 0, task: .classification, kind: .logistic)) }
    @Test func categoricalOnlyLogistic() throws { try check(Case(numeric: 0, categorical: 3, task: .classification, kind: .logistic)) }
    @Test func mixedSoftmax() throws { try check(Case(numeric: 3, categorical: 2, task: .classification, kind: .softmax)) }
    @Test func mixedMLPClassifier() throws { try check(Case(numeric: 3, categorical: 2, task: .classification, kind: .mlp)) }
    @Test func mixedLinearRegression() throws { try check(Case(numeric: 3, categorical: 2, task: .regression, kind: .linear)) }
    @Test func categoricalOnlyMLPRegressor() throws { try check(Case(numeric: 0, categorical: 2, task: .regression, kind: .mlp)) }
}

@Suite("Training: determinism and data parallelism")
struct TrainingReproducibilityTests {
    func train(threads: Int, seed: UInt64 = 11) throws -> (TrainedModel, Metrics) {
        let data = try TrainingFixtures.synthetic(rows: 600, numeric: 4, categorical: 2, seed: 2)
        let split = try data.split(validation: 0.15, holdout: 0.2, seed: 4)
        let config = TrainingConfiguration(model: .mlp, hiddenLayers: [16], learningRate: 0.01, epochs: 12, batchSize: 32, patience: 4, threads: threads, seed: seed)
        let model = try Trainer(config).train(on: split.train, validation: split.validation)
        return (model, try EvaluationReport(model: model, data: split.holdout).overall)
    }

    @Test func sameDataSeedAndThreadsGiveIdenticalWeights() throws {
        let (a, _) = try train(threads: 2)
        let (b, _) = try train(threads: 2)
        #expect(a.network.parameters == b.network.parameters)
        #expect(a.history.map(\.trainLoss) == b.history.map(\.trainLoss))
        let (c, _) = try train(threads: 2, seed: 12)
        #expect(c.network.parameters != a.network.parameters)
    }

    @Test func differentThreadCountsConverge() throws {
        let (one, m1) = try train(threads: 1)
        let (three, m3) = try train(threads: 3)
        #expect(one.network.parameters.count == three.network.parameters.count)
        #expect(m1.accuracy! > 0.85 && m3.accuracy! > 0.85, "\(m1) \(m3)")
        #expect(abs(m1.accuracy! - m3.accuracy!) < 0.03 && abs(m1.logLoss! - m3.logLoss!) < 0.03)
    }

    @Test func warmStartContinuesAndChecksArchitecture() throws {
        let data = try TrainingFixtures.synthetic(rows: 300, numeric: 3, categorical: 1, seed: 6)
        let config = TrainingConfiguration(model: .logistic, learningRate: 0.003, epochs: 3, patience: 0)
        let first = try Trainer(config).train(on: data)
        let second = try Trainer(config).train(on: data, warmStart: first)
        #expect(second.history.first!.trainLoss < first.history.first!.trainLoss)
        #expect(second.encoder == first.encoder)
        // A checkpoint round-trips exactly.
        #expect(try TrainedModel.decode(second.encodeJSON()) == second)
        var mlp = config
        mlp.model = .mlp
        #expect(throws: TrainingError.self) { try Trainer(mlp).train(on: data, warmStart: first) }
    }

    @Test func taskMismatchesAreRejected() throws {
        let classes = try TrainingFixtures.synthetic(rows: 50, numeric: 2, categorical: 0)
        #expect(throws: TrainingError.self) { try Trainer(TrainingConfiguration(model: .linear)).train(on: classes) }
        let values = try TrainingFixtures.synthetic(rows: 50, numeric: 2, categorical: 0, task: .regression)
        #expect(throws: TrainingError.self) { try Trainer(TrainingConfiguration(model: .logistic)).train(on: values) }
        #expect(throws: TrainingError.self) { try Trainer(TrainingConfiguration(model: .softmax, threads: 0)).train(on: classes) }
    }
}
