import SwerveProto

extension TrainedModel {
    /// The ONNX opset versions the export uses.
    public static let onnxOpset: Int64 = 13
    public static let onnxMLOpset: Int64 = 1
    /// The ai.onnx.ml opset of gradient-boosted exports (TreeEnsembleClassifier-3).
    public static let onnxTreeMLOpset: Int64 = 3

    /// The model as an ONNX graph that onnxruntime and Swerve run alike.
    ///
    /// Inputs: `numeric` FP32 `[N, numeric features]` (when there are numeric features) and
    /// `categorical` BYTES `[N, categorical features]` (when there are categorical features), columns
    /// in schema order. Numeric columns are standardized with `Sub`/`Div`; each categorical column
    /// is picked with `Gather(axis=1)` and one-hot encoded by `ai.onnx.ml.OneHotEncoder(zeros=1)` —
    /// the shape skl2onnx emits, from which Swerve derives the input's finite domain (so a model over
    /// categorical features only can be served from a static table). Dense layers are `Gemm`.
    ///
    /// Outputs: classifiers `label` INT64 `[N]` (the class index; names in metadata
    /// `swerve.classes`) and `probabilities` FP32 `[N, classes]`; regressors `variable` FP32 `[N, 1]`.
    public func onnxModel(graphName: String = "swerve_trained") -> ONNXModel {
        var nodes: [ONNXNode] = []
        var initializers: [ONNXTensor] = []
        var inputs: [ONNXValueInfo] = []
        var pieces: [String] = []
        func node(_ op: String, _ ins: [String], _ out: String, domain: String = "", _ attributes: [String: ONNXAttribute] = [:]) {
            nodes.append(ONNXNode(name: out + "_" + op, opType: op, domain: domain, inputs: ins, outputs: [out], attributes: attributes))
        }
        let numericCount = encoder.numericNames.count, categoricalCount = encoder.categoricalNames.count
        if numericCount > 0 {
            inputs.append(.tensor("numeric", elemType: ONNXTensor.DataTypeCode.float, shape: [nil, Int64(numericCount)]))
            initializers.append(.floats("numeric_mean", dims: [Int64(numericCount)], encoder.means.map(Float.init)))
            initializers.append(.floats("numeric_scale", dims: [Int64(numericCount)], encoder.scales.map(Float.init)))
            node("Sub", ["numeric", "numeric_mean"], "numeric_centered")
            node("Div", ["numeric_centered", "numeric_scale"], "numeric_standardized")
            pieces.append("numeric_standardized")
        }
        if categoricalCount > 0 {
            inputs.append(.tensor("categorical", elemType: ONNXTensor.DataTypeCode.string, shape: [nil, Int64(categoricalCount)]))
            for (j, categories) in encoder.categories.enumerated() {
                let column = "categorical_\(j)"
                initializers.append(.int64s(column + "_index", dims: [1], [Int64(j)]))
                initializers.append(.int64s(column + "_shape", dims: [2], [-1, Int64(categories.count)]))
                node("Gather", ["categorical", column + "_index"], column, ["axis": .int(1)])
                node("OneHotEncoder", [column], column + "_onehot3d", domain: "ai.onnx.ml",
                     ["cats_strings": .strings(categories), "zeros": .int(1)])
                node("Reshape", [column + "_onehot3d", column + "_shape"], column + "_onehot")
                pieces.append(column + "_onehot")
            }
        }
        var current: String
        if pieces.count == 1 {
            current = pieces[0]
        } else {
            current = "features"
            node("Concat", pieces, current, ["axis": .int(1)])
        }
        if let ensemble {
            nodes.append(Self.treeEnsembleNode(ensemble, input: current, classes: classNames.count))
        }
        for l in 0..<(ensemble == nil ? network.layerCount : 0) {
            let nIn = Int64(network.layerSizes[l]), nOut = Int64(network.layerSizes[l + 1])
            initializers.append(.floats("W\(l)", dims: [nOut, nIn], network.weights(l).map(Float.init)))
            initializers.append(.floats("B\(l)", dims: [nOut], network.biases(l).map(Float.init)))
            let last = l == network.layerCount - 1
            let out = last && network.head == .identity ? "variable" : "dense\(l)"
            node("Gemm", [current, "W\(l)", "B\(l)"], out, ["transB": .int(1)])
            current = out
            if !last {
                let act = network.activation == .relu ? "Relu" : "Tanh"
                node(act, [out], "hidden\(l)")
                current = "hidden\(l)"
            }
        }
        var outputs: [ONNXValueInfo]
        switch network.head {
        case .identity:
            outputs = [.tensor("variable", elemType: ONNXTensor.DataTypeCode.float, shape: [nil, 1])]
        case .sigmoid, .softmax:
            if ensemble != nil {
                // The TreeEnsembleClassifier wrote label and probabilities.
            } else if network.head == .sigmoid {
                initializers.append(.floats("one", dims: [1], [1]))
                node("Sigmoid", [current], "positive")
                node("Sub", ["one", "positive"], "negative")
                node("Concat", ["negative", "positive"], "probabilities", ["axis": .int(1)])
            } else {
                node("Softmax", [current], "probabilities", ["axis": .int(1)])
            }
            if ensemble == nil { node("ArgMax", ["probabilities"], "label", ["axis": .int(1), "keepdims": .int(0)]) }
            outputs = [
                .tensor("label", elemType: ONNXTensor.DataTypeCode.int64, shape: [nil]),
                .tensor("probabilities", elemType: ONNXTensor.DataTypeCode.float, shape: [nil, Int64(classNames.count)]),
            ]
        }
        let graph = ONNXGraph(name: graphName, nodes: nodes, initializers: initializers, inputs: inputs, outputs: outputs)
        var metadata: [String: String] = [
            "swerve.model_kind": kind.rawValue,
            "swerve.label": labelName,
            "swerve.numeric_features": jsonArray(encoder.numericNames),
            "swerve.categorical_features": jsonArray(encoder.categoricalNames),
        ]
        if !classNames.isEmpty { metadata["swerve.classes"] = jsonArray(classNames) }
        return ONNXModel(
            irVersion: 8,
            opsetImports: [.init(domain: "", version: Self.onnxOpset), .init(domain: "ai.onnx.ml", version: ensemble == nil ? Self.onnxMLOpset : Self.onnxTreeMLOpset)],
            producerName: "swerve-train", producerVersion: SwerveTraining.codeVersion, graph: graph, metadata: metadata)
    }

