import SwerveProto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An ONNX model checked and compiled into an execution plan. Immutable and shareable between
/// threads; each thread runs it through its own `ModelExecutor`.
public final class CompiledModel: Sendable {
    /// The graph inputs a request supplies (initializers excluded), in graph order. A first
    /// dimension of -1 is the dynamic batch dimension.
    public let inputs: [TensorInfo]
    /// The graph outputs, in graph order; batch-dependent dimensions are -1.
    public let outputs: [TensorInfo]
    /// The model's version of the default ONNX operator set (0 when it imports none: a graph of
    /// ai.onnx.ml operators only).
    public let opsetVersion: Int
    /// The `producer_name` recorded in the model (e.g. "skl2onnx", "pytorch").
    public let producer: String
    /// The model's `metadata_props`.
    public let metadata: [String: String]
    /// Finite value sets of input columns that the graph implies (see `InputColumnDomain`).
    public let derivedInputDomains: [InputColumnDomain]
    let plan: Plan

    /// Parses, checks and compiles a serialized ONNX model.
    ///
    /// Throws `InferenceError` with `.invalidModel` for bytes that are not an ONNX model or a graph
    /// that is inconsistent (unknown tensor names, cycles, shape mismatches), and with
    /// `.unsupportedOperator` for operators, types or dynamic shapes Swerve cannot run.
    public convenience init(onnxBytes: [UInt8]) throws {
        let model: ONNXModel
        do {
            model = try ONNXModel.decode(onnxBytes)
        } catch let error as ONNXDecodingError {
            throw InferenceError(.invalidModel, error.message, cause: error)
        }
        try self.init(model, compiler: GraphCompiler())
    }

    /// A native XGBoost or LightGBM model (see `NativeTreeModel`) as a one-node graph: input
    /// `inputName` FP32 [N, features], output `outputName` FP32 [N] or [N, columns], exactly what
    /// the library's `predict` returns. The file's feature names go into `metadata`
    /// ("feature_names", comma-separated) with its format and objective.
    public convenience init(native: NativeTreeModel, inputName: String = "input", outputName: String = "predictions") throws {
        let evaluator = try TreeEnsembleEvaluator(native.ensemble)
        let features = Int64(native.ensemble.featureCount)
        let columns = native.outputColumns
        let node = ONNXNode(name: "native", opType: "NativeTreeModel", domain: nativeDomain, inputs: [inputName], outputs: [outputName])
        var metadata = ["format": native.format.rawValue, "objective": native.objective]
        if !native.featureNames.isEmpty { metadata["feature_names"] = native.featureNames.joined(separator: ",") }
        let model = ONNXModel(
            opsetImports: [ONNXOperatorSetID(domain: nativeDomain, version: 1)], producerName: native.format.rawValue.lowercased(),
            graph: ONNXGraph(
                name: "native", nodes: [node],
                inputs: [.tensor(inputName, elemType: 1, shape: [nil, features])],
                outputs: [.tensor(outputName, elemType: 1, shape: columns == 1 ? [nil] : [nil, Int64(columns)])]),
            metadata: metadata)
        let compiler = GraphCompiler()
        compiler.privateOperators[nativeDomain + "|NativeTreeModel"] = { ctx in
            let x = try ctx.input(0)
            let rows = ctx.type(x).shape[0]
            // Margins go straight into the output, transformed in place, except for argmax, whose
            // output is narrower than its margins.
            let margins = native.transform == .argmax
                ? ctx.scratch(ValueType(dataType: .fp32, shape: [rows, .fixed(native.ensemble.targetCount)])) : nil
            let snapped = native.readsTinyValuesAsZero ? ctx.scratch(ctx.type(x)) : nil
            let kernel = NativeTreeKernel(
                evaluator: evaluator, transform: native.transform, input: x, snapped: snapped, margins: margins, out: ctx.outputs[0])
            return (kernel, [ValueType(dataType: .fp32, shape: columns == 1 ? [rows] : [rows, .fixed(columns)])])
        }
        try self.init(model, compiler: compiler)
    }

    private init(_ model: ONNXModel, compiler: GraphCompiler) throws {
        _ = configureBLASOnce
        let result = try compiler.compile(model)
        inputs = result.inputs
        outputs = result.outputs
        opsetVersion = result.opsetVersion
        producer = model.producerName
        metadata = model.metadata
        derivedInputDomains = deriveInputDomains(model, inputs: result.inputs)
        plan = result.plan
    }

    /// The default bound on an ONNX file's size when reading it from disk: 2 GiB, protobuf's own
    /// limit on a serialized message.
    public static let defaultMaxFileBytes = 2 << 30

