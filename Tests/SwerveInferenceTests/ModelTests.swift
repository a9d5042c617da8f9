import SwerveProto
import Testing
@testable import SwerveInference

@Suite("Loading and running models")
struct ModelTests {
    static let dense = makeModel(
        nodes: [
            ONNXNode(name: "fc", opType: "Gemm", inputs: ["X", "W", "B"], outputs: ["H"], attributes: ["transB": .int(1)]),
            ONNXNode(name: "act", opType: "Relu", inputs: ["H"], outputs: ["Y"]),
        ],
        inputs: [floatInput("X", [nil, 3])], outputs: ["Y"],
        initializers: [.floats("W", dims: [2, 3], [1, 0, -1, 0.5, 0.5, 0.5]), .floats("B", dims: [2], [0.25, -1])])

    @Test("describes inputs and outputs with a dynamic batch dimension")
    func signature() throws {
        let model = try CompiledModel(onnxBytes: Self.dense.encode())
        #expect(model.inputs == [TensorInfo(name: "X", dataType: .fp32, shape: [-1, 3])])
        #expect(model.outputs == [TensorInfo(name: "Y", dataType: .fp32, shape: [-1, 2])])
        #expect(model.opsetVersion == 17)
        #expect(model.producer == "swerve-tests")
    }

    @Test("runs batches of changing size with one executor")
    func changingBatches() throws {
        let executor = try CompiledModel(onnxBytes: Self.dense.encode()).makeExecutor()
        var rng = SplitMix64(seed: 1)
        for n in [1, 7, 300, 2, 64] {
            let x = rng.floats(n * 3)
            let y = try executor.run([Tensor(shape: [n, 3], data: .fp32(x))])[0]
            let expected = (0..<n).flatMap { r -> [Float] in
                let a = x[r * 3], b = x[r * 3 + 1], c = x[r * 3 + 2]
                return [max(a - c + 0.25, 0), max(0.5 * (a + b + c) - 1, 0)]
            }
            #expect(y.shape == [n, 2])
            #expect(allClose(y.floats, expected), "batch \(n)")
        }
    }

