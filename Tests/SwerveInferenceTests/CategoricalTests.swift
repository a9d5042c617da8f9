import SwerveProto
import Testing
@testable import SwerveInference

/// The operators categorical models need, each against a naive reference or a hand-worked table.
@Suite("Categorical and indexing operators")
struct CategoricalTests {
    typealias Code = ONNXTensor.DataTypeCode

    // MARK: Gather

    /// numpy.take(data, indices, axis) with negative indices counting from the end.
    func referenceGather<T>(_ data: [T], shape: [Int], indices: [Int], indexShape: [Int], axis: Int) -> (values: [T], shape: [Int]) {
        let outer = shape[..<axis].reduce(1, *), size = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
        var out: [T] = []
        for o in 0..<outer {
            for i in indices {
                let row = i < 0 ? i + size : i
                out += data[((o * size + row) * inner)..<((o * size + row + 1) * inner)]
            }
        }
        return (out, Array(shape[..<axis]) + indexShape + Array(shape[(axis + 1)...]))
    }

    @Test("Gather: every axis, negative indices, INT64 and INT32 indices, constant and dynamic data")
    func gather() throws {
        var rng = SplitMix64(seed: 5)
        let cases: [(shape: [Int], indexShape: [Int])] = [([4, 3], []), ([4, 3], [2]), ([2, 5, 3], [2, 2]), ([6], [3, 1])]
        for (shape, indexShape) in cases {
            let data = rng.floats(shape.reduce(1, *))
            for axis in -shape.count..<shape.count {
                let a = axis < 0 ? axis + shape.count : axis
                let size = shape[a]
                let indices = (0..<indexShape.reduce(1, *)).map { _ in Int.random(in: -size..<size, using: &rng) }
                let expected = referenceGather(data, shape: shape, indices: indices, indexShape: indexShape, axis: a)
                for int32 in [false, true] {
                    for dataConstant in [false, true] {
                        var inits: [ONNXTensor] = []
                        var inputs: [ONNXValueInfo] = [.tensor("I", elemType: int32 ? Code.int32 : Code.int64,
                                                               shape: indexShape.map { Int64($0) })]
                        var feeds = [int32 ? Tensor(shape: indexShape, data: .int32(indices.map(Int32.init)))
                                           : Tensor(shape: indexShape, data: .int64(indices.map(Int64.init)))]
                        if dataConstant {
                            inits.append(.floats("D", dims: shape.map(Int64.init), data))
                        } else {
                            inputs.insert(floatInput("D", shape.map { Int64($0) }), at: 0)
                            feeds.insert(Tensor(shape: shape, data: .fp32(data)), at: 0)
                        }
                        let model = makeModel(
                            nodes: [ONNXNode(name: "g", opType: "Gather", inputs: ["D", "I"], outputs: ["Y"],
                                             attributes: ["axis": .int(Int64(axis))])],
                            inputs: inputs, outputs: ["Y"], initializers: inits)
                        let y = try run(model, feeds)[0]
                        #expect(y.shape == expected.shape, "\(shape) axis \(axis) indices \(indexShape)")
                        #expect(y.floats == expected.values, "\(shape) axis \(axis) indices \(indices)")
                    }
                }
            }
        }
    }

