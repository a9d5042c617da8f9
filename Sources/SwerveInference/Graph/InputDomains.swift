import SwerveProto

/// A finite set of values one element (column) of a graph input's rows takes, as the graph itself
/// says: the categories of the encoder it feeds, the rows of the embedding table it indexes, or
/// {false, true} for BOOL. The serving layer precomputes a model whose every input column has one.
///
/// Any finite set gives exact answers — the table is filled by running the model — so the sets only
/// need to cover the values worth precomputing; other values are computed as usual.
public struct InputColumnDomain: Sendable, Equatable {
    public var input: String
    /// Index of the element within one row (row-major over the non-batch dimensions).
    public var element: Int
    public var values: TensorData

    public init(input: String, element: Int, values: TensorData) {
        self.input = input
        self.element = element
        self.values = values
    }
}

/// Derives per-column domains for INT64, INT32, BYTES and BOOL inputs of shape [batch, k] (or [batch]).
/// Columns with no finite domain in the graph are left out; the caller decides what is enough.
func deriveInputDomains(_ model: ONNXModel, inputs: [TensorInfo]) -> [InputColumnDomain] {
    let graph = model.graph
    var constants: [String: Tensor] = [:]
    for t in graph.initializers { if let v = try? Tensor(onnx: t) { constants[t.name] = v } }
    for n in graph.nodes where n.opType == "Constant" && n.domain.isEmpty {
        if let t = n.attributes["value"]?.tensorValue, let v = try? Tensor(onnx: t), let out = n.outputs.first { constants[out] = v }
    }
    var consumers: [String: [(node: ONNXNode, slot: Int)]] = [:]
    for n in graph.nodes { for (i, name) in n.inputs.enumerated() where !name.isEmpty { consumers[name, default: []].append((n, i)) } }

    func ints(_ t: Tensor?) -> [Int]? {
        switch t?.data {
        case .int64(let v)?: v.map(Int.init)
        case .int32(let v)?: v.map(Int.init)
        default: nil
        }
    }

    /// Category sets reachable from `tensor` through value-preserving nodes, for a given element type.
    func categories(of tensor: String, _ dt: DataType, depth: Int = 0) -> [TensorData] {
        guard depth < 8 else { return [] }
        var found: [TensorData] = []
        for (node, slot) in consumers[tensor] ?? [] {
            let a = node.attributes
            switch (node.domain, node.opType) {
            case ("ai.onnx.ml", "OneHotEncoder"), ("ai.onnx.ml", "CategoryMapper"):
                if dt == .bytes, let s = a["cats_strings"]?.stringsValue { found.append(.bytes(s.map { Array($0.utf8) })) }
                if dt == .int64, let v = a["cats_int64s"]?.intsValue { found.append(.int64(v)) }
            case ("ai.onnx.ml", "LabelEncoder"):
                if dt == .bytes, let s = a["keys_strings"]?.stringsValue ?? a["classes_strings"]?.stringsValue { found.append(.bytes(s.map { Array($0.utf8) })) }
                if dt == .int64, let v = a["keys_int64s"]?.intsValue { found.append(.int64(v)) }
            case ("", "Gather") where slot == 1:
                // An embedding lookup: the indices' domain is the table's rows along `axis`.
                if let table = constants[node.inputs[0]], dt == .int64 || dt == .int32 {
                    var axis = Int(a["axis"]?.intValue ?? 0)
                    if axis < 0 { axis += table.shape.count }
                    if table.shape.indices.contains(axis) {
                        let rows = Int64(table.shape[axis])
                        found.append(dt == .int64 ? .int64(Array(0..<rows)) : .int32(Array(0..<Int32(rows))))
                    }
                }
            case ("", "Identity"), ("", "Reshape"), ("", "Squeeze"), ("", "Unsqueeze"), ("", "Flatten"):
                if slot == 0 { for out in node.outputs { found += categories(of: out, dt, depth: depth + 1) } }
            case ("", "Cast"):
                if slot == 0, DataType(onnxElemType: Int32(a["to"]?.intValue ?? 0)) == dt {
                    for out in node.outputs { found += categories(of: out, dt, depth: depth + 1) }
                }
            default:
                break
            }
        }
        return found
    }

    var result: [InputColumnDomain] = []
    for info in inputs {
        guard info.shape.count >= 1, info.shape.count <= 2 else { continue }
        let width = info.shape.count == 2 ? info.shape[1] : 1
        guard width >= 1, width <= 1024 else { continue }
        if info.dataType == .bool {
            for e in 0..<width { result.append(.init(input: info.name, element: e, values: .bool([false, true]))) }
            continue
        }
        guard [.int64, .int32, .bytes].contains(info.dataType) else { continue }
        var perColumn = [[TensorData]](repeating: [], count: width)
        for set in categories(of: info.name, info.dataType) { for e in 0..<width { perColumn[e].append(set) } }
        // Column selections: Gather(axis=1) / ArrayFeatureExtractor with constant indices.
        for (node, slot) in consumers[info.name] ?? [] where slot == 0 {
            let isGather = node.opType == "Gather" && node.domain.isEmpty && (node.attributes["axis"]?.intValue ?? 0) == 1
            let isAFE = node.opType == "ArrayFeatureExtractor" && node.domain == "ai.onnx.ml"
            guard isGather || isAFE, node.inputs.count > 1, let cols = ints(constants[node.inputs[1]]) else { continue }
            let sets = node.outputs.flatMap { categories(of: $0, info.dataType) }
            for c in cols {
                let e = c < 0 ? c + width : c
                if perColumn.indices.contains(e) { perColumn[e] += sets }
            }
        }
        for (e, sets) in perColumn.enumerated() where !sets.isEmpty {
            result.append(.init(input: info.name, element: e, values: union(sets)))
        }
    }
    return result
}

/// The distinct values of several sets of one type, in first-seen order.
private func union(_ sets: [TensorData]) -> TensorData {
    switch sets[0] {
    case .int64:
        var seen = Set<Int64>(), out: [Int64] = []
        for case .int64(let v) in sets { for x in v where seen.insert(x).inserted { out.append(x) } }
        return .int64(out)
    case .int32:
        var seen = Set<Int32>(), out: [Int32] = []
        for case .int32(let v) in sets { for x in v where seen.insert(x).inserted { out.append(x) } }
        return .int32(out)
    case .bytes:
        var seen = Set<[UInt8]>(), out: [[UInt8]] = []
        for case .bytes(let v) in sets { for x in v where seen.insert(x).inserted { out.append(x) } }
        return .bytes(out)
    default:
        return sets[0]
    }
}
