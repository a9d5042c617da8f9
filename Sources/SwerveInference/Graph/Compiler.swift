// Turns an ONNX graph into a Plan: checks it, orders it, folds constants, infers types and
// symbolic shapes, and assigns buffer slots so that a run allocates nothing per node.
import SwerveProto

/// Opset versions whose semantics Swerve implements for the operators it has. Versions 22–24
/// only widened type lists for these operators, so they are accepted too.
let supportedDefaultOpsets: ClosedRange<Int64> = 1...24
let supportedMLOpsets: ClosedRange<Int64> = 1...5
let supportedIRVersions: ClosedRange<Int64> = 3...13

/// Builds the kernel for one node and returns the types of its outputs.
typealias OperatorBuilder = @Sendable (NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType])

/// What an operator builder sees of its node.
struct NodeContext {
    let node: ONNXNode
    /// The opset version of the node's domain.
    let opset: Int
    /// Input value ids, nil for omitted optional inputs ("" or missing at the end).
    let inputs: [Int?]
    let outputs: [Int]
    let compiler: GraphCompiler

    var label: String { "node '\(node.name)' (\(node.opType))" }

    func invalid(_ message: String) -> InferenceError {
        InferenceError(.invalidModel, "\(label): \(message)")
    }

    func unsupported(_ message: String) -> InferenceError {
        InferenceError(.unsupportedOperator, "\(label): \(message)")
    }

    /// The id of required input `i`.
    func input(_ i: Int) throws -> Int {
        guard i < inputs.count, let id = inputs[i] else { throw invalid("missing required input \(i)") }
        return id
    }

    func optionalInput(_ i: Int) -> Int? { i < inputs.count ? inputs[i] : nil }
    func type(_ id: Int) -> ValueType { compiler.types[id] }
    func constant(_ id: Int) -> Tensor? { compiler.constants[id] }

    /// A constant derived from the node's inputs at compile time (e.g. transposed weights) that
    /// the kernel reads in place of an input.
    func derivedConstant(_ tensor: Tensor, name: String) -> Int {
        let id = compiler.addConstant(tensor, name: name)
        compiler.pendingConstants.append(id)
        return id
    }

    /// A value the kernel may use as working memory during the step (gets a buffer slot).
    func scratch(_ type: ValueType) -> Int {
        let id = compiler.newValue("\(node.name):scratch\(compiler.pendingScratch.count)", type)
        compiler.pendingScratch.append(id)
        return id
    }

    func requireInputs(_ range: ClosedRange<Int>) throws {
        let present = inputs.count
        guard range.contains(present) else {
            throw invalid("expects \(range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound)–\(range.upperBound)") inputs, has \(present)")
        }
    }

    func requireType(_ id: Int, _ allowed: Set<DataType>, _ role: String = "input") throws -> DataType {
        let t = type(id).dataType
        guard allowed.contains(t) else {
            throw unsupported("\(role) '\(compiler.names[id])' has type \(t.rawValue); supported: \(allowed.map(\.rawValue).sorted().joined(separator: ", "))")
        }
        return t
    }

    // MARK: Attributes

    func attribute(_ name: String) -> ONNXAttribute? { node.attributes[name] }

    func int(_ name: String) throws -> Int? {
        guard let a = attribute(name) else { return nil }
        guard let v = a.intValue else { throw invalid("attribute '\(name)' must be an int") }
        return Int(v)
    }
    func int(_ name: String, default d: Int) throws -> Int { try int(name) ?? d }

    func float(_ name: String, default d: Float) throws -> Float {
        guard let a = attribute(name) else { return d }
        guard let v = a.floatValue else { throw invalid("attribute '\(name)' must be a float") }
        return v
    }

    func string(_ name: String, default d: String) throws -> String {
        guard let a = attribute(name) else { return d }
        guard let v = a.stringValue else { throw invalid("attribute '\(name)' must be a string") }
        return v
    }

    func ints(_ name: String) throws -> [Int64]? {
        guard let a = attribute(name) else { return nil }
        guard let v = a.intsValue else { throw invalid("attribute '\(name)' must be a list of ints") }
        return v
    }

    func floats(_ name: String) throws -> [Float]? {
        guard let a = attribute(name) else { return nil }
        guard let v = a.floatsValue else { throw invalid("attribute '\(name)' must be a list of floats") }
        return v
    }

    func strings(_ name: String) throws -> [[UInt8]]? {
        guard let a = attribute(name) else { return nil }
        guard case .strings(let v) = a else { throw invalid("attribute '\(name)' must be a list of strings") }
        return v
    }

    /// Normalizes a possibly negative axis for a value of `rank`.
    func axis(_ axis: Int, rank: Int, allowEnd: Bool = false) throws -> Int {
        let limit = allowEnd ? rank + 1 : rank
        let a = axis < 0 ? axis + limit : axis
        guard a >= 0 && a < limit else { throw invalid("axis \(axis) out of range for rank \(rank)") }
        return a
    }
}

