// The ai.onnx.ml operators that encode categorical features: OneHotEncoder, LabelEncoder,
// CategoryMapper and Binarizer. Behaviour for categories missing from the tables (defaults,
// all-zero rows, errors) and for duplicate keys follows onnxruntime's kernels, the oracle.

// MARK: OneHotEncoder

func buildOneHotEncoder(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let type = try ctx.requireType(x, [.bytes, .int64, .int32, .fp32, .fp64])
    let shape = ctx.type(x).shape
    guard shape.count <= 2 else {
        throw ctx.unsupported("input \(shape.text) has rank \(shape.count); onnxruntime encodes inputs of rank ≤ 2 only")
    }
    let intCategories = try ctx.ints("cats_int64s") ?? []
    let stringCategories = try ctx.strings("cats_strings") ?? []
    guard intCategories.isEmpty || stringCategories.isEmpty else {
        throw ctx.invalid("has both cats_int64s and cats_strings")
    }
    let zeros = try ctx.int("zeros", default: 1) != 0
    let out = ctx.outputs[0]
    let kernel: any Kernel
    let count: Int
    if type == .bytes {
        guard !stringCategories.isEmpty else { throw ctx.invalid("a STRING input needs the attribute cats_strings") }
        count = stringCategories.count
        kernel = OneHotEncoderKernel<[UInt8]>(
            input: x, out: out, table: categoryTable(stringCategories), categories: count, zeros: zeros,
            label: ctx.label)
    } else {
        // Numeric inputs are converted to INT64 (truncating, as C++ static_cast does) and looked up
        // in cats_int64s.
        guard !intCategories.isEmpty else { throw ctx.invalid("a numeric input needs the attribute cats_int64s") }
        count = intCategories.count
        let table = categoryTable(intCategories)
        func make<S: CategoryElement>(_: S.Type) -> any Kernel where S.Key == Int64 {
            OneHotEncoderKernel<S>(input: x, out: out, table: table, categories: count, zeros: zeros, label: ctx.label)
        }
        kernel =
            switch type {
            case .int64: make(Int64.self)
            case .int32: make(Int32.self)
            case .fp32: make(Float.self)
            default: make(Double.self)
            }
    }
    return (kernel, [ValueType(dataType: .fp32, shape: shape + [.fixed(count)])])
}

/// Category → position; a repeated category keeps its last position (onnxruntime assigns in order).
private func categoryTable<K: Hashable>(_ categories: [K]) -> [K: Int] {
    var table: [K: Int] = [:]
    for (i, c) in categories.enumerated() { table[c] = i }
    return table
}

/// An input element and the category it names: itself for STRING and INT64; numbers convert
/// to INT64 the way C++ `static_cast` does (truncation toward zero).
protocol CategoryElement: FrameElement {
    associatedtype Key: Hashable & Sendable
    var categoryKey: Key { get }
}

extension Array: CategoryElement where Element == UInt8 {
    var categoryKey: [UInt8] { self }
}
extension Int64: CategoryElement { var categoryKey: Int64 { self } }
extension Int32: CategoryElement { var categoryKey: Int64 { Int64(self) } }
extension Float: CategoryElement { var categoryKey: Int64 { Int64(castingDouble: Double(self)) } }
extension Double: CategoryElement { var categoryKey: Int64 { Int64(castingDouble: self) } }

struct OneHotEncoderKernel<Source: CategoryElement>: Kernel {
    let input: Int, out: Int
    let table: [Source.Key: Int]
    let categories: Int
    /// Whether an unknown category gives an all-zero row (true) or fails the request.
    let zeros: Bool
    let label: String

    func execute(_ frame: Frame) throws {
        let n = frame.count(input)
        let y = frame.pointer(out, Float.self)
        y.initialize(repeating: 0, count: n * categories)
        try Source.reading(frame, input) { read in
            for i in 0..<n {
                let value = read(i)
                if let position = table[value.categoryKey] {
                    y[i * categories + position] = 1
                } else if !zeros {
                    throw InferenceError(.invalidInput, "\(label): unknown category \(describe(value)) and zeros = 0")
                }
            }
        }
    }
}

/// A category as a person reads it in an error message.
func describe<T>(_ value: T) -> String {
    if let bytes = value as? [UInt8] { return "'\(String(decoding: bytes, as: UTF8.self))'" }
    return "\(value)"
}

// MARK: LabelEncoder

/// A LabelEncoder or CategoryMapper table: keys and values of one element type each.
enum LookupColumn {
    case strings([[UInt8]]), int64s([Int64]), floats([Float]), doubles([Double]), int16s([Int16])

    var dataType: DataType {
        switch self {
        case .strings: .bytes
        case .int64s: .int64
        case .floats: .fp32
        case .doubles: .fp64
        case .int16s: .int16
        }
    }

    var count: Int {
        switch self {
        case .strings(let v): v.count
        case .int64s(let v): v.count
        case .floats(let v): v.count
        case .doubles(let v): v.count
        case .int16s(let v): v.count
        }
    }