    @Test("Gather: an embedding lookup keeps the batch dimension symbolic; strings gather too")
    func gatherEmbeddingAndStrings() throws {
        let table: [Float] = (0..<12).map(Float.init)  // 4 rows × 3
        let model = makeModel(
            nodes: [ONNXNode(name: "emb", opType: "Gather", inputs: ["W", "ids"], outputs: ["E"])],
            inputs: [.tensor("ids", elemType: Code.int64, shape: [nil, 2])], outputs: ["E"],
            initializers: [.floats("W", dims: [4, 3], table)])
        let compiled = try CompiledModel(onnxBytes: model.encode())
        #expect(compiled.inputs == [TensorInfo(name: "ids", dataType: .int64, shape: [-1, 2])])
        #expect(compiled.outputs == [TensorInfo(name: "E", dataType: .fp32, shape: [-1, 2, 3])])
        let executor = compiled.makeExecutor()
        for ids in [[Int64(0), 3], [1, -1, 2, 2, -4, 0]] {
            let y = try executor.run([Tensor(shape: [ids.count / 2, 2], data: .int64(ids))])[0]
            let expected = ids.flatMap { i -> [Float] in let r = Int(i < 0 ? i + 4 : i); return Array(table[(r * 3)..<(r * 3 + 3)]) }
            #expect(y.shape == [ids.count / 2, 2, 3])
            #expect(y.floats == expected)
        }

        let words = makeModel(
            nodes: [ONNXNode(name: "pick", opType: "Gather", inputs: ["S", "I"], outputs: ["Y"], attributes: ["axis": .int(1)])],
            inputs: [.tensor("S", elemType: Code.string, shape: [nil, 3])], outputs: ["Y"],
            initializers: [.int64s("I", dims: [2], [2, -3])])
        let y = try run(words, [Tensor(shape: [2, 3], data: .bytes(["a", "b", "c", "d", "e", "f"].map { Array($0.utf8) }))])[0]
        #expect(y == Tensor(shape: [2, 2], data: .bytes(["c", "a", "f", "d"].map { Array($0.utf8) })))
    }