/// Compile-time state. One use: `compile(_:)`.
final class GraphCompiler {
    /// The most elements one value of a model may have per batch row: 2^28 (1 GiB of FP32), the
    /// bound a request's tensor has too. Checked on graph inputs, initializers and every node's
    /// outputs before anything of that size is allocated, so a few bytes of model that declare a
    /// huge shape are refused instead of being allocated by constant folding or the warm-up run.
    static let maxElements = 1 << 28
    /// What constant folding may compute in all, on top of the model's own initializers and
    /// Constant nodes: 2^24 elements (64 MiB of FP32). Each fold is checked before it runs.
    static let maxFoldedElements = 1 << 24
    private var foldedElements = 0

    /// The elements per batch row of `shape`, nil when above `maxElements` (or negative).
    static func boundedElementCount(_ shape: SymShape) -> Int? {
        var count = 1
        for d in shape {
            let k = switch d { case .fixed(let k): k; case .batch(let k): k }
            let (p, overflow) = count.multipliedReportingOverflow(by: k)
            guard k >= 0, !overflow, p <= maxElements else { return nil }
            count = p
        }
        return count
    }

    /// Operators only this compilation knows (a native tree model's evaluation), by
    /// "domain|op_type"; consulted before the registry.
    var privateOperators: [String: OperatorBuilder] = [:]
    var types: [ValueType] = []
    var names: [String] = []
    var constants: [Int: Tensor] = [:]
    /// Scratch values requested by the node being built.
    var pendingScratch: [Int] = []
    /// Constants derived by the node being built.
    var pendingConstants: [Int] = []
    /// INT64 values of rank ≤ 1 that hold tensor dimensions known up to the batch size: what
    /// `Shape` produces and `Gather`, `Unsqueeze`, `Squeeze`, `Concat`, `Cast` and `Identity`
    /// pass along. torch.onnx builds `x.view(x.size(0), -1)` this way; Reshape reads the
    /// symbolic target here instead of needing a constant.
    var shapeValues: [Int: [SymDim]] = [:]
    private var steps: [(kernel: any Kernel, inputs: [Int], outputs: [Int])] = []

    func newValue(_ name: String, _ type: ValueType) -> Int {
        types.append(type)
        names.append(name)
        return types.count - 1
    }

    /// The elements of `id` as symbolic dimensions, when they are known at compile time: a
    /// constant INT64 tensor of rank ≤ 1, or a shape value.
    func shapeValue(_ id: Int) -> [SymDim]? {
        if let dims = shapeValues[id] { return dims }
        if let c = constants[id], c.shape.count <= 1, case .int64(let v) = c.data { return v.map { .fixed(Int($0)) } }
        return nil
    }

    /// Records what a node computes from shape values, for the operators that only move them.
    private func propagateShapeValue(_ node: ONNXNode, domain: String, inputs: [Int?], outputs: [Int]) {
        guard domain == "", outputs.count == 1, constants[outputs[0]] == nil, types[outputs[0]].dataType == .int64,
            types[outputs[0]].shape.count <= 1
        else { return }
        let present = inputs.compactMap { $0 }
        guard let first = present.first, let values = shapeValue(first) else { return }
        let result: [SymDim]?
        switch node.opType {
        case "Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape":
            result = values
        case "Concat":
            let parts = present.map { shapeValue($0) }
            result = parts.contains { $0 == nil } ? nil : parts.flatMap { $0! }
        case "Gather":
            // Indices into a 1-D shape value (axis 0 is the only axis it has).
            guard present.count == 2, let indices = constants[present[1]] else { return }
            let picks: [Int64]
            switch indices.data {
            case .int64(let v): picks = v
            case .int32(let v): picks = v.map(Int64.init)
            default: return
            }
            result = picks.map { values[Int($0 < 0 ? $0 + Int64(values.count) : $0)] }
        default:
            result = nil
        }
        if let result, present.contains(where: { shapeValues[$0] != nil }) {
            shapeValues[outputs[0]] = result
        }
    }

    func addConstant(_ tensor: Tensor, name: String) -> Int {
        let id = newValue(name, ValueType(dataType: tensor.dataType, shape: tensor.shape.map { .fixed($0) }))
        constants[id] = tensor
        return id
    }

    struct Result {
        var plan: Plan
        var inputs: [TensorInfo]
        var outputs: [TensorInfo]
        var opsetVersion: Int
    }

