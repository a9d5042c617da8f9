import SwerveProto
import Testing
@testable import SwerveInference

#if canImport(Glibc)
import Glibc
#endif

@Suite("Kernels against naive references")
struct KernelTests {
    @Test(
        "sgemm: every transpose, alpha, beta, both backends",
        arguments: [(false, false), (false, true), (true, false), (true, true)])
    func gemm(trans: (Bool, Bool)) {
        var rng = SplitMix64(seed: 42)
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (17, 33, 9), (64, 40, 70), (2, 100, 1), (5, 0, 3)] {
            for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-1.5, 0.25)] {
                let a = rng.floats(m * k), b = rng.floats(k * n), c = rng.floats(m * n)
                let expected = referenceGemm(transA: trans.0, transB: trans.1, m: m, n: n, k: k,
                                             alpha: alpha, a: a, b: b, beta: beta, c: c)
                for backend in [GemmBackend.blas, .simd, .automatic] {
                    var out = c
                    out.withUnsafeMutableBufferPointer { o in
                        sgemm(transA: trans.0, transB: trans.1, m: m, n: n, k: k, alpha: alpha,
                              a: a, lda: trans.0 ? m : k, b: b, ldb: trans.1 ? k : n,
                              beta: beta, c: o.baseAddress!, ldc: n, backend: backend)
                    }
                    #expect(allClose(out, expected, rel: 1e-4, abs: 1e-5),
                            "\(backend) m=\(m) n=\(n) k=\(k) α=\(alpha) β=\(beta): \(firstMismatch(out, expected, rel: 1e-4, abs: 1e-5))")
                }
            }
        }
    }

    @Test("Gemm operator: transA/transB, alpha, beta, and every broadcast form of C")
    func gemmOperator() throws {
        var rng = SplitMix64(seed: 7)
        let m = 5, k = 4, n = 3
        for transA in [false, true] {
            for transB in [false, true] {
                for cShape in [[], [1], [n], [1, n], [m, 1], [m, n]] as [[Int]] {
                    for weightsConstant in [true, false] {
                        let a = rng.floats(m * k), b = rng.floats(k * n)
                        let c = rng.floats(cShape.reduce(1, *))
                        let alpha: Float = 0.75, beta: Float = -0.5
                        let bShape: [Int64] = transB ? [Int64(n), Int64(k)] : [Int64(k), Int64(n)]
                        var inits = [ONNXTensor.floats("C", dims: cShape.map(Int64.init), c)]
                        // C may span M, so A's shape is fixed here (a fixed C cannot broadcast against a batch).
                        var inputs = [floatInput("A", transA ? [Int64(k), Int64(m)] : [Int64(m), Int64(k)])]
                        var feeds = [Tensor(shape: transA ? [k, m] : [m, k], data: .fp32(a))]
                        if weightsConstant {
                            inits.append(.floats("B", dims: bShape, b))
                        } else {
                            inputs.append(floatInput("B", bShape))
                            feeds.append(Tensor(shape: bShape.map(Int.init), data: .fp32(b)))
                        }
                        let node = ONNXNode(name: "g", opType: "Gemm", inputs: ["A", "B", "C"], outputs: ["Y"], attributes: [
                            "transA": .int(transA ? 1 : 0), "transB": .int(transB ? 1 : 0),
                            "alpha": .float(alpha), "beta": .float(beta),
                        ])
                        let model = makeModel(nodes: [node], inputs: inputs, outputs: ["Y"], initializers: inits)
                        let y = try run(model, feeds)[0]
                        let fullC = (0..<(m * n)).map { c[broadcastIndex($0, out: [m, n], operand: cShape)] }
                        let expected = referenceGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                                     a: a, b: b, beta: beta, c: fullC)
                        #expect(y.shape == [m, n])
                        #expect(allClose(y.floats, expected), "transA=\(transA) transB=\(transB) C\(cShape)")
                    }
                }
            }
        }
    }

    @Test("MatMul with batch broadcasting and 1-D operands")
    func matmul() throws {
        var rng = SplitMix64(seed: 9)
        let cases: [([Int], [Int])] = [
            ([2, 3, 4], [4, 5]), ([2, 3, 4], [2, 4, 5]), ([2, 1, 3, 4], [3, 4, 2]), ([3, 4], [2, 4, 6]),
            ([4], [4, 3]), ([2, 3, 4], [4]), ([1, 3, 4], [5, 4, 2]),
        ]
        for (sa, sb) in cases {
            let a = rng.floats(sa.reduce(1, *)), b = rng.floats(sb.reduce(1, *))
            let model = makeModel(
                nodes: [ONNXNode(name: "mm", opType: "MatMul", inputs: ["A", "B"], outputs: ["Y"])],
                inputs: [floatInput("A", sa.map { Int64($0) }), floatInput("B", sb.map { Int64($0) })], outputs: ["Y"])
            let y = try run(model, [Tensor(shape: sa, data: .fp32(a)), Tensor(shape: sb, data: .fp32(b))])[0]
            // Reference: numpy semantics spelled out.
            let pa = sa.count == 1 ? [1] + sa : sa, pb = sb.count == 1 ? sb + [1] : sb
            let m = pa[pa.count - 2], k = pa[pa.count - 1], n = pb[pb.count - 1]
            let ba = Array(pa.dropLast(2)), bb = Array(pb.dropLast(2))
            let rank = max(ba.count, bb.count)
            let batch = (0..<rank).map { i -> Int in
                let da = i - (rank - ba.count) >= 0 ? ba[i - (rank - ba.count)] : 1
                let db = i - (rank - bb.count) >= 0 ? bb[i - (rank - bb.count)] : 1
                return max(da, db)
            }
            let batches = batch.reduce(1, *)
            var expected: [Float] = []
            for t in 0..<batches {
                let offA = ba.isEmpty ? 0 : broadcastIndex(t, out: batch, operand: ba)
                let offB = bb.isEmpty ? 0 : broadcastIndex(t, out: batch, operand: bb)
                let am = Array(a[(offA * m * k)..<((offA + 1) * m * k)]), bm = Array(b[(offB * k * n)..<((offB + 1) * k * n)])
                expected += referenceGemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: am, b: bm,
                                          beta: 0, c: [Float](repeating: 0, count: m * n))
            }
            var shape = batch
            if sa.count > 1 { shape.append(m) }
            if sb.count > 1 { shape.append(n) }
            #expect(y.shape == shape, "\(sa) × \(sb)")
            #expect(allClose(y.floats, expected, rel: 1e-4, abs: 1e-5), "\(sa) × \(sb)")
        }
    }

    @Test("Add/Sub/Mul/Div broadcast like numpy", arguments: ["Add", "Sub", "Mul", "Div"])
    func broadcasting(op: String) throws {
        var rng = SplitMix64(seed: 3)
        let cases: [([Int], [Int])] = [
            ([4, 3], [4, 3]), ([4, 3], [3]), ([4, 3], [1, 3]), ([4, 3], [4, 1]), ([4, 3], []),
            ([4, 1, 3], [2, 1]), ([3], [4, 3]), ([4, 2, 3], [1, 2, 1]), ([4, 1], [1, 5]),
        ]
        for (sa, sb) in cases {
            let a = rng.floats(sa.reduce(1, *)), b = rng.floats(sb.reduce(1, *), in: 0.5...2)
            let model = makeModel(
                nodes: [ONNXNode(name: "e", opType: op, inputs: ["A", "B"], outputs: ["Y"])],
                inputs: [floatInput("A", sa.map { Int64($0) }), floatInput("B", sb.map { Int64($0) })], outputs: ["Y"])
            let y = try run(model, [Tensor(shape: sa, data: .fp32(a)), Tensor(shape: sb, data: .fp32(b))])[0]
            let rank = max(sa.count, sb.count)
            let pa = [Int](repeating: 1, count: rank - sa.count) + sa, pb = [Int](repeating: 1, count: rank - sb.count) + sb
            let shape = zip(pa, pb).map { max($0, $1) }
            let expected = (0..<shape.reduce(1, *)).map { i -> Float in
                let x = a[broadcastIndex(i, out: shape, operand: sa)], z = b[broadcastIndex(i, out: shape, operand: sb)]
                switch op {
                case "Add": return x + z
                case "Sub": return x - z
                case "Mul": return x * z
                default: return x / z
                }
            }
            #expect(y.shape == shape, "\(sa) \(op) \(sb)")
            #expect(y.floats == expected, "\(sa) \(op) \(sb)")
        }
    }

    @Test("INT64 arithmetic wraps and integer division by zero gives 0")
    func integerArithmetic() throws {
        let model = makeModel(
            nodes: [ONNXNode(name: "d", opType: "Div", inputs: ["A", "B"], outputs: ["Y"])],
            inputs: [.tensor("A", elemType: 7, shape: [nil]), .tensor("B", elemType: 7, shape: [nil])], outputs: ["Y"])
        let y = try run(model, [Tensor(shape: [3], data: .int64([7, -7, .min])), Tensor(shape: [3], data: .int64([2, 0, -1]))])[0]
        #expect(y.data == .int64([3, 0, .min]))
    }

    @Test("Softmax: opset 13 along one axis, opset < 13 coerced to 2-D")
    func softmaxConventions() throws {
        var rng = SplitMix64(seed: 5)
        let shape = [3, 4, 5]
        let x = rng.floats(60, in: -3...3)
        for (opset, axis) in [(13, 1), (13, -1), (13, 0), (11, 1), (11, 2), (11, 0)] as [(Int64, Int)] {
            let model = makeModel(
                nodes: [ONNXNode(name: "s", opType: "Softmax", inputs: ["X"], outputs: ["Y"], attributes: ["axis": .int(Int64(axis))])],
                inputs: [floatInput("X", [nil, 4, 5])], outputs: ["Y"], opset: opset)
            let y = try run(model, [Tensor(shape: shape, data: .fp32(x))])[0]
            let a = axis < 0 ? axis + 3 : axis
            let outer = shape[..<a].reduce(1, *)
            let expected =
                opset >= 13
                ? referenceSoftmax(x, outer: outer, length: shape[a], inner: shape[(a + 1)...].reduce(1, *))
                : referenceSoftmax(x, outer: outer, length: shape[a...].reduce(1, *), inner: 1)
            #expect(allClose(y.floats, expected), "opset \(opset) axis \(axis)")
        }
        // Default axis: 1 before opset 13 (coerced), -1 from 13.
        for opset in [11, 13] as [Int64] {
            let model = makeModel(
                nodes: [ONNXNode(name: "s", opType: "Softmax", inputs: ["X"], outputs: ["Y"])],
                inputs: [floatInput("X", [nil, 4, 5])], outputs: ["Y"], opset: opset)
            let y = try run(model, [Tensor(shape: shape, data: .fp32(x))])[0]
            let expected =
                opset >= 13
                ? referenceSoftmax(x, outer: 12, length: 5, inner: 1) : referenceSoftmax(x, outer: 3, length: 20, inner: 1)
            #expect(allClose(y.floats, expected), "default axis, opset \(opset)")
        }
    }

    @Test("ArgMax/ArgMin: axis, keepdims, select_last_index, ties")
    func argmax() throws {
        let x: [Float] = [1, 3, 3, 0, 2, 2, 5, 1, 0, 4, 4, 4]  // [2, 2, 3]
        func eval(_ op: String, _ axis: Int, keep: Int, last: Int) throws -> Tensor {
            let model = makeModel(
                nodes: [ONNXNode(name: "a", opType: op, inputs: ["X"], outputs: ["Y"], attributes: [
                    "axis": .int(Int64(axis)), "keepdims": .int(Int64(keep)), "select_last_index": .int(Int64(last)),
                ])],
                inputs: [floatInput("X", [nil, 2, 3])], outputs: ["Y"])
            return try run(model, [Tensor(shape: [2, 2, 3], data: .fp32(x))])[0]
        }
        #expect(try eval("ArgMax", 2, keep: 1, last: 0) == Tensor(shape: [2, 2, 1], data: .int64([1, 1, 0, 0])))
        #expect(try eval("ArgMax", 2, keep: 0, last: 1) == Tensor(shape: [2, 2], data: .int64([2, 2, 0, 2])))
        #expect(try eval("ArgMax", -1, keep: 0, last: 0) == Tensor(shape: [2, 2], data: .int64([1, 1, 0, 0])))
        #expect(try eval("ArgMax", 0, keep: 0, last: 0) == Tensor(shape: [2, 3], data: .int64([1, 0, 0, 1, 1, 1])))
        #expect(try eval("ArgMin", 1, keep: 1, last: 0) == Tensor(shape: [2, 1, 3], data: .int64([1, 1, 1, 1, 0, 0])))
    }

    @Test("Cast between numeric types truncates toward zero and never traps")
    func cast() throws {
        func cast(_ t: Tensor, to: Int64) throws -> Tensor {
            let model = makeModel(
                nodes: [ONNXNode(name: "c", opType: "Cast", inputs: ["X"], outputs: ["Y"], attributes: ["to": .int(to)])],
                inputs: [.tensor("X", elemType: t.dataType.onnxElemType, shape: [nil])], outputs: ["Y"])
            return try run(model, [t])[0]
        }
        let x = Tensor(shape: [6], data: .fp32([1.9, -1.9, 0, .nan, 3e30, 0.5]))
        #expect(try cast(x, to: 7).data == .int64([1, -1, 0, .min, .min, 0]))
        #expect(try cast(x, to: 6).data == .int32([1, -1, 0, .min, .min, 0]))
        #expect(try cast(x, to: 9).data == .bool([true, true, false, true, true, true]))
        #expect(try cast(x, to: 11).data.replacingNaN == TensorData.fp64([Double(Float(1.9)), Double(Float(-1.9)), 0, .nan, Double(Float(3e30)), 0.5]).replacingNaN)
        #expect(try cast(Tensor(shape: [3], data: .int64([1 << 40, -3, 0])), to: 6).data == .int32([0, -3, 0]))
        #expect(try cast(Tensor(shape: [2], data: .bool([true, false])), to: 1).data == .fp32([1, 0]))
    }

    @Test("Reshape with 0, -1 and allowzero; Flatten at every axis; Concat")
    func shapes() throws {
        let x = (0..<24).map(Float.init)
        func reshape(_ target: [Int64], allowZero: Bool = false, input: [Int64?] = [nil, 3, 4], feed: [Int] = [2, 3, 4]) throws -> Tensor {
            let model = makeModel(
                nodes: [ONNXNode(name: "r", opType: "Reshape", inputs: ["X", "S"], outputs: ["Y"],
                                 attributes: allowZero ? ["allowzero": .int(1)] : [:])],
                inputs: [floatInput("X", input)], outputs: ["Y"],
                initializers: [.int64s("S", dims: [Int64(target.count)], target)])
            return try run(model, [Tensor(shape: feed, data: .fp32(Array(x[0..<feed.reduce(1, *)])))])[0]
        }
        #expect(try reshape([0, -1]).shape == [2, 12])
        #expect(try reshape([-1, 4]).shape == [6, 4])
        #expect(try reshape([0, 2, 6]).shape == [2, 2, 6])
        #expect(try reshape([-1]).shape == [24])
        // With allowzero a 0 is a real zero-length dimension, so 24 elements cannot fit [0, 12].
        #expect(throws: InferenceError.self) { try reshape([0, 12], allowZero: true) }
        #expect(try reshape([0, 12]).shape == [2, 12])
        #expect(throws: InferenceError.self) { try reshape([5, -1]) }
        for axis in 0...3 {
            let model = makeModel(
                nodes: [ONNXNode(name: "f", opType: "Flatten", inputs: ["X"], outputs: ["Y"], attributes: ["axis": .int(Int64(axis))])],
                inputs: [floatInput("X", [nil, 3, 4])], outputs: ["Y"])
            let y = try run(model, [Tensor(shape: [2, 3, 4], data: .fp32(x))])[0]
            let dims = [2, 3, 4]
            #expect(y.shape == [dims[..<axis].reduce(1, *), dims[axis...].reduce(1, *)])
            #expect(y.floats == x)
        }
        let concat = makeModel(
            nodes: [ONNXNode(name: "c", opType: "Concat", inputs: ["A", "B"], outputs: ["Y"], attributes: ["axis": .int(-1)])],
            inputs: [floatInput("A", [nil, 2]), floatInput("B", [nil, 1])], outputs: ["Y"])
        let y = try run(concat, [Tensor(shape: [2, 2], data: .fp32([1, 2, 3, 4])), Tensor(shape: [2, 1], data: .fp32([9, 8]))])[0]
        #expect(y == Tensor(shape: [2, 3], data: .fp32([1, 2, 9, 3, 4, 8])))
    }

    @Test("Activations match their definitions")
    func activations() throws {
        let x: [Float] = [-3, -0.5, 0, 0.5, 3, -100, 100]
        for (op, f) in [
            ("Relu", { (v: Float) in max(v, 0) }), ("Sigmoid", { (v: Float) in Float(1 / (1 + Foundation_exp(-Double(v)))) }),
            ("Tanh", { (v: Float) in Float(tanh(Double(v))) }), ("LeakyRelu", { (v: Float) in v >= 0 ? v : 0.01 * v }),
        ] as [(String, (Float) -> Float)] {
            let model = makeModel(nodes: [ONNXNode(name: "a", opType: op, inputs: ["X"], outputs: ["Y"])],
                                  inputs: [floatInput("X", [nil])], outputs: ["Y"])
            let y = try run(model, [Tensor(shape: [x.count], data: .fp32(x))])[0]
            let expected = x.map { f($0) }
            #expect(allClose(y.floats, expected), "\(op)")
        }
    }
}