    init?(_ tensor: Tensor) {
        switch tensor.data {
        case .bytes(let v): self = .strings(v)
        case .int64(let v): self = .int64s(v)
        case .fp32(let v): self = .floats(v)
        case .fp64(let v): self = .doubles(v)
        case .int16(let v): self = .int16s(v)
        default: return nil
        }
    }
}

func buildLabelEncoder(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let inputType = try ctx.requireType(x, [.bytes, .int64, .fp32, .fp64])
    let shape = ctx.type(x).shape
    let out = ctx.outputs[0]

    if ctx.opset < 2 {
        // Version 1: classes_strings[i] ↔ i, in the direction the input type picks.
        let classes = try ctx.strings("classes_strings") ?? []
        let defaultInt = Int64(try ctx.int("default_int64", default: -1))
        let defaultString = Array(try ctx.string("default_string", default: "_Unused").utf8)
        switch inputType {
        case .bytes:
            var table: [[UInt8]: Int64] = [:]
            for (i, c) in classes.enumerated() { table[c] = Int64(i) }  // the last duplicate wins
            return (LookupKernel(input: x, out: out, table: table, fallback: defaultInt, nanValue: nil),
                    [ValueType(dataType: .int64, shape: shape)])
        case .int64:
            let table = Dictionary(uniqueKeysWithValues: classes.enumerated().map { (Int64($0.offset), $0.element) })
            return (LookupKernel(input: x, out: out, table: table, fallback: defaultString, nanValue: nil),
                    [ValueType(dataType: .bytes, shape: shape)])
        default:
            throw ctx.unsupported("LabelEncoder version 1 maps STRING and INT64 inputs only, not \(inputType.rawValue)")
        }
    }

    let keys = try lookupColumn(ctx, prefix: "keys")
    let values = try lookupColumn(ctx, prefix: "values")
    guard keys.count == values.count else {
        throw ctx.invalid("has \(keys.count) keys but \(values.count) values")
    }
    guard keys.dataType == inputType else {
        throw ctx.invalid("keys are \(keys.dataType.rawValue) but the input is \(inputType.rawValue)")
    }
    let defaultValue = try labelEncoderDefault(ctx, for: values, keys: keys)
    // From version 4 a NaN key matches NaN inputs (onnxruntime's NaN-aware hashing); before, never.
    let nanMatches = ctx.opset >= 4

    func make<K: FrameElement, V: FrameElement>(_ k: [K], _ v: [V], _ d: V) -> any Kernel {
        var table: [K: V] = [:]
        var nanValue: V? = nil
        for (key, value) in zip(k, v) {
            if key != key {
                if nanMatches && nanValue == nil { nanValue = value }
            } else if table[key] == nil {
                table[key] = value  // the first duplicate wins (onnxruntime emplaces)
            }
        }
        return LookupKernel(input: x, out: out, table: table, fallback: d, nanValue: nanValue)
    }
    func withKeys<V: FrameElement>(_ v: [V], _ d: V) -> any Kernel {
        switch keys {
        case .strings(let k): make(k, v, d)
        case .int64s(let k): make(k, v, d)
        case .floats(let k): make(k, v, d)
        case .doubles(let k): make(k, v, d)
        case .int16s(let k): make(k, v, d)
        }
    }
    let kernel: any Kernel =
        switch (values, defaultValue) {
        case (.strings(let v), .strings(let d)): withKeys(v, d[0])
        case (.int64s(let v), .int64s(let d)): withKeys(v, d[0])
        case (.floats(let v), .floats(let d)): withKeys(v, d[0])
        case (.doubles(let v), .doubles(let d)): withKeys(v, d[0])
        case (.int16s(let v), .int16s(let d)): withKeys(v, d[0])
        default: throw ctx.invalid("the default value's type differs from the values' type")
        }
    return (kernel, [ValueType(dataType: values.dataType, shape: shape)])
}

/// The keys or values of a LabelEncoder (version 2+): `<prefix>_strings`, `_int64s`, `_floats`,
/// or (version 4) `<prefix>_tensor`.
private func lookupColumn(_ ctx: NodeContext, prefix: String) throws -> LookupColumn {
    var found: [LookupColumn] = []
    if let v = try ctx.strings("\(prefix)_strings") { found.append(.strings(v)) }
    if let v = try ctx.ints("\(prefix)_int64s") { found.append(.int64s(v)) }
    if let v = try ctx.floats("\(prefix)_floats") { found.append(.floats(v)) }
    if let a = ctx.attribute("\(prefix)_tensor") {
        guard case .tensor(let t) = a else { throw ctx.invalid("attribute '\(prefix)_tensor' must be a tensor") }
        let tensor = try Tensor(onnx: t)
        guard let column = LookupColumn(tensor) else {
            throw ctx.unsupported("'\(prefix)_tensor' has type \(tensor.dataType.rawValue)")
        }
        found.append(column)
    }
    guard found.count == 1 else {
        throw ctx.invalid(found.isEmpty ? "missing the \(prefix) attribute" : "has more than one \(prefix) attribute")
    }
    return found[0]
}