    func compile(_ model: ONNXModel) throws -> Result {
        guard supportedIRVersions.contains(model.irVersion) else {
            throw InferenceError(.invalidModel, "unsupported ir_version \(model.irVersion) (supported \(supportedIRVersions.lowerBound)–\(supportedIRVersions.upperBound))")
        }
        // A graph of ai.onnx.ml operators only (XGBoost's onnxmltools export) may import no
        // default opset; a node of the default domain then fails below, naming itself.
        let defaultOpset = model.opsetVersion(for: "")
        if let defaultOpset, !supportedDefaultOpsets.contains(defaultOpset) {
            throw InferenceError(.unsupportedOperator, "unsupported ONNX opset \(defaultOpset) (supported up to \(supportedDefaultOpsets.upperBound))")
        }
        let mlOpset = model.opsetVersion(for: "ai.onnx.ml")
        if let mlOpset, !supportedMLOpsets.contains(mlOpset) {
            throw InferenceError(.unsupportedOperator, "unsupported ai.onnx.ml opset \(mlOpset) (supported up to \(supportedMLOpsets.upperBound))")
        }
        let graph = model.graph
        var idByName: [String: Int] = [:]

        // Initializers become constants.
        for initializer in graph.initializers {
            guard !initializer.name.isEmpty else { throw InferenceError(.invalidModel, "an initializer has no name") }
            let tensor = try Tensor(onnx: initializer)
            idByName[initializer.name] = addConstant(tensor, name: initializer.name)
        }

        // Graph inputs that are not initializers are what a request supplies.
        var inputIDs: [Int] = []
        var inputInfos: [TensorInfo] = []
        for input in graph.inputs where idByName[input.name] == nil {
            let type = try Self.inputType(input)
            let id = newValue(input.name, type)
            idByName[input.name] = id
            inputIDs.append(id)
            inputInfos.append(TensorInfo(name: input.name, dataType: type.dataType, shape: type.shape.publicShape))
        }

        // Order nodes so each runs after the producers of its inputs.
        let order = try Self.topologicalOrder(graph, known: Set(idByName.keys))

        for index in order {
            let node = graph.nodes[index]
            let domain = node.domain == "ai.onnx" ? "" : node.domain
            // Every operator has an output; the builders index the first without checking.
            guard !node.outputs.isEmpty else {
                throw InferenceError(.invalidModel, "node '\(node.name)' (\(node.opType)) has no outputs")
            }
            guard let builder = privateOperators[domain + "|" + node.opType] ?? operatorRegistry[domain + "|" + node.opType] else {
                throw InferenceError(.unsupportedOperator, "unsupported operator '\(node.opType)' (domain '\(node.domain)') in node '\(node.name)'")
            }
            let opset: Int64?
            switch domain {
            case "": opset = defaultOpset
            case "ai.onnx.ml": opset = mlOpset
            default: opset = model.opsetVersion(for: domain)
            }
            guard let opset else {
                throw InferenceError(.invalidModel, "node '\(node.name)' uses domain '\(node.domain)', which the model does not import")
            }
            var inputs = try node.inputs.map { name -> Int? in
                if name.isEmpty { return nil }
                guard let id = idByName[name] else {
                    throw InferenceError(.invalidModel, "node '\(node.name)' (\(node.opType)) refers to unknown tensor '\(name)'")
                }
                return id
            }
            while let last = inputs.last, last == nil { inputs.removeLast() }
            let outputs = node.outputs.enumerated().map { i, name in
                newValue(name.isEmpty ? "\(node.name):unused\(i)" : name, ValueType(dataType: .fp32, shape: []))
            }
            let context = NodeContext(node: node, opset: Int(opset), inputs: inputs, outputs: outputs, compiler: self)
            pendingScratch = []
            pendingConstants = []
            let built = try builder(context)
            guard built.outputs.count == outputs.count else {
                throw context.invalid("has \(outputs.count) outputs, the operator produces \(built.outputs.count)")
            }
            for (id, type) in zip(outputs, built.outputs) {
                guard Self.boundedElementCount(type.shape) != nil else {
                    throw context.invalid("output '\(names[id])' has shape \(type.shape.text), more than \(Self.maxElements) elements per row")
                }
                types[id] = type
            }
            for (i, name) in node.outputs.enumerated() where !name.isEmpty {
                guard idByName[name] == nil else {
                    throw InferenceError(.invalidModel, "tensor '\(name)' is produced twice (again by node '\(node.name)')")
                }
                idByName[name] = outputs[i]
            }
            propagateShapeValue(node, domain: domain, inputs: inputs, outputs: outputs)
            let present = inputs.compactMap { $0 }
            // Constant nodes have no inputs but must fold too, so that consumers needing a
            // constant (Reshape's shape, Squeeze's axes) see their value.
            if (!present.isEmpty && present.allSatisfy({ constants[$0] != nil })) || built.kernel is ConstantKernel {
                if !(built.kernel is ConstantKernel) {
                    for id in outputs + pendingScratch { foldedElements += Self.boundedElementCount(types[id].shape) ?? Self.maxElements }
                    guard foldedElements <= Self.maxFoldedElements else {
                        throw context.invalid("constant folding would compute more than \(Self.maxFoldedElements) elements in all")
                    }
                }
                try fold(built.kernel, outputs: outputs, scratch: pendingScratch)
            } else {
                steps.append((built.kernel, present + pendingConstants, outputs + pendingScratch))
            }
        }

        // Graph outputs.
        var outputIDs: [Int] = []
        var outputInfos: [TensorInfo] = []
        for output in graph.outputs {
            guard let id = idByName[output.name] else {
                throw InferenceError(.invalidModel, "graph output '\(output.name)' is not produced by any node")
            }
            let type = types[id]
            if output.isTensor, output.elemType != 0, output.elemType != type.dataType.onnxElemType {
                let declared = DataType(onnxElemType: output.elemType)?.rawValue ?? "ONNX type \(output.elemType)"
                throw InferenceError(.invalidModel, "graph output '\(output.name)' is declared \(declared) but computes \(type.dataType.rawValue)")
            }
            outputIDs.append(id)
            outputInfos.append(TensorInfo(name: output.name, dataType: type.dataType, shape: type.shape.publicShape))
        }
        guard !outputIDs.isEmpty else { throw InferenceError(.invalidModel, "the graph has no outputs") }

        fuseGelu(graphOutputs: Set(outputIDs))
        fuseLayerNorm(graphOutputs: Set(outputIDs))
        fuseEpilogues(graphOutputs: Set(outputIDs))
        let plan = assignSlots(inputs: inputIDs, outputs: outputIDs)
        return Result(plan: plan, inputs: inputInfos, outputs: outputInfos, opsetVersion: Int(defaultOpset ?? 0))
    }

