import SwerveProto
import SwerveStatus
import SwerveTesting
import Testing

/// ModelInfer through the real transport, answers checked against onnxruntime's.
@Suite("ModelInfer in process")
struct ModelInferTests {
    @Test func everyFixtureIsFound() {
        // A moved fixtures directory would otherwise leave the oracle test with no cases at all.
        #expect(TestModels.referenceFixtures.count >= 15, "\(PackagePaths.inferenceFixtures.path)")
    }

    /// Each fixture served as model "m": raw and typed requests give onnxruntime's outputs, in the
    /// model's output order, under the model's name and version.
    @Test(arguments: TestModels.referenceFixtures)
    func outputsMatchOnnxruntime(fixture: String) async throws {
        let reference = try ReferenceCase(fixture)
        try await withInProcessServer([.fixture(fixture, as: "m")]) { server in
            for raw in [true, false] {
                let response = try await server.client.modelInfer(inferRequest("m", reference.inputs, raw: raw))
                #expect(response.modelName == "m")
                #expect(response.modelVersion == "1")
                #expect(response.rawOutputContents.isEmpty == !raw, "raw requests get raw outputs, typed get typed")
                let got = try outputs(of: response)
                #expect(got.map(\.name) == reference.outputs.map(\.name), "raw=\(raw)")
                for (g, want) in zip(got, reference.outputs) {
                    #expect(mismatch(g, want) == nil, "\(fixture) raw=\(raw): \(mismatch(g, want) ?? "")")
                }
            }
        }
    }

    /// Requested outputs: only those, in the order asked; an explicit version and an id come back.
    @Test func requestedOutputsInTheOrderAskedWithVersionAndID() async throws {
        let reference = try ReferenceCase("lr_multiclass")
        try await withInProcessServer([.fixture("lr_multiclass", as: "iris")]) { server in
            let probabilities = try #require(reference.outputs.first { $0.name == "probabilities" })
            let label = try #require(reference.outputs.first { $0.name == "label" })
            for raw in [true, false] {
                let one = try await server.client.modelInfer(
                    inferRequest("iris", version: "1", reference.inputs, raw: raw, outputs: ["probabilities"], id: "req-7"))
                #expect(one.id == "req-7")
                #expect(one.modelVersion == "1")
                let got = try outputs(of: one)
                #expect(got.map(\.name) == ["probabilities"])
                #expect(got.first.flatMap { mismatch($0, probabilities) } == nil)

                let both = try outputs(of: try await server.client.modelInfer(
                    inferRequest("iris", reference.inputs, raw: raw, outputs: ["probabilities", "label"])))
                #expect(both.map(\.name) == ["probabilities", "label"])
                #expect(both.count == 2 && mismatch(both[0], probabilities) == nil && mismatch(both[1], label) == nil)
            }
        }
    }

    /// Inputs in another order than the model declares them are matched by name.
    @Test func inputsAreMatchedByName() async throws {
        let reference = try ReferenceCase("ct_onehot_string")
        try await withInProcessServer([.fixture("ct_onehot_string", as: "ct")]) { server in
            for raw in [true, false] {
                let got = try outputs(of: try await server.client.modelInfer(inferRequest("ct", reference.inputs.reversed(), raw: raw)))
                #expect(zip(got, reference.outputs).allSatisfy { mismatch($0, $1) == nil }, "raw=\(raw)")
            }
        }
    }

    /// INT8, INT16 and UINT8 at their extremes survive the trip in and out, raw (one or two bytes
    /// per element) and typed (widened into int_contents / uint_contents).
    @Test func narrowIntegersRoundTrip() async throws {
        let inputs: [WireTensor] = [
            .int8("a", [2, 2], [.min, -1, 0, .max]),
            .int16("b", [2, 2], [.min, -1, 0x1234, .max]),
            .uint8("c", [2, 2], [0, 1, 128, .max]),
        ]
        try await withInProcessServer([TestModels.smallInts]) { server in
            for raw in [true, false] {
                let response = try await server.client.modelInfer(inferRequest("small_ints", inputs, raw: raw))
                let got = try outputs(of: response)
                #expect(got.map(\.name) == ["a_out", "b_out", "c_out"])
                #expect(got.map(\.values) == inputs.map(\.values), "raw=\(raw)")
                #expect(got.map(\.datatype) == ["INT8", "INT16", "UINT8"])
                #expect(got.allSatisfy { $0.shape == [2, 2] })
                if raw { #expect(response.rawOutputContents.map(\.count) == [4, 8, 4], "one byte per INT8/UINT8, two per INT16") }
            }
        }
    }

    /// Concurrent calls on one connection each get their own answer.
    @Test func concurrentCallsGetTheirOwnAnswers() async throws {
        try await withInProcessServer([.fixture("linear_regression", as: "lin")]) { server in
            let reference = try ReferenceCase("linear_regression")
            guard case .fp32(let x) = reference.inputs[0].values, case .fp32(let y) = reference.outputs[0].values else {
                Issue.record("linear_regression is FP32 in, FP32 out")
                return
            }
            let width = x.count / 12
            try await withThrowingTaskGroup(of: Void.self) { group in
                for call in 0..<48 {
                    let row = call % 12
                    group.addTask {
                        let input = WireTensor.fp32("X", [1, Int64(width)], Array(x[row * width..<(row + 1) * width]))
                        let got = try outputs(of: try await server.client.modelInfer(inferRequest("lin", [input], raw: call % 2 == 0)))
                        let want = WireTensor.fp32("variable", [1, 1], [y[row]])
                        #expect(got.count == 1 && mismatch(got[0], want) == nil, "call \(call) row \(row)")
                    }
                }
                try await group.waitForAll()
            }
        }
    }
}
