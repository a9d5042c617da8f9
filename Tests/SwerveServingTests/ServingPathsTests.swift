import Foundation
import Logging
import SwerveInference
import SwerveProto
import SwerveRepository
import Synchronization
import Testing
@testable import SwerveServing

/// The static table, the response cache, in-flight coalescing and the batcher must return
/// byte-identical outputs for the same model version and inputs.
@Suite struct ServingPathsTests {
    static let examples = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples/repository")
    static let devices = ["mobile", "desktop", "tablet", "smart-tv"]          // smart-tv: never seen in training
    static let countries = ["us", "de", "fr", "jp", "br", "in", "gb", "ca", "zz"]
    static let categories = ["fashion", "sports", "travel", "tech", "food", "games", "??"]

    /// A repository holding one example model under several names, each with its own config.json.
    func makeRepo(model: String, configs: [String: String]) throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("swerve-paths-\(UUID())")
        for (name, json) in configs {
            let dir = root.appendingPathComponent("\(name)/1")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: Self.examples.appendingPathComponent("\(model)/1/model.onnx"), to: dir.appendingPathComponent("model.onnx"))
            try Data(json.utf8).write(to: root.appendingPathComponent("\(name)/config.json"))
        }
        return root
    }

    func manager(_ root: URL) throws -> ModelManager {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let m = ModelManager(repository: ModelRepository(path: root.path), logger: logger)
        try m.loadAll()
        return m
    }

    /// Runs one request through a model version's paths and waits for the answer.
    func infer(_ m: ServedModel, _ input: Tensor, deadlineNs: UInt64? = nil) throws -> [Tensor] {
        let (inputs, rows) = try m.validate([(m.inputs[0].name, input)])
        let box = Mutex<Result<[Tensor], ServingError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        m.infer(inputs, rows: rows, deadlineNs: deadlineNs, isCancelled: { false }) { r in box.withLock { $0 = r }; done.signal() }
        #expect(done.wait(timeout: .now() + 30) == .success)
        return try box.withLock { $0 }!.get()
    }

    func randomAdRows(_ count: Int, _ g: inout SplitMix64, unseen: Bool) -> Tensor {
        func pick(_ xs: [String]) -> [UInt8] {
            let n = unseen ? xs.count : xs.count - 1
            return Array(xs[Int(g.next() % UInt64(n))].utf8)
        }
        let rows = (0..<count).flatMap { _ in [pick(Self.devices), pick(Self.countries), pick(Self.categories)] }
        return Tensor(shape: [count, 3], data: .bytes(rows))
    }

    @Test func tableCacheCoalescingAndBatcherAgreeExactly() throws {
        let root = try makeRepo(model: "ad_conversion_onehot", configs: [
            "s": #"{"serving_mode": "static"}"#,
            "c": #"{"serving_mode": "cached"}"#,
            "d": #"{"serving_mode": "dynamic"}"#,
        ])
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = try manager(root)
        defer { mm.shutdown() }
        let table = try mm.resolve(model: "s", version: "")
        let cached = try mm.resolve(model: "c", version: "")
        let dynamic = try mm.resolve(model: "d", version: "")
        #expect(table.pathStatistics.tableCells == 3 * 8 * 6)
        #expect(table.pathStatistics.activePath == "static")

        var g = SplitMix64(seed: 42)
        for i in 0..<300 {
            // Every 4th request includes categories never seen in training (table falls back to compute).
            let input = randomAdRows(1 + Int(g.next() % 5), &g, unseen: i % 4 == 0)
            let want = try infer(dynamic, input)
            #expect(try infer(table, input) == want, "static table differs on request \(i)")
            #expect(try infer(cached, input) == want, "cache miss differs on request \(i)")
            #expect(try infer(cached, input) == want, "cache hit differs on request \(i)")
        }
        let ts = table.pathStatistics
        #expect(ts.tableLookups > 0 && ts.tableFallbacks > 0)
        let cs = cached.pathStatistics
        #expect(cs.cacheHits >= 300 && cs.cacheMisses > 0)
    }

    /// A request past its deadline is refused on every path, the table and a cache hit
    /// included, with the one deadline message; the same request in time is answered.
    @Test func everyPathRefusesAPassedDeadline() throws {
        let root = try makeRepo(model: "ad_conversion_onehot", configs: [
            "s": #"{"serving_mode": "static"}"#,
            "c": #"{"serving_mode": "cached"}"#,
            "d": #"{"serving_mode": "dynamic"}"#,
        ])
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = try manager(root)
        defer { mm.shutdown() }
        var g = SplitMix64(seed: 7)
        let input = randomAdRows(2, &g, unseen: false)
        for name in ["s", "c", "d"] {
            let m = try mm.resolve(model: name, version: "")
            _ = try infer(m, input)  // in time (and, for "c", now cached)
            let past = DispatchTime.now().uptimeNanoseconds - 1
            #expect(throws: ServingError.deadlineExceeded, "path \(name)") { try infer(m, input, deadlineNs: past) }
        }
    }

    /// Identical requests submitted together while the workers are held share one computation,
    /// and each caller gets the same bytes as the batcher alone gives.
    @Test func coalescedRequestsShareOneComputation() throws {
        let root = try makeRepo(model: "breast_cancer_logreg", configs: [
            "c": #"{"serving_mode": "cached"}"#, "d": #"{"serving_mode": "dynamic"}"#,
        ])
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = try manager(root)
        defer { mm.shutdown() }
        let cached = try mm.resolve(model: "c", version: "")
        let dynamic = try mm.resolve(model: "d", version: "")
        var g = SplitMix64(seed: 3)
        let distinct = (0..<5).map { _ in Tensor(shape: [2, 30], data: .fp32((0..<60).map { _ in Float(g.nextUnit() * 10) })) }
        let expected = try distinct.map { try infer(dynamic, $0) }

        let results = Mutex<[Int: [Tensor]]>([:])
        let group = DispatchGroup()
        cached.batcher.setPaused(true)
        for i in 0..<100 {
            let (inputs, rows) = try cached.validate([("input", distinct[i % 5])])
            group.enter()
            cached.infer(inputs, rows: rows, deadlineNs: nil, isCancelled: { false }) { r in
                if case .success(let out) = r { results.withLock { $0[i] = out } }
                group.leave()
            }
        }
        cached.batcher.setPaused(false)
        #expect(group.wait(timeout: .now() + 60) == .success)
        let got = results.withLock { $0 }
        #expect(got.count == 100)
        for i in 0..<100 { #expect(got[i] == expected[i % 5], "request \(i)") }
        let s = cached.pathStatistics
        #expect(s.coalesced == 95, "95 of 100 requests should have joined one of 5 computations")
        let st = cached.statistics.snapshot
        #expect(st.executionCount <= 5)
        // Every request missed (none was cached when it looked); the 95 that joined a running
        // computation get its queue and compute stages, as requests batched together do, while
        // the shared executions count once.
        #expect((st.cacheMiss.count, st.cacheHit.count) == (100, 0))
        #expect((st.queue.count, st.computeInput.count, st.computeInfer.count, st.computeOutput.count) == (100, 100, 100, 100))
        #expect(st.inferenceCount == 10, "5 distinct inputs of 2 rows computed once each")
    }

    @Test func cacheStaysWithinItsBudgetUnderAFloodOfDistinctInputs() throws {
        let root = try makeRepo(model: "breast_cancer_logreg", configs: [
            "c": #"{"serving_mode": "cached", "response_cache": {"max_bytes": 65536}}"#,
        ])
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = try manager(root)
        defer { mm.shutdown() }
        let cached = try mm.resolve(model: "c", version: "")
        for i in 0..<3000 {
            var values = [Float](repeating: 0, count: 30)
            values[0] = Float(i)
            _ = try infer(cached, Tensor(shape: [1, 30], data: .fp32(values)))
            if i % 500 == 0 { #expect(cached.pathStatistics.cacheBytes <= 65536) }
        }
        let s = cached.pathStatistics
        #expect(s.cacheBytes <= s.cacheCapacityBytes && s.cacheCapacityBytes == 65536)
        #expect(s.cacheEvictions > 0)
        #expect(s.cacheEntries < 3000)
    }

    /// A model whose row costs far more than its cache key, even in a debug build (4 inputs, a
    /// hidden layer of 768 × 768): the cost side of `auto`'s rule is then clearly for the cache.
    func writeCostlyModel(to root: URL, name: String, config: String) throws {
        var rng = SplitMix64(seed: 3)
        func weights(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Double(rng.next() % 2001) / 1000 - 1) / 30 } }
        let model = ONNXModel(
            irVersion: 8, opsetImports: [ONNXOperatorSetID(domain: "", version: 17)], producerName: "swerve-tests",
            graph: ONNXGraph(
                name: "costly",
                nodes: [
                    ONNXNode(name: "mm1", opType: "MatMul", inputs: ["input", "W1"], outputs: ["h1"]),
                    ONNXNode(name: "relu", opType: "Relu", inputs: ["h1"], outputs: ["r1"]),
                    ONNXNode(name: "mm2", opType: "MatMul", inputs: ["r1", "W2"], outputs: ["h2"]),
                    ONNXNode(name: "mm3", opType: "MatMul", inputs: ["h2", "W3"], outputs: ["output"]),
                ],
                initializers: [.floats("W1", dims: [4, 768], weights(4 * 768)), .floats("W2", dims: [768, 768], weights(768 * 768)),
                               .floats("W3", dims: [768, 2], weights(768 * 2))],
                inputs: [.tensor("input", elemType: ONNXTensor.DataTypeCode.float, shape: [nil, 4])],
                outputs: [.tensor("output", elemType: ONNXTensor.DataTypeCode.float, shape: [nil, 2])]))
        let dir = root.appendingPathComponent("\(name)/1")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data(model.encode()).write(to: dir.appendingPathComponent("model.onnx"))
        try Data(config.utf8).write(to: root.appendingPathComponent("\(name)/config.json"))
    }

    /// `auto` turns the cache on for Zipf traffic and off again for uniform traffic (fixed seeds).
    @Test func autoSwitchesWithPeakedness() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("swerve-paths-\(UUID())")
        try writeCostlyModel(to: root, name: "a", config: #"{"serving_mode": "auto"}"#)
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = try manager(root)
        defer { mm.shutdown() }
        let m = try mm.resolve(model: "a", version: "")
        #expect(m.pathStatistics.activePath == "dynamic")
        func row(_ k: Int) -> Tensor {
            var values = [Float](repeating: 1, count: 4)
            values[0] = Float(k)
            return Tensor(shape: [1, 4], data: .fp32(values))
        }
        var rng = SplitMix64(seed: 11)
        let zipf = ZipfSampler(n: 1_000_000, exponent: 1.1)
        for _ in 0..<25_000 { _ = try infer(m, row(zipf.next(using: &rng))) }
        let on = m.pathStatistics
        #expect(on.activePath == "cached", "peakedness \(on.peakedness)")
        #expect(on.peakedness >= 0.3)
        #expect(on.cacheHits > 0)
        for i in 0..<25_000 { _ = try infer(m, row(2_000_000 + i)) }
        let off = m.pathStatistics
        #expect(off.activePath == "dynamic", "peakedness \(off.peakedness)")
        #expect(off.pathSwitches == 2)
        #expect(off.cardinality > 3_000)   // a window holds 4,096 sampled requests
    }

    /// An encoder that records what it was asked to encode and the bytes it was asked to send.
    final class RecordingEncoder: CachedResponseEncoder, @unchecked Sendable {
        let lock = NSLock()
        var encoded: [[Tensor]] = []
        var sent: [[UInt8]] = []
        let done = DispatchSemaphore(value: 0)
        var form: Int { 0 }
        func encode(_ outputs: [Tensor]) -> [UInt8] {
            lock.withLock { encoded.append(outputs) }
            return Array("\(outputs)".utf8)
        }
        func send(encoded bytes: [UInt8]) {
            lock.withLock { sent.append(bytes) }
            done.signal()
        }
    }

    /// In `auto`, one computed answer in 64 goes out through the encoder (its encoding timed for
    /// the cost rule, which counts it among what a hit saves); every request is answered exactly
    /// once, with the outputs the plain path gives.
    @Test func autoTimesTheEncodingOfSomeComputedAnswers() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("swerve-paths-\(UUID())")
        try writeCostlyModel(to: root, name: "a", config: #"{"serving_mode": "auto"}"#)
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = try manager(root)
        defer { mm.shutdown() }
        let m = try mm.resolve(model: "a", version: "")
        let n = 256
        let encoder = RecordingEncoder()
        let completions = Mutex<[[Tensor]]>([])
        let completed = DispatchSemaphore(value: 0)
        for k in 0..<n {
            let input = Tensor(shape: [1, 4], data: .fp32([Float(k), 1, 1, 1]))
            let (inputs, rows) = try m.validate([(m.inputs[0].name, input)])
            m.infer(inputs, rows: rows, deadlineNs: nil, encoder: encoder, isCancelled: { false }) { r in
                if case .success(let t) = r { completions.withLock { $0.append(t) } }
                completed.signal()
            }
        }
        let viaEncoder = n / Int(ServingPaths.encodeSampleEvery)
        for _ in 0..<viaEncoder { #expect(encoder.done.wait(timeout: .now() + 30) == .success) }
        for _ in 0..<(n - viaEncoder) { #expect(completed.wait(timeout: .now() + 30) == .success) }
        #expect(encoder.sent.count == viaEncoder)
        #expect(encoder.encoded.count == viaEncoder)
        #expect(completions.withLock { $0.count } == n - viaEncoder)
        // What went out either way is what the plain path computes for one of those rows.
        let plain = try (0..<n).map { k in try infer(m, Tensor(shape: [1, 4], data: .fp32([Float(k), 1, 1, 1]))) }
        for outputs in encoder.encoded + completions.withLock({ $0 }) {
            #expect(plain.contains(outputs))
        }
        #expect(Set(plain.map { "\($0)" }).count > n / 2, "the model should tell the rows apart")
    }
}

/// Batching must not change a row's bytes: the batcher merges requests into batches of any size,
/// so a row computed alone and inside a batch (at any position) must be bit-identical — what lets
/// the static table, the cache and the batcher agree exactly on models with matrix products.
@Suite struct BatchInvarianceTests {
    static let models = [
        ServingPathsTests.examples.appendingPathComponent("digits_mlp/1/model.onnx"),
        ServingPathsTests.examples.appendingPathComponent("breast_cancer_logreg/1/model.onnx"),
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("SwerveInferenceTests/Fixtures/lr_multiclass.onnx"),
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("SwerveInferenceTests/Fixtures/mlp_regressor.onnx"),
    ]

    @Test(arguments: models) func rowsAreBitIdenticalAtAnyBatchSizeAndPosition(_ file: URL) throws {
        let model = try CompiledModel(contentsOfFile: file.path)
        let executor = model.makeExecutor()
        let width = model.inputs[0].shape[1]
        var g = SplitMix64(seed: 5)
        let rows = 70
        let values = (0..<(rows * width)).map { _ in Float(g.nextUnit()) }
        let whole = try executor.run([Tensor(shape: [rows, width], data: .fp32(values))])
        for r in [0, 1, 11, 12, 13, 35, 69] {
            let alone = try executor.run([Tensor(shape: [1, width], data: .fp32(Array(values[(r * width)..<((r + 1) * width)])))])
            for (k, out) in whole.enumerated() { #expect(out.rows(r..<(r + 1)) == alone[k], "row \(r), output \(k)") }
        }
        for size in [2, 3, 5, 24, 33] {
            let part = try executor.run([Tensor(shape: [size, width], data: .fp32(Array(values[0..<(size * width)])))])
            for (k, out) in part.enumerated() { #expect(out == whole[k].rows(0..<size), "batch of \(size), output \(k)") }
        }
    }
}