/// The value for keys missing from the table: `default_tensor` (version 4), else the
/// `default_<type>` attribute, else onnxruntime's default for the key and value types.
private func labelEncoderDefault(_ ctx: NodeContext, for values: LookupColumn, keys: LookupColumn) throws -> LookupColumn {
    if case .tensor(let t)? = ctx.attribute("default_tensor") {
        let tensor = try Tensor(onnx: t)
        guard tensor.elementCount == 1, let column = LookupColumn(tensor), column.dataType == values.dataType else {
            throw ctx.invalid("default_tensor must hold one \(values.dataType.rawValue) value")
        }
        return column
    }
    switch values {
    case .strings: return .strings([Array(try ctx.string("default_string", default: "_Unused").utf8)])
    case .int64s: return .int64s([Int64(try ctx.int("default_int64", default: -1))])
    case .floats:
        // onnxruntime: -0.0 for float keys and before version 4, +0.0 for other keys from 4.
        let fallback: Float = ctx.opset >= 4 && keys.dataType != .fp32 ? 0 : -0.0
        return .floats([try ctx.float("default_float", default: fallback)])
    case .doubles: return .doubles([Double(try ctx.float("default_float", default: -0.0))])
    case .int16s: return .int16s([-1])
    }
}

/// out[i] = table[in[i]] ?? fallback, for any key and value element types.
struct LookupKernel<Key: FrameElement, Value: FrameElement>: Kernel {
    let input: Int, out: Int
    let table: [Key: Value]
    let fallback: Value
    /// The value for NaN inputs, when a NaN key matches them.
    let nanValue: Value?

    func execute(_ frame: Frame) {
        Key.reading(frame, input) { read in
            Value.writing(frame, out, count: frame.count(input)) { i in
                let key = read(i)
                if let value = table[key] { return value }
                if let nanValue, key != key { return nanValue }
                return fallback
            }
        }
    }
}

// MARK: CategoryMapper

func buildCategoryMapper(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let type = try ctx.requireType(x, [.bytes, .int64])
    let strings = try ctx.strings("cats_strings") ?? []
    let ints = try ctx.ints("cats_int64s") ?? []
    guard strings.count == ints.count else {
        throw ctx.invalid("cats_strings has \(strings.count) entries but cats_int64s has \(ints.count)")
    }
    let shape = ctx.type(x).shape
    let out = ctx.outputs[0]
    // onnxruntime assigns pairs in order, so the last duplicate wins in either direction.
    if type == .bytes {
        var table: [[UInt8]: Int64] = [:]
        for (s, i) in zip(strings, ints) { table[s] = i }
        let fallback = Int64(try ctx.int("default_int64", default: -1))
        return (LookupKernel(input: x, out: out, table: table, fallback: fallback, nanValue: nil),
                [ValueType(dataType: .int64, shape: shape)])
    }
    var table: [Int64: [UInt8]] = [:]
    for (s, i) in zip(strings, ints) { table[i] = s }
    let fallback = Array(try ctx.string("default_string", default: "_Unused").utf8)
    return (LookupKernel(input: x, out: out, table: table, fallback: fallback, nanValue: nil),
            [ValueType(dataType: .bytes, shape: shape)])
}

// MARK: Binarizer

func buildBinarizer(_ ctx: NodeContext) throws -> (kernel: any Kernel, outputs: [ValueType]) {
    try ctx.requireInputs(1...1)
    let x = try ctx.input(0)
    let type = try ctx.requireType(x, [.fp32, .fp64, .int64, .int32])
    let threshold = try ctx.float("threshold", default: 0)
    let out = ctx.outputs[0]
    let kernel: any Kernel =
        switch type {
        case .fp32: BinarizerKernel<Float>(input: x, out: out, label: ctx.label) { $0 > threshold }
        case .fp64: BinarizerKernel<Double>(input: x, out: out, label: ctx.label) { $0 > Double(threshold) }
        // C++ compares an integer with a float threshold in float.
        case .int64: BinarizerKernel<Int64>(input: x, out: out, label: ctx.label) { Float($0) > threshold }
        default: BinarizerKernel<Int32>(input: x, out: out, label: ctx.label) { Float($0) > threshold }
        }
    return (kernel, [ctx.type(x)])
}

/// y = x > threshold ? 1 : 0 in x's type; a NaN fails the request, as in onnxruntime.
struct BinarizerKernel<T: BufferElement & Numeric>: Kernel {
    let input: Int, out: Int, label: String
    let above: @Sendable (T) -> Bool

    func execute(_ frame: Frame) throws {
        let x = frame.pointer(input, T.self), y = frame.pointer(out, T.self)
        for i in 0..<frame.count(input) {
            let v = x[i]
            if v != v { throw InferenceError(.invalidInput, "\(label): input element \(i) is NaN") }
            y[i] = above(v) ? 1 : 0
        }
    }
}
