// Operators that select or compare elements of any type: Gather (embedding lookups, column
// picks), Where, and the comparisons Equal, Less, LessOrEqual, Greater, GreaterOrEqual.

// MARK: Gather

func buildGather(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(2...2)
    let data = try ctx.input(0), indices = try ctx.input(1)
    let dataType = ctx.type(data)
    let indexType = try ctx.requireType(indices, [.int64, .int32], "indices")
    guard !dataType.shape.isEmpty else { throw ctx.invalid("data must have rank ≥ 1") }
    let axis = try ctx.axis(ctx.int("axis", default: 0), rank: dataType.shape.count)
    let axisDim = dataType.shape[axis]
    // Constant indices are checked now, so a bad model fails at load rather than per request.
    if let k = axisDim.fixedValue, let constant = ctx.constant(indices) {
        let values: [Int64] =
            switch constant.data {
            case .int64(let v): v
            case .int32(let v): v.map(Int64.init)
            default: []
            }
        if let bad = values.first(where: { $0 < -Int64(k) || $0 >= Int64(k) }) {
            throw ctx.invalid("index \(bad) is out of range for axis \(axis) of size \(k)")
        }
    }
    var shape = Array(dataType.shape[..<axis])
    shape += ctx.type(indices).shape
    shape += dataType.shape[(axis + 1)...]
    let out = ctx.outputs[0]
    let kernel: any Kernel = withMovableType(dataType.dataType) { element in
        func make<T: FrameElement>(_: T.Type) -> any Kernel {
            indexType == .int64
                ? GatherKernel<T, Int64>(data: data, indices: indices, out: out, axis: axis, label: ctx.label)
                : GatherKernel<T, Int32>(data: data, indices: indices, out: out, axis: axis, label: ctx.label)
        }
        return make(element)
    }
    return (kernel, [ValueType(dataType: dataType.dataType, shape: shape)])
}

/// out[o, i, j] = data[o, indices[i], j] with data viewed as [outer, axis, inner] and indices
/// flattened; negative indices count from the end of the axis, as in onnxruntime.
struct GatherKernel<T: FrameElement, Index: BinaryInteger & BufferElement>: Kernel {
    let data: Int, indices: Int, out: Int, axis: Int
    let label: String

    func execute(_ frame: Frame) throws {
        let outer = frame.size(data, 0..<axis), axisSize = frame.dim(data, axis)
        let inner = frame.size(data, (axis + 1)..<frame.rank(data))
        let k = frame.count(indices)
        let idx = frame.pointer(indices, Index.self)
        for i in 0..<k where Int(idx[i]) < -axisSize || Int(idx[i]) >= axisSize {
            throw InferenceError(
                .invalidInput, "\(label): index \(idx[i]) is out of range for axis \(axis) of size \(axisSize)")
        }
        if T.self != [UInt8].self {
            // Fixed-size elements: each index copies one contiguous block of `inner` elements
            // (an embedding row when gathering axis 0 of a table).
            let size = MemoryLayout<T>.stride, block = inner * size
            let src = frame.raw(data), dst = frame.raw(out)
            if block == 0 { return }
            for o in 0..<outer {
                for i in 0..<k {
                    var row = Int(idx[i])
                    if row < 0 { row += axisSize }
                    (dst + (o * k + i) * block).copyMemory(from: src + (o * axisSize + row) * block, byteCount: block)
                }
            }
            return
        }
        let total = outer * k * inner
        T.reading(frame, data) { read in
            T.writing(frame, out, count: total) { o in
                let j = o % inner, rest = o / inner
                let i = rest % k, block = rest / k
                var row = Int(idx[i])
                if row < 0 { row += axisSize }
                return read((block * axisSize + row) * inner + j)
            }
        }
    }
}

// MARK: Where

func buildWhere(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(3...3)
    let condition = try ctx.input(0), x = try ctx.input(1), y = try ctx.input(2)
    _ = try ctx.requireType(condition, [.bool], "condition")
    let type = ctx.type(x).dataType
    guard ctx.type(y).dataType == type else {
        throw ctx.invalid("X and Y have different types: \(type.rawValue) and \(ctx.type(y).dataType.rawValue)")
    }
    guard let shape = broadcastShapes([ctx.type(condition).shape, ctx.type(x).shape, ctx.type(y).shape]) else {
        throw ctx.invalid(
            "shapes \(ctx.type(condition).shape.text), \(ctx.type(x).shape.text) and \(ctx.type(y).shape.text) do not broadcast")
    }
    let out = ctx.outputs[0]
    let kernel: any Kernel = withMovableType(type) { element in
        func make<T: FrameElement>(_: T.Type) -> any Kernel {
            WhereKernel<T>(condition: condition, x: x, y: y, out: out)
        }
        return make(element)
    }
    return (kernel, [ValueType(dataType: type, shape: shape)])
}