    private static func inputType(_ input: ONNXValueInfo) throws -> ValueType {
        guard input.isTensor else {
            throw InferenceError(.unsupportedOperator, "graph input '\(input.name)' is not a tensor (sequences and maps are not supported)")
        }
        guard let dataType = DataType(onnxElemType: input.elemType) else {
            throw InferenceError(.unsupportedOperator, "graph input '\(input.name)' has unsupported element type \(input.elemType)")
        }
        guard let shape = input.shape else {
            throw InferenceError(.invalidModel, "graph input '\(input.name)' has no shape")
        }
        let dims = try shape.enumerated().map { i, d -> SymDim in
            switch d {
            case .value(let v) where v >= 0: return .fixed(Int(v))
            default:
                guard i == 0 else {
                    throw InferenceError(.unsupportedOperator, "graph input '\(input.name)' has dynamic dimension \(i); only the first (batch) dimension may be dynamic")
                }
                return .batch(1)
            }
        }
        guard boundedElementCount(dims) != nil else {
            throw InferenceError(.invalidModel, "graph input '\(input.name)' has shape \(dims.text), more than \(maxElements) elements per row")
        }
        return ValueType(dataType: dataType, shape: dims)
    }

    /// Kahn's algorithm; rejects references to unknown tensors and cycles.
    private static func topologicalOrder(_ graph: ONNXGraph, known: Set<String>) throws -> [Int] {
        var producer: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() {
            for name in node.outputs where !name.isEmpty {
                if known.contains(name) || producer[name] != nil {
                    throw InferenceError(.invalidModel, "tensor '\(name)' is produced twice (again by node '\(node.name)')")
                }
                producer[name] = i
            }
        }
        var pending = [Int](repeating: 0, count: graph.nodes.count)
        var consumers = [[Int]](repeating: [], count: graph.nodes.count)
        for (i, node) in graph.nodes.enumerated() {
            for name in node.inputs where !name.isEmpty {
                if let p = producer[name] {
                    pending[i] += 1
                    consumers[p].append(i)
                } else if !known.contains(name) {
                    throw InferenceError(.invalidModel, "node '\(node.name)' (\(node.opType)) refers to unknown tensor '\(name)'")
                }
            }
        }
        var ready = pending.indices.filter { pending[$0] == 0 }.reversed() as [Int]
        var order: [Int] = []
        while let i = ready.popLast() {
            order.append(i)
            for c in consumers[i] {
                pending[c] -= 1
                if pending[c] == 0 { ready.append(c) }
            }
        }
        guard order.count == graph.nodes.count else {
            let stuck = graph.nodes.indices.first { pending[$0] > 0 }.map { graph.nodes[$0].name } ?? "?"
            throw InferenceError(.invalidModel, "the graph has a cycle (through node '\(stuck)')")
        }
        return order
    }

    /// Runs a node whose inputs are all constants now, and records its outputs as constants.
    private func fold(_ kernel: any Kernel, outputs: [Int], scratch: [Int]) throws {
        var constantList: [ConstantBuffer] = []
        var storage = [Storage](repeating: .none, count: types.count)
        for (id, tensor) in constants {
            storage[id] = .constant(constantList.count)
            constantList.append(ConstantBuffer(tensor))
        }
        for (slot, id) in (outputs + scratch).enumerated() { storage[id] = .slot(slot) }
        let plan = Plan(types: types, names: names, storage: storage, constants: constantList, steps: [kernel],
                        inputValues: [], outputValues: outputs, slotCount: outputs.count + scratch.count)
        let frame = Frame(plan: plan)
        frame.prepare(batch: 1)
        try kernel.execute(frame)
        for id in outputs {
            guard types[id].shape.isStatic else {
                throw InferenceError(.internalError, "constant folding produced a batch-dependent value '\(names[id])'")
            }
            constants[id] = frame.tensor(id)
        }
    }

