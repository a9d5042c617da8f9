// Every operator Swerve can run, keyed by "domain|op_type" ("" is the default ONNX domain).

let operatorRegistry: [String: OperatorBuilder] = [
    "|Add": { try buildBinary($0, .add) },
    "|Sub": { try buildBinary($0, .sub) },
    "|Mul": { try buildBinary($0, .mul) },
    "|Div": { try buildBinary($0, .div) },
    "|Relu": { try buildUnary($0, .relu) },
    "|LeakyRelu": { try buildUnary($0, .leakyRelu(alpha: $0.float("alpha", default: 0.01))) },
    "|Sigmoid": { try buildUnary($0, .sigmoid) },
    "|Tanh": { try buildUnary($0, .tanh) },
    "|Exp": { try buildUnary($0, .exp) },
    "|Log": { try buildUnary($0, .log) },
    "|Erf": { try buildUnary($0, .erf) },
    "|Softplus": { try buildUnary($0, .softplus) },
    "|Sqrt": { try buildUnary($0, .sqrt) },
    "|Gelu": buildGelu,
    "|LayerNormalization": buildLayerNormalization,
    "|ReduceMean": { try buildReduce($0, .mean) },
    "|ReduceSum": { try buildReduce($0, .sum) },
    "|ReduceMax": { try buildReduce($0, .max) },
    "|Pow": buildPow,
    "|Abs": buildAbs,
    "|Neg": buildNeg,
    "|Reciprocal": buildReciprocal,
    "|HardSigmoid": buildHardSigmoid,
    "|Clip": buildClip,
    "|Min": { try buildMinMax($0, max: false) },
    "|Max": { try buildMinMax($0, max: true) },
    "|BatchNormalization": buildBatchNormalization,
    "|Transpose": buildTranspose,
    "|Gemm": buildGemm,
    "|MatMul": buildMatMul,
    "|Softmax": buildSoftmax,
    "|ArgMax": { try buildArgExtreme($0, max: true) },
    "|ArgMin": { try buildArgExtreme($0, max: false) },
    "|Flatten": buildFlatten,
    "|Reshape": buildReshape,
    "|Identity": buildIdentity,
    "|Cast": buildCast,
    "|Concat": buildConcat,
    "|Constant": buildConstant,
    "|Shape": buildShape,
    "|Unsqueeze": buildUnsqueeze,
    "|Squeeze": buildSqueeze,
    "|Gather": buildGather,
    "|Where": buildWhere,
    "|Equal": { try buildComparison($0, .equal) },
    "|Less": { try buildComparison($0, .less) },
    "|LessOrEqual": { try buildComparison($0, .lessOrEqual) },
    "|Greater": { try buildComparison($0, .greater) },
    "|GreaterOrEqual": { try buildComparison($0, .greaterOrEqual) },
    "ai.onnx.ml|LinearClassifier": buildLinearClassifier,
    "ai.onnx.ml|LinearRegressor": buildLinearRegressor,
    "ai.onnx.ml|Normalizer": buildNormalizer,
    "ai.onnx.ml|Scaler": buildScaler,
    "ai.onnx.ml|ArrayFeatureExtractor": buildArrayFeatureExtractor,
    "ai.onnx.ml|OneHotEncoder": buildOneHotEncoder,
    "ai.onnx.ml|LabelEncoder": buildLabelEncoder,
    "ai.onnx.ml|CategoryMapper": buildCategoryMapper,
    "ai.onnx.ml|Binarizer": buildBinarizer,
    "ai.onnx.ml|TreeEnsembleClassifier": buildTreeEnsembleClassifier,
    "ai.onnx.ml|TreeEnsembleRegressor": buildTreeEnsembleRegressor,
    "ai.onnx.ml|TreeEnsemble": buildTreeEnsemble,
    "ai.onnx.ml|Imputer": buildImputer,
    "ai.onnx.ml|FeatureVectorizer": buildFeatureVectorizer,
]

/// The operators Swerve supports, as "op_type" or "domain:op_type", sorted.
public var supportedOperators: [String] {
    operatorRegistry.keys.map { key in
        let parts = key.split(separator: "|", omittingEmptySubsequences: false)
        return parts[0].isEmpty ? String(parts[1]) : "\(parts[0]):\(parts[1])"
    }.sorted()
}

// MARK: Elementwise

func buildBinary(_ ctx: NodeContext, _ op: BinaryOp) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(2...2)
    let a = try ctx.input(0), b = try ctx.input(1)
    let t = try ctx.requireType(a, [.fp32, .fp64, .int64, .int32])
    guard ctx.type(b).dataType == t else {
        throw ctx.invalid("input types differ: \(t.rawValue) and \(ctx.type(b).dataType.rawValue)")
    }
    if ctx.opset < 7, ctx.node.attributes["broadcast"] != nil {
        throw ctx.unsupported("legacy 'broadcast'/'axis' attributes (opset < 7) are not supported")
    }
    guard let shape = broadcastShapes([ctx.type(a).shape, ctx.type(b).shape]) else {
        throw ctx.invalid("shapes \(ctx.type(a).shape.text) and \(ctx.type(b).shape.text) do not broadcast")
    }
    let out = ctx.outputs[0]
    let kernel: any Kernel =
        switch t {
        case .fp32: BinaryKernel<Float>(op: op, a: a, b: b, out: out)
        case .fp64: BinaryKernel<Double>(op: op, a: a, b: b, out: out)
        case .int64: BinaryKernel<Int64>(op: op, a: a, b: b, out: out)
        default: BinaryKernel<Int32>(op: op, a: a, b: b, out: out)
        }
    return (kernel, [ValueType(dataType: t, shape: shape)])
}

func buildUnary(_ ctx: NodeContext, _ op: UnaryOp) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let t = try ctx.requireType(x, [.fp32, .fp64])
    let kernel: any Kernel =
        t == .fp32
        ? UnaryKernel<Float>(op: op, input: x, out: ctx.outputs[0])
        : UnaryKernel<Double>(op: op, input: x, out: ctx.outputs[0])
    return (kernel, [ctx.type(x)])
}