    /// Reads and compiles the ONNX model at `path`. The file must be a regular file (symlinks are
    /// followed) of at most `maxBytes` bytes; anything else throws `invalidModel` naming the path,
    /// what was wrong and the limit, without reading it (see `BoundedFile`).
    ///
    /// A file named `*.xgb.json` or `*.lgb.txt` is read as a native XGBoost or LightGBM model
    /// (`init(native:)`), its input named `nativeInputName` (default "input").
    public convenience init(contentsOfFile path: String, maxBytes: Int = CompiledModel.defaultMaxFileBytes,
                            nativeInputName: String? = nil) throws {
        let bytes: [UInt8]
        do {
            bytes = try BoundedFile.read(path, limit: maxBytes, what: "model file")
        } catch {
            throw InferenceError(.invalidModel, error.message, cause: error)
        }
        let fileName = path.split(separator: "/").last.map(String.init) ?? path
        if let format = NativeTreeModel.format(ofFileNamed: fileName) {
            try self.init(native: try NativeTreeModel(format, bytes: bytes), inputName: nativeInputName ?? "input")
        } else {
            try self.init(onnxBytes: bytes)
        }
    }

    /// A new executor for one thread. It owns buffers sized for the largest batch it has run.
    public func makeExecutor() -> ModelExecutor { ModelExecutor(model: self) }
}

/// Runs a `CompiledModel`, reusing its buffers from run to run. Not thread-safe: use one per
/// thread (or guard it), and create more with `CompiledModel.makeExecutor()`.
public final class ModelExecutor {
    /// The model this executor runs.
    public let model: CompiledModel
    private let frame: Frame

    /// Per input: its element type, and its dims flattened (-1 for the batch) at `dimStart[i]`,
    /// so checking a request's inputs reads plain integers (no per-request copies of names or
    /// shape arrays).
    private let inputTypes: [DataType]
    private let inputDims: [Int]
    private let dimStart: [Int]

    init(model: CompiledModel) {
        self.model = model
        frame = Frame(plan: model.plan)
        var types: [DataType] = [], dims: [Int] = [], start: [Int] = []
        for v in model.plan.inputValues {
            let t = model.plan.types[v]
            types.append(t.dataType)
            start.append(dims.count)
            dims.append(contentsOf: t.shape.map { $0.fixedValue ?? -1 })
        }
        start.append(dims.count)
        inputTypes = types
        inputDims = dims
        dimStart = start
    }

    /// Runs the model on one batch.
    ///
    /// `inputs` are in `CompiledModel.inputs` order and share their first (batch) dimension.
    /// Returns the outputs in `CompiledModel.outputs` order. Throws `invalidInput` naming the
    /// input and the expected and actual type or shape.
    public func run(_ inputs: [Tensor]) throws -> [Tensor] {
        let n = try batchSize(of: inputs)
        frame.prepare(batch: n)
        for (i, tensor) in inputs.enumerated() { frame.load(model.plan.inputValues[i], from: tensor) }
        return try execute()
    }

    /// Runs the model on the requests `parts` as one batch: each part holds one request's inputs
    /// (in `CompiledModel.inputs` order), and the batch is their rows one after another. Each part
    /// is copied once, straight into the executor's input buffers, never into an intermediate
    /// concatenation. Returns the batch's outputs, to be split by the parts' row counts.
    public func run(rowsOf parts: [[Tensor]]) throws -> [Tensor] {
        guard let first = parts.first else { throw InferenceError(.invalidInput, "no requests to run") }
        if parts.count == 1 { return try run(first) }
        var n = 0
        for part in parts { n += try batchSize(of: part) }
        frame.prepare(batch: n)
        for i in model.plan.inputValues.indices {
            frame.load(model.plan.inputValues[i], fromRowsOf: parts.lazy.map { $0[i] })
        }
        return try execute()
    }

    /// Runs the model on the requests `parts` as one batch, like `run(rowsOf:)`, and returns each
    /// part's row count for `outputs(splitting:)`, which then hands each part its own rows of every
    /// output, copied once from the executor's buffers (no whole-batch output tensors in between).
    /// Two calls so the caller can time computing and output separately.
    public func compute(rowsOf parts: [[Tensor]]) throws -> [Int] {
        guard !parts.isEmpty else { throw InferenceError(.invalidInput, "no requests to run") }
        var rows: [Int] = []
        rows.reserveCapacity(parts.count)
        var n = 0
        for part in parts {
            let r = try batchSize(of: part)
            rows.append(r)
            n += r
        }
        frame.prepare(batch: n)
        for i in model.plan.inputValues.indices {
            if parts.count == 1 {
                frame.load(model.plan.inputValues[i], from: parts[0][i])
            } else {
                frame.load(model.plan.inputValues[i], fromRowsOf: parts.lazy.map { $0[i] })
            }
        }
        try executeSteps()
        return rows
    }