extension TensorData {
    /// NaN != NaN; map NaN to a sentinel so equality checks work.
    var replacingNaN: TensorData {
        if case .fp64(let v) = self { return .fp64(v.map { $0.isNaN ? -12345 : $0 }) }
        return self
    }
}

@Suite("Normalization and reduction operators")
struct NormalizationOperatorTests {
    @Test("LayerNormalization gives Y, Mean and InvStdDev; a normalized dimension that depends on the batch is refused")
    func layerNorm() throws {
        let model = makeModel(
            nodes: [ONNXNode(name: "ln", opType: "LayerNormalization", inputs: ["X", "S", "B"], outputs: ["Y", "M", "I"],
                             attributes: ["axis": .int(1), "epsilon": .float(1e-3)])],
            inputs: [floatInput("X", [nil, 2, 3])], outputs: ["Y", "M", "I"],
            initializers: [.floats("S", dims: [2, 3], [1, 2, 3, 4, 5, 6]), .floats("B", dims: [1], [0.5])])
        let x: [Float] = [1, 2, 3, 4, 5, 6, -1, 0, 1, 0, 0, 7]
        let out = try run(model, [Tensor(shape: [2, 2, 3], data: .fp32(x))])
        #expect(out[1].shape == [2, 1, 1] && out[2].shape == [2, 1, 1])
        let scale: [Float] = [1, 2, 3, 4, 5, 6]
        for r in 0..<2 {
            let row = x[(r * 6)..<(r * 6 + 6)].map(Double.init)
            let mean = row.reduce(0, +) / 6
            let inv = 1 / (row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 6 + 1e-3).squareRoot()
            #expect(Swift.abs(Double(out[1].floats[r]) - mean) < 1e-6)
            #expect(Swift.abs(Double(out[2].floats[r]) - inv) < 1e-5)
            for j in 0..<6 {
                let want = (row[j] - mean) * inv * Double(scale[j]) + 0.5
                #expect(Swift.abs(Double(out[0].floats[r * 6 + j]) - want) < 1e-5, "[\(r), \(j)]")
            }
        }
        let batchAxis = makeModel(
            nodes: [ONNXNode(name: "ln", opType: "LayerNormalization", inputs: ["X", "S"], outputs: ["Y"], attributes: ["axis": .int(0)])],
            inputs: [floatInput("X", [nil, 3])], outputs: ["Y"], initializers: [.floats("S", dims: [1], [1])])
        #expect(throws: InferenceError.self) { _ = try CompiledModel(onnxBytes: batchAxis.encode()) }
    }

