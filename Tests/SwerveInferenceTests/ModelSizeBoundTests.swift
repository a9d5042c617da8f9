import SwerveProto
import Testing
@testable import SwerveInference

/// Model files whose few bytes declare huge tensors, as FuzzONNX (Fuzz/) found them: each
/// trapped the process or had the compile or the warm-up allocate gigabytes before this bound.
/// Each must now be refused as an invalid model, before anything of that size is allocated.
@Suite("Model size bounds")
struct ModelSizeBoundTests {
    static func expectRefused(_ model: ONNXModel, mentioning: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let bytes = model.encode()
        #expect(bytes.count < 4096, "the attack is a small file", sourceLocation: sourceLocation)
        #expect(sourceLocation: sourceLocation) {
            _ = try CompiledModel(onnxBytes: bytes)
        } throws: { error in
            guard let e = error as? InferenceError else { return false }
            return e.code == .invalidModel && e.message.contains(mentioning)
        }
    }

    @Test func elementCountsAreBoundedWithoutOverflow() {
        #expect(GraphCompiler.boundedElementCount([.fixed(1 << 14), .fixed(1 << 14)]) == GraphCompiler.maxElements)
        #expect(GraphCompiler.boundedElementCount([.batch(1), .fixed(30)]) == 30, "per batch row")
        #expect(GraphCompiler.boundedElementCount([]) == 1, "a scalar")
        #expect(GraphCompiler.boundedElementCount([.fixed(1 << 14), .fixed(1 << 14), .fixed(2)]) == nil)
        #expect(GraphCompiler.boundedElementCount([.fixed(1 << 40), .fixed(1 << 40)]) == nil, "overflows Int")
        #expect(GraphCompiler.boundedElementCount([.fixed(-1)]) == nil)
        #expect((SymSize(coefficient: 1 << 40, power: 0) * SymSize(coefficient: 1 << 40, power: 1)).coefficient == .max, "saturates")
    }

    /// dims [2^40, 2^40] with no data: the element count overflowed `Int` and trapped.
    @Test func initializerWhoseShapeOverflows() {
        let w = ONNXTensor(name: "W", dims: [1 << 40, 1 << 40], dataType: ONNXTensor.DataTypeCode.float)
        Self.expectRefused(
            makeModel(nodes: [ONNXNode(name: "add", opType: "Add", inputs: ["X", "W"], outputs: ["Y"])],
                      inputs: [floatInput("X", [nil, 1])], outputs: ["Y"], initializers: [w]),
            mentioning: "initializer 'W'")
    }

    /// A fixed input of [65536, 65536]: compiled, then the warm-up row of zeros took 16 GiB.
    @Test func graphInputWithAHugeFixedShape() {
        Self.expectRefused(
            makeModel(nodes: [ONNXNode(name: "id", opType: "Identity", inputs: ["X"], outputs: ["Y"])],
                      inputs: [floatInput("X", [1 << 16, 1 << 16])], outputs: ["Y"]),
            mentioning: "graph input 'X'")
    }

    /// Reshape to a constant shape whose product overflows: the shape arithmetic trapped.
    @Test func reshapeToAShapeThatOverflows() {
        Self.expectRefused(
            makeModel(nodes: [ONNXNode(name: "r", opType: "Reshape", inputs: ["X", "S"], outputs: ["Y"])],
                      inputs: [floatInput("X", [nil, 4])], outputs: ["Y"],
                      initializers: [.int64s("S", dims: [3], [-1, 1 << 40, 1 << 40])]),
            mentioning: "cannot reshape")
    }

    /// Two constants of 32,768 elements broadcast by Add into 2^30: constant folding allocated
    /// 4 GiB (with 10^5 each, 40 GB) at compile time.
    @Test func broadcastOfTwoConstants() {
        let n = 1 << 15
        let a = ONNXTensor(name: "A", dims: [Int64(n), 1], dataType: ONNXTensor.DataTypeCode.float, rawData: [UInt8](repeating: 0, count: 4 * n))
        let b = ONNXTensor(name: "B", dims: [1, Int64(n)], dataType: ONNXTensor.DataTypeCode.float, rawData: [UInt8](repeating: 0, count: 4 * n))
        let model = makeModel(nodes: [ONNXNode(name: "outer", opType: "Add", inputs: ["A", "B"], outputs: ["Y"])],
                              inputs: [], outputs: ["Y"], initializers: [a, b])
        #expect {
            _ = try CompiledModel(onnxBytes: model.encode())
        } throws: { error in
            guard let e = error as? InferenceError else { return false }
            return e.code == .invalidModel && e.message.contains("node 'outer'")
        }
    }

    /// Concat(c, c) chained: each node doubles a folded constant, 1 element of file becoming
    /// 2^k. Folding is refused once it would compute more than `maxFoldedElements` in all.
    @Test func foldingThatDoublesAConstantAgainAndAgain() {
        var nodes: [ONNXNode] = []
        var previous = "C"
        for i in 0..<28 {
            nodes.append(ONNXNode(name: "double\(i)", opType: "Concat", inputs: [previous, previous], outputs: ["C\(i)"], attributes: ["axis": .int(0)]))
            previous = "C\(i)"
        }
        nodes.append(ONNXNode(name: "add", opType: "Add", inputs: ["X", previous], outputs: ["Y"]))
        Self.expectRefused(
            makeModel(nodes: nodes, inputs: [floatInput("X", [nil, 1])], outputs: ["Y"], initializers: [.floats("C", dims: [1], [1])]),
            mentioning: "constant folding")
    }

    /// What a real model folds (a few shape values, a small table) stays well inside the bounds.
    @Test func smallFoldsStillCompile() throws {
        let nodes = (0..<8).map { i in
            ONNXNode(name: "double\(i)", opType: "Concat", inputs: [i == 0 ? "C" : "C\(i - 1)", i == 0 ? "C" : "C\(i - 1)"],
                     outputs: ["C\(i)"], attributes: ["axis": .int(0)])
        } + [ONNXNode(name: "add", opType: "Add", inputs: ["X", "C7"], outputs: ["Y"])]
        let model = try CompiledModel(onnxBytes: makeModel(
            nodes: nodes, inputs: [floatInput("X", [nil, 256])], outputs: ["Y"], initializers: [.floats("C", dims: [1], [1])]).encode())
        let y = try model.makeExecutor().run([Tensor(shape: [1, 256], data: .fp32(Array(repeating: 1, count: 256)))])[0]
        #expect(y.data == .fp32(Array(repeating: 2, count: 256)))
    }
}

/// Other model files FuzzONNX found trapping the compiler.
@Suite("Malformed graphs")
struct MalformedGraphTests {
    /// A Softmax whose output list is empty (its output name moved into doc_string by one bit):
    /// the builder read `outputs[0]` out of range.
    @Test func nodeWithoutOutputs() {
        let model = makeModel(nodes: [ONNXNode(name: "softmax", opType: "Softmax", inputs: ["X"], outputs: [])],
                              inputs: [floatInput("X", [nil, 3])], outputs: ["X"])
        #expect {
            _ = try CompiledModel(onnxBytes: model.encode())
        } throws: { error in
            guard let e = error as? InferenceError else { return false }
            return e.code == .invalidModel && e.message.contains("'softmax'") && e.message.contains("no outputs")
        }
    }
}