    /// The outputs of the last `compute(rowsOf:)`, split by its row counts. With more than one
    /// part every output must have the batch as its first dimension (`internalError` otherwise:
    /// such outputs cannot be split between requests).
    public func outputs(splitting rows: [Int]) throws -> [[Tensor]] {
        let plan = model.plan
        if rows.count == 1 { return [plan.outputValues.map { frame.tensor($0) }] }
        // Splittable: the first dimension is the batch itself and no other depends on it (a
        // value's shape is known at compile time up to N; see SymDim).
        for v in plan.outputValues {
            let shape = plan.types[v].shape
            guard shape.first == .batch(1), !shape.dropFirst().contains(where: \.isBatch) else {
                throw InferenceError(.internalError, "output '\(plan.names[v])' has no batch dimension (shape \(frame.shape(v))) and cannot be split between batched requests")
            }
        }
        var out: [[Tensor]] = []
        out.reserveCapacity(rows.count)
        var offset = 0
        for r in rows {
            var tensors: [Tensor] = []
            tensors.reserveCapacity(plan.outputValues.count)
            for v in plan.outputValues { tensors.append(frame.tensor(v, rows: offset..<(offset + r))) }
            out.append(tensors)
            offset += r
        }
        return out
    }

    /// Checks `inputs` against the model's input types and returns their batch size (1 when no
    /// input has a batch dimension).
    private func batchSize(of inputs: [Tensor]) throws -> Int {
        guard inputs.count == inputTypes.count else {
            throw InferenceError(.invalidInput, "expected \(inputTypes.count) inputs (\(model.inputs.map(\.name).joined(separator: ", "))), got \(inputs.count)")
        }
        var batch = -1
        var batchSource = 0
        for i in 0..<inputs.count {
            guard inputs[i].dataType == inputTypes[i] else {
                throw InferenceError(.invalidInput, "input '\(model.inputs[i].name)': expected \(inputTypes[i].rawValue), got \(inputs[i].dataType.rawValue)")
            }
            let rank = dimStart[i + 1] - dimStart[i]
            guard inputs[i].shape.count == rank else { throw shapeMismatch(inputs, i) }
            for d in 0..<rank {
                let want = inputDims[dimStart[i] + d], got = inputs[i].shape[d]
                if want >= 0 {
                    guard got == want else { throw shapeMismatch(inputs, i) }
                } else {
                    if batch >= 0 && batch != got {
                        throw InferenceError(.invalidInput, "input '\(model.inputs[i].name)' has batch size \(got) but input '\(model.inputs[batchSource].name)' has \(batch)")
                    }
                    batch = got
                    batchSource = i
                }
            }
        }
        if batch < 0 { return 1 }
        guard batch > 0 else { throw InferenceError(.invalidInput, "the batch is empty (input '\(model.inputs[batchSource].name)' has 0 rows)") }
        return batch
    }

    private func shapeMismatch(_ inputs: [Tensor], _ i: Int) -> InferenceError {
        InferenceError(.invalidInput, "input '\(model.inputs[i].name)': expected shape \(model.inputs[i].shape), got \(inputs[i].shape)")
    }

    /// Runs the plan on the loaded frame and returns the outputs.
    private func execute() throws -> [Tensor] {
        try executeSteps()
        return model.plan.outputValues.map { frame.tensor($0) }
    }

    private func executeSteps() throws {
        do {
            for step in model.plan.steps { try step.execute(frame) }
        } catch let error as InferenceError {
            throw error
        } catch {
            throw InferenceError(.internalError, "\(error)")
        }
    }
}

/// The private operator domain of native tree models' one node.
let nativeDomain = "ai.swerve.native"

/// A native tree model's evaluation: margins, then the library's `predict` transform.
struct NativeTreeKernel: Kernel {
    let evaluator: TreeEnsembleEvaluator
    let transform: NativeTreeModel.Transform
    let input: Int
    /// Where the input goes with tiny values read as 0 (LightGBM), or nil.
    let snapped: Int?
    /// Where the margins go when they cannot go into `out` (argmax), or nil.
    let margins: Int?
    let out: Int

    func execute(_ frame: Frame) {
        let n = frame.count(input)
        let rows = n / evaluator.featureCount
        let m = frame.pointer(margins ?? out, Float.self)
        var x = UnsafePointer(frame.pointer(input, Float.self))
        if let snapped {
            let y = frame.pointer(snapped, Float.self)
            for i in 0..<n { y[i] = abs(x[i]) <= 1e-35 ? 0 : x[i] }
            x = UnsafePointer(y)
        }
        evaluator.evaluate(rows: x, count: rows, into: m)
        NativeTreeModel.apply(transform, m, rows: rows, targets: evaluator.targetCount)
        if margins != nil { frame.pointer(out, Float.self).update(from: m, count: rows) }
    }
}
