// Operators that move or convert data without arithmetic: Flatten, Reshape, Shape, Unsqueeze,
// Squeeze, Identity, Concat, Cast, Constant.

/// Copies its input; Flatten, Reshape and Identity differ only in the output's shape.
struct CopyKernel: Kernel {
    let input: Int, out: Int
    func execute(_ frame: Frame) { frame.copyValue(input, to: out) }
}

func buildIdentity(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    return (CopyKernel(input: x, out: ctx.outputs[0]), [ctx.type(x)])
}

func buildFlatten(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let shape = ctx.type(x).shape
    let axis = try ctx.axis(ctx.int("axis", default: 1), rank: shape.count, allowEnd: true)
    guard let outer = shape.product(0..<axis).dim, let inner = shape.product(axis..<shape.count).dim else {
        throw ctx.unsupported("flattening \(shape.text) at axis \(axis) would square the batch dimension")
    }
    return (CopyKernel(input: x, out: ctx.outputs[0]), [ValueType(dataType: ctx.type(x).dataType, shape: [outer, inner])])
}

func buildReshape(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    let x = try ctx.input(0)
    // Each target entry is an integer (0 = copy, -1 = infer) or, from a Shape chain, a
    // symbolic batch dimension.
    let target: [SymDim]
    if ctx.opset < 5 {
        try ctx.requireInputs(1...1)
        guard let s = try ctx.ints("shape") else { throw ctx.invalid("missing attribute 'shape'") }
        target = s.map { .fixed(Int($0)) }
    } else {
        try ctx.requireInputs(2...2)
        let s = try ctx.input(1)
        guard ctx.type(s).dataType == .int64 else { throw ctx.invalid("the shape input must be INT64") }
        guard let values = ctx.compiler.shapeValue(s) else {
            throw ctx.unsupported(
                "the target shape '\(ctx.compiler.names[s])' must be a constant or computed from tensor shapes (Shape, Gather, Concat…)")
        }
        target = values
    }
    let allowZero = try ctx.int("allowzero", default: 0) != 0
    let input = ctx.type(x).shape
    var out: [SymDim] = []
    var inferred: Int? = nil
    for (i, s) in target.enumerated() {
        switch s {
        case .batch:
            out.append(s)
        case .fixed(0) where !allowZero:
            guard i < input.count else { throw ctx.invalid("shape \(target.text): 0 at index \(i) but input rank is \(input.count)") }
            out.append(input[i])
        case .fixed(-1):
            guard inferred == nil else { throw ctx.invalid("shape \(target.text) has more than one -1") }
            inferred = i
            out.append(.fixed(1))
        case .fixed(let k) where k < 0:
            throw ctx.invalid("shape \(target.text) has invalid dimension \(k)")
        default:
            out.append(s)
        }
    }
    let total = input.product()
    if let i = inferred {
        let known = out.product()
        guard known.coefficient != 0, total.coefficient % known.coefficient == 0,
            let dim = SymSize(coefficient: total.coefficient / known.coefficient, power: total.power - known.power).dim,
            total.power >= known.power
        else {
            throw ctx.invalid("cannot reshape \(input.text) to \(target.text)")
        }
        out[i] = dim
    } else if out.product() != total {
        throw ctx.invalid("cannot reshape \(input.text) to \(target.text): element counts differ")
    }
    return (CopyKernel(input: x, out: ctx.outputs[0]), [ValueType(dataType: ctx.type(x).dataType, shape: out)])
}

// MARK: Shape

func buildShape(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let shape = ctx.type(x).shape
    // Opset 15 added start/end, clamped to the rank like Python slices.
    func clamp(_ i: Int) -> Int { min(max(i < 0 ? i + shape.count : i, 0), shape.count) }
    let start = clamp(try ctx.int("start", default: 0))
    let end = max(clamp(try ctx.int("end", default: shape.count)), start)
    let dims = Array(shape[start..<end])
    let out = ctx.outputs[0]
    let type = ValueType(dataType: .int64, shape: [.fixed(dims.count)])
    if dims.allSatisfy({ !$0.isBatch }) {
        let values = dims.map { Int64($0.fixedValue!) }
        return (ConstantValueKernel(tensor: Tensor(shape: [dims.count], data: .int64(values)), out: out), [type])
    }
    ctx.compiler.shapeValues[out] = dims
    return (ShapeKernel(input: x, out: out, start: start), [type])
}

