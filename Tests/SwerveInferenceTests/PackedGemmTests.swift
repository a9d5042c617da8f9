import CSwerveKernels
import Foundation
import SwerveProto
import Testing
@testable import SwerveInference

/// The packed constant-weight GEMM (CSwerveKernels) against a naive reference, for every
/// instruction-set variant this machine has, and its wiring in the compiler (packing, bias and
/// ReLU fusion).
@Suite("Packed GEMM")
struct PackedGemmTests {
    static let sizes = [1, 2, 7, 8, 9, 31, 32, 33, 64, 255, 256, 257, 600]
    static let variants = PackedGemmISA.allCases.filter(\.isSupported)

    /// One shape: reference once (Double, with a per-element error bound), then every variant
    /// and both transposes of B's storage. Returns failure descriptions.
    static func check(
        m: Int, n: Int, k: Int, bias useBias: Bool, activation: EpilogueActivation, padA: Int, padC: Int, seed: UInt64,
        transposes: [Bool] = [false, true]
    ) -> [String] {
        var rng = SplitMix64(seed: seed)
        let lda = k + padA, ldc = n + padC
        // Padding of A is NaN: a kernel that reads past k poisons its output.
        var a = [Float](repeating: .nan, count: m * lda)
        for i in 0..<m { for p in 0..<k { a[i * lda + p] = Float.random(in: -1...1, using: &rng) } }
        let b = rng.floats(k * n)
        let bias = useBias ? rng.floats(n) : nil
        var expected = [Double](repeating: 0, count: m * n), bound = [Double](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                for i in 0..<m {
                    for j in 0..<n {
                        var s = 0.0, s1 = 0.0
                        for p in 0..<k {
                            let x = Double(pa[i * lda + p]) * Double(pb[p * n + j])
                            s += x
                            s1 += Swift.abs(x)
                        }
                        if let bias { s += Double(bias[j]) }
                        let y = Self.reference(activation, s)
                        expected[i * n + j] = y
                        // The product's rounding (through a slope of at most 1.13, GELU's
                        // steepest), plus the activation's own error (≤ 1e-6 of max(|y|, 1)).
                        bound[i * n + j] = 1.2e-6 * (1 + s1) + (activation == .none ? 0 : 2e-6 * Swift.max(1, Swift.abs(y)))
                    }
                }
            }
        }
        var bT = [Float](repeating: 0, count: k * n)
        for p in 0..<k { for j in 0..<n { bT[j * k + p] = b[p * n + j] } }
        let sentinel: Float = 1e30
        var failures: [String] = []
        for transposed in transposes {
            let weights = (transposed ? bT : b).withUnsafeBufferPointer {
                PackedWeights(k: k, n: n, b: $0.baseAddress!, transposed: transposed, bias: bias)
            }
            for isa in variants {
                // One spare row: nothing past row m - 1 or column n - 1 may be written.
                var c = [Float](repeating: sentinel, count: (m + 1) * ldc)
                c.withUnsafeMutableBufferPointer { pc in
                    weights.multiply(m: m, a: a, lda: lda, c: pc.baseAddress!, ldc: ldc, activation: activation, isa: isa)
                }
                let label = "\(isa) m=\(m) n=\(n) k=\(k) bias=\(useBias) activation=\(activation) lda=\(lda) ldc=\(ldc) transposed=\(transposed)"
                var bad = 0, first = ""
                for i in 0...m {
                    for j in 0..<ldc {
                        let got = c[i * ldc + j]
                        if i == m || j >= n {
                            if got != sentinel {
                                bad += 1
                                if first.isEmpty { first = "wrote outside C at [\(i), \(j)]" }
                            }
                        } else if !(Swift.abs(Double(got) - expected[i * n + j]) <= bound[i * n + j]) {
                            bad += 1
                            if first.isEmpty { first = "[\(i), \(j)] = \(got), expected \(expected[i * n + j])" }
                        }
                    }
                }
                if bad > 0 { failures.append("\(label): \(bad) bad, first \(first)") }
            }
        }
        return failures
    }

    /// Products above this many multiply-adds are skipped in the cube (the naive reference runs
    /// unoptimized in debug builds) except for `bigShapes`; SWERVE_GEMM_EXHAUSTIVE=1 runs all.
    static let cubeLimit = ProcessInfo.processInfo.environment["SWERVE_GEMM_EXHAUSTIVE"] != nil ? Int.max : 1 << 22
    static let bigShapes: Set<[Int]> = [[256, 256, 256], [257, 255, 600], [600, 257, 257], [600, 600, 64], [64, 600, 600]]

    @Test("m, n, k in {1, 2, 7, 8, 9, 31, 32, 33, 64, 255, 256, 257, 600}, every variant", arguments: sizes)
    func shapes(m: Int) {
        var failures: [String] = []
        for (ni, n) in Self.sizes.enumerated() {
            for (ki, k) in Self.sizes.enumerated() where m * n * k <= Self.cubeLimit || Self.bigShapes.contains([m, n, k]) {
                // Cycle through bias/activation and padded leading dimensions across the shapes.
                let v = ni + 3 * ki
                let activation = EpilogueActivation.allCases[(v / 2) % EpilogueActivation.allCases.count]
                failures += Self.check(
                    m: m, n: n, k: k, bias: v % 2 == 0, activation: activation, padA: v % 3 == 0 ? 0 : 5,
                    padC: v % 5 == 0 ? 0 : 3, seed: UInt64(m * 1_000_000 + n * 1000 + k),
                    transposes: m <= 9 ? [false, true] : [false])
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failures: \(failures.prefix(5).joined(separator: "; "))")
    }

    @Test("every epilogue on edge shapes, every variant")
    func epilogues() {
        var failures: [String] = []
        for (m, n, k) in [(13, 47, 300), (1, 17, 5), (25, 33, 513), (12, 16, 1), (3, 1, 9), (9, 1057, 20), (40, 1030, 270), (390, 40, 30)] {
            for useBias in [false, true] {
                for activation in EpilogueActivation.allCases {
                    failures += Self.check(m: m, n: n, k: k, bias: useBias, activation: activation, padA: 1, padC: 2, seed: UInt64(m + n + k))
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5).joined(separator: "; "))")
    }

    /// The activation in Double, as the vector math functions are specified.
    static func reference(_ activation: EpilogueActivation, _ s: Double) -> Double {
        switch activation {
        case .none: s
        case .relu: Swift.max(s, 0)
        case .tanh: Foundation.tanh(s)
        case .sigmoid: 1 / (1 + Foundation.exp(-s))
        case .gelu: s * 0.5 * (1 + Foundation.erf(s / 2.0.squareRoot()))
        case .geluTanh: s * 0.5 * (1 + Foundation.tanh(0.79788456080286535588 * (s + 0.044715 * s * s * s)))
        }
    }

    @Test("a fused activation gives the very bits of the product followed by the standalone function")
    func fusedEqualsUnfused() {
        var rng = SplitMix64(seed: 7)
        let (m, n, k) = (37, 45, 70)
        let a = rng.floats(m * k, in: -3...3), b = rng.floats(k * n, in: -1...1), bias = rng.floats(n)
        let weights = b.withUnsafeBufferPointer { PackedWeights(k: k, n: n, b: $0.baseAddress!, transposed: false, bias: bias) }
        let functions: [(EpilogueActivation, Int32)] = [
            (.tanh, SWK_FN_TANH), (.sigmoid, SWK_FN_SIGMOID), (.gelu, SWK_FN_GELU), (.geluTanh, SWK_FN_GELU_TANH),
        ]
        for isa in Self.variants {
            var plain = [Float](repeating: 0, count: m * n)
            plain.withUnsafeMutableBufferPointer { weights.multiply(m: m, a: a, lda: k, c: $0.baseAddress!, ldc: n, isa: isa) }
            for (activation, fn) in functions {
                var fused = [Float](repeating: 0, count: m * n), separate = plain
                fused.withUnsafeMutableBufferPointer {
                    weights.multiply(m: m, a: a, lda: k, c: $0.baseAddress!, ldc: n, activation: activation, isa: isa)
                }
                separate.withUnsafeMutableBufferPointer { swk_vmath_isa(isa.rawValue, fn, m * n, $0.baseAddress!, $0.baseAddress!) }
                #expect(fused.map(\.bitPattern) == separate.map(\.bitPattern), "\(isa) \(activation)")
            }
        }
    }

    @Test("k = 0 gives the bias (after ReLU); NaN passes through the ReLU")
    func degenerate() {
        let bias: [Float] = [1, -2, 0.5]
        let weights = PackedWeights(k: 0, n: 3, b: [], transposed: false, bias: bias)
        for isa in Self.variants {
            var c = [Float](repeating: 9, count: 6)
            c.withUnsafeMutableBufferPointer {
                weights.multiply(m: 2, a: [], lda: 0, c: $0.baseAddress!, ldc: 3, activation: .relu, isa: isa)
            }
            #expect(c == [1, 0, 0.5, 1, 0, 0.5], "\(isa)")
        }
        let w2 = PackedWeights(k: 2, n: 18, b: [Float](repeating: 1, count: 36), transposed: false)
        for isa in Self.variants {
            var c = [Float](repeating: 0, count: 18)
            c.withUnsafeMutableBufferPointer {
                w2.multiply(m: 1, a: [.nan, 1], lda: 2, c: $0.baseAddress!, ldc: 18, activation: .relu, isa: isa)
            }
            #expect(c.allSatisfy { $0.isNaN }, "\(isa)")
        }
    }

    @Test("the selected variant is the best supported one")
    func dispatch() {
        #expect(PackedGemmISA.scalar.isSupported)
        #expect(PackedGemmISA.selected.isSupported)
        print("packed GEMM variants on this machine: \(Self.variants), selected \(PackedGemmISA.selected)")
    }

    // MARK: Compiler wiring (only where the compiler packs: a vector variant is available)

    static let packs = PackedGemmISA.selected != .scalar

    static func mlp(addFirst: Bool = false, biasShape: [Int64] = [6], extraOutput: String? = nil,
                    reluReader: Bool = false) -> ONNXModel {
        var rng = SplitMix64(seed: 11)
        let w1 = rng.floats(4 * 6), b1 = rng.floats(Int(biasShape.reduce(1, *))), w2 = rng.floats(6 * 3), b2 = rng.floats(3)
        var nodes = [
            ONNXNode(name: "mm1", opType: "MatMul", inputs: ["X", "W1"], outputs: ["h0"]),
            ONNXNode(name: "add1", opType: "Add", inputs: addFirst ? ["B1", "h0"] : ["h0", "B1"], outputs: ["h1"]),
            ONNXNode(name: "relu1", opType: "Relu", inputs: ["h1"], outputs: ["h2"]),
            ONNXNode(name: "gemm2", opType: "Gemm", inputs: ["h2", "W2", "B2"], outputs: ["Y"],
                     attributes: ["alpha": .float(0.5), "beta": .float(2)]),
        ]
        var outputs = ["Y"]
        if let extraOutput { outputs.append(extraOutput) }
        if reluReader {
            nodes.append(ONNXNode(name: "neg", opType: "Sub", inputs: ["h1", "h1"], outputs: ["Z"]))
            outputs.append("Z")
        }
        return makeModel(
            nodes: nodes, inputs: [floatInput("X", [nil, 4])], outputs: outputs,
            initializers: [
                .floats("W1", dims: [4, 6], w1), .floats("B1", dims: biasShape, b1),
                .floats("W2", dims: [6, 3], w2), .floats("B2", dims: [3], b2),
            ])
    }

    static func reference(_ model: ONNXModel, _ x: [Float], rows: Int) -> [Float] {
        func floats(_ name: String) -> [Float] {
            let t = model.graph.initializers.first { $0.name == name }!
            return try! Tensor(onnx: t).floats
        }
        let w1 = floats("W1"), b1 = floats("B1"), w2 = floats("W2"), b2 = floats("B2")
        var h = referenceGemm(transA: false, transB: false, m: rows, n: 6, k: 4, alpha: 1, a: x, b: w1, beta: 0,
                              c: [Float](repeating: 0, count: rows * 6))
        for i in h.indices { h[i] = Swift.max(0, h[i] + (b1.count == 1 ? b1[0] : b1[i % 6])) }
        let c = (0..<(rows * 3)).map { b2[$0 % 3] }
        return referenceGemm(transA: false, transB: false, m: rows, n: 3, k: 6, alpha: 0.5, a: h, b: w2, beta: 2, c: c)
    }

    @Test("MatMul + Add + Relu fuse into one packed step; Gemm with constant B and C packs", .enabled(if: packs))
    func fusion() throws {
        var rng = SplitMix64(seed: 12)
        for (addFirst, biasShape) in [(false, [6]), (true, [1, 6]), (false, [1]), (true, [])] as [(Bool, [Int64])] {
            let model = Self.mlp(addFirst: addFirst, biasShape: biasShape)
            let compiled = try CompiledModel(onnxBytes: model.encode())
            let packed = compiled.plan.steps.compactMap { $0 as? PackedGemmKernel }
            #expect(compiled.plan.steps.count == 2, "bias \(biasShape): \(compiled.plan.steps)")
            #expect(packed.count == 2)
            #expect(packed.first?.activation == .relu && packed.first?.weights.bias != nil)
            #expect(packed.last?.activation == EpilogueActivation.none && packed.last?.weights.bias != nil)
            for rows in [1, 5, 40] {
                let x = rng.floats(rows * 4)
                let y = try compiled.makeExecutor().run([Tensor(shape: [rows, 4], data: .fp32(x))])[0]
                #expect(y.shape == [rows, 3])
                #expect(allClose(y.floats, Self.reference(model, x, rows: rows), rel: 1e-5, abs: 1e-5), "bias \(biasShape) rows \(rows)")
            }
        }
    }

    @Test("MatMul + Add + Tanh / Sigmoid fuse into one packed step with that activation", .enabled(if: packs))
    func activationFusion() throws {
        var rng = SplitMix64(seed: 14)
        let w = rng.floats(4 * 5), b = rng.floats(5)
        for (op, activation) in [("Tanh", EpilogueActivation.tanh), ("Sigmoid", .sigmoid)] {
            let model = makeModel(
                nodes: [
                    ONNXNode(name: "mm", opType: "MatMul", inputs: ["X", "W"], outputs: ["h"]),
                    ONNXNode(name: "add", opType: "Add", inputs: ["h", "B"], outputs: ["z"]),
                    ONNXNode(name: "act", opType: op, inputs: ["z"], outputs: ["Y"]),
                ],
                inputs: [floatInput("X", [nil, 4])], outputs: ["Y"],
                initializers: [.floats("W", dims: [4, 5], w), .floats("B", dims: [5], b)])
            let compiled = try CompiledModel(onnxBytes: model.encode())
            #expect(compiled.plan.steps.count == 1, "\(op): \(compiled.plan.steps)")
            #expect((compiled.plan.steps.first as? PackedGemmKernel)?.activation == activation)
            let x = rng.floats(9 * 4, in: -3...3)
            let y = try compiled.makeExecutor().run([Tensor(shape: [9, 4], data: .fp32(x))])[0].floats
            for i in 0..<9 {
                for j in 0..<5 {
                    var s = Double(b[j])
                    for p in 0..<4 { s += Double(x[i * 4 + p]) * Double(w[p * 5 + j]) }
                    let want = Self.reference(activation, s)
                    #expect(Swift.abs(Double(y[i * 5 + j]) - want) <= 1e-5, "\(op) [\(i), \(j)]")
                }
            }
        }
    }

    @Test("torch's spelled-out GELU becomes one kernel, fused into the GEMM before it; not when a part has another reader", .enabled(if: packs))
    func geluFusion() throws {
        let fixtures = OracleTests.fixtures
        let torch = try CompiledModel(contentsOfFile: fixtures.appendingPathComponent("torch_style_mlp.onnx").path)
        let packed = torch.plan.steps.compactMap { $0 as? PackedGemmKernel }
        // fc1 + GELU, fc2, fc3 + Tanh, fc4 + Sigmoid, fc5; LayerNorm, the second GELU, Softmax.
        #expect(packed.map(\.activation) == [.gelu, .none, .tanh, .sigmoid, .none], "\(torch.plan.steps)")
        #expect(torch.plan.steps.count == 8, "\(torch.plan.steps)")
        let unary = torch.plan.steps.compactMap { ($0 as? UnaryKernel<Float>)?.op }
        #expect(unary == [.gelu], "the GELU after LayerNorm is one kernel: \(unary)")
        #expect(!torch.plan.steps.contains { $0 is BinaryKernel<Float> })
        // The same chain whose erf is also a graph output's input stays as written.
        let other = try CompiledModel(contentsOfFile: fixtures.appendingPathComponent("elementwise_and_reductions.onnx").path)
        let ops = other.plan.steps.compactMap { ($0 as? UnaryKernel<Float>)?.op }
        #expect(ops.filter { $0 == .erf }.count == 2, "\(ops)")
    }

    @Test("Hugging Face's spelled-out tanh GELU (Pow or x·x·x, either grouping) becomes one kernel in the GEMM epilogue", .enabled(if: packs))
    func geluTanhFusion() throws {
        let hf = try CompiledModel(contentsOfFile: OracleTests.fixtures.appendingPathComponent("hf_style_gelu_tanh.onnx").path)
        let packed = hf.plan.steps.compactMap { $0 as? PackedGemmKernel }
        #expect(packed.map(\.activation) == [.geluTanh, .geluTanh, .none], "\(hf.plan.steps)")
        #expect(hf.plan.steps.count == 3, "\(hf.plan.steps)")
        // (OracleTests compares its outputs with onnxruntime's.)
    }

    @Test("torch's decomposed LayerNorm (Pow or d·d, with or without β) becomes one LayerNorm kernel", .enabled(if: packs))
    func layerNormFusion() throws {
        let torch = try CompiledModel(contentsOfFile: OracleTests.fixtures.appendingPathComponent("torch_decomposed_layernorm.onnx").path)
        let norms = torch.plan.steps.compactMap { $0 as? LayerNormKernel<Float> }
        #expect(norms.count == 2 && norms[0].bias != nil && norms[1].bias == nil, "\(torch.plan.steps)")
        #expect(norms.allSatisfy { $0.epsilon == Double(Float(1e-5)) })
        // fc1, LayerNorm, Relu (its own step: it follows the LayerNorm, not a GEMM), fc2, LayerNorm, fc3.
        #expect(torch.plan.steps.count == 6, "\(torch.plan.steps)")
        #expect(!torch.plan.steps.contains { $0 is ReduceKernel<Float> || $0 is BinaryKernel<Float> })
        // (OracleTests compares its outputs with onnxruntime's.)
    }

    @Test("no fusion across a graph output or a second reader", .enabled(if: packs))
    func fusionBlocked() throws {
        var rng = SplitMix64(seed: 13)
        let x = rng.floats(7 * 4)
        // h1 is a graph output: the Add runs in the GEMM, the Relu stays separate.
        let outputModel = Self.mlp(extraOutput: "h1")
        let compiled = try CompiledModel(onnxBytes: outputModel.encode())
        #expect(compiled.plan.steps.count == 3)
        #expect(compiled.plan.steps.compactMap { $0 as? PackedGemmKernel }.allSatisfy { $0.activation == .none })
        let outs = try compiled.makeExecutor().run([Tensor(shape: [7, 4], data: .fp32(x))])
        #expect(allClose(outs[0].floats, Self.reference(outputModel, x, rows: 7), rel: 1e-5, abs: 1e-5))
        #expect(outs[1].floats.contains { $0 < 0 }, "h1 is before the ReLU")
        // h1 has a second reader: same.
        let readerModel = Self.mlp(reluReader: true)
        let compiled2 = try CompiledModel(onnxBytes: readerModel.encode())
        #expect(compiled2.plan.steps.count == 4)
        let outs2 = try compiled2.makeExecutor().run([Tensor(shape: [7, 4], data: .fp32(x))])
        #expect(allClose(outs2[0].floats, Self.reference(readerModel, x, rows: 7), rel: 1e-5, abs: 1e-5))
        #expect(outs2[1].floats.allSatisfy { $0 == 0 })
        // A bias that varies by row is not a row bias: the Add stays.
        let rowModel = makeModel(
            nodes: [
                ONNXNode(name: "mm", opType: "MatMul", inputs: ["X", "W"], outputs: ["h"]),
                ONNXNode(name: "add", opType: "Add", inputs: ["h", "B"], outputs: ["Y"]),
            ],
            inputs: [floatInput("X", [3, 4])], outputs: ["Y"],
            initializers: [.floats("W", dims: [4, 2], rng.floats(8)), .floats("B", dims: [3, 1], [1, 2, 3])])
        let compiled3 = try CompiledModel(onnxBytes: rowModel.encode())
        #expect(compiled3.plan.steps.count == 2)
    }

    @Test("MatMul with constant weights over a 3-D input and a 1-D weight vector", .enabled(if: packs))
    func matmulShapes() throws {
        var rng = SplitMix64(seed: 14)
        for (sa, sb) in [([2, 3, 5], [5, 4]), ([4, 5], [5]), ([5], [5, 3])] as [([Int], [Int])] {
            let a = rng.floats(sa.reduce(1, *)), b = rng.floats(sb.reduce(1, *))
            let model = makeModel(
                nodes: [ONNXNode(name: "mm", opType: "MatMul", inputs: ["A", "B"], outputs: ["Y"])],
                inputs: [floatInput("A", sa.map { Int64($0) })], outputs: ["Y"],
                initializers: [.floats("B", dims: sb.map(Int64.init), b)])
            let compiled = try CompiledModel(onnxBytes: model.encode())
            #expect((compiled.plan.steps.first is PackedGemmKernel) == (sb.count == 2), "n = 1 stays on the SIMD kernel")
            let y = try compiled.makeExecutor().run([Tensor(shape: sa, data: .fp32(a))])[0]
            let k = sa.last!, n = sb.count == 2 ? sb[1] : 1, rows = a.count / k
            let expected = referenceGemm(transA: false, transB: false, m: rows, n: n, k: k, alpha: 1, a: a, b: b,
                                         beta: 0, c: [Float](repeating: 0, count: rows * n))
            var shape = Array(sa.dropLast())
            if sb.count == 2 { shape.append(n) }
            #expect(y.shape == shape)
            #expect(allClose(y.floats, expected, rel: 1e-5, abs: 1e-5), "\(sa) × \(sb)")
        }
    }
}