    @Test("ReduceMean/ReduceMax with axes as an attribute (opset 13), keepdims 0; Gelu's approximate is checked")
    func reductions() throws {
        let model = makeModel(
            nodes: [
                ONNXNode(name: "m", opType: "ReduceMean", inputs: ["X"], outputs: ["M"], attributes: ["axes": .ints([1]), "keepdims": .int(0)]),
                ONNXNode(name: "x", opType: "ReduceMax", inputs: ["X"], outputs: ["Mx"], attributes: ["axes": .ints([0, 2])]),
            ],
            inputs: [floatInput("X", [nil, 2, 2])], outputs: ["M", "Mx"], opset: 13)
        let out = try run(model, [Tensor(shape: [2, 2, 2], data: .fp32([1, 2, 3, 4, 5, 6, .nan, 8]))])
        #expect(out[0].shape == [2, 2])
        #expect(out[0].floats[0] == 2 && out[0].floats[1] == 3 && out[0].floats[2].isNaN && out[0].floats[3] == 7)
        #expect(out[1].shape == [1, 2, 1])
        #expect(out[1].floats[0] == 6 && out[1].floats[1].isNaN)
        let bad = makeModel(
            nodes: [ONNXNode(name: "g", opType: "Gelu", inputs: ["X"], outputs: ["Y"], attributes: ["approximate": .string("fast")])],
            inputs: [floatInput("X", [nil, 2])], outputs: ["Y"], opset: 20)
        #expect(throws: InferenceError.self) { _ = try CompiledModel(onnxBytes: bad.encode()) }
    }
}