struct WhereKernel<T: FrameElement>: Kernel {
    let condition: Int, x: Int, y: Int, out: Int

    func execute(_ frame: Frame) {
        let c = frame.pointer(condition, Bool.self)
        let n = frame.count(out)
        if T.self == [UInt8].self {
            let xs = frame.strings(x), ys = frame.strings(y)
            var result: [[UInt8]] = []
            result.reserveCapacity(n)
            forEachBroadcast(frame, out: out, condition, x, y) { _, ic, ix, iy in
                result.append(c[ic] ? xs[ix] : ys[iy])
            }
            frame.setStrings(out, result)
            return
        }
        T.reading(frame, x) { readX in
            T.reading(frame, y) { readY in
                let dst = frame.raw(out).assumingMemoryBound(to: T.self)
                forEachBroadcast(frame, out: out, condition, x, y) { o, ic, ix, iy in
                    dst[o] = c[ic] ? readX(ix) : readY(iy)
                }
            }
        }
    }
}

// MARK: Comparisons

enum Comparison: Sendable {
    case equal, less, lessOrEqual, greater, greaterOrEqual
}

/// Elements the comparison operators accept. Floating point follows IEEE (NaN compares false).
protocol ComparableElement: FrameElement {
    static func holds(_ comparison: Comparison, _ a: Self, _ b: Self) -> Bool
}

extension ComparableElement where Self: Comparable {
    @inline(__always)
    static func holds(_ comparison: Comparison, _ a: Self, _ b: Self) -> Bool {
        switch comparison {
        case .equal: a == b
        case .less: a < b
        case .lessOrEqual: a <= b
        case .greater: a > b
        case .greaterOrEqual: a >= b
        }
    }
}

extension Float: ComparableElement {}
extension Double: ComparableElement {}
extension Int64: ComparableElement {}
extension Int32: ComparableElement {}
extension Int16: ComparableElement {}
extension Int8: ComparableElement {}
extension UInt8: ComparableElement {}

extension Array: ComparableElement where Element == UInt8 {
    /// Byte strings order as `std::string` does (ONNX defines only Equal on strings).
    static func holds(_ comparison: Comparison, _ a: [UInt8], _ b: [UInt8]) -> Bool {
        switch comparison {
        case .equal: a == b
        case .less: a.lexicographicallyPrecedes(b)
        case .lessOrEqual: !b.lexicographicallyPrecedes(a)
        case .greater: b.lexicographicallyPrecedes(a)
        case .greaterOrEqual: !a.lexicographicallyPrecedes(b)
        }
    }
}

func buildComparison(_ ctx: NodeContext, _ comparison: Comparison) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(2...2)
    let a = try ctx.input(0), b = try ctx.input(1)
    var allowed: Set<DataType> = [.fp32, .fp64, .int64, .int32, .int16, .int8, .uint8]
    if comparison == .equal {
        allowed.insert(.bool)
        allowed.insert(.bytes)
    }
    let t = try ctx.requireType(a, allowed)
    guard ctx.type(b).dataType == t else {
        throw ctx.invalid("input types differ: \(t.rawValue) and \(ctx.type(b).dataType.rawValue)")
    }
    guard let shape = broadcastShapes([ctx.type(a).shape, ctx.type(b).shape]) else {
        throw ctx.invalid("shapes \(ctx.type(a).shape.text) and \(ctx.type(b).shape.text) do not broadcast")
    }
    let out = ctx.outputs[0]
    func make<T: ComparableElement>(_: T.Type) -> any Kernel {
        ComparisonKernel<T>(comparison: comparison, a: a, b: b, out: out)
    }
    let kernel: any Kernel =
        switch t {
        case .fp32: make(Float.self)
        case .fp64: make(Double.self)
        case .int64: make(Int64.self)
        case .int32: make(Int32.self)
        case .int16: make(Int16.self)
        case .int8: make(Int8.self)
        case .uint8, .bool: make(UInt8.self)
        case .bytes: make([UInt8].self)
        }
    return (kernel, [ValueType(dataType: .bool, shape: shape)])
}

struct ComparisonKernel<T: ComparableElement>: Kernel {
    let comparison: Comparison
    let a: Int, b: Int, out: Int

    func execute(_ frame: Frame) {
        let y = frame.pointer(out, Bool.self)
        T.reading(frame, a) { readA in
            T.reading(frame, b) { readB in
                forEachBroadcast(frame, out: out, a, b, b) { o, ia, ib, _ in
                    y[o] = T.holds(comparison, readA(ia), readB(ib))
                }
            }
        }
    }
}