    /// Who reads and who produces each value of `steps`, for the fusion passes (which look a
    /// chain of steps up and then replace it by one).
    private struct StepIndex {
        var readers: [Int: Int] = [:]
        var producer: [Int: Int] = [:]
        /// Per value, the steps that read it, in order.
        var consumers: [Int: [Int]] = [:]
        let graphOutputs: Set<Int>

        init(_ steps: [(kernel: any Kernel, inputs: [Int], outputs: [Int])], graphOutputs: Set<Int>) {
            self.graphOutputs = graphOutputs
            for (i, step) in steps.enumerated() {
                for v in Set(step.inputs) {
                    readers[v, default: 0] += 1
                    consumers[v, default: []].append(i)
                }
                for v in step.outputs { producer[v] = i }
            }
        }

        /// Read by exactly `n` steps and not a graph output: safe to fold away.
        func internalValue(_ v: Int, readers n: Int = 1) -> Bool { readers[v] == n && !graphOutputs.contains(v) }
        /// The first step that reads `v`.
        func consumer(_ v: Int) -> Int? { consumers[v]?.first }
    }

    /// The value of an FP32 scalar constant.
    private func scalarConstant(_ v: Int) -> Float? {
        guard let c = constants[v], case .fp32(let x) = c.data, x.count == 1 else { return nil }
        return x[0]
    }

    /// Step `i`'s kernel when it is an FP32 `op`.
    private func binaryStep(_ i: Int, _ op: BinaryOp) -> BinaryKernel<Float>? {
        guard let k = steps[i].kernel as? BinaryKernel<Float>, k.op == op else { return nil }
        return k
    }

    /// The operand of `k` other than `v` (nil when `v` is neither).
    private static func otherOperand(_ k: BinaryKernel<Float>, _ v: Int) -> Int? { k.a == v ? k.b : (k.b == v ? k.a : nil) }

    /// Puts each replacement at its step (the last of its chain) and drops the chains' other steps.
    private func replaceChains(_ replacements: [Int: (kernel: any Kernel, inputs: [Int], outputs: [Int])], removed: Set<Int>) {
        for (i, r) in replacements { steps[i] = r }
        steps = steps.indices.filter { !removed.contains($0) }.map { steps[$0] }
    }

