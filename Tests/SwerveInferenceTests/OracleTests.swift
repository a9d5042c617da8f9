import Foundation
import Testing
@testable import SwerveInference

/// Runs every fixture written by scripts/make_test_onnx.py and compares with onnxruntime.
@Suite("onnxruntime oracle")
struct OracleTests {
    static let fixtures: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static var names: [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: fixtures.path)) ?? []
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    @Test("fixtures exist") func fixturesExist() {
        #expect(Self.names.count >= 15, "run .venv/bin/python scripts/make_test_onnx.py")
    }

    @Test("outputs match onnxruntime", arguments: names)
    func fixture(name: String) throws {
        let record = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Self.fixtures.appendingPathComponent(name + ".json"))) as! [String: Any]
        let model = try CompiledModel(contentsOfFile: Self.fixtures.appendingPathComponent(record["model"] as! String).path)
        let inputs = (record["inputs"] as! [[String: Any]]).map(tensor)
        let expected = (record["outputs"] as! [[String: Any]])
        #expect(model.inputs.map(\.name) == (record["inputs"] as! [[String: Any]]).map { $0["name"] as! String })
        #expect(model.outputs.map(\.name) == expected.map { $0["name"] as! String })

        let executor = model.makeExecutor()
        let batch = inputs[0].shape[0]
        // The whole batch, then row by row (buffers shrink and grow), then the whole batch again.
        // Row-splitting only applies when every output keeps the batch as its first dimension.
        let splittable = model.outputs.allSatisfy { $0.shape.first == -1 }
        for pass in 0..<3 where pass != 1 || splittable {
            let outputs: [Tensor]
            if pass == 1 {
                let rows = try (0..<batch).map { r in try executor.run(inputs.map { $0.rows(r..<(r + 1)) }) }
                outputs = (0..<expected.count).map { o in Tensor.concatenateRows(rows.map { $0[o] }) }
            } else {
                outputs = try executor.run(inputs)
            }
            for (index, (out, want)) in zip(outputs, expected.map(tensor)).enumerated() {
                let label = "\(name) output \(model.outputs[index].name) pass \(pass)"
                #expect(out.shape == want.shape, "\(label): shape")
                #expect(out.dataType == want.dataType, "\(label): type")
                switch (out.data, want.data) {
                case (.fp32(let a), .fp32(let b)):
                    #expect(allClose(a, b), "\(label): \(firstMismatch(a, b))")
                case (.fp64(let a), .fp64(let b)):
                    #expect(allClose(a, b), "\(label)")
                default:
                    #expect(out.data == want.data, "\(label): labels differ")
                }
            }
        }
        // As the batcher runs requests: uneven parts loaded straight into the executor. The
        // answer must be the very bytes of running the whole batch at once.
        if splittable && batch >= 3 && model.inputs.allSatisfy({ $0.shape.first == -1 }) {
            let whole = try executor.run(inputs)
            let cuts = [0..<1, 1..<3, 3..<batch].filter { !$0.isEmpty }
            let parts = cuts.map { range in inputs.map { $0.rows(range) } }
            let joined = try executor.run(rowsOf: parts)
            #expect(joined == whole, "\(name): run(rowsOf:) of parts \(cuts) differs from the whole batch")
            // The batcher's form: each part gets its own rows of every output, the very bytes of
            // the whole batch's rows.
            let rows = try executor.compute(rowsOf: parts)
            #expect(rows == cuts.map(\.count))
            let split = try executor.outputs(splitting: rows)
            #expect(split.count == cuts.count)
            for (k, range) in cuts.enumerated() {
                #expect(split[k] == whole.map { $0.rows(range) }, "\(name): outputs(splitting:) part \(range) differs")
            }
            // A part of the wrong shape is refused like a wrong input to run().
            let bad = inputs.map { t in let row = t.rows(0..<1); return Tensor(shape: row.shape + [1], data: row.data) }
            #expect(throws: InferenceError.self) { try executor.run(rowsOf: [parts[0], bad]) }
        }
    }

    private func tensor(_ json: [String: Any]) -> Tensor {
        let shape = json["shape"] as! [Int]
        let data = json["data"] as! [Any]
        switch json["dtype"] as! String {
        case "FP32": return Tensor(shape: shape, data: .fp32(data.map { Float(number($0)) }))
        case "FP64": return Tensor(shape: shape, data: .fp64(data.map(number)))
        case "INT64": return Tensor(shape: shape, data: .int64(data.map { ($0 as! NSNumber).int64Value }))
        case "INT32": return Tensor(shape: shape, data: .int32(data.map { ($0 as! NSNumber).int32Value }))
        case "BOOL": return Tensor(shape: shape, data: .bool(data.map { ($0 as! NSNumber).boolValue }))
        case "BYTES": return Tensor(shape: shape, data: .bytes(data.map { Array(($0 as! String).utf8) }))
        case let other: fatalError("fixture dtype \(other)")
        }
    }

    /// A JSON number, or the strings "NaN", "Infinity" and "-Infinity" the fixture script writes
    /// for the values JSON has no literal for.
    private func number(_ value: Any) -> Double {
        if let text = value as? String, text == "NaN" { return .nan }
        if let text = value as? String, text == "Infinity" { return .infinity }
        if let text = value as? String, text == "-Infinity" { return -.infinity }
        return (value as! NSNumber).doubleValue
    }
}