/// Writes the resolved dimensions `start ..< start + count(out)` of its input.
struct ShapeKernel: Kernel {
    let input: Int, out: Int, start: Int
    func execute(_ frame: Frame) {
        let y = frame.pointer(out, Int64.self)
        for i in 0..<frame.count(out) { y[i] = Int64(frame.dim(input, start + i)) }
    }
}

// MARK: Unsqueeze / Squeeze

/// The `axes` of Unsqueeze or Squeeze: an attribute before opset 13, an optional constant INT64
/// input from 13 (torch.onnx and skl2onnx emit it as an initializer or a Constant node).
private func squeezeAxes(_ ctx: NodeContext, required: Bool) throws -> [Int64]? {
    if ctx.opset < 13 {
        try ctx.requireInputs(1...1)
        let axes = try ctx.ints("axes")
        if required && axes == nil { throw ctx.invalid("missing attribute 'axes'") }
        return axes
    }
    try ctx.requireInputs(required ? 2...2 : 1...2)
    guard let id = ctx.optionalInput(1) else { return nil }
    guard let tensor = ctx.constant(id) else {
        throw ctx.unsupported("the axes input '\(ctx.compiler.names[id])' must be a constant (initializer or folded)")
    }
    guard case .int64(let values) = tensor.data, tensor.shape.count <= 1 else {
        throw ctx.invalid("the axes input must be a 1-D INT64 tensor")
    }
    return values
}

func buildUnsqueeze(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    let x = try ctx.input(0)
    let axes = try squeezeAxes(ctx, required: true) ?? []
    let input = ctx.type(x).shape
    let rank = input.count + axes.count
    var inserted = Set<Int>()
    for a in axes {
        let axis = try ctx.axis(Int(a), rank: rank)
        guard inserted.insert(axis).inserted else { throw ctx.invalid("axis \(a) appears twice in \(axes)") }
    }
    var rest = input.makeIterator()
    let shape = (0..<rank).map { inserted.contains($0) ? SymDim.fixed(1) : rest.next()! }
    return (CopyKernel(input: x, out: ctx.outputs[0]), [ValueType(dataType: ctx.type(x).dataType, shape: shape)])
}

func buildSqueeze(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    let x = try ctx.input(0)
    let input = ctx.type(x).shape
    var removed = Set<Int>()
    if let axes = try squeezeAxes(ctx, required: false) {
        for a in axes {
            let axis = try ctx.axis(Int(a), rank: input.count)
            guard input[axis] == .fixed(1) else {
                throw input[axis].isBatch
                    ? ctx.unsupported("cannot squeeze axis \(a) of \(input.text): it is the batch dimension")
                    : ctx.invalid("cannot squeeze axis \(a) of \(input.text): its size is not 1")
            }
            removed.insert(axis)
        }
    } else {
        // Without axes every size-1 dimension goes. A batch dimension is 1 only for a batch of
        // one, so the output's rank would depend on the request: refuse rather than guess.
        if input.contains(.batch(1)) {
            throw ctx.unsupported("Squeeze without axes on \(input.text) would drop the batch dimension for a batch of 1")
        }
        for (i, d) in input.enumerated() where d == .fixed(1) { removed.insert(i) }
    }
    let shape = input.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    return (CopyKernel(input: x, out: ctx.outputs[0]), [ValueType(dataType: ctx.type(x).dataType, shape: shape)])
}

// MARK: Concat

func buildConcat(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    guard !ctx.inputs.isEmpty else { throw ctx.invalid("needs at least one input") }
    let ids = try ctx.inputs.indices.map { try ctx.input($0) }
    let first = ctx.type(ids[0])
    let rank = first.shape.count
    guard let rawAxis = try ctx.int("axis") ?? (ctx.opset < 4 ? 1 : nil) else {
        throw ctx.invalid("missing attribute 'axis'")
    }
    let axis = try ctx.axis(rawAxis, rank: rank)
    var axisTotal = 0
    for id in ids {
        let t = ctx.type(id)
        guard t.dataType == first.dataType else {
            throw ctx.invalid("inputs have different types: \(first.dataType.rawValue) and \(t.dataType.rawValue)")
        }
        guard t.shape.count == rank else { throw ctx.invalid("inputs have different ranks: \(first.shape.text) and \(t.shape.text)") }
        for d in 0..<rank where d != axis && t.shape[d] != first.shape[d] {
            throw ctx.invalid("input shapes \(first.shape.text) and \(t.shape.text) differ outside axis \(axis)")
        }
        guard let k = t.shape[axis].fixedValue else {
            throw ctx.unsupported("concatenation along the batch dimension is not supported")
        }
        axisTotal += k
    }
    var shape = first.shape
    shape[axis] = .fixed(axisTotal)
    return (ConcatKernel(inputs: ids, out: ctx.outputs[0], axis: axis), [ValueType(dataType: first.dataType, shape: shape)])
}