    /// Replaces GELU written out with Erf, as exporters before ONNX's Gelu (opset 20) emit it —
    /// x · 0.5 · (1 + erf(x / √2)), with the division as Div by √2 or Mul by 1/√2 and the three
    /// factors multiplied in any grouping — by one `UnaryKernel(.gelu)`, and its tanh form as
    /// Hugging Face models export it ("gelu_new": x · 0.5 · (1 + tanh(√(2/π) · (x + 0.044715 ·
    /// x³))), the cube as Pow(x, 3) or x · x · x, operands in either order) by one
    /// `UnaryKernel(.geluTanh)`; the packed GEMM's epilogue can then take either in. Only FP32,
    /// only scalar constants, and only when no intermediate value has another reader or is a
    /// graph output.
    private func fuseGelu(graphOutputs: Set<Int>) {
        let index = StepIndex(steps, graphOutputs: graphOutputs)
        let internalValue = { index.internalValue($0) }, consumer = index.consumer, other = Self.otherOperand
        let scalar = scalarConstant
        func near(_ v: Int, _ value: Float) -> Bool { scalar(v).map { Swift.abs($0 - value) <= 1e-5 * value } ?? false }
        func binary(_ v: Int, _ op: BinaryOp) -> (index: Int, kernel: BinaryKernel<Float>)? {
            guard let i = index.producer[v], let k = binaryStep(i, op) else { return nil }
            return (i, k)
        }
        /// The operand of a product `v` whose other operand is the constant `c`, and the product's step.
        func scaled(_ v: Int, by c: Float) -> (operand: Int, step: Int)? {
            guard let (i, k) = binary(v, .mul) else { return nil }
            if near(k.b, c) { return (k.a, i) }
            if near(k.a, c) { return (k.b, i) }
            return nil
        }
        /// erf's input x / √2 or x · (1/√2): x and the step.
        func erfInput(_ v: Int) -> (x: Int, steps: [Int])? {
            guard internalValue(v) else { return nil }
            if let (i, k) = binary(v, .div), near(k.b, 1.41421356) { return (k.a, [i]) }
            return scaled(v, by: 0.70710678).map { ($0.operand, [$0.step]) }
        }
        /// The steps that make `v` = x³ (Pow(x, 3), or x · x · x in either grouping).
        func cube(_ v: Int, of x: Int) -> [Int]? {
            guard internalValue(v), let i = index.producer[v] else { return nil }
            if let p = steps[i].kernel as? PowKernel<Float> { return p.a == x && scalar(p.b) == 3 ? [i] : nil }
            guard let k = steps[i].kernel as? BinaryKernel<Float>, k.op == .mul, let sq = other(k, x),
                internalValue(sq), let (si, s) = binary(sq, .mul), s.a == x, s.b == x
            else { return nil }
            return [si, i]
        }
        /// tanh's input √(2/π) · (x + 0.044715 · x³): x and the steps.
        func tanhInput(_ v: Int) -> (x: Int, steps: [Int])? {
            guard internalValue(v), let (sum, ki) = scaled(v, by: 0.7978845608), internalValue(sum),
                let (ai, add) = binary(sum, .add)
            else { return nil }
            for (x, term) in [(add.a, add.b), (add.b, add.a)] {
                guard internalValue(term), let (cubed, ci) = scaled(term, by: 0.044715), let c = cube(cubed, of: x) else { continue }
                return (x, c + [ci, ai, ki])
            }
            return nil
        }

        var removed = Set<Int>()
        var replacements: [Int: (kernel: any Kernel, inputs: [Int], outputs: [Int])] = [:]
        for (ei, step) in steps.enumerated() {
            guard let unary = step.kernel as? UnaryKernel<Float>, !removed.contains(ei) else { continue }
            let front: (x: Int, steps: [Int])?
            let fused: UnaryOp
            switch unary.op {
            case .erf: (front, fused) = (erfInput(unary.input), .gelu)
            case .tanh: (front, fused) = (tanhInput(unary.input), .geluTanh)
            default: continue
            }
            guard let (x, pre) = front, constants[x] == nil else { continue }
            // 1 + erf(·) or 1 + tanh(·)
            guard internalValue(unary.out), let pi = consumer(unary.out), let plus = steps[pi].kernel as? BinaryKernel<Float>,
                plus.op == .add, let one = other(plus, unary.out), near(one, 1)
            else { continue }
            let opened = plus.out
            guard internalValue(opened), let m1 = consumer(opened), let k1 = steps[m1].kernel as? BinaryKernel<Float>,
                k1.op == .mul, let o1 = other(k1, opened)
            else { continue }
            var chain = pre + [ei, pi, m1]
            var final: Int?
            if o1 == x || near(o1, 0.5) {
                // (x · (1 + f)) · 0.5 or ((1 + f) · 0.5) · x
                guard internalValue(k1.out), let m2 = consumer(k1.out), let k2 = steps[m2].kernel as? BinaryKernel<Float>,
                    k2.op == .mul, let o2 = other(k2, k1.out), o1 == x ? near(o2, 0.5) : o2 == x
                else { continue }
                chain.append(m2)
                final = k2.out
            } else if let (hi, h) = binary(o1, .mul), internalValue(o1),
                (h.a == x && near(h.b, 0.5)) || (h.b == x && near(h.a, 0.5))
            {
                // (x · 0.5) · (1 + f)
                chain.append(hi)
                final = k1.out
            }
            guard let final, types[final] == types[x], chain.allSatisfy({ !removed.contains($0) }) else { continue }
            let last = chain.max()!
            removed.formUnion(chain)
            removed.remove(last)
            replacements[last] = (UnaryKernel<Float>(op: fused, input: x, out: final), [x], [final])
        }
        replaceChains(replacements, removed: removed)
    }