    /// The serialized ONNX model.
    public func onnxBytes(graphName: String = "swerve_trained") -> [UInt8] { onnxModel(graphName: graphName).encode() }

    /// The model's inputs for `data`'s rows as the exported graph takes them: `numeric` FP32
    /// `[rows, k]` values (raw, unstandardized) and `categorical` strings `[rows, m]`, row-major.
    public func onnxInputs(for data: Dataset) throws -> (numeric: [Float], categorical: [String]) {
        let numericColumns = try encoder.numericNames.map { name in
            guard let i = data.numericNames.firstIndex(of: name) else { throw TrainingError(.invalidData, "the data has no numeric feature '\(name)'") }
            return data.numeric[i]
        }
        let categoricalColumns = try encoder.categoricalNames.map { name in
            guard let i = data.categoricalNames.firstIndex(of: name) else { throw TrainingError(.invalidData, "the data has no categorical feature '\(name)'") }
            return data.categorical[i]
        }
        var numeric: [Float] = [], categorical: [String] = []
        numeric.reserveCapacity(data.rowCount * numericColumns.count)
        for r in 0..<data.rowCount {
            for c in numericColumns { numeric.append(Float(c[r])) }
            for c in categoricalColumns { categorical.append(c[r]) }
        }
        return (numeric, categorical)
    }
}

/// A JSON array of strings.
func jsonArray(_ strings: [String]) -> String {
    "[" + strings.map { s in
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }.joined(separator: ",") + "]"
}