    @Test("Gather: out-of-range indices fail at load when constant, per request when not")
    func gatherOutOfRange() throws {
        let constant = makeModel(
            nodes: [ONNXNode(name: "g", opType: "Gather", inputs: ["X", "I"], outputs: ["Y"], attributes: ["axis": .int(1)])],
            inputs: [floatInput("X", [nil, 3])], outputs: ["Y"], initializers: [.int64s("I", dims: [1], [-4])])
        #expect {
            _ = try CompiledModel(onnxBytes: constant.encode())
        } throws: { error in
            let e = error as! InferenceError
            return e.code == .invalidModel && e.message.contains("'g'") && e.message.contains("-4")
        }
        let dynamic = makeModel(
            nodes: [ONNXNode(name: "emb", opType: "Gather", inputs: ["W", "ids"], outputs: ["E"])],
            inputs: [.tensor("ids", elemType: Code.int64, shape: [nil])], outputs: ["E"],
            initializers: [.floats("W", dims: [3, 2], [1, 2, 3, 4, 5, 6])])
        for bad: Int64 in [3, -4, 1_000_000] {
            #expect {
                _ = try run(dynamic, [Tensor(shape: [2], data: .int64([0, bad]))])
            } throws: { error in
                let e = error as! InferenceError
                return e.code == .invalidInput && e.message.contains("'emb'") && e.message.contains("\(bad)")
            }
        }
    }

    // MARK: Where and comparisons

    @Test("Where broadcasts condition, X and Y like numpy, for numbers and strings")
    func whereBroadcasting() throws {
        var rng = SplitMix64(seed: 11)
        let cases: [([Int], [Int], [Int])] = [
            ([4, 3], [4, 3], [4, 3]), ([4, 1], [4, 3], [3]), ([3], [4, 1], []), ([2, 1, 3], [1, 4, 1], [4, 3]),
            ([], [4, 3], [4, 3]), ([4, 3], [], []),
        ]
        for (sc, sx, sy) in cases {
            let cond = (0..<sc.reduce(1, *)).map { _ in Bool.random(using: &rng) }
            let x = rng.floats(sx.reduce(1, *)), y = rng.floats(sy.reduce(1, *))
            let rank = max(sc.count, sx.count, sy.count)
            let pad = { (s: [Int]) in [Int](repeating: 1, count: rank - s.count) + s }
            let shape = (0..<rank).map { max(pad(sc)[$0], pad(sx)[$0], pad(sy)[$0]) }
            let expected = (0..<shape.reduce(1, *)).map { o in
                cond[broadcastIndex(o, out: shape, operand: sc)]
                    ? x[broadcastIndex(o, out: shape, operand: sx)] : y[broadcastIndex(o, out: shape, operand: sy)]
            }
            let model = makeModel(
                nodes: [ONNXNode(name: "w", opType: "Where", inputs: ["C", "X", "Y"], outputs: ["Z"])],
                inputs: [.tensor("C", elemType: Code.bool, shape: sc.map { Int64($0) }),
                         floatInput("X", sx.map { Int64($0) }), floatInput("Y", sy.map { Int64($0) })],
                outputs: ["Z"])
            let z = try run(model, [Tensor(shape: sc, data: .bool(cond)), Tensor(shape: sx, data: .fp32(x)),
                                    Tensor(shape: sy, data: .fp32(y))])[0]
            #expect(z.shape == shape, "\(sc) \(sx) \(sy)")
            #expect(z.floats == expected, "\(sc) \(sx) \(sy)")
        }

        let strings = makeModel(
            nodes: [ONNXNode(name: "w", opType: "Where", inputs: ["C", "X", "Y"], outputs: ["Z"])],
            inputs: [.tensor("C", elemType: Code.bool, shape: [nil, 1]), .tensor("X", elemType: Code.string, shape: [nil, 2])],
            outputs: ["Z"],
            initializers: [ONNXTensor(name: "Y", dims: [], dataType: Code.string, stringData: [Array("?".utf8)])])
        let z = try run(strings, [Tensor(shape: [2, 1], data: .bool([true, false])),
                                  Tensor(shape: [2, 2], data: .bytes(["a", "b", "c", "d"].map { Array($0.utf8) }))])[0]
        #expect(z == Tensor(shape: [2, 2], data: .bytes(["a", "b", "?", "?"].map { Array($0.utf8) })))
    }

    @Test("Equal, Less, LessOrEqual, Greater, GreaterOrEqual broadcast; NaN compares false; strings compare equal")
    func comparisons() throws {
        let a: [Float] = [1, 2, .nan, 4, -0.0, 3], b: [Float] = [2, .nan, 0]
        let predicates: [(String, (Float, Float) -> Bool)] = [
            ("Equal", { $0 == $1 }), ("Less", { $0 < $1 }), ("LessOrEqual", { $0 <= $1 }),
            ("Greater", { $0 > $1 }), ("GreaterOrEqual", { $0 >= $1 }),
        ]
        for (op, holds) in predicates {
            let model = makeModel(
                nodes: [ONNXNode(name: "cmp", opType: op, inputs: ["A", "B"], outputs: ["Y"])],
                inputs: [floatInput("A", [nil, 3]), floatInput("B", [3])], outputs: ["Y"])
            let y = try run(model, [Tensor(shape: [2, 3], data: .fp32(a)), Tensor(shape: [3], data: .fp32(b))])[0]
            #expect(y == Tensor(shape: [2, 3], data: .bool((0..<6).map { holds(a[$0], b[$0 % 3]) })), "\(op)")
        }
        let ints = makeModel(
            nodes: [ONNXNode(name: "eq", opType: "Equal", inputs: ["A", "B"], outputs: ["Y"])],
            inputs: [.tensor("A", elemType: Code.int64, shape: [nil])], outputs: ["Y"],
            initializers: [.int64s("B", dims: [], [-1])])
        #expect(try run(ints, [Tensor(shape: [3], data: .int64([-1, 0, -1]))])[0] == Tensor(shape: [3], data: .bool([true, false, true])))
        let strings = makeModel(
            nodes: [ONNXNode(name: "eq", opType: "Equal", inputs: ["A", "B"], outputs: ["Y"])],
            inputs: [.tensor("A", elemType: Code.string, shape: [nil])], outputs: ["Y"],
            initializers: [ONNXTensor(name: "B", dims: [1], dataType: Code.string, stringData: [Array("b".utf8)])],
            opset: 19)
        let y = try run(strings, [Tensor(shape: [3], data: .bytes(["b", "B", ""].map { Array($0.utf8) }))])[0]
        #expect(y == Tensor(shape: [3], data: .bool([true, false, false])))
    }

    // MARK: Unsqueeze / Squeeze

    @Test("Unsqueeze and Squeeze: attribute axes (opset 11) and input axes (opset 13) agree")
    func squeezeForms() throws {
        let x = Tensor(shape: [2, 3], data: .fp32([1, 2, 3, 4, 5, 6]))
        for (axes, shape) in [([0], [1, 2, 3]), ([-1], [2, 3, 1]), ([1, -1], [2, 1, 3, 1]), ([3, 0], [1, 2, 3, 1])] as [([Int64], [Int])] {
            var results: [Tensor] = []
            for opset: Int64 in [11, 13] {
                let legacy = opset < 13
                let unsqueeze = ONNXNode(
                    name: "u", opType: "Unsqueeze", inputs: legacy ? ["X"] : ["X", "axes"], outputs: ["U"],
                    attributes: legacy ? ["axes": .ints(axes)] : [:])
                let squeeze = ONNXNode(
                    name: "s", opType: "Squeeze", inputs: legacy ? ["U"] : ["U", "axes"], outputs: ["S"],
                    attributes: legacy ? ["axes": .ints(axes)] : [:])
                let model = makeModel(
                    nodes: [unsqueeze, squeeze], inputs: [floatInput("X", [nil, 3])], outputs: ["U", "S"],
                    initializers: legacy ? [] : [.int64s("axes", dims: [Int64(axes.count)], axes)], opset: opset)
                let compiled = try CompiledModel(onnxBytes: model.encode())
                #expect(compiled.outputs[0].shape == shape.map { $0 == 2 ? -1 : $0 }, "axes \(axes) opset \(opset)")
                let out = try compiled.makeExecutor().run([x])
                #expect(out[0].shape == shape, "axes \(axes) opset \(opset)")
                #expect(out[1] == x, "axes \(axes) opset \(opset)")
                results.append(out[0])
            }
            #expect(results[0] == results[1])
        }
    }

    @Test("Squeeze: no axes drops fixed 1s; refuses to squeeze the batch dimension")
    func squeezeBatch() throws {
        let all = makeModel(
            nodes: [ONNXNode(name: "s", opType: "Squeeze", inputs: ["X"], outputs: ["Y"])],
            inputs: [floatInput("X", [1, 3, 1])], outputs: ["Y"])
        #expect(try run(all, [Tensor(shape: [1, 3, 1], data: .fp32([1, 2, 3]))])[0].shape == [3])
        for (inputs, attributes) in [(["X"], [:]), (["X", "zero"], [:])] as [([String], [String: ONNXAttribute])] {
            let model = makeModel(
                nodes: [ONNXNode(name: "s", opType: "Squeeze", inputs: inputs, outputs: ["Y"], attributes: attributes)],
                inputs: [floatInput("X", [nil, 1])], outputs: ["Y"], initializers: [.int64s("zero", dims: [1], [0])])
            #expect {
                _ = try CompiledModel(onnxBytes: model.encode())
            } throws: { error in
                let e = error as! InferenceError
                return e.code == .unsupportedOperator && e.message.contains("'s'") && e.message.contains("batch")
            }
        }
        let notOne = makeModel(
            nodes: [ONNXNode(name: "s", opType: "Squeeze", inputs: ["X", "one"], outputs: ["Y"])],
            inputs: [floatInput("X", [nil, 2])], outputs: ["Y"], initializers: [.int64s("one", dims: [1], [1])])
        #expect(throws: InferenceError.self) { _ = try CompiledModel(onnxBytes: notOne.encode()) }
    }

    @Test("Shape chains give Reshape a symbolic target: x.view(x.size(0), -1) as torch.onnx emits it")
    func shapeChain() throws {
        let nodes = [
            ONNXNode(name: "shape", opType: "Shape", inputs: ["X"], outputs: ["S"]),
            ONNXNode(name: "tail", opType: "Shape", inputs: ["X"], outputs: ["T"], attributes: ["start": .int(-2)]),
            ONNXNode(name: "size0", opType: "Gather", inputs: ["S", "zero"], outputs: ["N"], attributes: ["axis": .int(0)]),
            ONNXNode(name: "unsq", opType: "Unsqueeze", inputs: ["N", "axes0"], outputs: ["N1"]),
            ONNXNode(name: "target", opType: "Concat", inputs: ["N1", "minus1"], outputs: ["target_shape"],
                     attributes: ["axis": .int(0)]),
            ONNXNode(name: "view", opType: "Reshape", inputs: ["X", "target_shape"], outputs: ["Y"]),
        ]
        let model = makeModel(
            nodes: nodes, inputs: [floatInput("X", [nil, 2, 3])], outputs: ["Y", "S", "T"],
            initializers: [.int64s("zero", dims: [], [0]), .int64s("axes0", dims: [1], [0]), .int64s("minus1", dims: [1], [-1])],
            opset: 15)
        let compiled = try CompiledModel(onnxBytes: model.encode())
        #expect(compiled.outputs.map(\.shape) == [[-1, 6], [3], [2]])
        let executor = compiled.makeExecutor()
        for n in [1, 4] {
            let x = Tensor(shape: [n, 2, 3], data: .fp32((0..<(n * 6)).map(Float.init)))
            let out = try executor.run([x])
            #expect(out[0] == Tensor(shape: [n, 6], data: x.data))
            #expect(out[1] == Tensor(shape: [3], data: .int64([Int64(n), 2, 3])))
            #expect(out[2] == Tensor(shape: [2], data: .int64([2, 3])))
        }
        // Batched requests cannot share outputs without a batch dimension: the batcher's split
        // refuses them, even when a length happens to equal the batch's rows (S has 3 elements
        // and the batch below has 3 rows).
        let parts = [1, 2].map { n in [Tensor(shape: [n, 2, 3], data: .fp32([Float](repeating: 1, count: n * 6)))] }
        let rows = try executor.compute(rowsOf: parts)
        #expect(rows == [1, 2])
        #expect(throws: InferenceError.self) { _ = try executor.outputs(splitting: rows) }
        let one = try executor.outputs(splitting: try executor.compute(rowsOf: [parts[1]]))
        #expect(one == [try executor.run(parts[1])])
    }

    // MARK: OneHotEncoder

    @Test("OneHotEncoder: strings, integers and truncated floats; unknown categories give zero rows")
    func oneHotEncoder() throws {
        let strings = makeModel(
            nodes: [ONNXNode(name: "ohe", opType: "OneHotEncoder", domain: "ai.onnx.ml", inputs: ["X"], outputs: ["Y"],
                             attributes: ["cats_strings": .strings(["a", "b", "c"]), "zeros": .int(1)])],
            inputs: [.tensor("X", elemType: Code.string, shape: [nil, 2])], outputs: ["Y"])
        let y = try run(strings, [Tensor(shape: [2, 2], data: .bytes(["c", "zzz", "a", "b"].map { Array($0.utf8) }))])[0]
        #expect(y.shape == [2, 2, 3])
        #expect(y.floats == [0, 0, 1, /* unknown */ 0, 0, 0, 1, 0, 0, 0, 1, 0])

        for (type, input) in [
            (Code.int64, Tensor(shape: [4], data: .int64([5, -1, 7, 2]))),
            (Code.float, Tensor(shape: [4], data: .fp32([5.9, -1.5, 7.0, 2.2]))),
            (Code.double, Tensor(shape: [4], data: .fp64([5.5, -1.99, 7.01, 2]))),
        ] {
            let model = makeModel(
                nodes: [ONNXNode(name: "ohe", opType: "OneHotEncoder", domain: "ai.onnx.ml", inputs: ["X"], outputs: ["Y"],
                                 attributes: ["cats_int64s": .ints([2, 5, 7, 5])])],
                inputs: [.tensor("X", elemType: type, shape: [nil])], outputs: ["Y"])
            let y = try run(model, [input])[0]
            // 5 appears twice in the categories: the later position wins, as in onnxruntime.
            // -1.5 and -1.99 truncate to -1, which is unknown: an all-zero row.
            #expect(y.shape == [4, 4], "\(type)")
            #expect(y.floats == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0], "\(type)")
        }
    }

    @Test("OneHotEncoder with zeros = 0 fails the request on an unknown category, naming it")
    func oneHotEncoderStrict() throws {
        let model = makeModel(
            nodes: [ONNXNode(name: "ohe", opType: "OneHotEncoder", domain: "ai.onnx.ml", inputs: ["X"], outputs: ["Y"],
                             attributes: ["cats_strings": .strings(["a", "b"]), "zeros": .int(0)])],
            inputs: [.tensor("X", elemType: Code.string, shape: [nil])], outputs: ["Y"])
        let executor = try CompiledModel(onnxBytes: model.encode()).makeExecutor()
        #expect(try executor.run([Tensor(shape: [2], data: .bytes([Array("b".utf8), Array("a".utf8)]))])[0].floats == [0, 1, 1, 0])
        #expect {
            _ = try executor.run([Tensor(shape: [2], data: .bytes([Array("a".utf8), Array("nope".utf8)]))])
        } throws: { error in
            let e = error as! InferenceError
            return e.code == .invalidInput && e.message.contains("'nope'") && e.message.contains("'ohe'")
        }
    }

    // MARK: LabelEncoder, CategoryMapper, Binarizer

    func encode(_ attributes: [String: ONNXAttribute], input: ONNXValueInfo, mlOpset: Int64, op: String = "LabelEncoder",
                _ x: Tensor) throws -> Tensor {
        let model = makeModel(
            nodes: [ONNXNode(name: "enc", opType: op, domain: "ai.onnx.ml", inputs: ["X"], outputs: ["Y"], attributes: attributes)],
            inputs: [input], outputs: ["Y"], mlOpset: mlOpset)
        return try run(model, [x])[0]
    }

    func bytes(_ s: [String]) -> TensorData { .bytes(s.map { Array($0.utf8) }) }

    @Test("LabelEncoder: version 1 classes, version 2 key/value pairs, version 4 tensors and NaN keys")
    func labelEncoder() throws {
        let strings = ONNXValueInfo.tensor("X", elemType: Code.string, shape: [nil])
        let ints = ONNXValueInfo.tensor("X", elemType: Code.int64, shape: [nil])
        let floats = floatInput("X", [nil])

        // Version 1: the last duplicate class wins for string → index.
        let v1 = ["classes_strings": ONNXAttribute.strings(["x", "y", "x"]), "default_int64": .int(-9), "default_string": .string("?")]
        #expect(try encode(v1, input: strings, mlOpset: 1, Tensor(shape: [3], data: bytes(["x", "y", "w"]))).data == .int64([2, 1, -9]))
        #expect(try encode(v1, input: ints, mlOpset: 1, Tensor(shape: [3], data: .int64([0, 2, 3]))).data == bytes(["x", "x", "?"]))

        // Version 2: the first duplicate key wins; defaults are -1, "_Unused" and -0.0.
        let s2i = ["keys_strings": ONNXAttribute.strings(["a", "b", "a"]), "values_int64s": .ints([1, 2, 3])]
        #expect(try encode(s2i, input: strings, mlOpset: 2, Tensor(shape: [3], data: bytes(["a", "b", "c"]))).data == .int64([1, 2, -1]))
        let i2s = ["keys_int64s": ONNXAttribute.ints([4, 5]), "values_strings": .strings(["four", "five"])]
        #expect(try encode(i2s, input: ints, mlOpset: 2, Tensor(shape: [2], data: .int64([5, 6]))).data == bytes(["five", "_Unused"]))
        let f2f = ["keys_floats": ONNXAttribute.floats([0.5, .nan]), "values_floats": .floats([5, 7]), "default_float": .float(-2)]
        #expect(try encode(f2f, input: floats, mlOpset: 2, Tensor(shape: [3], data: .fp32([0.5, .nan, 1]))).data == .fp32([5, -2, -2]))

        // Version 4: tensor attributes; a NaN key now matches NaN inputs.
        let v4: [String: ONNXAttribute] = [
            "keys_tensor": .tensor(.floats("k", dims: [2], [0.5, .nan])),
            "values_tensor": .tensor(.int64s("v", dims: [2], [10, 20])),
            "default_tensor": .tensor(.int64s("d", dims: [1], [-5])),
        ]
        #expect(try encode(v4, input: floats, mlOpset: 4, Tensor(shape: [3], data: .fp32([.nan, 0.5, 2]))).data == .int64([20, 10, -5]))

        // Keys that do not match the input type are a broken model.
        #expect(throws: InferenceError.self) {
            _ = try encode(i2s, input: strings, mlOpset: 2, Tensor(shape: [1], data: bytes(["a"])))
        }
    }

    @Test("CategoryMapper maps both ways with defaults; the last duplicate wins")
    func categoryMapper() throws {
        let attributes: [String: ONNXAttribute] = [
            "cats_strings": .strings(["a", "b", "a"]), "cats_int64s": .ints([1, 2, 3]),
            "default_int64": .int(42), "default_string": .string("none"),
        ]
        let s2i = try encode(attributes, input: .tensor("X", elemType: Code.string, shape: [nil, 2]), mlOpset: 1,
                             op: "CategoryMapper", Tensor(shape: [2, 2], data: bytes(["a", "b", "c", ""])))
        #expect(s2i == Tensor(shape: [2, 2], data: .int64([3, 2, 42, 42])))
        let i2s = try encode(attributes, input: .tensor("X", elemType: Code.int64, shape: [nil]), mlOpset: 1,
                             op: "CategoryMapper", Tensor(shape: [4], data: .int64([1, 2, 3, 4])))
        #expect(i2s.data == bytes(["a", "b", "a", "none"]))
    }

    @Test("Binarizer: strictly above the threshold (default 0); NaN fails the request")
    func binarizer() throws {
        let x: [Float] = [-1, 0, 0.25, 0.3, 2]
        let byThreshold = try encode(["threshold": .float(0.25)], input: floatInput("X", [nil]), mlOpset: 1, op: "Binarizer",
                                     Tensor(shape: [5], data: .fp32(x)))
        #expect(byThreshold.floats == [0, 0, 0, 1, 1])
        let byDefault = try encode([:], input: floatInput("X", [nil]), mlOpset: 1, op: "Binarizer", Tensor(shape: [5], data: .fp32(x)))
        #expect(byDefault.floats == [0, 0, 1, 1, 1])
        let ints = try encode(["threshold": .float(1.5)], input: .tensor("X", elemType: Code.int64, shape: [nil]), mlOpset: 1,
                              op: "Binarizer", Tensor(shape: [3], data: .int64([1, 2, -3])))
        #expect(ints.data == .int64([0, 1, 0]))
        #expect {
            _ = try encode([:], input: floatInput("X", [nil]), mlOpset: 1, op: "Binarizer", Tensor(shape: [2], data: .fp32([1, .nan])))
        } throws: { error in
            (error as! InferenceError).code == .invalidInput
        }
    }

    // MARK: Load-time checks

    @Test("an operator Swerve still lacks is rejected at load, naming the op and the node")
    func stillUnsupported() {
        let model = makeModel(
            nodes: [ONNXNode(name: "onehot_ids", opType: "OneHot", inputs: ["I", "depth", "values"], outputs: ["Y"])],
            inputs: [.tensor("I", elemType: Code.int64, shape: [nil])], outputs: ["Y"],
            initializers: [.int64s("depth", dims: [], [3]), .floats("values", dims: [2], [0, 1])])
        #expect {
            _ = try CompiledModel(onnxBytes: model.encode())
        } throws: { error in
            let e = error as! InferenceError
            return e.code == .unsupportedOperator && e.message == "unsupported operator 'OneHot' (domain '') in node 'onehot_ids'"
        }
    }

    @Test("INT64 and BYTES requests are checked against the model's input types")
    func categoricalInputTypes() throws {
        let model = makeModel(
            nodes: [ONNXNode(name: "enc", opType: "LabelEncoder", domain: "ai.onnx.ml", inputs: ["X"], outputs: ["Y"],
                             attributes: ["keys_strings": .strings(["a"]), "values_int64s": .ints([1])])],
            inputs: [.tensor("X", elemType: Code.string, shape: [nil])], outputs: ["Y"], mlOpset: 2)
        let compiled = try CompiledModel(onnxBytes: model.encode())
        #expect(compiled.inputs == [TensorInfo(name: "X", dataType: .bytes, shape: [-1])])
        #expect(compiled.outputs == [TensorInfo(name: "Y", dataType: .int64, shape: [-1])])
        #expect {
            _ = try compiled.makeExecutor().run([Tensor(shape: [1], data: .int64([1]))])
        } throws: { error in
            let e = error as! InferenceError
            return e.code == .invalidInput && e.message.contains("expected BYTES, got INT64")
        }
    }
}