struct ConcatKernel: Kernel {
    let inputs: [Int], out: Int, axis: Int

    func execute(_ frame: Frame) {
        let outer = frame.size(out, 0..<axis)
        let inner = frame.size(out, (axis + 1)..<frame.rank(out))
        if frame.dataType(out) == .bytes {
            var result: [[UInt8]] = []
            result.reserveCapacity(frame.count(out))
            let sources = inputs.map { frame.strings($0) }
            for o in 0..<outer {
                for (i, v) in inputs.enumerated() {
                    let chunk = frame.dim(v, axis) * inner
                    result.append(contentsOf: sources[i][(o * chunk)..<((o + 1) * chunk)])
                }
            }
            frame.setStrings(out, result)
            return
        }
        let size = frame.dataType(out).byteSize!
        var dst = frame.raw(out)
        for o in 0..<outer {
            for v in inputs {
                let chunk = frame.dim(v, axis) * inner * size
                if chunk > 0 {
                    dst.copyMemory(from: frame.raw(v) + o * chunk, byteCount: chunk)
                    dst += chunk
                }
            }
        }
    }
}

// MARK: Constant

struct ConstantValueKernel: ConstantKernel {
    let tensor: Tensor, out: Int
    func execute(_ frame: Frame) { frame.load(out, from: tensor) }
}

func buildConstant(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(0...0)
    let tensor: Tensor
    if case .tensor(let t)? = ctx.attribute("value") {
        tensor = try Tensor(onnx: t)
    } else if let a = ctx.attribute("value_float"), let f = a.floatValue {
        tensor = Tensor(shape: [], data: .fp32([f]))
    } else if let f = try ctx.floats("value_floats") {
        tensor = Tensor(shape: [f.count], data: .fp32(f))
    } else if let i = try ctx.int("value_int") {
        tensor = Tensor(shape: [], data: .int64([Int64(i)]))
    } else if let i = try ctx.ints("value_ints") {
        tensor = Tensor(shape: [i.count], data: .int64(i))
    } else if case .string(let s)? = ctx.attribute("value_string") {
        tensor = Tensor(shape: [], data: .bytes([s]))
    } else if let s = try ctx.strings("value_strings") {
        tensor = Tensor(shape: [s.count], data: .bytes(s))
    } else {
        throw ctx.unsupported("needs one of the attributes value, value_float(s), value_int(s), value_string(s)")
    }
    return (ConstantValueKernel(tensor: tensor, out: ctx.outputs[0]),
            [ValueType(dataType: tensor.dataType, shape: tensor.shape.map { .fixed($0) })])
}

// MARK: Cast

/// Conversions follow C++ `static_cast` as onnxruntime does on x86-64: floating to integer
/// truncates toward zero, NaN and out-of-range values become the "integer indefinite" value
/// (INT_MIN) instead of trapping; integer narrowing wraps; anything non-zero is true.
protocol CastScalar {
    static var isFloatingPoint: Bool { get }
    var asDouble: Double { get }
    var asInt64: Int64 { get }
    init(castingDouble d: Double)
    init(castingInt64 i: Int64)
}

private func int64FromDouble(_ d: Double) -> Int64 {
    (d >= -9.223372036854775808e18 && d < 9.223372036854775808e18) ? Int64(d) : Int64.min
}

private func int32FromDouble(_ d: Double) -> Int32 {
    (d > -2147483649.0 && d < 2147483648.0) ? Int32(d) : Int32.min
}

extension Float: CastScalar {
    static var isFloatingPoint: Bool { true }
    var asDouble: Double { Double(self) }
    var asInt64: Int64 { int64FromDouble(Double(self)) }
    init(castingDouble d: Double) { self = Float(d) }
    init(castingInt64 i: Int64) { self = Float(i) }
}

extension Double: CastScalar {
    static var isFloatingPoint: Bool { true }
    var asDouble: Double { self }
    var asInt64: Int64 { int64FromDouble(self) }
    init(castingDouble d: Double) { self = d }
    init(castingInt64 i: Int64) { self = Double(i) }
}