    @Test("rejects bytes that are not a model")
    func garbage() {
        for bytes in [[UInt8](), [0xff, 0xff, 0xff, 0xff], Array("hello, not a model".utf8)] {
            #expect {
                _ = try CompiledModel(onnxBytes: bytes)
            } throws: { error in
                let e = error as! InferenceError
                return e.code == .invalidModel && e.message.contains("ONNX") || e.message.contains("empty")
            }
        }
    }

    @Test("rejects an unsupported operator, naming it, its domain and its node")
    func unsupportedOperator() {
        let model = makeModel(
            nodes: [ONNXNode(name: "conv1", opType: "Conv", inputs: ["X", "W"], outputs: ["Y"])],
            inputs: [floatInput("X", [nil, 1, 4, 4])], outputs: ["Y"],
            initializers: [.floats("W", dims: [1, 1, 1, 1], [1])])
        #expect {
            _ = try CompiledModel(onnxBytes: model.encode())
        } throws: { error in
            let e = error as! InferenceError
            return e.code == .unsupportedOperator && e.message == "unsupported operator 'Conv' (domain '') in node 'conv1'"
        }
    }

    @Test("rejects a node that refers to an unknown tensor")
    func unknownTensor() {
        let model = makeModel(
            nodes: [ONNXNode(name: "add", opType: "Add", inputs: ["X", "missing"], outputs: ["Y"])],
            inputs: [floatInput("X", [nil, 2])], outputs: ["Y"])
        #expect {
            _ = try CompiledModel(onnxBytes: model.encode())
        } throws: { error in
            let e = error as! InferenceError
            return e.code == .invalidModel && e.message.contains("'missing'") && e.message.contains("'add'")
        }
    }

    @Test("rejects bad graphs: cycles, unknown outputs, shape mismatches, missing opset")
    func badGraphs() {
        let cycle = makeModel(
            nodes: [ONNXNode(name: "a", opType: "Relu", inputs: ["B"], outputs: ["A"]),
                    ONNXNode(name: "b", opType: "Relu", inputs: ["A"], outputs: ["B"])],
            inputs: [floatInput("X", [nil])], outputs: ["A"])
        let noOutput = makeModel(nodes: [], inputs: [floatInput("X", [nil])], outputs: ["Y"])
        let mismatch = makeModel(
            nodes: [ONNXNode(name: "mm", opType: "MatMul", inputs: ["X", "W"], outputs: ["Y"])],
            inputs: [floatInput("X", [nil, 3])], outputs: ["Y"], initializers: [.floats("W", dims: [4, 1], [1, 2, 3, 4])])
        var noOpset = Self.dense
        noOpset.opsetImports = []
        var newIR = Self.dense
        newIR.irVersion = 99
        for model in [cycle, noOutput, mismatch, noOpset, newIR] {
            #expect(throws: InferenceError.self) { _ = try CompiledModel(onnxBytes: model.encode()) }
        }
    }

    @Test("rejects inputs of the wrong type or shape, naming the input")
    func badInputs() throws {
        let executor = try CompiledModel(onnxBytes: Self.dense.encode()).makeExecutor()
        let cases: [([Tensor], String)] = [
            ([Tensor(shape: [2, 3], data: .fp64([1, 2, 3, 4, 5, 6]))], "input 'X': expected FP32, got FP64"),
            ([Tensor(shape: [2, 4], data: .fp32(Array(repeating: 0, count: 8)))], "input 'X': expected shape [-1, 3], got [2, 4]"),
            ([Tensor(shape: [6], data: .fp32(Array(repeating: 0, count: 6)))], "input 'X': expected shape [-1, 3], got [6]"),
            ([], "expected 1 inputs (X), got 0"),
        ]
        for (inputs, message) in cases {
            #expect {
                _ = try executor.run(inputs)
            } throws: { error in
                let e = error as! InferenceError
                return e.code == .invalidInput && e.message == message
            }
        }
    }

    @Test("constant subgraphs are folded at load time")
    func folding() throws {
        // (W + W) is computed once at load; only the MatMul remains in the plan.
        let model = makeModel(
            nodes: [ONNXNode(name: "double", opType: "Add", inputs: ["W", "W"], outputs: ["W2"]),
                    ONNXNode(name: "mm", opType: "MatMul", inputs: ["X", "W2"], outputs: ["Y"])],
            inputs: [floatInput("X", [nil, 2])], outputs: ["Y"], initializers: [.floats("W", dims: [2, 1], [1, 2])])
        let compiled = try CompiledModel(onnxBytes: model.encode())
        #expect(compiled.plan.steps.count == 1)
        let y = try compiled.makeExecutor().run([Tensor(shape: [1, 2], data: .fp32([3, 4]))])[0]
        #expect(y == Tensor(shape: [1, 1], data: .fp32([22])))
    }

    @Test("intermediate buffers are reused once dead")
    func slotReuse() throws {
        // A chain of 6 activations needs only 2 slots besides the input.
        let names = ["X", "a", "b", "c", "d", "e", "Y"]
        let nodes = (0..<6).map { ONNXNode(name: "n\($0)", opType: "Relu", inputs: [names[$0]], outputs: [names[$0 + 1]]) }
        let compiled = try CompiledModel(onnxBytes: makeModel(nodes: nodes, inputs: [floatInput("X", [nil, 4])], outputs: ["Y"]).encode())
        #expect(compiled.plan.slotCount <= 3)
        let y = try compiled.makeExecutor().run([Tensor(shape: [1, 4], data: .fp32([-1, 2, -3, 4]))])[0]
        #expect(y.floats == [0, 2, 0, 4])
    }

    @Test("tensor raw bytes round-trip, rows and concatenation")
    func tensorBytes() throws {
        let tensors = [
            Tensor(shape: [2, 2], data: .fp32([1, -2, 3.5, 0])), Tensor(shape: [3], data: .int64([1, -1, .max])),
            Tensor(shape: [2], data: .bool([true, false])), Tensor(shape: [1, 2], data: .fp64([.pi, -0])),
            Tensor(shape: [3], data: .bytes([Array("ab".utf8), [], [0, 255]])), Tensor(shape: [2], data: .int32([7, -7])),
        ]
        for t in tensors {
            #expect(try Tensor(rawBytes: t.data.rawBytes, dataType: t.dataType, shape: t.shape) == t)
        }
        #expect(tensors[2].data.rawBytes == [1, 0])
        #expect(tensors[4].data.rawBytes == [2, 0, 0, 0, 97, 98, 0, 0, 0, 0, 2, 0, 0, 0, 0, 255])
        #expect(throws: InferenceError.self) { try Tensor(rawBytes: [1, 2, 3], dataType: .fp32, shape: [1]) }
        #expect(throws: InferenceError.self) { try Tensor(rawBytes: [9, 0, 0, 0, 1], dataType: .bytes, shape: [1]) }
        let t = Tensor(shape: [3, 2], data: .fp32([1, 2, 3, 4, 5, 6]))
        #expect(t.rows(1..<3) == Tensor(shape: [2, 2], data: .fp32([3, 4, 5, 6])))
        #expect(Tensor.concatenateRows([t.rows(0..<1), t.rows(1..<3)]) == t)
    }

    @Test("DataType maps ONNX element types")
    func dataTypes() {
        #expect(DataType(onnxElemType: 1) == .fp32)
        #expect(DataType(onnxElemType: 8) == .bytes)
        #expect(DataType(onnxElemType: 10) == nil)
        for t in DataType.allCases { #expect(DataType(onnxElemType: t.onnxElemType) == t) }
        #expect(DataType.bytes.byteSize == nil)
        #expect(DataType.fp64.byteSize == 8)
    }
}