    /// Replaces LayerNorm written out as exporters before LayerNormalization (opset 17) emit it —
    /// mean = ReduceMean(x), d = x − mean, v = ReduceMean(d² as Pow(d, 2) or d · d), n = d /
    /// Sqrt(v + ε), then n · γ and optionally + β, over the same trailing axes (kept) — by one
    /// `LayerNormKernel`. Only FP32, ε a scalar constant, γ and β constants of one value or one
    /// per normalized element, and only when no intermediate value has another reader (d has
    /// exactly its two) or is a graph output.
    private func fuseLayerNorm(graphOutputs: Set<Int>) {
        let index = StepIndex(steps, graphOutputs: graphOutputs)
        let binary = binaryStep, other = Self.otherOperand, scalar = scalarConstant
        func only(_ v: Int, readers n: Int = 1) -> Bool { index.internalValue(v, readers: n) }
        func consumers(_ v: Int) -> [Int] { index.consumers[v] ?? [] }
        /// A ReduceMean over trailing axes with the rank kept: the number of elements it averages.
        func trailingMean(_ k: ReduceKernel<Float>) -> Int? {
            guard k.op == .mean, let first = k.reduced.firstIndex(of: true), k.reduced[first...].allSatisfy({ $0 }),
                types[k.out].shape.count == k.reduced.count
            else { return nil }
            var n = 1
            for d in types[k.input].shape[first...] {
                guard let v = d.fixedValue else { return nil }
                n *= v
            }
            return n
        }
        func affine(_ v: Int, _ length: Int) -> Bool {
            guard let c = constants[v], case .fp32(let x) = c.data else { return false }
            return x.count == length || x.count == 1
        }

        var removed = Set<Int>()
        var replacements: [Int: (kernel: any Kernel, inputs: [Int], outputs: [Int])] = [:]
        for (mi, step) in steps.enumerated() {
            guard let mean = step.kernel as? ReduceKernel<Float>, !removed.contains(mi), let length = trailingMean(mean) else { continue }
            let x = mean.input
            guard constants[x] == nil, only(mean.out), let si = consumers(mean.out).first, let sub = binary(si, .sub),
                sub.a == x, sub.b == mean.out
            else { continue }
            let d = sub.out
            guard only(d, readers: 2) else { continue }
            let uses = consumers(d)
            // d² (Pow or d · d) and d / std, in either order.
            var squareStep: Int?, divStep: Int?
            for u in uses {
                if let p = steps[u].kernel as? PowKernel<Float>, p.a == d, scalar(p.b) == 2 { squareStep = u }
                else if let m = binary(u, .mul), m.a == d, m.b == d { squareStep = u }
                else if let q = binary(u, .div), q.a == d { divStep = u }
            }
            guard let sqi = squareStep, let dvi = divStep, let div = binary(dvi, .div) else { continue }
            let squared = steps[sqi].outputs[0]
            guard only(squared), let vi = consumers(squared).first, let variance = steps[vi].kernel as? ReduceKernel<Float>,
                variance.input == squared, variance.reduced == mean.reduced, trailingMean(variance) == length,
                only(variance.out), let ai = consumers(variance.out).first, let add = binary(ai, .add),
                let epsID = other(add, variance.out), let eps = scalar(epsID),
                only(add.out), let qi = consumers(add.out).first, let root = steps[qi].kernel as? UnaryKernel<Float>,
                root.op == .sqrt, root.input == add.out, div.b == root.out, only(root.out)
            else { continue }
            // · γ (required: the kernel scales) and + β (optional).
            let normalized = div.out
            guard only(normalized), let gi = consumers(normalized).first, let mul = binary(gi, .mul),
                let gamma = other(mul, normalized), affine(gamma, length)
            else { continue }
            var chain = [mi, si, sqi, vi, ai, qi, dvi, gi]
            var final = mul.out
            var beta: Int?
            if only(mul.out), let bi = consumers(mul.out).first, let plus = binary(bi, .add), let b = other(plus, mul.out),
                affine(b, length)
            {
                chain.append(bi)
                final = plus.out
                beta = b
            }
            guard types[final] == types[x], chain.allSatisfy({ !removed.contains($0) }) else { continue }
            let last = chain.max()!
            removed.formUnion(chain)
            removed.remove(last)
            let kernel = LayerNormKernel<Float>(x: x, scale: gamma, bias: beta, out: final, mean: nil, invStd: nil,
                                                length: length, epsilon: Double(eps))
            replacements[last] = (kernel, [x, gamma] + (beta.map { [$0] } ?? []), [final])
        }
        replaceChains(replacements, removed: removed)
    }

    /// Folds what follows a packed GEMM into its epilogue: an Add of a constant that is the same
    /// for every row (the layer's bias), then an activation the epilogue has (Relu, Tanh, Sigmoid,
    /// either GELU), each only when the value in between has no other reader and is not a graph
    /// output. The fused step computes the last value directly; the intermediate values no longer
    /// exist. Packed steps read only A (their weights and bias live in the kernel), so the
    /// original weight constants drop out of the plan.
    private func fuseEpilogues(graphOutputs: Set<Int>) {
        var readers: [Int: Int] = [:]
        for step in steps { for v in Set(step.inputs) { readers[v, default: 0] += 1 } }
        var removed = Set<Int>()
        for i in steps.indices where !removed.contains(i) {
            guard var gemm = steps[i].kernel as? PackedGemmKernel else { continue }
            var outputs = steps[i].outputs
            while gemm.activation == .none {
                let v = gemm.out
                guard !graphOutputs.contains(v), readers[v] == 1,
                    let j = steps.indices.first(where: { $0 > i && !removed.contains($0) && steps[$0].inputs.contains(v) })
                else { break }
                if gemm.weights.bias == nil, let add = steps[j].kernel as? BinaryKernel<Float>, add.op == .add,
                    types[add.out] == types[v]
                {
                    let other = add.a == v ? add.b : add.a
                    guard other != v, let c = constants[other], let bias = rowBias(c, n: gemm.weights.n) else { break }
                    gemm = PackedGemmKernel(a: gemm.a, out: add.out, weights: gemm.weights.withBias(bias))
                } else if let unary = steps[j].kernel as? UnaryKernel<Float>, let act = EpilogueActivation(unary.op) {
                    gemm = PackedGemmKernel(a: gemm.a, out: unary.out, weights: gemm.weights, activation: act)
                } else {
                    break
                }
                removed.insert(j)
                outputs = steps[j].outputs
            }
            steps[i] = (gemm, [gemm.a], outputs)
        }
        steps = steps.indices.filter { !removed.contains($0) }.map { steps[$0] }
    }