extension Int64: CastScalar {
    static var isFloatingPoint: Bool { false }
    var asDouble: Double { Double(self) }
    var asInt64: Int64 { self }
    init(castingDouble d: Double) { self = int64FromDouble(d) }
    init(castingInt64 i: Int64) { self = i }
}

extension Int32: CastScalar {
    static var isFloatingPoint: Bool { false }
    var asDouble: Double { Double(self) }
    var asInt64: Int64 { Int64(self) }
    init(castingDouble d: Double) { self = int32FromDouble(d) }
    init(castingInt64 i: Int64) { self = Int32(truncatingIfNeeded: i) }
}

extension Int16: CastScalar {
    static var isFloatingPoint: Bool { false }
    var asDouble: Double { Double(self) }
    var asInt64: Int64 { Int64(self) }
    init(castingDouble d: Double) { self = Int16(truncatingIfNeeded: int32FromDouble(d)) }
    init(castingInt64 i: Int64) { self = Int16(truncatingIfNeeded: i) }
}

extension Int8: CastScalar {
    static var isFloatingPoint: Bool { false }
    var asDouble: Double { Double(self) }
    var asInt64: Int64 { Int64(self) }
    init(castingDouble d: Double) { self = Int8(truncatingIfNeeded: int32FromDouble(d)) }
    init(castingInt64 i: Int64) { self = Int8(truncatingIfNeeded: i) }
}

extension UInt8: CastScalar {
    static var isFloatingPoint: Bool { false }
    var asDouble: Double { Double(self) }
    var asInt64: Int64 { Int64(self) }
    init(castingDouble d: Double) { self = UInt8(truncatingIfNeeded: int32FromDouble(d)) }
    init(castingInt64 i: Int64) { self = UInt8(truncatingIfNeeded: i) }
}

extension Bool: CastScalar {
    static var isFloatingPoint: Bool { false }
    var asDouble: Double { self ? 1 : 0 }
    var asInt64: Int64 { self ? 1 : 0 }
    init(castingDouble d: Double) { self = d != 0 }
    init(castingInt64 i: Int64) { self = i != 0 }
}

func buildCast(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    guard let code = try ctx.int("to") else { throw ctx.invalid("missing attribute 'to'") }
    guard let to = DataType(onnxElemType: Int32(truncatingIfNeeded: code)) else {
        throw ctx.unsupported("cast to ONNX type \(code) is not supported")
    }
    let from = ctx.type(x).dataType
    if from == .bytes || to == .bytes {
        guard from == to else { throw ctx.unsupported("casts from or to STRING are not supported") }
    }
    return (CastKernel(input: x, out: ctx.outputs[0], from: from, to: to),
            [ValueType(dataType: to, shape: ctx.type(x).shape)])
}

struct CastKernel: Kernel {
    let input: Int, out: Int, from: DataType, to: DataType

    func execute(_ frame: Frame) {
        if from == to {
            frame.copyValue(input, to: out)
            return
        }
        switch from {
        case .fp32: castFrom(frame.pointer(input, Float.self), frame)
        case .fp64: castFrom(frame.pointer(input, Double.self), frame)
        case .int64: castFrom(frame.pointer(input, Int64.self), frame)
        case .int32: castFrom(frame.pointer(input, Int32.self), frame)
        case .int16: castFrom(frame.pointer(input, Int16.self), frame)
        case .int8: castFrom(frame.pointer(input, Int8.self), frame)
        case .uint8: castFrom(frame.pointer(input, UInt8.self), frame)
        case .bool: castFrom(frame.pointer(input, Bool.self), frame)
        case .bytes: break
        }
    }

    private func castFrom<S: CastScalar>(_ src: UnsafeMutablePointer<S>, _ frame: Frame) {
        let n = frame.count(out)
        func loop<D: CastScalar>(_: D.Type) {
            let dst = frame.pointer(out, D.self)
            if S.isFloatingPoint {
                for i in 0..<n { dst[i] = D(castingDouble: src[i].asDouble) }
            } else {
                for i in 0..<n { dst[i] = D(castingInt64: src[i].asInt64) }
            }
        }
        switch to {
        case .fp32: loop(Float.self)
        case .fp64: loop(Double.self)
        case .int64: loop(Int64.self)
        case .int32: loop(Int32.self)
        case .int16: loop(Int16.self)
        case .int8: loop(Int8.self)
        case .uint8: loop(UInt8.self)
        case .bool: loop(Bool.self)
        case .bytes: break
        }
    }
}
