import Foundation
import Logging
import SwerveInference
import SwerveRepository
import Synchronization
import Testing
@testable import SwerveServing

/// The model manager and batcher over a real repository built from the bundled example model.
@Suite struct ModelManagerTests {
    static let exampleModel = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples/repository/breast_cancer_logreg/1/model.onnx")

    /// A temporary repository: `layout` maps "model/version" to file contents ("example" = the example ONNX).
    func makeRepo(_ layout: [String: String], configs: [String: String] = [:]) throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("swerve-mm-\(UUID())")
        for (path, content) in layout {
            let dir = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let file = dir.appendingPathComponent("model.onnx")
            if content == "example" {
                try FileManager.default.copyItem(at: Self.exampleModel, to: file)
            } else {
                try Data(content.utf8).write(to: file)
            }
        }
        for (model, json) in configs {
            try Data(json.utf8).write(to: root.appendingPathComponent(model).appendingPathComponent("config.json"))
        }
        return root
    }

    /// Runs `body` with the example model loaded as "m" with `max_batch_size` 8.
    func withBatchedExample(_ body: (ServedModel) throws -> Void) throws {
        let root = try makeRepo(["m/1": "example"], configs: ["m": #"{"max_batch_size": 8}"#])
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = manager(root)
        try mm.loadAll()
        defer { mm.shutdown() }
        try body(try mm.resolve(model: "m", version: ""))
    }

    func manager(_ root: URL) -> ModelManager {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return ModelManager(repository: ModelRepository(path: root.path), logger: logger)
    }

    func infer(_ m: ServedModel, _ rows: [[Float]]) throws -> [Tensor] {
        let t = Tensor(shape: [rows.count, 30], data: .fp32(rows.flatMap { $0 }))
        let (inputs, n) = try m.validate([("input", t)])
        let box = Mutex<Result<[Tensor], ServingError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        m.infer(inputs, rows: n, deadlineNs: nil, isCancelled: { false }) { r in box.withLock { $0 = r }; done.signal() }
        #expect(done.wait(timeout: .now() + 30) == .success)
        return try box.withLock { $0 }!.get()
    }

    func randomRows(_ count: Int, seed: UInt64) -> [[Float]] {
        var g = SplitMix64(seed: seed)
        return (0..<count).map { _ in (0..<30).map { _ in Float(g.nextUnit() * 20 - 5) } }
    }

    /// The batcher's workers carry their model's name where operators look (`top -H`, `perf`,
    /// /proc): Linux refuses a thread name over 15 bytes, and the long one they had was refused.
    @Test func workerThreadsAreNamedForTheirModel() throws {
        let root = try makeRepo(["threadnames/1": "example"], configs: ["threadnames": #"{"max_batch_size": 8}"#])
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = manager(root)
        try mm.loadAll()
        defer { mm.shutdown() }
        func names() -> [String] {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            return tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
                .map { $0.trimmingCharacters(in: .newlines) }
        }
        // The worker names itself first thing, on its own thread: wait for it (bounded).
        let deadline = Date().addingTimeInterval(10)
        while !names().contains("wk0 threadnames"), Date() < deadline { usleep(5_000) }
        #expect(names().contains("wk0 threadnames"), "thread names: \(names().sorted())")
    }

    @Test func versionPolicyAndResolution() throws {
        let root = try makeRepo(["m/1": "example", "m/2": "example", "m/3": "example"],
                                configs: ["m": #"{"version_policy": {"latest": {"num_versions": 2}}}"#])
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = manager(root)
        try mm.loadAll()
        defer { mm.shutdown() }
        #expect(mm.readyVersions(of: "m") == [2, 3])
        #expect(try mm.resolve(model: "m", version: "").version == 3)
        #expect(try mm.resolve(model: "m", version: "2").version == 2)
        #expect(throws: ServingError(.notFound, "model 'm' has no version 1 being served")) { try mm.resolve(model: "m", version: "1") }
        #expect(throws: ServingError.self) { try mm.resolve(model: "nope", version: "") }
    }

    @Test func brokenModelIsReportedAndOthersServe() throws {
        let root = try makeRepo(["good/1": "example", "bad/1": "not an onnx file"])
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = manager(root)
        try mm.loadAll()
        defer { mm.shutdown() }
        #expect(mm.readyVersions(of: "good") == [1])
        #expect(!mm.isModelReady("bad", version: ""))
        let bad = mm.index().filter { $0.name == "bad" }
        #expect(bad.count == 1 && bad[0].state == .unavailable && !bad[0].reason.isEmpty)
        #expect(throws: ServingError.self) { try mm.resolve(model: "bad", version: "") }
    }

    @Test func newVersionSwapsInAndFailedOneNeverReplacesAWorkingOne() throws {
        let root = try makeRepo(["m/1": "example"])
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = manager(root)
        try mm.loadAll()
        defer { mm.shutdown() }
        // A broken version 2 appears: version 1 keeps serving.
        try FileManager.default.createDirectory(at: root.appendingPathComponent("m/2"), withIntermediateDirectories: true)
        try Data("garbage".utf8).write(to: root.appendingPathComponent("m/2/model.onnx"))
        #expect(throws: ServingError.self) { try mm.load(model: "m") }
        #expect(try mm.resolve(model: "m", version: "").version == 1)
        // A good version 3: it takes over, version 1 is retired.
        try FileManager.default.createDirectory(at: root.appendingPathComponent("m/3"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Self.exampleModel, to: root.appendingPathComponent("m/3/model.onnx"))
        try mm.load(model: "m")
        #expect(mm.readyVersions(of: "m") == [3])
        try mm.unload(model: "m")
        #expect(throws: ServingError.self) { try mm.resolve(model: "m", version: "") }
    }

    @Test func validationRejectsBadInputs() throws {
        try withBatchedExample { m throws in
            let ok = Tensor(shape: [2, 30], data: .fp32(.init(repeating: 0, count: 60)))
            #expect(throws: ServingError.self) { try m.validate([("wrong", ok)]) }
            #expect(throws: ServingError.self) { try m.validate([]) }
            #expect(throws: ServingError.self) { try m.validate([("input", Tensor(shape: [2, 29], data: .fp32(.init(repeating: 0, count: 58))))]) }
            #expect(throws: ServingError.self) { try m.validate([("input", Tensor(shape: [2, 30], data: .fp64(.init(repeating: 0, count: 60))))]) }
            #expect(throws: ServingError.self) { try m.validate([("input", Tensor(shape: [9, 30], data: .fp32(.init(repeating: 0, count: 270))))]) }
            #expect(try m.validate([("input", ok)]).rows == 2)
        }
    }

    /// Many threads submit at once so the batcher merges requests; every request must get exactly
    /// the rows an unbatched run gives for its own input.
    @Test func batchedResultsEqualUnbatchedOnes() throws {
        let root = try makeRepo(["m/1": "example"], configs: ["m": #"{"max_batch_size": 32, "instance_count": 2}"#])
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = manager(root)
        try mm.loadAll()
        defer { mm.shutdown() }
        let m = try mm.resolve(model: "m", version: "")
        let reference = try CompiledModel(contentsOfFile: Self.exampleModel.path).makeExecutor()
        let requests = (0..<200).map { randomRows(1 + $0 % 3, seed: UInt64($0)) }
        let expected = try requests.map { rows in try reference.run([Tensor(shape: [rows.count, 30], data: .fp32(rows.flatMap { $0 }))]) }
        let results = Mutex<[Int: [Tensor]]>([:])
        let group = DispatchGroup()
        // Queue everything while the workers are paused, so batches are sure to form.
        m.batcher.setPaused(true)
        for (i, rows) in requests.enumerated() {
            let (inputs, n) = try m.validate([("input", Tensor(shape: [rows.count, 30], data: .fp32(rows.flatMap { $0 })))])
            group.enter()
            m.infer(inputs, rows: n, deadlineNs: nil, isCancelled: { false }) { r in
                if case .success(let out) = r { results.withLock { $0[i] = out } }
                group.leave()
            }
        }
        m.batcher.setPaused(false)
        #expect(group.wait(timeout: .now() + 60) == .success)
        let got = results.withLock { $0 }
        #expect(got.count == requests.count)
        for i in 0..<requests.count { #expect(got[i] == expected[i], "request \(i)") }
        let stats = m.statistics.snapshot
        #expect(stats.executionCount >= 1)
        #expect(stats.batches.keys.allSatisfy { $0 <= 32 })
        #expect(stats.executionCount < UInt64(requests.count), "every request ran alone: batching did not happen")
        // Triton's semantics: queue and compute count requests, executions count batches.
        let totalRows = UInt64(requests.reduce(0) { $0 + $1.count })
        #expect(stats.queue.count == UInt64(requests.count))
        #expect(stats.computeInput.count == UInt64(requests.count) && stats.computeInfer.count == UInt64(requests.count)
                && stats.computeOutput.count == UInt64(requests.count))
        #expect(stats.inferenceCount == totalRows, "inference_count is rows, summed over executions")
        #expect(stats.batches.values.reduce(0) { $0 + $1.computeInfer.count } == stats.executionCount)
        #expect(stats.batches.values.reduce(0) { $0 + UInt64($1.batchSize) * $1.computeInfer.count } == totalRows)
        #expect(stats.success.count == 0, "success and fail are the server's to count, once the answer is sent")
    }

    @Test func aBurstsInlineRequestsRunAsOneBatchAtItsEnd() throws {
        let root = try makeRepo(["m/1": "example"], configs: ["m": #"{"max_batch_size": 8, "execution": "inline"}"#])
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = manager(root)
        try mm.loadAll()
        defer { mm.shutdown() }
        let m = try mm.resolve(model: "m", version: "")
        let reference = try CompiledModel(contentsOfFile: Self.exampleModel.path).makeExecutor()
        // 6 requests of 1–2 rows (9 rows): the first 8 rows' requests join the burst's batch; the
        // request that would pass max_batch_size goes to the workers.
        let requests = (0..<6).map { randomRows(1 + $0 % 2, seed: UInt64(100 + $0)) }
        let expected = try requests.map { rows in try reference.run([Tensor(shape: [rows.count, 30], data: .fp32(rows.flatMap { $0 }))]) }
        let results = Mutex<[Int: [Tensor]]>([:])
        let group = DispatchGroup()
        var answeredInsideTheBurst = -1
        var flushedMidway = -1
        InlineBurst.run { flush in
            for (i, rows) in requests.enumerated() {
                let (inputs, n) = try! m.validate([("input", Tensor(shape: [rows.count, 30], data: .fp32(rows.flatMap { $0 })))])
                group.enter()
                m.infer(inputs, rows: n, deadlineNs: nil, isCancelled: { false }) { r in
                    if case .success(let out) = r { results.withLock { $0[i] = out } }
                    group.leave()
                }
                if i == 1 {
                    // Nothing computed yet; a flush computes what is deferred so far.
                    answeredInsideTheBurst = results.withLock { $0.count }
                    flush()
                    flushedMidway = results.withLock { $0.count }
                }
            }
        }
        #expect(answeredInsideTheBurst == 0, "inline requests of a burst wait for its end")
        #expect(flushedMidway == 2, "flush computes the requests deferred so far")
        #expect(group.wait(timeout: .now() + 30) == .success)
        let got = results.withLock { $0 }
        for i in 0..<requests.count { #expect(got[i] == expected[i], "request \(i)") }
        let stats = m.statistics.snapshot
        // Executions: [r0, r1] at the flush, [r2…r5] minus what passed 8 rows at the end, and the
        // workers' share: fewer than one per request.
        #expect(stats.executionCount >= 2 && stats.executionCount < UInt64(requests.count), "\(stats.executionCount) executions")
        #expect(stats.inferenceCount == UInt64(requests.reduce(0) { $0 + $1.count }))
        #expect(stats.batches.keys.allSatisfy { $0 <= 8 })

        // Outside a burst a lone inline request still answers before `infer` returns.
        let lone = randomRows(1, seed: 7)
        let (inputs, n) = try m.validate([("input", Tensor(shape: [1, 30], data: .fp32(lone[0])))])
        let answered = Mutex(false)
        m.infer(inputs, rows: n, deadlineNs: nil, isCancelled: { false }) { _ in answered.withLock { $0 = true } }
        #expect(answered.withLock { $0 })
    }

    /// The request path's `validate(inOrder:)` and the named path's `validate(ordered:)` give
    /// their tensors to one check in different forms (a prefix, slots with nil for a missing
    /// input): both must accept and reject the same tensors, with the same rows and messages.
    /// Shapes around the declared [-1, 30], batch sizes around 1...8, three datatypes, missing and
    /// extra tensors.
    @Test func inOrderValidationAgreesWithTheGeneralCheck() throws {
        try withBatchedExample { m throws in
            func tensor(_ shape: [Int], _ type: Int) -> Tensor {
                let n = shape.reduce(1, *)
                switch type {
                case 0: return Tensor(shape: shape, data: .fp32(Array(repeating: 0.5, count: n)))
                case 1: return Tensor(shape: shape, data: .fp64(Array(repeating: 0.5, count: n)))
                default: return Tensor(shape: shape, data: .int64(Array(repeating: 1, count: n)))
                }
            }
            var cases = 0, accepted = 0
            for rows in [0, 1, 2, 8, 9] {
                for shape in [[rows, 30], [rows, 29], [rows, 31], [rows], [rows, 30, 1], [rows, 1, 30]] {
                    for type in 0..<3 {
                        for given in [[tensor(shape, type)], [], [tensor(shape, type), tensor([1, 30], 0)]] {
                            cases += 1
                            let fast = Result { () throws(ServingError) in try m.validate(inOrder: given) }
                            // validate(ordered:) takes exactly one slot per input (nil: not given).
                            let slots = m.inputs.indices.map { $0 < given.count ? given[$0] : nil }
                            let general = Result { () throws(ServingError) in try m.validate(ordered: slots) }
                            switch (fast, general) {
                            case (.success(let a), .success(let b)):
                                accepted += 1
                                #expect(a.rows == b.rows && a.inputs.first == b.inputs.first, "\(shape) type \(type)")
                            case (.failure(let a), .failure(let b)):
                                #expect(a.message == b.message, "\(shape) type \(type)")
                            default:
                                Issue.record("disagree on \(given.map(\.shape)) type \(type): \(fast) vs \(general)")
                            }
                        }
                    }
                }
            }
            #expect(cases == 270 && accepted == 6, "\(accepted) of \(cases) accepted")
        }
    }

    /// A thread's bursts are one object, reused (nothing allocated per read); a nested run joins
    /// the open burst; between runs no burst is open.
    @Test func aThreadReusesItsBurstAndNestedRunsJoinIt() {
        // Held, so that distinct bursts could not share an address.
        var seen: [InlineBurst] = []
        for _ in 0..<3 {
            InlineBurst.run { _ in
                seen.append(InlineBurst.current!)
                InlineBurst.run { _ in seen.append(InlineBurst.current!) }
            }
            #expect(InlineBurst.current == nil)
        }
        #expect(seen.count == 6)
        #expect(seen.allSatisfy { $0 === seen[0] })
    }

    @Test func unloadingInsideABurstRunsWhatTheBurstHeld() throws {
        let root = try makeRepo(["m/1": "example"], configs: ["m": #"{"execution": "inline"}"#])
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = manager(root)
        try mm.loadAll()
        defer { mm.shutdown() }
        let m = try mm.resolve(model: "m", version: "")
        let answered = Mutex<Result<[Tensor], ServingError>?>(nil)
        InlineBurst.run { _ in
            let (inputs, n) = try! m.validate([("input", Tensor(shape: [1, 30], data: .fp32(randomRows(1, seed: 3)[0])))])
            m.infer(inputs, rows: n, deadlineNs: nil, isCancelled: { false }) { r in answered.withLock { $0 = r } }
            // The batcher stops on this thread while the burst holds its request: no deadlock,
            // the request is computed first.
            m.batcher.drainAndStop()
            #expect(answered.withLock { $0 } != nil)
        }
        #expect((try? answered.withLock { $0 }?.get())?.isEmpty == false, "the held request was computed")
    }
}