    /// Drops steps nothing needs and gives every remaining value a constant or a buffer slot,
    /// reusing the slot of a value once its last reader has run.
    private func assignSlots(inputs: [Int], outputs: [Int]) -> Plan {
        let graphOutputs = Set(outputs)
        // Liveness, backwards from the graph outputs.
        var needed = graphOutputs
        var live: [(kernel: any Kernel, inputs: [Int], outputs: [Int])] = []
        for step in steps.reversed() where step.outputs.contains(where: needed.contains) {
            live.append(step)
            needed.formUnion(step.inputs)
        }
        live.reverse()

        var lastUse: [Int: Int] = [:]
        for (i, step) in live.enumerated() { for v in step.inputs { lastUse[v] = i } }

        var storage = [Storage](repeating: .none, count: types.count)
        var constantList: [ConstantBuffer] = []
        for (id, tensor) in constants where needed.contains(id) {
            storage[id] = .constant(constantList.count)
            constantList.append(ConstantBuffer(tensor))
        }
        var slotCount = 0
        var free: [Int] = []
        func take() -> Int {
            if let s = free.popLast() { return s }
            slotCount += 1
            return slotCount - 1
        }
        func release(_ v: Int) {
            if graphOutputs.contains(v) { return }
            if case .slot(let s) = storage[v] { free.append(s) }
        }
        for v in inputs { storage[v] = .slot(take()) }
        for v in inputs where lastUse[v] == nil { release(v) }
        for (i, step) in live.enumerated() {
            for v in step.outputs { storage[v] = .slot(take()) }
            for v in Set(step.inputs) where lastUse[v] == i && constants[v] == nil { release(v) }
            for v in step.outputs where lastUse[v] == nil { release(v) }
        }
        return Plan(types: types, names: names, storage: storage, constants: constantList,
                    steps: live.map(\.kernel), inputValues: inputs, outputValues: outputs, slotCount: slotCount)
    }
}

/// Marks kernels (like `Constant`) that must be folded even though they have no inputs.
protocol ConstantKernel: Kernel {}

extension Tensor {
    /// An ONNX initializer as a tensor, reading raw_data or the typed field the spec assigns.
    init(onnx t: ONNXTensor) throws {
        let name = t.name
        guard !t.isExternal else {
            throw InferenceError(.unsupportedOperator, "initializer '\(name)' stores its data in an external file")
        }
        guard let dataType = DataType(onnxElemType: t.dataType) else {
            throw InferenceError(.unsupportedOperator, "initializer '\(name)' has unsupported element type \(t.dataType)")
        }
        guard t.dims.allSatisfy({ $0 >= 0 }) else {
            throw InferenceError(.invalidModel, "initializer '\(name)' has a negative dimension \(t.dims)")
        }
        let shape = t.dims.map { Int($0) }
        guard let count = GraphCompiler.boundedElementCount(shape.map { .fixed($0) }) else {
            throw InferenceError(.invalidModel, "initializer '\(name)' has shape \(shape), more than \(GraphCompiler.maxElements) elements")
        }
        func check(_ n: Int) throws {
            guard n == count else {
                throw InferenceError(.invalidModel, "initializer '\(name)' of shape \(shape) has \(n) elements")
            }
        }
        if let raw = t.rawData, dataType != .bytes {
            do {
                self = try Tensor(rawBytes: raw, dataType: dataType, shape: shape)
            } catch {
                throw InferenceError(.invalidModel, "initializer '\(name)' of shape \(shape): raw_data has \(raw.count) bytes")
            }
            return
        }
        let data: TensorData
        switch dataType {
        case .fp32: try check(t.floatData.count); data = .fp32(t.floatData)
        case .fp64: try check(t.doubleData.count); data = .fp64(t.doubleData)
        case .int64: try check(t.int64Data.count); data = .int64(t.int64Data)
        case .int32: try check(t.int32Data.count); data = .int32(t.int32Data)
        case .int16: try check(t.int32Data.count); data = .int16(t.int32Data.map { Int16(truncatingIfNeeded: $0) })
        case .int8: try check(t.int32Data.count); data = .int8(t.int32Data.map { Int8(truncatingIfNeeded: $0) })
        case .uint8: try check(t.int32Data.count); data = .uint8(t.int32Data.map { UInt8(truncatingIfNeeded: $0) })
        case .bool: try check(t.int32Data.count); data = .bool(t.int32Data.map { $0 != 0 })
        case .bytes: try check(t.stringData.count); data = .bytes(t.stringData)
        }
        self.init(shape: shape, data: data)
    }
}
